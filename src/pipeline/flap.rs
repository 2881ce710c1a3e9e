//! A flapping source's `stream_started`/`stream_stopped` events, coalesced.
//!
//! A camera command that sends a few frames and dies, again and again, used to record a pair per
//! restart: 120 events per 30 s, and every webhook and MQTT subscriber woken for each. Capture now
//! waits longer after each loss (`camera::Backoff`: doubling to a minute, reset only after the
//! source ran healthily for `healthy_after`), and this module decides which of the remaining
//! restarts receivers hear of. The policy:
//!
//! * A *flap episode* begins when a source is lost and ends when it has delivered for
//!   `healthy_after` without a break (capture's [`CaptureEvent::SourceSteady`]).
//! * A loss is recorded (`stream_stopped`, `source_lost`) whenever the last recorded lifecycle event
//!   of the camera said it was up: receivers never see two starts in a row, and never believe a
//!   dead camera is up.
//! * A return is recorded (`stream_started`) at once when it is the episode's first (a USB reset or
//!   a dropped RTSP feed that comes straight back is news, and is not delayed), or when the last
//!   recorded lifecycle event is at least `report_every` old: a camera that keeps flapping records
//!   one pair per `report_every` (20 minutes by default: three pairs an hour). Other returns are
//!   counted, not recorded.
//! * When the episode ends with the source steady and the last recorded event said it was down,
//!   `stream_started` is recorded then (`healthy_after` after the source really came back).
//! * Every `stream_started` that follows a loss carries `"restarts": n` in `data`: how many times
//!   the source came back since the previous recorded lifecycle event, itself included. The final
//!   `stream_stopped` (stop requested, shutdown, error) carries the returns not yet told, if any.
//!   FaceCV's fields are unchanged; `restarts` is added.
//!
//! The status of the camera (`GET /api/v1/cameras/{id}`) shows the episode as it happens: state
//! `flapping`, `restarts`, `next_retry_at` and `last_error`.
//!
//! [`CaptureEvent::SourceSteady`]: crate::camera::CaptureEvent::SourceSteady

use std::time::{Duration, Instant};

/// Which lifecycle events of one camera's run to record; see the module comment.
#[derive(Debug)]
pub struct Lifecycle {
    report_every: Duration,
    /// The last recorded lifecycle event said the stream is up (`stream_started` is recorded
    /// when the run begins).
    shown_up: bool,
    episode: Option<Episode>,
}

#[derive(Debug)]
struct Episode {
    /// Returns of the source in this episode.
    returns: u64,
    /// Returns not yet told to receivers.
    untold: u64,
    last_recorded: Instant,
}

impl Lifecycle {
    pub fn new(report_every: Duration) -> Self {
        Lifecycle {
            report_every,
            shown_up: true,
            episode: None,
        }
    }

    /// The source was lost: whether to record `stream_stopped`.
    pub fn lost(&mut self, now: Instant) -> bool {
        let episode = self.episode.get_or_insert(Episode {
            returns: 0,
            untold: 0,
            last_recorded: now,
        });
        if !self.shown_up {
            return false;
        }
        self.shown_up = false;
        episode.last_recorded = now;
        true
    }

    /// The source delivers again: `Some(restarts)` to record `stream_started` with.
    pub fn restored(&mut self, now: Instant) -> Option<u64> {
        let Some(episode) = self.episode.as_mut() else {
            // A return without a loss cannot happen; if it did, say so rather than hide it.
            self.shown_up = true;
            return Some(1);
        };
        episode.returns += 1;
        episode.untold += 1;
        let due = episode.returns == 1
            || now.saturating_duration_since(episode.last_recorded) >= self.report_every;
        if self.shown_up || !due {
            return None;
        }
        self.shown_up = true;
        episode.last_recorded = now;
        Some(std::mem::take(&mut episode.untold))
    }

