//! The capture thread and its latest-frame slot.
//!
//! Inference on a Pi is slower than the camera, so frames must not queue: a queue only adds
//! latency (the detector would look at the past) and memory. The capture thread therefore keeps
//! exactly one frame for the consumer. It fills a frame of its own, then swaps it with the slot's
//! under a lock held for a pointer swap; the consumer swaps the slot's frame with its own the same
//! way. Three buffers rotate and none is allocated after the first frame. A frame overwritten before
//! anyone took it is counted as dropped. The capture thread never waits for the consumer.
//!
//! Live sources (cameras, pipes) that go away are reopened with capped exponential back-off (see
//! [`Backoff`]), and the consumer hears of it through [`CaptureEvent::SourceLost`] /
//! [`CaptureEvent::SourceRestored`], and [`CaptureEvent::SourceSteady`] once a source that came back
//! has run long enough to count as healthy again.
//! Files end ([`SourceState::Ended`]) unless looped; a source that cannot work (a wrong setting, a
//! missing program, a corrupt file) fails for good ([`SourceState::Failed`]) rather than spinning.
//!
//! Frames leave the slot as the source gave them (see [`Frame::set_encoded`]); the consumer
//! converts only those it analyses, through [`Capture::decode`], which also keeps the books on
//! decodes and on frames that cannot be decoded, as the capture thread did when it decoded them.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{lock, open, CameraError, Frame, Source, SourceSpec};
use crate::shutdown::Shutdown;

/// State changes kept for a consumer that is not reading; beyond this the oldest are forgotten.
const MAX_EVENTS: usize = 32;
/// Undecodable frames in a row a live source may send before it is reopened (counted by the
/// capture thread for what a source refuses, and by [`Capture::decode`] for what analysis took).
const MAX_BAD_FRAMES: u32 = 30;

/// How long to wait before reopening a lost source, and when a source counts as healthy again.
///
/// Each loss doubles the wait, from `min` up to `max`, and every wait is drawn with ±20% jitter so
/// that cameras lost together (a switch rebooting) do not all knock again in the same instant. The
/// wait goes back to `min` only once the source has delivered frames for `healthy_after` without a
/// break: a command that sends a few frames and dies is flapping, and resetting on its first frame
/// would restart it every `min` for ever (FaceCV Edge once did: a `stream_started`/`stream_stopped`
/// pair every half second, 345k events a day). Short enough to recover from a USB reset in half a
/// second, long enough that a camera that is gone for good costs nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
    /// How long a source must deliver without a break before its back-off is reset and a flap is
    /// over (see `pipeline::flap`).
    pub healthy_after: Duration,
}

/// The jitter drawn around every wait: ±20%.
const JITTER: f64 = 0.2;

impl Backoff {
    /// The wait that follows `current`: doubled, capped at `max`.
    pub fn next(&self, current: Duration) -> Duration {
        current.saturating_mul(2).min(self.max)
    }

    /// `wait` with jitter, never above `max`.
    pub fn jittered(&self, wait: Duration) -> Duration {
        use rand::Rng;
        let factor = rand::thread_rng().gen_range(1.0 - JITTER..=1.0 + JITTER);
        wait.mul_f64(factor).min(self.max)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(500),
            max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// Opening, before the first frame.
    Starting,
    /// Frames are arriving.
    Running,
    /// The source went away or could not be opened; it is being reopened with back-off.
    Lost(String),
    /// A file has no more frames.
    Ended,
    /// The source cannot work as configured; capture has given up.
    Failed(String),
}

/// What [`Capture::next`] returns besides errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaptureEvent {
    /// `into` now holds the newest frame, newer than any returned before.
    Frame,
    /// The source went away (unplugged camera, dead stream); capture keeps trying to reopen it.
    SourceLost(String),
    /// The source delivers again after a loss.
    SourceRestored,
    /// A source that was lost since it last ran healthily has now delivered for
    /// [`Backoff::healthy_after`] without a break: any flap is over and its back-off is reset.
    SourceSteady,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames the source delivered.
    pub captured: u64,
    /// Frames replaced by a newer one before the consumer took them.
    pub dropped: u64,
    /// Frames converted to RGB by [`Capture::decode`]: the analysed ones, not all captured.
    pub decoded: u64,
    /// Frames [`Capture::decode`] could not decode (skipped, or the end of a file camera).
    pub decode_failures: u64,
    /// Times the source was reopened after a loss (each attempt counts).
    pub reconnects: u64,
    pub state: SourceState,
    /// Times the source came back since it last ran healthily (`healthy_after`): how hard it flaps.
    pub restarts: u64,
    /// It went away again after coming back, without running healthily in between.
    pub flapping: bool,
    /// When the next attempt to reopen it is due, while capture waits for it.
    pub next_retry: Option<time::OffsetDateTime>,
    /// Why it was last lost, kept until it runs healthily again (the state's reason is gone as
    /// soon as a flapping source delivers a frame).
    pub last_error: Option<String>,
}

