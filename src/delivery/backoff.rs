//! The wait between two tries of a sink: a webhook's retries of a batch, the MQTT bridge's
//! reconnections. One rule for both, so that they behave the same towards a receiver that is down.
//!
//! Exponential (`base * 2^(n-1)`), so that a receiver that is down for long is not hammered; with
//! ±25% jitter, so that many appliances behind one receiver do not retry in step; bounded, so that
//! one that comes back is noticed within the cap; and never shorter than a `Retry-After` the
//! receiver sent, which is its to ask.

use std::time::Duration;

use rand::Rng;

/// The longest wait between two tries, whatever the base, the cap and the try number say.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How far the jitter moves a wait either way.
const JITTER: std::ops::RangeInclusive<f64> = 0.75..=1.25;

/// A back-off rule: the first wait and the longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// Waits of `base`, doubling, at most `cap` (and never more than [`MAX_BACKOFF`]).
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff { base, cap }
    }

    /// The wait before try `n + 1` after `n` failures (`n` from 1). The doubled base is held at
    /// [`MAX_BACKOFF`] before the jitter and the result at the cap after it, so a cap below
    /// [`MAX_BACKOFF`] is reached and kept rather than jittered below.
    pub fn wait(&self, n: u32, retry_after: Option<Duration>) -> Duration {
        let doubled = self
            .base
            .saturating_mul(1u32 << n.saturating_sub(1).min(20))
            .min(MAX_BACKOFF);
        let jitter = rand::thread_rng().gen_range(JITTER);
        let wait = doubled.mul_f64(jitter).min(MAX_BACKOFF).min(self.cap);
        match retry_after {
            Some(asked) => wait.max(asked),
            None => wait,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_within_the_jitter() {
        let b = Backoff::new(Duration::from_secs(1), MAX_BACKOFF);
        for n in 1..=9u32 {
            let base = 2f64.powi(n as i32 - 1);
            for _ in 0..50 {
                let w = b.wait(n, None).as_secs_f64();
                assert!(
                    w >= base * 0.75 - 1e-9 && w <= base * 1.25 + 1e-9,
                    "n={n} w={w}"
                );
            }
        }
    }

    #[test]
    fn waits_stay_under_the_cap_and_the_global_limit_even_for_huge_try_numbers() {
        let capped = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let uncapped = Backoff::new(Duration::from_secs(60), Duration::MAX);
        for n in [6, 10, 21, 40, u32::MAX] {
            for _ in 0..50 {
                assert!(capped.wait(n, None) <= Duration::from_secs(30));
                assert!(uncapped.wait(n, None) <= MAX_BACKOFF);
            }
        }
        // Far past the cap, the wait is the cap itself (the doubled base jittered down is still
        // above it).
        assert_eq!(capped.wait(12, None), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_is_honoured_even_past_the_cap() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
        assert_eq!(
            b.wait(1, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert!(b.wait(1, Some(Duration::from_millis(1))) >= Duration::from_millis(750));
    }

    #[test]
    fn a_zero_base_never_waits() {
        let b = Backoff::new(Duration::ZERO, MAX_BACKOFF);
        assert_eq!(b.wait(5, None), Duration::ZERO);
    }
}
