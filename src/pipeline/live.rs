//! The live view of a camera: what it analyses, with face boxes and names drawn in, as JPEGs for
//! the console (`GET /api/v1/cameras/{id}/live.mjpg` and `.../snapshot.jpg`), and the tap that
//! enrolment from a camera reads analysed frames through.
//!
//! The cost is paid only while someone looks, and once whatever the number of lookers:
//! * Each camera has one [`LiveTap`] for as long as it is defined. Viewers register on it with the
//!   rate they want ([`LiveTap::view`]); the camera's runner checks two atomics per frame and does
//!   nothing more while nobody watches and nobody enrols: no lock, no allocation, no encoding.
//! * While someone watches, the runner's [`LiveFeed`] draws the frame's boxes and names into one
//!   RGB buffer it reuses, at most at the fastest rate a viewer asked for, encodes one JPEG
//!   (the only allocation), and publishes it on a `watch` channel that every viewer reads: a
//!   viewer slower than the camera skips pictures, it never makes the camera wait.
//! * The channel belongs to one run of the camera: when the camera stops, its runner drops the
//!   sender and every viewer's stream ends.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::watch;

use super::draw::{self, Canvas};
use super::tracker::Observation;
use crate::camera::Frame;
use crate::vision::Face;

/// The fastest rate a viewer may ask for: a console needs no more to follow people at a door, and
/// each picture costs a JPEG encoding on the camera's thread.
pub const MAX_FPS: u32 = 10;
/// JPEG quality of the pictures: faces and names stay clear at a third of the bytes of 95.
const QUALITY: u8 = 75;

/// One annotated picture of a camera.
#[derive(Debug, Clone)]
pub struct Picture {
    pub jpeg: Bytes,
    /// When it was published, for a snapshot to tell a fresh picture from a stale one.
    pub at: Instant,
}

/// The pictures of one run of a camera; `None` until the first is published.
pub type Pictures = watch::Receiver<Option<Picture>>;

/// What enrolment from a camera gives the runner: called with each analysed frame, its faces and
/// the width a face needs to be enrolled (`vision.enrol.min_face_px`).
pub type FrameWatcher = Box<dyn FnMut(&Frame, &[Face], u32) + Send>;

/// A camera's live view and frame tap; see the module comment.
#[derive(Default)]
pub struct LiveTap {
    /// Viewers (and snapshots waiting for a picture) by the rate they asked for, 1..=MAX_FPS.
    by_fps: [AtomicU32; MAX_FPS as usize],
    viewers: AtomicU32,
    encoded: AtomicU64,
    watching: AtomicBool,
    watcher: Mutex<Option<FrameWatcher>>,
    /// The current run's pictures; replaced by each start of the camera.
    pictures: Mutex<Option<Pictures>>,
}

/// Another enrolment already reads this camera's frames.
#[derive(Debug, thiserror::Error)]
#[error("an enrolment from this camera is already under way")]
pub struct TapBusy;

/// A viewer's place on a tap: the camera draws for it until it is dropped.
pub struct Viewer {
    tap: Arc<LiveTap>,
    fps: u32,
    pub pictures: Pictures,
}