/// A source running on its own thread, with the newest frame always ready to take.
pub struct Capture {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    slot: Mutex<Slot>,
    ready: Condvar,
    /// This capture's child of its owner's [`Shutdown`]: cancelled when the capture is dropped
    /// or its owner stops. Wakes the back-off sleep; each opening of the source gets a child of
    /// it, so a cancel also wakes the source out of a blocking read.
    stop: Shutdown,
    /// A live source is reopened after a run of bad frames; a file fails at its first.
    live: bool,
    /// An unpaced source waits for its last frame to be taken before it publishes the next.
    unpaced: bool,
    /// The camera id, for the log.
    name: String,
}

struct Slot {
    frame: Frame,
    fresh: bool,
    events: VecDeque<CaptureEvent>,
    state: SourceState,
    captured: u64,
    dropped: u64,
    decoded: u64,
    decode_failures: u64,
    /// Frames in a row [`Capture::decode`] could not decode.
    bad_in_row: u32,
    /// Set by [`Capture::decode`] when the source must be reopened (live) or given up (a file):
    /// the capture thread acts on it after its next frame.
    verdict: Option<String>,
    reconnects: u64,
    description: Option<String>,
    /// Since the source last ran healthily: times it came back, and times it was lost after
    /// delivering (the first loss of a healthy source is 1; a second one means it flaps).
    restarts: u64,
    losses: u64,
    next_retry: Option<time::OffsetDateTime>,
    last_error: Option<String>,
}

impl Capture {
    /// Starts capturing `spec` on a thread named after `name` (the camera id), with the default
    /// back-off, stopped only by [`Capture::stop`]. Never fails: problems show in
    /// [`Capture::state`] and in [`Capture::next`].
    pub fn start(spec: SourceSpec, name: &str) -> Capture {
        Capture::start_with(spec, name, Backoff::default(), &Shutdown::new())
    }

