//! `/api/v1/cameras`: the cameras of the appliance, added, started, stopped and watched.

use http::{Method, Request};
use hyper::body::Incoming;
use serde_json::json;

use super::{ok_json, read_json, ApiError, ApiResult, State};
use crate::pipeline::{CameraConfig, CamerasError};

impl From<CamerasError> for ApiError {
    fn from(e: CamerasError) -> Self {
        match e {
            CamerasError::NotFound(id) => ApiError::NotFound(format!("camera {id}")),
            CamerasError::Conflict(id) => ApiError::Conflict(format!("camera {id}")),
            CamerasError::Invalid(c) => c.into(),
            CamerasError::Vision(v) => ApiError::VisionUnavailable(v.to_string()),
        }
    }
}

pub async fn route(state: &State, req: Request<Incoming>, rest: &[&str]) -> ApiResult {
    let method = req.method().clone();
    match (rest, &method) {
        ([], &Method::GET) => ok_json(&state.cameras.list()),
        ([], &Method::POST) => add(state, req).await,
        ([id], &Method::GET) | ([id, "status"], &Method::GET) => {
            ok_json(&state.cameras.status(id)?)
        }
        ([id], &Method::DELETE) => {
            let (cameras, id2) = (state.cameras.clone(), id.to_string());
            blocking(move || cameras.remove(&id2)).await?;
            ok_json(&json!({ "success": true, "camera_id": id }))
        }
        ([id, "start"], &Method::POST) => {
            let (cameras, id2) = (state.cameras.clone(), id.to_string());
            blocking(move || cameras.start(&id2)).await?;
            ok_json(&state.cameras.status(id)?)
        }
        ([id, "stop"], &Method::POST) => {
            let (cameras, id2) = (state.cameras.clone(), id.to_string());
            blocking(move || cameras.stop(&id2)).await?;
            ok_json(&state.cameras.status(id)?)
        }
        ([] | [_] | [_, "start" | "stop" | "status"], _) => Err(ApiError::MethodNotAllowed(method)),
        _ => Err(ApiError::NotFound(format!("path {}", req.uri().path()))),
    }
}

/// Camera starts load models and stops join a thread: both block.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, CamerasError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::Unavailable)?
        .map_err(ApiError::from)
}

async fn add(state: &State, req: Request<Incoming>) -> ApiResult {
    let config: CameraConfig = read_json(state, req).await?;
    let id = config.camera_id.clone();
    let autostart = config.autostart;
    state.cameras.add(config)?;
    if autostart {
        let (cameras, id2) = (state.cameras.clone(), id.clone());
        if let Err(e) = blocking(move || cameras.start(&id2)).await {
            // Keep the API's state as the caller expects it: a camera that cannot start is not added.
            let _ = state.cameras.remove(&id);
            return Err(e);
        }
    }
    ok_json(&state.cameras.status(&id)?)
}