impl Drop for Viewer {
    fn drop(&mut self) {
        self.tap.by_fps[self.fps as usize - 1].fetch_sub(1, Ordering::AcqRel);
        self.tap.viewers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An enrolment's hold on a tap: the frames go to its watcher until it is dropped.
pub struct Watching {
    tap: Arc<LiveTap>,
}

impl Drop for Watching {
    /// Takes the watcher out under the lock, so that once this returns the runner is not inside
    /// it and never calls it again.
    fn drop(&mut self) {
        self.tap.watching.store(false, Ordering::Release);
        let watcher = self
            .tap
            .watcher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        drop(watcher);
    }
}

impl LiveTap {
    /// Viewers watching now (snapshots waiting for a picture included).
    pub fn viewers(&self) -> u32 {
        self.viewers.load(Ordering::Acquire)
    }

    /// Pictures encoded since the camera was defined.
    pub fn frames_encoded(&self) -> u64 {
        self.encoded.load(Ordering::Relaxed)
    }

    /// Registers a viewer at `fps` (clamped to 1..=[`MAX_FPS`]); `None` when the camera is not
    /// running.
    pub fn view(self: &Arc<Self>, fps: u32) -> Option<Viewer> {
        let pictures = self
            .pictures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        if pictures.has_changed().is_err() {
            return None; // that run has ended
        }
        let fps = fps.clamp(1, MAX_FPS);
        self.by_fps[fps as usize - 1].fetch_add(1, Ordering::AcqRel);
        self.viewers.fetch_add(1, Ordering::AcqRel);
        Some(Viewer {
            tap: self.clone(),
            fps,
            pictures,
        })
    }

    /// Hands every analysed frame to `watcher` until the returned hold is dropped; one watcher
    /// at a time.
    pub fn watch(self: &Arc<Self>, watcher: FrameWatcher) -> Result<Watching, TapBusy> {
        let mut slot = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Err(TapBusy);
        }
        *slot = Some(watcher);
        self.watching.store(true, Ordering::Release);
        Ok(Watching { tap: self.clone() })
    }

    /// A new run of the camera: its pictures replace the last run's.
    pub(super) fn start_run(self: &Arc<Self>) -> LiveFeed {
        let (tx, rx) = watch::channel(None);
        *self.pictures.lock().unwrap_or_else(|p| p.into_inner()) = Some(rx);
        LiveFeed {
            tap: self.clone(),
            tx,
            canvas: Vec::new(),
            jpeg_capacity: 0,
            next_due: Instant::now(),
        }
    }

    /// The fastest rate a viewer asks for, 0 without viewers.
    fn wanted_fps(&self) -> u32 {
        (1..=MAX_FPS)
            .rev()
            .find(|f| self.by_fps[*f as usize - 1].load(Ordering::Acquire) > 0)
            .unwrap_or(0)
    }
}

/// The runner's side of a tap for one run: dropped with the runner, which ends the viewers'
/// streams.
pub struct LiveFeed {
    tap: Arc<LiveTap>,
    tx: watch::Sender<Option<Picture>>,
    /// The frame with its boxes drawn, reused from frame to frame.
    canvas: Vec<u8>,
    /// The last picture's size, so that the next one's buffer is allocated once, at its size.
    jpeg_capacity: usize,
    next_due: Instant,
}

impl LiveFeed {
    /// An enrolment reads this camera's frames: it needs every face embedded on every frame,
    /// where recognition embeds a tracked face only now and then.
    pub fn enrolling(&self) -> bool {
        self.tap.watching.load(Ordering::Acquire)
    }

    /// Somebody watches the live view, so the frame's observations are wanted.
    pub fn viewed(&self) -> bool {
        self.tap.viewers.load(Ordering::Acquire) > 0
    }

