//! `/api/v1/cameras`: the cameras of the appliance, added, changed, started, stopped and watched.
//!
//! Cameras added here are remembered in the store and come back after a restart, running if they
//! were; cameras of the config file can be started and stopped for now but are changed in the
//! file (see `pipeline::manager`).
//!
//! Also here: the V4L2 devices present (`devices`), and the console's live view, snapshots
//! (`live.rs`) and enrolment from a camera (`camera_enrol.rs`).

use http::{Method, Request};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::{ok_json, read_json, ApiError, ApiResult, State};
use crate::camera::{CameraError, SourceRefusal};
use crate::pipeline::{CameraConfig, CamerasError};

impl From<CamerasError> for ApiError {
    fn from(e: CamerasError) -> Self {
        match e {
            CamerasError::NotFound(id) => ApiError::NotFound(format!("camera {id}")),
            CamerasError::Conflict(id) => ApiError::Conflict(format!("camera {id}")),
            CamerasError::Invalid(c) => c.into(),
            CamerasError::Vision(v) => ApiError::VisionUnavailable(v.to_string()),
            e @ CamerasError::FromConfig(_) => ApiError::Refused {
                code: "config_camera",
                message: e.to_string(),
            },
            e @ CamerasError::FromStream(_) => ApiError::Refused {
                code: "stream_camera",
                message: e.to_string(),
            },
            CamerasError::Store(s) => s.into(),
            e @ CamerasError::Thread { .. } => ApiError::Exhausted(e.to_string()),
            CamerasError::Refused(r) => refusal(r),
        }
    }
}

/// 403 for what the API may not ask for; 422, naming the field, for a source that is wrong.
fn refusal(r: SourceRefusal) -> ApiError {
    match r {
        SourceRefusal::Invalid(CameraError::Invalid { key, message }) => ApiError::Invalid {
            field: key,
            message,
        },
        SourceRefusal::Invalid(e) => ApiError::invalid("source", e.to_string()),
        r if r.is_forbidden() => ApiError::Denied {
            code: r.code(),
            message: r.to_string(),
        },
        r => ApiError::Unprocessable {
            field: "source".into(),
            code: r.code(),
            message: r.to_string(),
        },
    }
}

pub async fn route(state: &State, req: Request<Incoming>, rest: &[&str]) -> ApiResult {
    let method = req.method().clone();
    match (rest, &method) {
        // Before the camera routes; `devices` is no camera id (`camera::CameraId`).
        (["devices"], &Method::GET) => devices().await,
        ([id, "live.mjpg"], &Method::GET) => super::live::mjpeg(state, &req, id),
        ([id, "snapshot.jpg"], &Method::GET) => super::live::snapshot(state, id).await,
        ([id, "enrol"], &Method::POST) => super::camera_enrol::enrol(state, req, id).await,
        (["devices"] | [_, "live.mjpg" | "snapshot.jpg" | "enrol"], _) => {
            Err(ApiError::MethodNotAllowed(method))
        }
        ([], &Method::GET) => ok_json(&state.cameras.list()),
        ([], &Method::POST) => add(state, req).await,
        ([id], &Method::GET) | ([id, "status"], &Method::GET) => {
            ok_json(&state.cameras.status(id)?)
        }
        ([id], &Method::PUT) => replace(state, req, id).await,
        ([id], &Method::DELETE) => {
            let (cameras, id2) = (state.cameras.clone(), id.to_string());
            blocking(move || cameras.remove(&id2)).await?;
            ok_json(&json!({ "success": true, "camera_id": id }))
        }
        ([id, action @ ("start" | "stop")], &Method::POST) => {
            let (cameras, id2, on) = (state.cameras.clone(), id.to_string(), *action == "start");
            blocking(move || cameras.switch(&id2, on)).await?;
            ok_json(&state.cameras.status(id)?)
        }
        ([] | [_] | [_, "start" | "stop" | "status"], _) => Err(ApiError::MethodNotAllowed(method)),
        _ => Err(ApiError::NotFound(format!("path {}", req.uri().path()))),
    }
}

/// `GET /api/v1/cameras/devices`: the V4L2 capture devices present (opening each one blocks).
async fn devices() -> ApiResult {
    let devices = tokio::task::spawn_blocking(crate::camera::list_devices)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    ok_json(&json!({ "devices": devices }))
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

/// The body as JSON and as a camera: the JSON is what the store keeps, so that the camera is read
/// back at the next start by the same parser, with the defaults of that day, like a config entry.
/// A PUT may leave out `camera_id` (`path_id` says it) but not contradict it.
async fn read_camera(
    state: &State,
    req: Request<Incoming>,
    path_id: Option<&str>,
) -> Result<(CameraConfig, Value), ApiError> {
    let mut raw: Value = read_json(state, req).await?;
    if let (Some(id), Some(body)) = (path_id, raw.as_object_mut()) {
        body.entry("camera_id").or_insert_with(|| json!(id));
    }
    let config: CameraConfig = serde_json::from_value(raw.clone())?;
    if let Some(id) = path_id.filter(|id| *id != config.camera_id) {
        return Err(ApiError::invalid(
            "camera_id",
            format!("the body names {:?} but the path {id:?}", config.camera_id),
        ));
    }
    Ok((config, raw))
}

async fn add(state: &State, req: Request<Incoming>) -> ApiResult {
    let (config, raw) = read_camera(state, req, None).await?;
    let id = config.camera_id.clone();
    let autostart = config.autostart;
    state.cameras.add_remembered(config, &raw)?;
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

/// `PUT /api/v1/cameras/{id}`: a new definition for an API camera; a running one restarts with it.
async fn replace(state: &State, req: Request<Incoming>, id: &str) -> ApiResult {
    let (config, raw) = read_camera(state, req, Some(id)).await?;
    let cameras = state.cameras.clone();
    let was_running = blocking(move || cameras.replace(config, &raw)).await?;
    if was_running {
        let (cameras, id2) = (state.cameras.clone(), id.to_owned());
        blocking(move || cameras.start(&id2)).await?;
    }
    ok_json(&state.cameras.status(id)?)
}
