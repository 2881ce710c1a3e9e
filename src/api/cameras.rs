//! `/api/v1/cameras`: the cameras of the appliance, added, changed, started, stopped and watched.
//!
//! Cameras added here are remembered in the store and come back after a restart, running if they
//! were; cameras of the config file can be started and stopped for now but are changed in the
//! file (see `pipeline::manager`).
//!
//! Also here: the V4L2 devices present (`devices`), and the console's live view, snapshots
//! (`live.rs`) and enrolment from a camera (`camera_enrol.rs`).

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};

use super::routes::{route, Params, Route};
use super::{camera_enrol, live, ok_json, read_json, ApiError, ApiResult, State};
use crate::camera::{CameraError, SourceRefusal, VideoDevice};
use crate::pipeline::{CameraConfig, CameraStatus, CamerasError};

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

pub(super) fn routes() -> Vec<Route> {
    vec![
        route!(camera_devices),
        route!(list_cameras),
        route!(add_camera),
        route!(get_camera),
        route!(camera_status),
        route!(replace_camera),
        route!(delete_camera),
        route!(start_camera),
        route!(stop_camera),
        route!(live::live_view),
        route!(live::camera_snapshot),
        route!(camera_enrol::enrol_from_camera),
    ]
}

/// The V4L2 capture devices present.
#[derive(Serialize, ToSchema)]
#[schema(as = VideoDevices)]
struct Devices {
    devices: Vec<VideoDevice>,
}

/// The capture devices present
///
/// Each V4L2 device with its name, driver, bus and the formats and frame sizes it offers, so that
/// an installer adding a camera picks a device and a size it can actually give.
#[utoipa::path(get, path = "/api/v1/cameras/devices", tag = "cameras",
    responses((status = 200, description = "The devices (opening each one takes a moment)", body = Devices)))]
async fn camera_devices(_state: Arc<State>, _req: Request<Incoming>, _: Params) -> ApiResult {
    let devices = tokio::task::spawn_blocking(crate::camera::list_devices)
        .await
        .map_err(|_| ApiError::Unavailable)?;
    ok_json(&Devices { devices })
}

/// Every camera
///
/// The config file's, the API's and the streams' cameras, each with its state and counters.
#[utoipa::path(get, path = "/api/v1/cameras", tag = "cameras",
    responses((status = 200, description = "The cameras", body = Vec<CameraStatus>)))]
async fn list_cameras(state: Arc<State>, _req: Request<Incoming>, _: Params) -> ApiResult {
    ok_json(&state.cameras.list())
}

/// Add a camera
///
/// The camera is remembered and comes back after a restart, running if it was. Sources are those
/// the API may open (a local camera, a network stream, a file of `api.media_dir`, the synthetic
/// pattern); commands belong in the config file. With `autostart` (the default) it starts now,
/// and a camera that cannot start is not added.
#[utoipa::path(post, path = "/api/v1/cameras", tag = "cameras",
    request_body = CameraConfig,
    responses((status = 200, description = "The camera added", body = CameraStatus),
        (status = 409, description = "A camera of that id exists")))]
async fn add_camera(state: Arc<State>, req: Request<Incoming>, _: Params) -> ApiResult {
    add(&state, req).await
}

/// A camera
#[utoipa::path(get, path = "/api/v1/cameras/{camera_id}", tag = "cameras",
    params(CameraPath),
    responses((status = 200, description = "The camera's state and counters", body = CameraStatus)))]
async fn get_camera(state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
    ok_json(&state.cameras.status(params.get("camera_id"))?)
}

/// A camera's status
///
/// The same answer as the camera's own path, under FaceCV's name for it.
#[utoipa::path(get, path = "/api/v1/cameras/{camera_id}/status", tag = "cameras",
    params(CameraPath),
    responses((status = 200, description = "The camera's state and counters", body = CameraStatus)))]
async fn camera_status(state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
    ok_json(&state.cameras.status(params.get("camera_id"))?)
}

/// Change a camera
///
/// A new definition for a camera of the API (the config file's are changed in the file); a
/// running one restarts with it. The body may leave out `camera_id` but not contradict the path.
#[utoipa::path(put, path = "/api/v1/cameras/{camera_id}", tag = "cameras",
    params(CameraPath),
    request_body = CameraConfig,
    responses(
        (status = 200, description = "The camera as it is now", body = CameraStatus),
        (status = 409, description = "`config_camera`: the config file's (change it there); \
            `stream_camera`: a live stream's (it ends with the stream)")))]
async fn replace_camera(state: Arc<State>, req: Request<Incoming>, params: Params) -> ApiResult {
    replace(&state, req, params.get("camera_id")).await
}

/// The `{camera_id}` of a camera's routes, described once (the rule of `camera::CameraId`).
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Describes the segment; handlers read it from `Params`.
pub(super) struct CameraPath {
    /// The camera's id
    #[param(pattern = "^[A-Za-z0-9_.-]{1,64}$", example = "front_door")]
    camera_id: String,
}

/// What a delete answers.
#[derive(Serialize, ToSchema)]
struct CameraDeleted {
    success: bool,
    camera_id: String,
}

/// Remove a camera
///
/// A camera of the API is stopped and forgotten; the config file's stay in the file.
#[utoipa::path(delete, path = "/api/v1/cameras/{camera_id}", tag = "cameras",
    params(CameraPath),
    responses(
        (status = 200, description = "The camera is gone", body = CameraDeleted),
        (status = 409, description = "`config_camera`: the config file's (change it there); \
            `stream_camera`: a live stream's (it ends with the stream)")))]
async fn delete_camera(state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
    let id = params.get("camera_id").to_owned();
    let (cameras, id2) = (state.cameras.clone(), id.clone());
    blocking(move || cameras.remove(&id2)).await?;
    ok_json(&CameraDeleted {
        success: true,
        camera_id: id,
    })
}

/// Start a camera
///
/// Remembered: a camera of the API started here runs again after a restart.
#[utoipa::path(post, path = "/api/v1/cameras/{camera_id}/start", tag = "cameras",
    params(CameraPath),
    responses(
        (status = 200, description = "The camera, running", body = CameraStatus),
        (status = 409, description = "`config_camera`: the config file's (change it there); \
            `stream_camera`: a live stream's (it ends with the stream)")))]
async fn start_camera(state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
    switch(&state, params.get("camera_id"), true).await
}

/// Stop a camera
///
/// Remembered: a camera of the API stopped here stays stopped after a restart.
#[utoipa::path(post, path = "/api/v1/cameras/{camera_id}/stop", tag = "cameras",
    params(CameraPath),
    responses(
        (status = 200, description = "The camera, stopped", body = CameraStatus),
        (status = 409, description = "`config_camera`: the config file's (change it there); \
            `stream_camera`: a live stream's (it ends with the stream)")))]
async fn stop_camera(state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
    switch(&state, params.get("camera_id"), false).await
}

async fn switch(state: &State, id: &str, on: bool) -> ApiResult {
    let (cameras, id2) = (state.cameras.clone(), id.to_owned());
    blocking(move || cameras.switch(&id2, on)).await?;
    ok_json(&state.cameras.status(id)?)
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