    /// Called with every analysed frame; `faces` and `observations` are in the same order
    /// (`observations` may be empty while nobody views).
    pub fn on_frame(
        &mut self,
        frame: &Frame,
        faces: &[Face],
        observations: &[Observation],
        enrol_min_px: u32,
    ) {
        if self.tap.watching.load(Ordering::Acquire) {
            let mut watcher = self.tap.watcher.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = watcher.as_mut() {
                w(frame, faces, enrol_min_px);
            }
        }
        if self.tap.viewers.load(Ordering::Acquire) == 0 {
            return;
        }
        let fps = self.tap.wanted_fps();
        let now = Instant::now();
        let period = Duration::from_secs(1) / fps.max(1);
        // A frame a little early (camera jitter) is taken, as the runner takes frames.
        if now + period / 4 < self.next_due {
            return;
        }
        self.next_due = (self.next_due + period).max(now);
        self.annotate(frame, observations);
        match self.encode(frame.width, frame.height) {
            Ok(jpeg) => {
                self.tap.encoded.fetch_add(1, Ordering::Relaxed);
                self.tx.send_replace(Some(Picture { jpeg, at: now }));
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode a live picture"),
        }
    }

    /// Copies the frame into the canvas and draws each face's box and label.
    fn annotate(&mut self, frame: &Frame, observations: &[Observation]) {
        self.canvas.clear();
        self.canvas.extend_from_slice(&frame.rgb);
        let mut canvas = Canvas::new(&mut self.canvas, frame.width, frame.height);
        let thickness = canvas.scale() + 1;
        for o in observations {
            let bbox = o.bbox.map(|v| v.round() as i32);
            match (&o.identity, o.unknown) {
                (Some(who), _) => {
                    canvas.outline(bbox, thickness, draw::RECOGNISED);
                    let text = who
                        .name
                        .chars()
                        .chain(std::iter::once(' '))
                        .chain(draw::percent(who.similarity));
                    canvas.label(bbox, text, draw::RECOGNISED);
                }
                (None, true) => {
                    canvas.outline(bbox, thickness, draw::STRANGER);
                    canvas.label(bbox, "Unknown".chars(), draw::STRANGER);
                }
                (None, false) => canvas.outline(bbox, thickness, draw::DETECTED),
            }
        }
    }

    /// `jpeg-encoder` rather than the `image` crate's encoder: measured with `cargo bench --bench
    /// live`, the first viewer costs 1.5 CPU ms per picture with it (AVX2 on x86) against 9.4
    /// with `image`'s, and the pictures are a third smaller (12.9 against 18.5 KiB).
    fn encode(&mut self, width: u32, height: u32) -> Result<Bytes, jpeg_encoder::EncodingError> {
        let (w, h) = match (u16::try_from(width), u16::try_from(height)) {
            (Ok(w), Ok(h)) => (w, h),
            _ => {
                return Err(jpeg_encoder::EncodingError::Write(format!(
                    "a {width}x{height} frame is too large for JPEG"
                )))
            }
        };
        let mut out = Vec::with_capacity(self.jpeg_capacity + self.jpeg_capacity / 8);
        jpeg_encoder::Encoder::new(&mut out, QUALITY).encode(
            &self.canvas,
            w,
            h,
            jpeg_encoder::ColorType::Rgb,
        )?;
        self.jpeg_capacity = out.len();
        Ok(Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame() -> Frame {
        let mut f = Frame::new();
        f.resize(64, 48).fill(120);
        f
    }

    fn face() -> (Face, Observation) {
        let bbox = [10.0, 10.0, 40.0, 40.0];
        let face = Face {
            bbox,
            score: 0.9,
            keypoints: [[0.0; 2]; 6],
            embedding: None,
        };
        let o = Observation {
            bbox,
            score: 0.9,
            similarity: 0.0,
            identity: None,
            unknown: false,
        };
        (face, o)
    }

    #[test]
    fn pictures_are_made_only_while_someone_watches_at_the_fastest_rate_asked() {
        let tap = Arc::new(LiveTap::default());
        assert!(tap.view(5).is_none(), "no run, no view");
        let mut feed = tap.start_run();
        let (f, o) = face();
        let (f, o) = ([f], [o]);
        feed.on_frame(&frame(), &f, &o, 40);
        assert_eq!(tap.frames_encoded(), 0, "nobody watches");

        let slow = tap.view(2).unwrap();
        let mut fast = tap.view(99).unwrap();
        assert_eq!((tap.viewers(), tap.wanted_fps()), (2, MAX_FPS));
        feed.on_frame(&frame(), &f, &o, 40);
        assert_eq!(tap.frames_encoded(), 1, "once for both viewers");
        assert!(fast.pictures.has_changed().unwrap());
        let jpeg = fast.pictures.borrow_and_update().clone().unwrap().jpeg;
        let img = image::load_from_memory(&jpeg).unwrap().to_rgb8();
        assert_eq!(img.dimensions(), (64, 48));
        let edge = img.get_pixel(8, 25).0;
        assert!(edge[0] > 180 && edge[2] < 90, "an amber line: {edge:?}");
        // Too soon for 10 a second: skipped.
        feed.on_frame(&frame(), &f, &o, 40);
        assert_eq!(tap.frames_encoded(), 1);
        drop(fast);
        assert_eq!((tap.viewers(), tap.wanted_fps()), (1, 2));
        drop(slow);
        assert_eq!((tap.viewers(), tap.wanted_fps()), (0, 0));

        let viewer = tap.view(5).unwrap();
        drop(feed);
        assert!(viewer.pictures.has_changed().is_err(), "the run ended");
        assert!(tap.view(5).is_none());
    }

    #[test]
    fn one_watcher_at_a_time_and_none_after_its_hold_is_dropped() {
        let tap = Arc::new(LiveTap::default());
        let mut feed = tap.start_run();
        let seen = Arc::new(AtomicU32::new(0));
        let counter = seen.clone();
        let hold = tap
            .watch(Box::new(move |_, faces, min_px| {
                assert_eq!((faces.len(), min_px), (1, 40));
                counter.fetch_add(1, Ordering::Relaxed);
            }))
            .unwrap();
        assert!(tap.watch(Box::new(|_, _, _| {})).is_err());
        let (f, o) = face();
        let (f, o) = ([f], [o]);
        feed.on_frame(&frame(), &f, &o, 40);
        drop(hold);
        feed.on_frame(&frame(), &f, &o, 40);
        assert_eq!(seen.load(Ordering::Relaxed), 1);
        assert_eq!(tap.frames_encoded(), 0, "enrolment encodes nothing");
        assert!(tap.watch(Box::new(|_, _, _| {})).is_ok());
    }
}
