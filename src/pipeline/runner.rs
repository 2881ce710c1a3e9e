//! The loop of one camera, on a thread of its own: take the newest frame, find and embed the
//! faces, match them, follow them, and record what the policy says happened.
//!
//! Faces are detected on every frame and followed by the tracker; a face is aligned, judged
//! (`vision::quality`) and embedded only when its track needs a look (`identity.rs`), so the cost
//! of a frame is detection plus the few embeddings that can change a verdict, however many people
//! stand in view.
//!
//! It blocks (capture, inference, the outbox's commit) and so runs outside the async runtime. It
//! allocates nothing per frame once warm: the frame, the detections and the faces are reused;
//! only embedded views and events, which are rare, allocate, and the live view's observations
//! and pictures while someone watches (`live.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast;

use super::config::CameraConfig;
use super::flap::Lifecycle;
use super::gallery::SharedGallery;
use super::identity::{Identity, View};
use super::live::LiveFeed;
use super::policy::{Policy, Sighting};
use super::tracker::{Observation, Tracker, TrackerConfig};
use crate::camera::{
    CameraError, Capture, CaptureEvent, CaptureStats, Frame, SourceSpec, SourceState,
};
use crate::events::{format_timestamp, EventData, EventId, EventMetadata, NewEvent, StopReason};
use crate::shutdown::Shutdown;
use crate::store::Outbox;
use crate::vision::quality::{sharpness, Quality, QualityGate};
use crate::vision::{Detection, Embedding, Face, FaceEngine, VisionError, MAX_FACES};

