//! The cameras of the appliance: from the config and added over the API, each started and stopped
//! on request, each with its own thread, engine, tracker and policy.
//!
//! Who defined a camera decides who may change it and whether it outlives the process:
//! * `[[cameras]]` in the config file: the file is the truth. The API may start and stop such a
//!   camera for now, but not change or delete it (409 `config_camera`): an edit that the next
//!   restart would silently undo is worse than a clear refusal.
//! * Added over the API: remembered in the store (`store::cameras`) with whether the installer
//!   wants it running, and brought back at the next start, after the config's cameras. If the
//!   config file later defines the same id, the file wins and the stored copy is dropped.
//! * Made by an SSE stream for itself: never stored; it lives as long as its stream.
//!
//! Cameras of the API and of streams read only what [`ApiSources`] allows (no commands, files only
//! in `api.media_dir`), checked when they come in and again at each start. A camera an earlier
//! version stored that breaks these rules is kept, never started, and its status says why
//! (`state: "refused"`, `reason`), so the installer can see it and fix or delete it.
//!
//! Only the API's start and stop change the remembered wish. MQTT commands and GPIO inputs (a PIR
//! that wakes a camera for two minutes) switch a camera for now, the way a light switch does not
//! rewrite the wiring plan.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast;

use super::config::CameraConfig;
use super::gallery::SharedGallery;
use super::live::LiveTap;
use super::runner::{CameraCounters, CameraRun, LiveFrame};
pub use super::status::CameraStatus;
use super::status::{status_of, Entry, Running};
use crate::camera::control::{CameraControl, CameraControlError, CameraInfo};
use crate::camera::{ApiSources, SourceRefusal, SourceSpec};
use crate::config::check::ConfigError;
use crate::shutdown::Shutdown;
use crate::store::{Outbox, Store, StoreError};
use crate::vision::{FaceEngine, VisionConfig, VisionError, VisionHealth};

#[derive(Debug, thiserror::Error)]
pub enum CamerasError {
    #[error("camera {0} not found")]
    NotFound(String),
    #[error("camera {0} already exists")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    #[error("vision is not available: {0}")]
    Vision(#[from] VisionError),
    #[error("camera {0} is defined in the config file; change or remove it there")]
    FromConfig(String),
    #[error("camera {0} belongs to a live stream and ends with it")]
    FromStream(String),
    /// A source the API may not ask for (a command, a file outside `api.media_dir`).
    #[error(transparent)]
    Refused(#[from] SourceRefusal),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system would not give the camera its thread (out of memory or of threads).
    #[error("cannot start a thread for camera {camera}: {source}")]
    Thread {
        camera: String,
        source: std::io::Error,
    },
}

/// Where a camera was defined; see the module comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CameraOrigin {
    Config,
    Api,
    Stream,
}

pub struct Cameras {
    /// Every change of a camera's running state, for the MQTT bridge and the GPIO inputs.
    states: broadcast::Sender<CameraInfo>,
    vision: VisionConfig,
    /// Where engines that cannot be made are reported, for `/health`.
    vision_health: Arc<VisionHealth>,
    /// Where event snapshots go (`<storage.dir>/snapshots`).
    snapshot_dir: std::path::PathBuf,
    /// Signs links to snapshots; `None` until [`Cameras::with_snapshot_links`].
    links: Option<Arc<super::snapshot::SnapshotLinks>>,
    gallery: SharedGallery,
    outbox: Outbox,
    /// What cameras of the API and of streams may read.
    api_sources: ApiSources,
    cameras: Mutex<BTreeMap<String, Entry>>,
    /// Every camera runs under a child of this; cancelling it (the appliance stopping) stops
    /// them all with the reason `shutdown`.
    stop: Shutdown,
    /// A handle on the `Arc` this manager lives in, for commands that run on their own thread.
    self_ref: Mutex<std::sync::Weak<Cameras>>,
}

impl Cameras {
    /// The cameras stop, all with the reason `shutdown`, when `stop` is cancelled (pass a child
    /// of the appliance's root) or [`Cameras::shutdown`] is called.
    pub fn new(
        vision: VisionConfig,
        vision_health: Arc<VisionHealth>,
        gallery: SharedGallery,
        outbox: Outbox,
        snapshot_dir: std::path::PathBuf,
        stop: Shutdown,
    ) -> Cameras {
        Cameras {
            states: broadcast::channel(64).0,
            vision,
            vision_health,
            snapshot_dir,
            links: None,
            gallery,
            outbox,
            api_sources: ApiSources::default(),
            cameras: Mutex::new(BTreeMap::new()),
            stop,
            self_ref: Mutex::new(std::sync::Weak::new()),
        }
    }

