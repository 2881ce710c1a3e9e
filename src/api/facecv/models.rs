//! FaceCV's model routes: what runs (`models/info`, `models/status`) and freeing it
//! (`models/clear`). FaceCV chose among InsightFace model packs per request; the appliance runs
//! the models its config names, so these report them under FaceCV's field names, and a
//! `model_name` in a form is ignored.

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;

use super::super::routes::Params;
use super::super::{ok_json, ApiError, ApiResult, State};
use super::wire::{
    FacecvAvailable, FacecvCleared, FacecvDatabase, FacecvModelsInfo, FacecvModelsStatus,
};

/// FaceCV's model information.
///
/// Loads the API's engine as FaceCV's route loaded its recognizer, so `initialized` is true only
/// once the models really run here. `similarity_threshold` is the gallery's calibrated threshold:
/// what an absent `threshold` means on every route of this family.
#[utoipa::path(get, path = "/api/v1/insightface/models/info", tag = "facecv",
    responses((status = 200, description = "The models in use", body = FacecvModelsInfo)))]
pub(super) async fn facecv_models_info(
    state: Arc<State>,
    _req: Request<Incoming>,
    _p: Params,
) -> ApiResult {
    let engine = state.engine.clone();
    let (config, made) = tokio::task::spawn_blocking(move || {
        let mut guard = engine.lock().unwrap_or_else(|p| p.into_inner());
        let made = guard
            .get()
            .map(|e| e.embedding_dim())
            .map_err(|e| e.to_string());
        (guard.config().clone(), made)
    })
    .await
    .map_err(|_| ApiError::Unavailable)?;
    let face_count = state.store.face_count()?.0;
    let gallery = state.cameras.gallery();
    ok_json(&FacecvModelsInfo {
        status: if made.is_ok() { "active" } else { "inactive" },
        initialized: made.is_ok(),
        model_pack: gallery.model().to_owned(),
        similarity_threshold: gallery.read().threshold(),
        detection_threshold: config.detector.threshold,
        detector_model: file_name(&config.detector_model()),
        embedder_model: file_name(&config.embedder_model()),
        embedding_size: made.as_ref().ok().copied(),
        error: made.err(),
        face_database_connected: true,
        face_count,
        insightface_available: false,
        database: FacecvDatabase {
            r#type: "SQLite",
            connected: true,
            face_count,
        },
    })
}

/// FaceCV's model pool status.
///
/// The API loads its engine on first use and keeps it (cameras have their own): `loaded_models`
/// names it once loaded, and is empty after `models/clear` until the next upload needs it.
#[utoipa::path(get, path = "/api/v1/insightface/models/status", tag = "facecv",
    responses((status = 200, description = "Whether the API's models are loaded", body = FacecvModelsStatus)))]
pub(super) async fn facecv_models_status(
    state: Arc<State>,
    _req: Request<Incoming>,
    _p: Params,
) -> ApiResult {
    let engine = state.engine.clone();
    let (loaded, config) = tokio::task::spawn_blocking(move || {
        let guard = engine.lock().unwrap_or_else(|p| p.into_inner());
        (guard.loaded(), guard.config().clone())
    })
    .await
    .map_err(|_| ApiError::Unavailable)?;
    let pack = state.cameras.gallery().model().to_owned();
    let loaded_models: Vec<String> = loaded.then(|| pack.clone()).into_iter().collect();
    ok_json(&FacecvModelsStatus {
        status: "active",
        current_model: loaded.then(|| pack.clone()),
        model_count: loaded_models.len(),
        loaded_models,
        lazy_loading_enabled: true,
        auto_unload_enabled: false,
        available_models: FacecvAvailable {
            detection_only: vec![file_name(&config.detector_model())],
            full_packages: vec![pack.clone()],
            all: vec![pack],
        },
    })
}

/// FaceCV's "clear all models": frees the API's engine.
///
/// Its memory (runtime, models, buffers) is given back; the next upload loads it again. Cameras
/// keep their own engines and go on recognising.
#[utoipa::path(post, path = "/api/v1/insightface/models/clear", tag = "facecv",
    responses((status = 200, description = "The API's models were unloaded", body = FacecvCleared)))]
pub(super) async fn facecv_models_clear(
    state: Arc<State>,
    _req: Request<Incoming>,
    _p: Params,
) -> ApiResult {
    let engine = state.engine.clone();
    tokio::task::spawn_blocking(move || engine.lock().unwrap_or_else(|p| p.into_inner()).clear())
        .await
        .map_err(|_| ApiError::Unavailable)?;
    tracing::info!("the API's models were unloaded (models/clear)");
    ok_json(&FacecvCleared {
        success: true,
        message: "All models cleared from pool",
        current_models: Vec::new(),
    })
}

/// A model's file name: which model, without saying where the device keeps it.
fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .unwrap_or(path.as_os_str())
        .to_string_lossy()
        .into_owned()
}
