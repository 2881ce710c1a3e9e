//! The vision engine the API analyses uploads with, shared by recognition (`faces.rs`) and
//! enrolment (`enrol.rs`).
//!
//! Images are analysed on a blocking thread by one engine kept for the API, so an upload never
//! stalls the async runtime, and cameras keep their own engines.

use std::sync::Arc;

use super::{ApiError, State};
use crate::vision::{FaceEngine, ImageLimits, VisionConfig, VisionError, VisionHealth};

/// The engine for uploaded images, made on first use: the appliance (and its webhooks) runs
/// without the TFLite runtime, and says what is missing when a request needs it.
/// A failure to make it (a damaged model) is a 503 naming the model and the reason, is tried
/// again on the next request (the file may have been put right), and shows in `/health`.
pub struct ApiEngine {
    config: VisionConfig,
    health: Arc<VisionHealth>,
    engine: Option<FaceEngine>,
}

impl ApiEngine {
    pub fn new(config: VisionConfig, health: Arc<VisionHealth>) -> Self {
        ApiEngine {
            config,
            health,
            engine: None,
        }
    }

    /// The models and settings it is (or will be) made from.
    pub(super) fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// Whether the engine is made (the models are in memory).
    pub(super) fn loaded(&self) -> bool {
        self.engine.is_some()
    }

    /// Drops the engine, giving its memory back; the next [`ApiEngine::get`] makes it again.
    pub(super) fn clear(&mut self) {
        self.engine = None;
    }

    pub fn get(&mut self) -> Result<&mut FaceEngine, VisionError> {
        if self.engine.is_none() {
            let made = FaceEngine::new(self.config.clone());
            self.health.engine_made(made.as_ref().map(|_| ()));
            self.engine = Some(made?);
        }
        Ok(self.engine.as_mut().expect("just made"))
    }
}

/// Runs vision work on the API's engine, on a blocking thread; uploads are decoded within
/// `api.max_image_pixels`.
pub(super) async fn with_engine<T: Send + 'static>(
    state: &State,
    f: impl FnOnce(&mut FaceEngine) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let engine = state.engine.clone();
    let limits = ImageLimits {
        max_pixels: state.config.max_image_pixels,
    };
    tokio::task::spawn_blocking(move || {
        let mut guard = engine.lock().unwrap_or_else(|p| p.into_inner());
        let engine = guard.get().map_err(|e| image_error("file", e))?;
        engine.set_image_limits(limits);
        f(engine)
    })
    .await
    .map_err(|_| ApiError::Unavailable)?
}

/// What was wrong with an uploaded image, said against its form field; problems of the appliance
/// itself (no runtime, a broken model) are 503s.
pub(super) fn image_error(field: &str, e: VisionError) -> ApiError {
    let Some(code) = crate::enrol::folder::photo_code(&e) else {
        return ApiError::VisionUnavailable(e.to_string());
    };
    if let VisionError::ImageFormat(_) = e {
        return ApiError::UnsupportedMedia {
            code,
            message: format!("{field}: {e}"),
        };
    }
    ApiError::Unprocessable {
        field: field.to_owned(),
        code,
        message: e.to_string(),
    }
}