    /// The rules for cameras of the API and of streams (by default: no file sources at all).
    pub fn with_api_sources(mut self, sources: ApiSources) -> Self {
        self.api_sources = sources;
        self
    }

    /// The key (and public URL) that signs links to snapshots, for events and the API.
    pub fn with_snapshot_links(mut self, links: super::snapshot::SnapshotLinks) -> Self {
        self.links = Some(Arc::new(links));
        self
    }

    /// Where event snapshots are kept, and what signs links to them.
    pub fn snapshots(&self) -> (&std::path::Path, Option<&super::snapshot::SnapshotLinks>) {
        (&self.snapshot_dir, self.links.as_deref())
    }

    /// Lets [`CameraControl::set_running`] reach this manager from another thread.
    pub fn attach(self: &Arc<Self>) {
        *self.self_ref.lock().unwrap_or_else(|p| p.into_inner()) = Arc::downgrade(self);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        self.cameras.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn store(&self) -> &Store {
        self.outbox.store()
    }

    /// Adds a camera for this run of the appliance (from the config file, or for a stream).
    pub fn add(&self, config: CameraConfig, origin: CameraOrigin) -> Result<(), CamerasError> {
        let wanted = config.autostart;
        self.check(&config, origin)?;
        self.insert(config, origin, wanted, None)
    }

    /// Every check of a camera, its source by the rules of whoever defined it; returns the
    /// source to open.
    fn check(
        &self,
        config: &CameraConfig,
        origin: CameraOrigin,
    ) -> Result<SourceSpec, CamerasError> {
        match origin {
            CameraOrigin::Config => {
                config.validate()?;
                Ok(config.source_spec()?)
            }
            CameraOrigin::Api | CameraOrigin::Stream => {
                config.validate_settings()?;
                Ok(config.api_source_spec(&self.api_sources)?)
            }
        }
    }

    fn insert(
        &self,
        config: CameraConfig,
        origin: CameraOrigin,
        wanted: bool,
        refused: Option<String>,
    ) -> Result<(), CamerasError> {
        let mut cameras = self.lock();
        if cameras.contains_key(&config.camera_id) {
            return Err(CamerasError::Conflict(config.camera_id));
        }
        let (live, _) = broadcast::channel(16);
        cameras.insert(
            config.camera_id.clone(),
            Entry {
                config,
                origin,
                wanted,
                live,
                tap: Arc::default(),
                running: None,
                start_error: None,
                refused,
            },
        );
        Ok(())
    }

    /// Adds a camera given to the API and remembers it, `raw` as received. It is stored before
    /// the caller hears of it, so an answered request survives a power cut.
    pub fn add_remembered(&self, config: CameraConfig, raw: &Value) -> Result<(), CamerasError> {
        let (id, wanted) = (config.camera_id.clone(), config.autostart);
        self.check(&config, CameraOrigin::Api)?;
        self.insert(config, CameraOrigin::Api, wanted, None)?;
        if let Err(e) = self.store().put_camera(&id, raw, wanted) {
            self.lock().remove(&id);
            return Err(e.into());
        }
        Ok(())
    }

    /// Replaces an API camera's definition, keeping whether it should run; a running camera is
    /// stopped here and the caller starts it again. Returns whether it was running.
    pub fn replace(&self, config: CameraConfig, raw: &Value) -> Result<bool, CamerasError> {
        let id = config.camera_id.clone();
        self.check_changeable(&id)?;
        self.check(&config, CameraOrigin::Api)?;
        let running = self.status(&id)?.running;
        self.stop(&id)?;
        let wanted = {
            let mut cameras = self.lock();
            let entry = cameras
                .get_mut(&id)
                .ok_or_else(|| CamerasError::NotFound(id.clone()))?;
            entry.config = config;
            entry.running = None;
            entry.refused = None;
            entry.wanted
        };
        self.store().put_camera(&id, raw, wanted)?;
        Ok(running)
    }

    /// Refuses changes to cameras the API does not own.
    fn check_changeable(&self, id: &str) -> Result<CameraOrigin, CamerasError> {
        let origin = self
            .lock()
            .get(id)
            .map(|e| e.origin)
            .ok_or_else(|| CamerasError::NotFound(id.into()))?;
        match origin {
            CameraOrigin::Config => Err(CamerasError::FromConfig(id.into())),
            CameraOrigin::Stream => Err(CamerasError::FromStream(id.into())),
            CameraOrigin::Api => Ok(origin),
        }
    }

    /// Stops (if running) and forgets an API or stream camera; an API camera is forgotten by the
    /// store first, so a crash halfway does not bring it back. A stored camera that could not be
    /// loaded at start-up (its file was missing) can be deleted too.
    pub fn remove(&self, id: &str) -> Result<(), CamerasError> {
        let origin = self.lock().get(id).map(|e| e.origin);
        match origin {
            None if self.store().delete_camera(id)? => return Ok(()),
            None => return Err(CamerasError::NotFound(id.into())),
            Some(CameraOrigin::Config) => return Err(CamerasError::FromConfig(id.into())),
            Some(CameraOrigin::Api) => {
                self.store().delete_camera(id)?;
            }
            Some(CameraOrigin::Stream) => {}
        }
        self.stop(id)?;
        self.lock().remove(id);
        Ok(())
    }

    /// Starts or stops a camera because the installer asked the API, and remembers the wish for
    /// an API camera. A failed start leaves the wish as it was.
    pub fn switch(&self, id: &str, on: bool) -> Result<(), CamerasError> {
        if on {
            self.start(id)?;
        }
        let origin = {
            let mut cameras = self.lock();
            let entry = cameras
                .get_mut(id)
                .ok_or_else(|| CamerasError::NotFound(id.into()))?;
            entry.wanted = on;
            entry.origin
        };
        if origin == CameraOrigin::Api {
            self.store().set_camera_running(id, on)?;
        }
        if !on {
            self.stop(id)?;
        }
        Ok(())
    }

    /// Brings back the cameras the API added before the last stop; call after the config's
    /// cameras are added. A stored camera that no longer passes the checks (its video file is
    /// gone) is logged and kept in the store for when it does; one whose source the API may no
    /// longer use is listed as `refused` and never started. Returns how many came back.
    pub fn restore(&self) -> Result<usize, CamerasError> {
        let mut restored = 0;
        for row in self.store().stored_cameras()? {
            if self.lock().contains_key(&row.id) {
                tracing::warn!(camera = %row.id, "the config file now defines this camera; the copy added over the API is dropped");
                self.store().delete_camera(&row.id)?;
                continue;
            }
            let config = match serde_json::from_value::<CameraConfig>(row.config) {
                Ok(c) if c.camera_id == row.id => c,
                Ok(c) => {
                    tracing::error!(camera = %row.id, stored = %c.camera_id, "a stored camera names another id; not loaded");
                    continue;
                }
                Err(e) => {
                    tracing::error!(camera = %row.id, error = %e, "a stored camera cannot be read; not loaded");
                    continue;
                }
            };
            let refused = match self.check(&config, CameraOrigin::Api) {
                Ok(_) => None,
                Err(CamerasError::Refused(r)) if r.is_forbidden() => {
                    tracing::warn!(camera = %row.id, code = r.code(), reason = %r, "a camera stored by an earlier version uses a source the API may no longer use; it is kept but not started");
                    Some(r.to_string())
                }
                Err(e) => {
                    tracing::error!(camera = %row.id, error = %e, "a camera added over the API cannot be loaded now; it stays stored");
                    continue;
                }
            };
            match self.insert(config, CameraOrigin::Api, row.running, refused) {
                Ok(()) => restored += 1,
                Err(e) => {
                    tracing::error!(camera = %row.id, error = %e, "a camera added over the API cannot be loaded now; it stays stored")
                }
            }
        }
        Ok(restored)
    }

    /// Starts a camera; starting a running one does nothing. Loads the models, so a missing
    /// runtime or a corrupt model is reported here, to the caller, and stays in the camera's
    /// status (`error`, with `last_error`) until a start works.
    pub fn start(&self, id: &str) -> Result<(), CamerasError> {
        let (config, live, tap, origin) = {
            let mut cameras = self.lock();
            let entry = cameras
                .get_mut(id)
                .ok_or_else(|| CamerasError::NotFound(id.into()))?;
            if entry.running.as_ref().is_some_and(Running::alive) {
                return Ok(());
            }
            entry.running = None;
            (
                entry.config.clone(),
                entry.live.clone(),
                entry.tap.clone(),
                entry.origin,
            )
        };
        let launched = self.launch(config, live, &tap, origin);
        let mut cameras = self.lock();
        let entry = cameras.get_mut(id);
        match launched {
            Ok(running) => {
                if let Some(entry) = entry {
                    entry.running = Some(running);
                    entry.start_error = None;
                    entry.refused = None;
                }
                tracing::info!(camera = id, "camera started");
                Ok(())
            }
            Err(e) => {
                if let Some(entry) = entry {
                    entry.start_error = Some(format!("cannot start: {e}"));
                }
                Err(e)
            }
        }
    }

    /// Makes the camera's engine and starts its thread.
    fn launch(
        &self,
        config: CameraConfig,
        live: broadcast::Sender<Arc<LiveFrame>>,
        tap: &Arc<LiveTap>,
        origin: CameraOrigin,
    ) -> Result<Running, CamerasError> {
        let id = config.camera_id.clone();
        // Checked again: a file in the media folder may have become a link out of it since.
        let spec = self.check(&config, origin)?;
        let engine = FaceEngine::new(self.vision.clone());
        self.vision_health.engine_made(engine.as_ref().map(|_| ()));
        let engine = engine?;
        let stop = self.stop.child_token();
        let counters = Arc::new(CameraCounters::default());
        let ended = Arc::new(Mutex::new(None));
        let snapshots = config.snapshots.then(|| self.snapshot_dir.clone());
        let run = CameraRun {
            config,
            spec,
            engine,
            gallery: self.gallery.clone(),
            outbox: self.outbox.clone(),
            live,
            live_view: tap.start_run(),
            stop: stop.clone(),
            cameras: self.stop.clone(),
            counters: counters.clone(),
            snapshots,
            links: self.links.clone(),
            ended: ended.clone(),
            states: self.states.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("camera-{id}"))
            .spawn(move || run.run())
            .map_err(|source| CamerasError::Thread { camera: id, source })?;
        Ok(Running {
            stop,
            thread: Some(thread),
            counters,
            ended,
        })
    }

    /// Stops a camera and waits for its last event (`stream_stopped`) to be recorded. Blocks.
    pub fn stop(&self, id: &str) -> Result<(), CamerasError> {
        // The thread is joined outside the lock: its last act, recording `stream_stopped`, may
        // take a moment, and the API must stay responsive meanwhile.
        let thread = {
            let mut cameras = self.lock();
            let entry = cameras
                .get_mut(id)
                .ok_or_else(|| CamerasError::NotFound(id.into()))?;
            entry.running.as_mut().and_then(|r| {
                r.stop.cancel();
                r.thread.take()
            })
        };
        if let Some(t) = thread {
            let _ = t.join();
        }
        Ok(())
    }

    /// Stops every camera for the appliance's shutdown and waits until each has recorded its
    /// `stream_stopped`, which says `shutdown`. Blocks. The cancel reaches every camera at once;
    /// they are then joined one by one.
    pub fn shutdown(&self) {
        self.stop.cancel();
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            let _ = self.stop(&id);
        }
    }