    /// The source has run healthily: the episode is over. `Some(restarts)` to record
    /// `stream_started` with, if receivers last heard it was down.
    pub fn steady(&mut self) -> Option<u64> {
        let episode = self.episode.take()?;
        if self.shown_up {
            return None;
        }
        self.shown_up = true;
        Some(episode.untold)
    }

    /// The run ends: the returns receivers have not heard of, for the final `stream_stopped`.
    pub fn untold(&self) -> Option<u64> {
        self.episode.as_ref().map(|e| e.untold).filter(|&n| n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// Replays a source that comes back after 1 s and dies after 1 s, `cycles` times, starting at
    /// `t`; returns what was recorded as `(+1 started / -1 stopped, restarts)`.
    fn flap(l: &mut Lifecycle, t: &mut Instant, cycles: u32) -> Vec<(i8, u64)> {
        let mut out = Vec::new();
        for _ in 0..cycles {
            if l.lost(*t) {
                out.push((-1, 0));
            }
            *t += S;
            if let Some(n) = l.restored(*t) {
                out.push((1, n));
            }
            *t += S;
        }
        out
    }

    #[test]
    fn a_single_drop_is_told_at_once_both_ways() {
        let mut l = Lifecycle::new(20 * 60 * S);
        let t = Instant::now();
        assert!(l.lost(t));
        assert_eq!(l.restored(t + S), Some(1));
        assert_eq!(l.steady(), None, "receivers already know it is up");
        assert!(l.lost(t + 100 * S), "a later drop is a new episode");
        assert_eq!(l.restored(t + 101 * S), Some(1));
    }

    #[test]
    fn a_flapping_source_records_a_pair_per_report_interval_with_its_count() {
        let mut l = Lifecycle::new(20 * 60 * S);
        let mut t = Instant::now();
        // One hour of a restart every 2 s: 1800 restarts.
        let recorded = flap(&mut l, &mut t, 1800);
        let pairs = recorded.iter().filter(|(kind, _)| *kind == 1).count();
        assert!(pairs <= 4, "{recorded:?}");
        assert_eq!(recorded[0], (-1, 0));
        assert_eq!(recorded[1], (1, 1));
        assert_eq!(recorded[2], (-1, 0));
        // Events alternate, and the counts add up to every return.
        for w in recorded.windows(2) {
            assert_ne!(w[0].0, w[1].0, "{recorded:?}");
        }
        let told: u64 = recorded.iter().map(|(_, n)| n).sum();
        assert_eq!(told + l.untold().unwrap_or(0), 1800);
        // Its last return lasts: one start, with the rest of the count.
        let untold = l.untold().expect("returns since the last report");
        assert_eq!(l.steady(), Some(untold));
        assert_eq!(l.untold(), None);
        assert!(l.lost(t), "a loss after the episode is told at once");
    }

    /// The issue's camera (20 frames, then exit) for a day with the default back-off: about 1,500
    /// restarts instead of 172,800, and a handful of events an hour instead of 14,400.
    #[test]
    fn a_day_of_the_issues_camera_records_a_few_pairs_an_hour() {
        let backoff = crate::camera::Backoff::default();
        let mut l = Lifecycle::new(20 * 60 * S);
        let start = Instant::now();
        let (mut t, mut wait, mut events, mut restarts) = (start, backoff.min, 0, 0);
        while t < start + 24 * 3600 * S {
            events += u32::from(l.lost(t));
            t += wait;
            wait = backoff.next(wait);
            restarts += 1;
            events += u32::from(l.restored(t).is_some());
        }
        assert!((1400..1500).contains(&restarts), "{restarts}");
        // The first loss and return, the second loss, then a pair per 20 minutes.
        assert!(events <= 3 + 2 * 72, "{events} events");
    }

    #[test]
    fn the_final_stop_carries_the_returns_not_yet_told() {
        let mut l = Lifecycle::new(20 * 60 * S);
        let mut t = Instant::now();
        let recorded = flap(&mut l, &mut t, 10);
        assert_eq!(recorded, [(-1, 0), (1, 1), (-1, 0)]);
        assert_eq!(l.untold(), Some(9));
    }
}