    /// [`Capture::start`] with this back-off, stopped also when `owner` is cancelled (the capture
    /// takes a child of it).
    pub fn start_with(spec: SourceSpec, name: &str, backoff: Backoff, owner: &Shutdown) -> Capture {
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot {
                frame: Frame::new(),
                fresh: false,
                events: VecDeque::new(),
                state: SourceState::Starting,
                captured: 0,
                dropped: 0,
                decoded: 0,
                decode_failures: 0,
                bad_in_row: 0,
                verdict: None,
                reconnects: 0,
                description: None,
                restarts: 0,
                losses: 0,
                next_retry: None,
                last_error: None,
            }),
            ready: Condvar::new(),
            stop: owner.child_token(),
            live: spec.is_live(),
            unpaced: spec.is_unpaced(),
            name: name.to_string(),
        });
        let runner = Runner {
            shared: shared.clone(),
            spec,
            name: name.to_string(),
            backoff,
        };
        let thread = std::thread::Builder::new()
            .name(format!("capture-{name}"))
            .spawn(move || runner.run_guarded());
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                lock(&shared.slot).state = SourceState::Failed(format!("cannot start thread: {e}"));
                None
            }
        };
        Capture { shared, thread }
    }

    /// Swaps the newest frame not yet returned into `into`, waiting up to `timeout` for one. State
    /// changes come first, in order. After a file's last frame it returns [`CameraError::Ended`];
    /// for a source that failed, [`CameraError::Failed`]; once its owner stopped it,
    /// [`CameraError::Stopped`]; with nothing new in time, [`CameraError::Timeout`].
    pub fn next(&self, into: &mut Frame, timeout: Duration) -> Result<CaptureEvent, CameraError> {
        let deadline = Instant::now() + timeout;
        let mut slot = lock(&self.shared.slot);
        loop {
            if let Some(event) = slot.events.pop_front() {
                return Ok(event);
            }
            if slot.fresh {
                std::mem::swap(into, &mut slot.frame);
                slot.fresh = false;
                if self.shared.unpaced {
                    // The source waits for this (see `Runner::publish`).
                    self.shared.ready.notify_all();
                }
                return Ok(CaptureEvent::Frame);
            }
            match &slot.state {
                SourceState::Ended => return Err(CameraError::Ended),
                SourceState::Failed(why) => return Err(CameraError::Failed(why.clone())),
                _ => {}
            }
            if self.shared.stop.is_cancelled() {
                return Err(CameraError::Stopped);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(CameraError::Timeout(timeout));
            }
            slot = match self.shared.ready.wait_timeout(slot, deadline - now) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Converts a frame [`Capture::next`] returned into RGB, and counts it. Call it only for a
    /// frame that will be analysed: that is the point. A frame that cannot be decoded is
    /// [`CameraError::Decode`] (skip it); after [`MAX_BAD_FRAMES`] of them in a row a live source
    /// is reopened (it shows as lost), and for a file the first one is [`CameraError::Failed`]
    /// and capture ends, as when the capture thread decoded.
    pub fn decode(&self, frame: &mut Frame) -> Result<(), CameraError> {
        let result = frame.decode();
        let mut slot = lock(&self.shared.slot);
        match result {
            Ok(converted) => {
                slot.decoded += u64::from(converted);
                slot.bad_in_row = 0;
                Ok(())
            }
            Err(e) => {
                slot.decode_failures += 1;
                slot.bad_in_row += 1;
                if !self.shared.live {
                    let why = format!("frame {}: {e}", frame.seq);
                    slot.verdict = Some(why.clone());
                    slot.state = SourceState::Failed(why.clone());
                    slot.fresh = false;
                    return Err(CameraError::Failed(why));
                }
                if slot.bad_in_row == 1 {
                    tracing::warn!(camera = %self.shared.name, "skipping undecodable frame {}: {e}", frame.seq);
                }
                if slot.bad_in_row >= MAX_BAD_FRAMES {
                    slot.bad_in_row = 0;
                    slot.verdict =
                        Some(format!("{MAX_BAD_FRAMES} undecodable frames in a row: {e}"));
                }
                Err(e)
            }
        }
    }

    pub fn stats(&self) -> CaptureStats {
        let slot = lock(&self.shared.slot);
        CaptureStats {
            captured: slot.captured,
            dropped: slot.dropped,
            decoded: slot.decoded,
            decode_failures: slot.decode_failures,
            reconnects: slot.reconnects,
            state: slot.state.clone(),
            restarts: slot.restarts,
            flapping: slot.losses >= 2,
            next_retry: slot.next_retry,
            last_error: slot.last_error.clone(),
        }
    }

    pub fn state(&self) -> SourceState {
        lock(&self.shared.slot).state.clone()
    }

    /// What the source said about itself when it last opened (the size and rate it really gives).
    pub fn description(&self) -> Option<String> {
        lock(&self.shared.slot).description.clone()
    }

    /// Stops the thread and any child process, without waiting for the next frame.
    pub fn stop(self) {
        drop(self);
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.shared.stop.cancel();
        self.shared.ready.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How one open source stopped delivering.
enum Outcome {
    Stopped,
    Ended,
    Lost(String),
    Failed(String),
}

/// The capture thread's side: open, pump frames, reopen.
struct Runner {
    shared: Arc<Shared>,
    spec: SourceSpec,
    name: String,
    backoff: Backoff,
}

impl Runner {
    /// A panic in a source must not leave consumers waiting for frames that will never come.
    fn run_guarded(self) {
        let shared = self.shared.clone();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| self.run())) {
            let why = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!("capture thread panicked: {why}");
            lock(&shared.slot).state =
                SourceState::Failed(format!("capture thread panicked: {why}"));
            shared.ready.notify_all();
        }
    }

    fn run(&self) {
        let live = self.spec.is_live();
        let mut work = Frame::new();
        let mut delay = self.backoff.min;
        let mut attempt = 0u64;
        loop {
            {
                let mut slot = lock(&self.shared.slot);
                if attempt > 0 {
                    slot.reconnects += 1;
                }
                slot.next_retry = None;
            }
            attempt += 1;
            let outcome = match open(&self.spec, self.shared.stop.child_token()) {
                Ok(mut source) => self.serve(source.as_mut(), &mut work, &mut delay),
                Err(e) if live && e.is_transient() => Outcome::Lost(e.to_string()),
                Err(e) => Outcome::Failed(e.to_string()),
            };
            let wait = self.backoff.jittered(delay);
            match outcome {
                Outcome::Stopped => return self.stopped(),
                Outcome::Ended => return self.finish(SourceState::Ended),
                Outcome::Failed(why) => {
                    tracing::error!(camera = %self.name, "capture failed: {why}");
                    return self.finish(SourceState::Failed(why));
                }
                Outcome::Lost(why) => self.lost(why, wait),
            }
            if !self.shared.stop.sleep_until(Instant::now() + wait) {
                return self.stopped();
            }
            delay = self.backoff.next(delay);
        }
    }

    /// Runs one open source until it stops delivering.
    fn serve(&self, source: &mut dyn Source, work: &mut Frame, delay: &mut Duration) -> Outcome {
        // The source was opened with a child of `stop`, so it stops itself; this only spares
        // the log line of a source opened just as the capture was stopped.
        if self.shared.stop.is_cancelled() {
            return Outcome::Stopped;
        }
        let description = source.describe();
        tracing::info!(camera = %self.name, source = %description, "capture source open");
        lock(&self.shared.slot).description = Some(description);
        self.pump(source, work, delay)
    }

    fn pump(&self, source: &mut dyn Source, work: &mut Frame, delay: &mut Duration) -> Outcome {
        let live = self.spec.is_live();
        let mut bad_frames = 0;
        // Since the first frame of this opening, and whether it has run healthily since.
        let mut up_since: Option<Instant> = None;
        let mut steady = false;
        loop {
            match source.next_frame(work) {
                Ok(()) => {
                    bad_frames = 0;
                    let now = Instant::now();
                    let since = *up_since.get_or_insert(now);
                    if !steady && now.duration_since(since) >= self.backoff.healthy_after {
                        steady = true;
                        *delay = self.backoff.min;
                        self.steady();
                    }
                    if let Some(why) = self.publish(work) {
                        return if live {
                            Outcome::Lost(why)
                        } else {
                            Outcome::Failed(why)
                        };
                    }
                }
                Err(CameraError::Stopped) => return Outcome::Stopped,
                Err(CameraError::Ended) => return Outcome::Ended,
                Err(CameraError::Decode(why)) if live && bad_frames < MAX_BAD_FRAMES => {
                    if bad_frames == 0 {
                        tracing::warn!(camera = %self.name, "skipping undecodable frame: {why}");
                    }
                    bad_frames += 1;
                }
                Err(CameraError::Lost(why)) if live => return Outcome::Lost(why),
                Err(e) if live => return Outcome::Lost(e.to_string()),
                Err(e) => return Outcome::Failed(e.to_string()),
            }
            if self.shared.stop.is_cancelled() {
                return Outcome::Stopped;
            }
        }
    }

    /// Puts `work` in the slot and takes the slot's old buffer back to fill next. Returns the
    /// consumer's verdict on the source (see [`Capture::decode`]) if it gave one.
    fn publish(&self, work: &mut Frame) -> Option<String> {
        let mut slot = lock(&self.shared.slot);
        // An unpaced source is read at the pace frames are taken (see `SourceSpec::is_unpaced`).
        while self.shared.unpaced && slot.fresh && !self.shared.stop.is_cancelled() {
            slot = match self
                .shared
                .ready
                .wait_timeout(slot, Duration::from_millis(100))
            {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        if let Some(why) = slot.verdict.take() {
            return Some(why);
        }
        slot.captured += 1;
        work.seq = slot.captured;
        if slot.fresh {
            slot.dropped += 1;
        }
        std::mem::swap(&mut slot.frame, work);
        slot.fresh = true;
        if let SourceState::Lost(_) = slot.state {
            tracing::info!(camera = %self.name, "capture source restored");
            slot.restarts += 1;
            push_event(&mut slot, CaptureEvent::SourceRestored);
        }
        slot.state = SourceState::Running;
        drop(slot);
        self.shared.ready.notify_all();
        None
    }

    fn lost(&self, why: String, retry_in: Duration) {
        let mut slot = lock(&self.shared.slot);
        if !matches!(slot.state, SourceState::Lost(_)) {
            if slot.state == SourceState::Running {
                slot.losses += 1;
            }
            if slot.losses >= 2 {
                tracing::warn!(camera = %self.name, restarts = slot.restarts, "capture source flapping, lost again: {why}; retrying in {retry_in:?}");
            } else {
                tracing::warn!(camera = %self.name, "capture source lost: {why}; retrying in {retry_in:?}");
            }
            push_event(&mut slot, CaptureEvent::SourceLost(why.clone()));
        } else {
            tracing::debug!(camera = %self.name, "capture source still lost: {why}");
        }
        slot.next_retry = Some(time::OffsetDateTime::now_utc() + retry_in);
        slot.last_error = Some(why.clone());
        slot.state = SourceState::Lost(why);
        drop(slot);
        self.shared.ready.notify_all();
    }

    /// The source has delivered for `healthy_after`: forget its flaps. Consumers hear of it only
    /// if there was a loss to get over.
    fn steady(&self) {
        let mut slot = lock(&self.shared.slot);
        if slot.losses > 0 || slot.restarts > 0 {
            tracing::info!(camera = %self.name, restarts = slot.restarts, "capture source steady again; back-off reset");
            push_event(&mut slot, CaptureEvent::SourceSteady);
        }
        slot.restarts = 0;
        slot.losses = 0;
        slot.last_error = None;
    }

    /// Wakes a consumer waiting in [`Capture::next`], which then reports the stop. The slot's
    /// lock is taken first, so the wake-up cannot fall between its check of `stop` and its wait.
    fn stopped(&self) {
        drop(lock(&self.shared.slot));
        self.shared.ready.notify_all();
    }

    fn finish(&self, state: SourceState) {
        let mut slot = lock(&self.shared.slot);
        // A file the consumer could not decode has failed, even if it then ran to its end.
        if !matches!(slot.state, SourceState::Failed(_)) {
            slot.state = state;
        }
        drop(slot);
        self.shared.ready.notify_all();
    }
}

fn push_event(slot: &mut Slot, event: CaptureEvent) {
    if slot.events.len() == MAX_EVENTS {
        slot.events.pop_front();
    }
    slot.events.push_back(event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_back_off_doubles_from_half_a_second_up_to_a_minute() {
        let b = Backoff::default();
        let mut d = b.min;
        let mut waits = vec![d];
        for _ in 0..8 {
            d = b.next(d);
            waits.push(d);
        }
        let secs: Vec<f32> = waits.iter().map(Duration::as_secs_f32).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]);
        assert_eq!(b.healthy_after, Duration::from_secs(60));
    }

    #[test]
    fn waits_are_jittered_within_a_fifth_and_never_above_the_cap() {
        let b = Backoff::default();
        let waits: Vec<Duration> = (0..200)
            .map(|_| b.jittered(Duration::from_secs(10)))
            .collect();
        assert!(waits
            .iter()
            .all(|w| (8.0..=12.0).contains(&w.as_secs_f64())));
        assert!(
            waits.iter().any(|w| *w != waits[0]),
            "200 draws are not all the same"
        );
        assert!((0..200).all(|_| b.jittered(b.max) <= b.max));
    }
}