    /// Starts every camera that should run (`autostart`, or the API's last wish); a failure is
    /// logged, not fatal, so that one broken camera does not keep the others (and the API) down.
    /// A source that fails later keeps reconnecting as usual.
    pub fn start_autostart(&self) {
        let ids: Vec<String> = self
            .lock()
            .values()
            .filter(|e| e.wanted && e.refused.is_none())
            .map(|e| e.config.camera_id.clone())
            .collect();
        for id in ids {
            if let Err(e) = self.start(&id) {
                tracing::error!(camera = %id, error = %e, "camera did not start");
            }
        }
    }

    pub fn status(&self, id: &str) -> Result<CameraStatus, CamerasError> {
        let cameras = self.lock();
        let entry = cameras
            .get(id)
            .ok_or_else(|| CamerasError::NotFound(id.into()))?;
        Ok(status_of(entry))
    }

    pub fn list(&self) -> Vec<CameraStatus> {
        self.lock().values().map(status_of).collect()
    }

    /// Live analysis results of a camera, for SSE viewers.
    pub fn subscribe(&self, id: &str) -> Result<broadcast::Receiver<Arc<LiveFrame>>, CamerasError> {
        let cameras = self.lock();
        let entry = cameras
            .get(id)
            .ok_or_else(|| CamerasError::NotFound(id.into()))?;
        Ok(entry.live.subscribe())
    }

