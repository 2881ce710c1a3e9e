//! Are the models the config names usable? Asked by `facecv check-config`, `/health`, and every
//! camera or API engine that fails to load them.
//!
//! A damaged model used to be seen nowhere: cameras that could not start showed `stopped`,
//! `check-config` said `valid`, `/health` said ok. The file checks here are those [`FaceEngine::new`]
//! runs before it compiles anything (read, sha256 against the pinned digest, flatbuffer parse,
//! tensor shapes for the role), so they need no runtime library and take ~20 ms on a Pi. `/health`
//! repeats them only when a model file (or its folder's `SHA256SUMS`) changed size or mtime, so a
//! supervisor polling it costs a `stat` per file, and a model copied back in place is seen.
//!
//! [`FaceEngine::new`]: super::FaceEngine::new

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::Serialize;

use super::model::SUMS_FILE;
use super::{detector, embedder, VisionConfig, VisionError};

/// One model file and what is wrong with it, if anything.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ModelCheck {
    /// `detector` or `embedder`.
    pub role: &'static str,
    /// The config key that names the file: what to change.
    pub key: &'static str,
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// The reason it cannot be used; `None` when it passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ModelCheck {
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// Checks the detector and embedder files `config` names, without the runtime.
pub fn check_models(config: &VisionConfig) -> Vec<ModelCheck> {
    let check = |role, key, path: PathBuf, result: Result<(), VisionError>| ModelCheck {
        role,
        key,
        path,
        error: result.err().map(|e| e.to_string()),
    };
    vec![
        check(
            "detector",
            "vision.detector.model",
            config.detector_model(),
            detector::check_model(config),
        ),
        check(
            "embedder",
            "vision.embedder.model",
            config.embedder_model(),
            embedder::check_model(config),
        ),
    ]
}

/// What `/health` says of vision.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VisionReport {
    pub ok: bool,
    pub models: Vec<ModelCheck>,
    /// Why the last camera or API engine could not be made (a model, or the runtime library);
    /// cleared when one is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub engine_error: Option<String>,
}

/// Size and mtime of a file, or `None` when it cannot be read.
type Stamp = Option<(u64, SystemTime)>;

/// The appliance's view of its models, shared by the API and the camera manager.
#[derive(Debug)]
pub struct VisionHealth {
    config: VisionConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    checked: Option<(Vec<Stamp>, Vec<ModelCheck>)>,
    engine_error: Option<String>,
}

impl VisionHealth {
    /// Checks the models at once, and logs each that cannot be used.
    pub fn new(config: VisionConfig) -> Self {
        let health = VisionHealth {
            config,
            inner: Mutex::default(),
        };
        for m in health.report().models.iter().filter(|m| !m.ok()) {
            tracing::error!(key = m.key, path = %m.path.display(), "model cannot be used: {}", m.error.as_deref().unwrap_or(""));
        }
        health
    }

    /// The models as they are now (checked again if a file changed) and the last engine failure.
    pub fn report(&self) -> VisionReport {
        let stamps = self.stamps();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let models = match &inner.checked {
            Some((seen, models)) if *seen == stamps => models.clone(),
            _ => {
                let models = check_models(&self.config);
                inner.checked = Some((stamps, models.clone()));
                models
            }
        };
        VisionReport {
            ok: models.iter().all(ModelCheck::ok) && inner.engine_error.is_none(),
            models,
            engine_error: inner.engine_error.clone(),
        }
    }

    /// Notes how making an engine went: a failure shows in `/health` until an engine is made.
    pub fn engine_made(&self, result: Result<(), &VisionError>) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.engine_error = result.err().map(ToString::to_string);
    }

    fn stamps(&self) -> Vec<Stamp> {
        let models = [self.config.detector_model(), self.config.embedder_model()];
        let sums = models.iter().map(|m| m.with_file_name(SUMS_FILE));
        models
            .iter()
            .cloned()
            .chain(sums)
            .map(|p| stamp(&p))
            .collect()
    }
}

fn stamp(path: &Path) -> Stamp {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