/// One analysed frame, for live viewers (FaceCV's SSE messages: each `data:` line is one).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveFrame {
    #[schema(example = "entrance")]
    pub camera_id: String,
    /// When the frame was captured (RFC 3339, UTC, milliseconds).
    #[schema(example = "2025-05-26T10:30:45.123Z")]
    pub timestamp: String,
    pub faces: Vec<LiveFace>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LiveFace {
    /// "Unknown" when nobody enrolled matched, as FaceCV said.
    pub name: String,
    /// The best similarity in the gallery, for an Unknown face too (0 with an empty gallery):
    /// the number `/recognize` and `stranger_alert` give for the same face.
    #[serde(serialize_with = "crate::score::ser_confidence")]
    #[schema(minimum = 0, maximum = 1, example = 0.87)]
    pub confidence: f32,
    /// `[x1, y1, x2, y2]` in pixels of the frame.
    #[schema(example = json!([100, 100, 200, 200]))]
    pub bbox: [i32; 4],
    /// The person's enrolment metadata; empty for an Unknown face.
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// What a running camera reports to the API and the metrics.
#[derive(Debug, Default)]
pub struct CameraCounters {
    /// Frames the camera delivered, and those replaced by a newer one before analysis took them.
    pub frames_captured: AtomicU64,
    pub frames_dropped: AtomicU64,
    /// Frames converted to RGB for analysis, and those that could not be.
    pub frames_decoded: AtomicU64,
    pub decode_failures: AtomicU64,
    pub reconnects: AtomicU64,
    pub frames_analysed: AtomicU64,
    /// Faces embedded (tracks that needed a look, and every face while an enrolment reads the
    /// camera), and looks refused by the quality gate (too small, turned away, blurred).
    pub faces_embedded: AtomicU64,
    pub views_refused: AtomicU64,
    pub events_recorded: AtomicU64,
    pub analysis_errors: AtomicU64,
    /// Why the source is unavailable while capture keeps reopening it (permission denied, device
    /// gone): what an installer needs to see in the camera's status, not only in the journal.
    pub source_error: Mutex<Option<String>>,
    /// How the source has come and gone since it last ran healthily (see `pipeline::flap`).
    pub flaps: Mutex<Flaps>,
    /// Why the last frame could not be analysed, until one is: a camera whose every frame fails
    /// must not look like a running one.
    pub analysis_error: Mutex<Option<String>>,
    /// What went wrong when the run ended in an error (a source that cannot work as configured):
    /// the status and the live streams tell it after the run is over.
    pub end_detail: Mutex<Option<String>>,
}

/// A source's back-off and flapping as the camera's status shows them.
#[derive(Debug, Default, Clone)]
pub struct Flaps {
    pub flapping: bool,
    /// Times the source came back since it last ran healthily.
    pub restarts: u64,
    pub next_retry: Option<time::OffsetDateTime>,
    pub last_error: Option<String>,
}

impl From<&CaptureStats> for Flaps {
    fn from(stats: &CaptureStats) -> Self {
        Flaps {
            flapping: stats.flapping,
            restarts: stats.restarts,
            next_retry: stats.next_retry,
            last_error: stats.last_error.clone(),
        }
    }
}

impl CameraCounters {
    /// Copies the capture's counters and source state; called on every frame and every idle poll,
    /// so the status stays current while a camera delivers nothing.
    fn refresh(&self, capture: &Capture) {
        let stats = capture.stats();
        self.frames_captured
            .store(stats.captured, Ordering::Relaxed);
        self.frames_dropped.store(stats.dropped, Ordering::Relaxed);
        self.frames_decoded.store(stats.decoded, Ordering::Relaxed);
        self.decode_failures
            .store(stats.decode_failures, Ordering::Relaxed);
        self.reconnects.store(stats.reconnects, Ordering::Relaxed);
        *self.flaps.lock().unwrap_or_else(|p| p.into_inner()) = Flaps::from(&stats);
        let error = match stats.state {
            SourceState::Lost(why) | SourceState::Failed(why) => Some(why),
            _ => None,
        };
        *self.source_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }
}

/// Everything a camera's loop needs from the rest of the appliance.
pub struct CameraRun {
    pub config: CameraConfig,
    pub spec: SourceSpec,
    pub engine: FaceEngine,
    pub gallery: SharedGallery,
    pub outbox: Outbox,
    pub live: broadcast::Sender<Arc<LiveFrame>>,
    /// The live view's pictures and enrolment's frame tap; idle (two atomic loads a frame) while
    /// nobody watches or enrols.
    pub live_view: LiveFeed,
    /// This camera's own child of `cameras`: cancelled to stop this camera alone, and with
    /// `cameras`. Its capture takes a child of it, so a cancel also interrupts the source.
    pub stop: Shutdown,
    /// All the cameras' (the manager's, a child of the appliance's root): cancelled when the
    /// whole appliance stops, so the reason recorded is `shutdown` rather than `requested`.
    pub cameras: Shutdown,
    pub counters: Arc<CameraCounters>,
    /// Where event snapshots go; `None` keeps none.
    pub snapshots: Option<std::path::PathBuf>,
    /// Signs the links to snapshots that `stranger_alert` events carry (with `api.public_url`).
    pub links: Option<Arc<super::snapshot::SnapshotLinks>>,
    /// Where running-state changes are announced.
    pub states: broadcast::Sender<crate::camera::control::CameraInfo>,
    /// How the loop ended, once it has.
    pub ended: Arc<Mutex<Option<StopReason>>>,
}

impl CameraRun {
    /// Runs until stopped or the source ends or fails; records `stream_started` first and
    /// `stream_stopped` with the reason last.
    pub fn run(mut self) {
        let capture = Capture::start_with(
            self.spec.clone(),
            &self.config.camera_id,
            self.config.reconnect.backoff(),
            &self.stop,
        );
        let mut lifecycle = Lifecycle::new(self.config.reconnect.report_every());
        self.announce(true);
        self.record(vec![EventData::StreamStarted {
            source: self.config.source_label(),
            fps: self.config.fps,
            restarts: None,
        }]);
        let (reason, detail) = self.frames(&capture, &mut lifecycle);
        capture.stop();
        let frames = self.counters.frames_analysed.load(Ordering::Relaxed);
        tracing::info!(camera = %self.config.camera_id, ?reason, frames, "camera stopped");
        *self
            .counters
            .end_detail
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = detail.clone();
        self.record(vec![EventData::StreamStopped {
            source: self.config.source_label(),
            reason,
            frames_processed: frames,
            detail,
            restarts: lifecycle.untold(),
        }]);
        *self.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(reason);
        self.announce(false);
    }

    /// A source that went, came back or settled: recorded as `pipeline::flap` decides.
    fn source_changed(&self, event: CaptureEvent, lifecycle: &mut Lifecycle) {
        let now = Instant::now();
        let id = &self.config.camera_id;
        let started = |restarts| EventData::StreamStarted {
            source: self.config.source_label(),
            fps: self.config.fps,
            restarts: Some(restarts),
        };
        match event {
            // A camera unplugged is news for the receivers (a door without eyes); so is its
            // return. Capture keeps reconnecting meanwhile.
            CaptureEvent::SourceLost(why) => {
                if lifecycle.lost(now) {
                    tracing::warn!(camera = %id, why, "camera source lost; reconnecting");
                    self.record(vec![EventData::StreamStopped {
                        source: self.config.source_label(),
                        reason: StopReason::SourceLost,
                        frames_processed: self.counters.frames_analysed.load(Ordering::Relaxed),
                        detail: Some(why),
                        restarts: None,
                    }]);
                }
            }
            CaptureEvent::SourceRestored => {
                if let Some(restarts) = lifecycle.restored(now) {
                    tracing::info!(camera = %id, restarts, "camera source is back");
                    self.record(vec![started(restarts)]);
                }
            }
            CaptureEvent::SourceSteady => {
                if let Some(restarts) = lifecycle.steady() {
                    tracing::info!(camera = %id, restarts, "camera source is steady again");
                    self.record(vec![started(restarts)]);
                }
            }
            CaptureEvent::Frame => {}
        }
    }

    fn announce(&self, running: bool) {
        let _ = self.states.send(crate::camera::control::CameraInfo {
            id: self.config.camera_id.clone(),
            name: self.config.camera_id.clone(),
            running,
        });
    }

    fn frames(
        &mut self,
        capture: &Capture,
        lifecycle: &mut Lifecycle,
    ) -> (StopReason, Option<String>) {
        let mut frame = Frame::default();
        let mut detections: heapless::Vec<Detection, MAX_FACES> = heapless::Vec::new();
        let mut faces: heapless::Vec<Face, MAX_FACES> = heapless::Vec::new();
        let mut observations: Vec<Observation> = Vec::with_capacity(MAX_FACES);
        let mut sightings: Vec<Sighting> = Vec::new();
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut policy = Policy::new(self.config.policy.clone());
        let period = Duration::from_secs_f32(1.0 / self.config.fps);
        let enrol_min_px = self.engine.config().enrol.min_face_px;
        let mut next_due = Instant::now();
        let mut gallery_seen = self.gallery.generation();
        loop {
            // Wait for the next analysis rather than take frames only to skip them: the slot
            // keeps the newest frame meanwhile, and an unpaced file waits for it to be taken.
            let wake = next_due.checked_sub(period / 4).unwrap_or(next_due);
            if Instant::now() < wake && !self.stop.sleep_until(wake) {
                return (self.stop_reason(), None);
            }
            if self.stop.is_cancelled() {
                return (self.stop_reason(), None);
            }
            match capture.next(&mut frame, Duration::from_millis(200)) {
                Ok(CaptureEvent::Frame) => {}
                Ok(event) => {
                    self.source_changed(event, lifecycle);
                    self.counters.refresh(capture);
                    continue;
                }
                Err(CameraError::Timeout(_)) => {
                    self.counters.refresh(capture);
                    continue;
                }
                Err(CameraError::Ended) => return (StopReason::Ended, None),
                Err(CameraError::Stopped) => return (self.stop_reason(), None),
                Err(e) => return (StopReason::Error, Some(e.to_string())),
            }
            self.counters.refresh(capture);
            let now = Instant::now();
            // Skip frames only when the camera is clearly faster than the analysis rate: a
            // frame a little early (camera jitter) is taken, or a 10 fps camera analysed at
            // 10 fps would lose every other frame.
            if now + period / 4 < next_due {
                continue;
            }
            next_due = (next_due + period).max(now);
            match capture.decode(&mut frame) {
                Ok(()) => {}
                Err(CameraError::Decode(_)) => continue,
                Err(e) => return (StopReason::Error, Some(e.to_string())),
            }
            let generation = self.gallery.generation();
            if generation != gallery_seen {
                gallery_seen = generation;
                tracker.contest_all();
            }
            if let Err(e) = self.recognise(&frame, &mut detections, &mut faces, &mut tracker, now) {
                self.counters
                    .analysis_errors
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(camera = %self.config.camera_id, error = %e, "analysis failed");
                *self
                    .counters
                    .analysis_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(format!("analysis failed: {e}"));
                continue;
            }
            if self.counters.analysis_errors.load(Ordering::Relaxed) > 0 {
                *self
                    .counters
                    .analysis_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = None;
            }
            self.counters
                .frames_analysed
                .fetch_add(1, Ordering::Relaxed);
            policy.on_frame(&mut tracker, now, &mut sightings);
            observations.clear();
            if self.live.receiver_count() > 0 || self.live_view.viewed() {
                observations.extend(tracker.visible().map(|t| t.observation()));
            }
            self.publish_live(&frame, &observations);
            self.live_view
                .on_frame(&frame, &faces, &observations, enrol_min_px);
            if !sightings.is_empty() {
                let events = self.snapshot(&frame, sightings.drain(..));
                self.record_events(events, Some(&frame));
            }
        }
    }

    /// Detects the frame's faces, folds them into the tracks, and embeds the faces whose tracks
    /// need a look (every face while an enrolment reads the camera). `faces` gets every visible
    /// track's face, in the tracker's order, with its embedding when one was made.
    fn recognise(
        &mut self,
        frame: &Frame,
        detections: &mut heapless::Vec<Detection, MAX_FACES>,
        faces: &mut heapless::Vec<Face, MAX_FACES>,
        tracker: &mut Tracker,
        now: Instant,
    ) -> Result<(), VisionError> {
        self.engine
            .detect(&frame.rgb, frame.width, frame.height, detections)?;
        tracker.update(detections);
        faces.clear();
        let config = *tracker.config();
        let enrolling = self.live_view.enrolling();
        for track in tracker.visible() {
            let det = track.detection;
            let quality = Quality::of_detection(&det);
            let wanted = track.needs_look(&quality, now, &config).is_some();
            let mut embedding = None;
            if wanted || enrolling {
                let (e, passed) = self.look(frame, &det, quality, enrolling)?;
                if let (Some(e), true, true) = (&e, passed, wanted) {
                    let view = self.judge(e, config.identity.clear_margin);
                    track
                        .identity
                        .add(view, quality.rank(), now, &config.identity);
                }
                if wanted && !passed {
                    self.counters.views_refused.fetch_add(1, Ordering::Relaxed);
                }
                embedding = e;
            }
            let _ = faces.push(Face {
                bbox: det.bbox,
                score: det.score,
                keypoints: det.keypoints,
                embedding,
            });
        }
        Ok(())
    }

    /// Aligns and embeds one face if its view passes the camera's quality gate (the pose and
    /// size before aligning, the sharpness after); while enrolling, every face wide enough to
    /// embed is embedded, enrolment judging its own candidates. Returns the embedding, if made,
    /// and whether the view passed the gate.
    fn look(
        &mut self,
        frame: &Frame,
        det: &Detection,
        quality: Quality,
        enrolling: bool,
    ) -> Result<(Option<Embedding>, bool), VisionError> {
        let gate: QualityGate = self.engine.config().camera_gate();
        let embeddable = enrolling && det.width() >= gate.min_face_px as f32;
        if gate.check(&quality).is_err() && !embeddable {
            return Ok((None, false));
        }
        let (crop, side) = self
            .engine
            .align(&frame.rgb, frame.width, frame.height, det);
        let measured = Quality {
            sharpness: Some(sharpness(crop, side)),
            ..quality
        };
        let passed = gate.check(&measured).is_ok();
        if !passed && !embeddable {
            return Ok((None, false));
        }
        let e = self.engine.embed_aligned()?;
        self.counters.faces_embedded.fetch_add(1, Ordering::Relaxed);
        Ok((Some(e), passed))
    }

    /// What the gallery says of one embedded view; `margin` is the tracker's clear margin.
    fn judge(&self, embedding: &Embedding, margin: f32) -> View {
        let gallery = self.gallery.read();
        let threshold = self.config.threshold.unwrap_or(gallery.threshold());
        match gallery.best_with_rival(embedding, |a, b| a.name == b.name) {
            None => View::judge(None, 0.0, 0.0, threshold, margin),
            Some((m, rival)) => View::judge(
                Some(Identity {
                    person_id: m.id.name.clone(),
                    name: m.id.name.clone(),
                    face_id: m.id.face_id.clone(),
                    similarity: m.similarity,
                    metadata: m.id.metadata.clone(),
                }),
                m.similarity,
                rival,
                threshold,
                margin,
            ),
        }
    }

    fn stop_reason(&self) -> StopReason {
        if self.cameras.is_cancelled() {
            StopReason::Shutdown
        } else {
            StopReason::Requested
        }
    }

    /// Saves a JPEG of the face of each stranger and each recognition, named by the event's id
    /// (made here for it); a stranger's alert names the file (`image_path`, as FaceCV's did)
    /// and, with `api.public_url`, carries a signed link to it.
    fn snapshot(
        &self,
        frame: &Frame,
        sightings: impl Iterator<Item = Sighting>,
    ) -> Vec<(Sighting, Option<EventId>)> {
        let Some(dir) = &self.snapshots else {
            return sightings.map(|s| (s, None)).collect();
        };
        sightings
            .map(|mut s| {
                let bbox = match &s.event {
                    EventData::StrangerAlert { bbox, .. } => *bbox,
                    EventData::FaceRecognized {
                        recognized_faces, ..
                    } if !recognized_faces.is_empty() => recognized_faces[0].bbox,
                    _ => return (s, None),
                };
                let id = EventId::generate();
                let saved = super::snapshot::save(dir, &self.config.camera_id, &id, frame, bbox);
                match (saved, &mut s.event) {
                    (
                        Ok(p),
                        EventData::StrangerAlert {
                            image_path,
                            snapshot_url,
                            ..
                        },
                    ) => {
                        *image_path = Some(p.display().to_string());
                        let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
                        *snapshot_url = self.links.as_ref().and_then(|l| l.url(&id, now));
                    }
                    (Ok(_), _) => {}
                    (Err(err), _) => {
                        tracing::warn!(camera = %self.config.camera_id, error = %err, "cannot save an event snapshot")
                    }
                }
                (s, Some(id))
            })
            .collect()
    }

    fn publish_live(&self, frame: &Frame, observations: &[Observation]) {
        if self.live.receiver_count() == 0 {
            return;
        }
        let faces = observations
            .iter()
            .map(|o| LiveFace {
                name: o
                    .identity
                    .as_ref()
                    .map_or_else(|| "Unknown".to_owned(), |i| i.name.clone()),
                confidence: o.similarity,
                bbox: o.bbox.map(|v| v.round() as i32),
                metadata: o
                    .identity
                    .as_ref()
                    .map(|i| i.metadata.clone())
                    .unwrap_or_default(),
            })
            .collect();
        let _ = self.live.send(Arc::new(LiveFrame {
            camera_id: self.config.camera_id.clone(),
            timestamp: format_timestamp(frame.timestamp),
            faces,
        }));
    }

    fn metadata(&self, frame_timestamp: Option<String>) -> EventMetadata {
        let threshold = self
            .config
            .threshold
            .unwrap_or(self.gallery.read().threshold());
        let mut extra = serde_json::Map::new();
        extra.insert("embedder".into(), serde_json::json!(self.gallery.model()));
        EventMetadata {
            // What FaceCV's guide shows receivers, for the same events.
            source: "insightface_stream".into(),
            threshold: Some(threshold),
            frame_timestamp,
            extra,
            ..EventMetadata::default()
        }
    }

    fn record(&self, events: Vec<EventData>) {
        let events = events
            .into_iter()
            .map(|event| {
                let sighting = Sighting {
                    event,
                    tracks: Vec::new(),
                };
                (sighting, None)
            })
            .collect();
        self.record_events(events, None);
    }

    /// Appends events to the outbox; those of a frame say which frame (`metadata.frame_seq`,
    /// `frame_timestamp`) and which tracks (`metadata.tracks`, one per face of the event).
    fn record_events(&self, events: Vec<(Sighting, Option<EventId>)>, frame: Option<&Frame>) {
        let n = events.len() as u64;
        let mut base = self.metadata(frame.map(|f| format_timestamp(f.timestamp)));
        base.frame_seq = frame.map(|f| f.seq);
        let new: Vec<NewEvent> = events
            .into_iter()
            .map(|(sighting, id)| {
                let metadata = EventMetadata {
                    tracks: sighting.tracks,
                    ..base.clone()
                };
                NewEvent {
                    id,
                    ..NewEvent::new(self.config.camera_id.clone(), sighting.event, metadata)
                }
            })
            .collect();
        match self.outbox.append_blocking(new) {
            Ok(_) => {
                self.counters
                    .events_recorded
                    .fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::error!(camera = %self.config.camera_id, error = %e, "cannot record events")
            }
        }
    }
}