    /// A camera's live view and frame tap (see `pipeline::live`).
    pub fn live_tap(&self, id: &str) -> Result<Arc<LiveTap>, CamerasError> {
        let cameras = self.lock();
        let entry = cameras
            .get(id)
            .ok_or_else(|| CamerasError::NotFound(id.into()))?;
        Ok(entry.tap.clone())
    }

    /// Every camera's live tap, for the metrics.
    pub fn live_taps(&self) -> Vec<(String, Arc<LiveTap>)> {
        self.lock()
            .iter()
            .map(|(id, e)| (id.clone(), e.tap.clone()))
            .collect()
    }

    pub fn config(&self, id: &str) -> Result<CameraConfig, CamerasError> {
        let cameras = self.lock();
        let entry = cameras
            .get(id)
            .ok_or_else(|| CamerasError::NotFound(id.into()))?;
        Ok(entry.config.clone())
    }

    pub fn gallery(&self) -> &SharedGallery {
        &self.gallery
    }
}

impl CameraControl for Cameras {
    fn cameras(&self) -> Vec<CameraInfo> {
        self.list()
            .into_iter()
            .map(|s| CameraInfo {
                name: s.camera_id.clone(),
                id: s.camera_id,
                running: s.running,
            })
            .collect()
    }

    /// Starts or stops on a thread of its own: the MQTT bridge calls this from its async task,
    /// and a start loads models. The outcome reaches subscribers as a state change.
    fn set_running(&self, camera_id: &str, on: bool) -> Result<(), CameraControlError> {
        let me = self
            .self_ref
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade();
        let Some(me) = me else {
            return Err(CameraControlError::Failed {
                camera: camera_id.into(),
                message: "the camera manager is shutting down".into(),
            });
        };
        if !self.lock().contains_key(camera_id) {
            return Err(CameraControlError::Unknown(camera_id.into()));
        }
        let id = camera_id.to_owned();
        std::thread::spawn(move || {
            let r = if on { me.start(&id) } else { me.stop(&id) };
            if let Err(e) = r {
                tracing::warn!(camera = %id, error = %e, "camera command failed");
            }
        });
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<CameraInfo> {
        self.states.subscribe()
    }
}
