//! A camera as the manager holds it (its entry and, while it runs, its thread) and what the API
//! shows of it: the state, the counters and why it is not running.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use serde::Serialize;
use tokio::sync::broadcast;

use super::config::CameraConfig;
use super::live::LiveTap;
use super::manager::CameraOrigin;
use super::runner::{CameraCounters, LiveFrame};
use crate::events::StopReason;
use crate::shutdown::Shutdown;

/// What the API shows of a camera.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CameraStatus {
    pub camera_id: String,
    pub source: String,
    pub fps: f32,
    pub autostart: bool,
    /// `config`, `api` (remembered across restarts) or `stream`.
    pub origin: CameraOrigin,
    pub running: bool,
    /// `running`, `reconnecting` (the source is unavailable: see `source_error`), `flapping` (it
    /// keeps coming back and going again: see `restarts`, `next_retry_at`, `last_error`),
    /// `stopped`, `refused` (stored by an earlier version with a source the API may no longer
    /// use: see `reason`), or how it last ended: `ended`, `source_lost`, `error` (also when it
    /// could not start, e.g. a damaged model: see `last_error`).
    pub state: String,
    /// While the state is `refused`: why the camera is not started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub frames_captured: u64,
    /// Frames the camera delivered faster than they could be analysed (the newest is always taken).
    pub frames_dropped: u64,
    /// Frames converted to RGB for analysis: only those analysed are decoded, not every capture
    /// (0 for y4m files, image folders and the synthetic pattern, which are RGB as they are read).
    pub frames_decoded: u64,
    /// Frames that could not be decoded (a corrupt JPEG); they are skipped, and a steady run of
    /// them makes the camera reconnect.
    pub decode_failures: u64,
    pub reconnects: u64,
    pub frames_analysed: u64,
    /// Faces embedded: a face is embedded when its track needs a look (new, undecided, crossed
    /// another, a better view, a re-check every few seconds), not on every frame.
    pub faces_embedded: u64,
    /// Looks the quality gate refused (`vision.quality`: too small, turned away or blurred).
    pub views_refused: u64,
    pub events_recorded: u64,
    /// While the state is `reconnecting`: why the source cannot be read (e.g. "cannot open
    /// /dev/video0: permission denied ...").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_error: Option<String>,
    /// Times the source came back since it last ran healthily (`reconnect.healthy_after`).
    pub restarts: u64,
    /// While capture waits to reopen the source: when it tries next (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<String>,
    /// Why the camera could not start (the model file and what is wrong with it, say), why its
    /// source was last lost while it flaps or reconnects, or why its last run ended in `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A camera's run: the thread while it runs, the counters and the end reason after.
pub(super) struct Running {
    /// The camera's child of the manager's `stop`; cancelling it stops this camera alone.
    pub(super) stop: Shutdown,
    pub(super) thread: Option<JoinHandle<()>>,
    pub(super) counters: Arc<CameraCounters>,
    pub(super) ended: Arc<Mutex<Option<StopReason>>>,
}

impl Running {
    pub(super) fn alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }
}

pub(super) struct Entry {
    pub(super) config: CameraConfig,
    pub(super) origin: CameraOrigin,
    /// Start it with the appliance: `autostart`, or the API's last start or stop.
    pub(super) wanted: bool,
    pub(super) live: broadcast::Sender<Arc<LiveFrame>>,
    /// The live view and the frame tap, for as long as the camera is defined.
    pub(super) tap: Arc<LiveTap>,
    pub(super) running: Option<Running>,
    /// Why the last start failed; cleared by the next start that works.
    pub(super) start_error: Option<String>,
    /// Why a stored camera is kept but never started; see the module comment.
    pub(super) refused: Option<String>,
}

pub(super) fn status_of(entry: &Entry) -> CameraStatus {
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let zero = CameraCounters::default();
    let counters = entry.running.as_ref().map_or(&zero, |r| &r.counters);
    let source_error = counters
        .source_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let flaps = counters
        .flaps
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let (running, state) = match &entry.running {
        None if entry.refused.is_some() => (false, "refused".to_owned()),
        None if entry.start_error.is_some() => (false, "error".to_owned()),
        None => (false, "stopped".to_owned()),
        Some(r) => {
            let alive = r.alive();
            let state = if alive && flaps.flapping {
                "flapping".to_owned()
            } else if alive && source_error.is_some() {
                "reconnecting".to_owned()
            } else if alive {
                "running".to_owned()
            } else {
                match *r.ended.lock().unwrap_or_else(|p| p.into_inner()) {
                    Some(StopReason::Requested) | Some(StopReason::Shutdown) | None => {
                        "stopped".to_owned()
                    }
                    Some(reason) => reason.as_str().to_owned(),
                }
            };
            (alive, state)
        }
    };
    // A stopped camera's last run may have ended while its source was away: that is history.
    let source_error = source_error.filter(|_| running);
    let analysis_error = counters
        .analysis_error
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let end_detail = counters
        .end_detail
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let last_error = entry.start_error.clone().or_else(|| {
        if running {
            flaps.last_error.clone().or(analysis_error)
        } else {
            // A run that ended in an error says why, after it is over.
            end_detail
        }
    });
    CameraStatus {
        camera_id: entry.config.camera_id.clone(),
        source: entry.config.source_label(),
        fps: entry.config.fps,
        autostart: entry.config.autostart,
        origin: entry.origin,
        running,
        state,
        reason: entry.refused.clone().filter(|_| !running),
        frames_captured: load(&counters.frames_captured),
        frames_dropped: load(&counters.frames_dropped),
        frames_decoded: load(&counters.frames_decoded),
        decode_failures: load(&counters.decode_failures),
        reconnects: load(&counters.reconnects),
        frames_analysed: load(&counters.frames_analysed),
        faces_embedded: load(&counters.faces_embedded),
        views_refused: load(&counters.views_refused),
        events_recorded: load(&counters.events_recorded),
        source_error,
        restarts: if running { flaps.restarts } else { 0 },
        next_retry_at: flaps
            .next_retry
            .filter(|_| running)
            .map(crate::events::format_timestamp),
        last_error,
    }
}
