//! How often a sign-in may fail: a bound on guessing the API token through the console's form.
//!
//! Failures are counted in a sliding window of one minute, per peer address ([`PER_PEER`]) and for
//! everyone together ([`IN_ALL`]); past either, every sign-in (the right token too, so that the
//! answer teaches nothing) gets 429 `too_many_attempts` with `Retry-After` until the oldest
//! failure leaves the window. The bound for everyone caps an attacker with many addresses (IPv6
//! gives one plenty) at 30 guesses a minute; the price is that such an attacker can keep the
//! form closed to everyone meanwhile, which bearer clients (scripts) do not feel.
//!
//! Memory stays bounded without a sweep: a failure is only recorded while the window holds fewer
//! than [`IN_ALL`], so no more than that many addresses have an entry at any time, and entries
//! whose failures left the window are dropped at the next look.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Failures one address may have in the window.
pub const PER_PEER: usize = 5;
/// Failures everyone together may have in the window.
pub const IN_ALL: usize = 30;

#[derive(Default)]
pub struct Attempts {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    all: VecDeque<Instant>,
    per_peer: HashMap<IpAddr, VecDeque<Instant>>,
}

fn prune(q: &mut VecDeque<Instant>, now: Instant) {
    while q.front().is_some_and(|&t| now.duration_since(t) >= WINDOW) {
        q.pop_front();
    }
}

/// Whole seconds (at least one) until the oldest of `q` leaves the window.
fn wait(q: &VecDeque<Instant>, now: Instant) -> u32 {
    let oldest = q.front().copied().unwrap_or(now);
    let left = WINDOW.saturating_sub(now.duration_since(oldest));
    (left.as_millis().div_ceil(1000) as u32).max(1)
}

impl Attempts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(seconds to wait)` when `peer` may not try now.
    pub fn check(&self, peer: IpAddr, now: Instant) -> Result<(), u32> {
        let mut inner = self.lock();
        prune(&mut inner.all, now);
        inner.per_peer.retain(|_, q| {
            prune(q, now);
            !q.is_empty()
        });
        if let Some(q) = inner.per_peer.get(&peer).filter(|q| q.len() >= PER_PEER) {
            return Err(wait(q, now));
        }
        if inner.all.len() >= IN_ALL {
            return Err(wait(&inner.all, now));
        }
        Ok(())
    }

    /// Counts a failed sign-in of `peer` (after a [`Attempts::check`] that let it try).
    pub fn failed(&self, peer: IpAddr, now: Instant) {
        let mut inner = self.lock();
        if inner.all.len() < IN_ALL {
            inner.all.push_back(now);
            inner.per_peer.entry(peer).or_default().push_back(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_per_peer_thirty_in_all_for_a_minute() {
        let a = Attempts::default();
        let t0 = Instant::now();
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        for _ in 0..PER_PEER {
            assert!(a.check(ip(1), t0).is_ok());
            a.failed(ip(1), t0);
        }
        assert_eq!(a.check(ip(1), t0), Err(60));
        assert!(a.check(ip(2), t0).is_ok(), "other peers are not blocked");
        let later = t0 + Duration::from_secs(45);
        assert_eq!(a.check(ip(1), later), Err(15));
        assert!(a.check(ip(1), t0 + WINDOW).is_ok(), "the window passed");

        let b = Attempts::default();
        for n in 0..(IN_ALL / PER_PEER) as u8 {
            for _ in 0..PER_PEER {
                b.check(ip(n), t0).unwrap();
                b.failed(ip(n), t0);
            }
        }
        let t1 = t0 + Duration::from_millis(1500);
        assert_eq!(
            b.check(ip(200), t1),
            Err(59),
            "everyone together is bounded"
        );
        assert!(b.check(ip(200), t0 + WINDOW).is_ok());
        assert!(b.lock().per_peer.is_empty(), "old entries go");
    }
}
