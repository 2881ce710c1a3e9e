//! `POST /api/v1/cameras/{id}/enrol`: "take five good shots now". While the person stands in
//! front of a running camera, the frames the camera analyses anyway are judged and ranked as a
//! video's are (`enrol::camera`), and the best `shots` are enrolled through the same gallery path
//! as every other enrolment. The answer is the video enrolment's.
//!
//! Bounded: one enrolment per camera at a time (409 `enrolment_in_progress`), `timeout_s` at most
//! 60, at most `shots * 4` candidates held, the pixels of only the best `shots`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::engine::with_engine;
use super::enrol::DEFAULT_MIN_CONFIDENCE;
use super::people::{enrolled, store_person, Enrolled};
use super::routes::Params;
use super::{ok_json, read_json, ApiError, ApiResult, State};
use crate::config::check::check_range;
use crate::enrol::camera::ShotsError;
use crate::enrol::{shot, ShotCollector};
use crate::vision::Face;

/// How often the route looks whether the collection is complete or the camera has stopped.
const POLL: Duration = Duration::from_millis(100);

/// Who stands in front of the camera, and how long to look for good shots of them.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "John Doe", "shots": 5, "timeout_s": 20}))]
struct CameraEnrol {
    /// Trimmed, 1 to 128 bytes.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "\\S",
        example = "John Doe"
    )]
    name: String,
    /// The best this many shots are enrolled.
    #[serde(default = "default_shots")]
    #[schema(minimum = 1, maximum = 10, default = 5)]
    shots: u32,
    /// How long to look, in seconds.
    #[serde(default = "default_timeout")]
    #[schema(minimum = 1, maximum = 60, default = 20)]
    timeout_s: u32,
    /// Kept with the person (department, employee_id, ...); events carry it.
    #[serde(default)]
    metadata: Map<String, Value>,
}

fn default_shots() -> u32 {
    5
}

fn default_timeout() -> u32 {
    20
}

fn shots_error(e: ShotsError) -> ApiError {
    let field = match e {
        ShotsError::NoGoodShots { .. } => "shots",
        ShotsError::MultiplePeople { .. } => "name",
    };
    ApiError::Unprocessable {
        field: field.into(),
        code: e.code(),
        message: e.to_string(),
    }
}

/// Enrol the person in front of a camera
///
/// "Take five good shots now": while the person stands in front of a running camera, the frames
/// it analyses anyway are judged and ranked as a video's are, and the best `shots` are enrolled.
/// One enrolment per camera at a time (409 `enrolment_in_progress`); 422 `no_good_shots` when no
/// usable face was seen within `timeout_s`.
#[utoipa::path(post, path = "/api/v1/cameras/{camera_id}/enrol", tag = "cameras",
    params(super::cameras::CameraPath),
    request_body = CameraEnrol,
    responses((status = 200, description = "The person enrolled, with what the camera saw", body = Enrolled),
        (status = 409, description = "`camera_not_running` or `enrolment_in_progress`")))]
pub(super) async fn enrol_from_camera(
    state: Arc<State>,
    req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    let state: &State = &state;
    let id = params.get("camera_id");
    let body: CameraEnrol = read_json(state, req).await?;
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::invalid("name", "must be 1 to 128 characters"));
    }
    check_range("shots", body.shots.into(), 1.0, 10.0, "")?;
    check_range("timeout_s", body.timeout_s.into(), 1.0, 60.0, " s")?;
    let tap = super::live::running_tap(state, id)?;
    // The gate a photo passes (vision.quality), from the API's engine's config.
    let gate = super::engine::with_engine(state, |e| Ok(e.config().enrol_gate())).await?;
    let collector = Arc::new(Mutex::new(ShotCollector::new(
        body.shots as usize,
        DEFAULT_MIN_CONFIDENCE,
        gate,
    )));
    let feed = collector.clone();
    let watching = tap
        .watch(Box::new(move |frame, faces, min_px| {
            lock(&feed).frame(frame, faces, min_px);
        }))
        .map_err(|e| ApiError::Refused {
            code: "enrolment_in_progress",
            message: format!("camera {id}: {e}; try again when it has answered"),
        })?;
    tracing::info!(
        camera = id,
        name,
        shots = body.shots,
        "enrolment from the camera started"
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(body.timeout_s.into());
    while !lock(&collector).is_complete() && tokio::time::Instant::now() < deadline {
        if state.stopping.is_cancelled() {
            return Err(ApiError::Unavailable);
        }
        if !state.cameras.status(id).is_ok_and(|s| s.running) {
            return Err(ApiError::Refused {
                code: "camera_not_running",
                message: format!("camera {id} stopped during the enrolment"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
    // Once the hold is dropped the camera no longer holds the collector.
    drop(watching);
    let collector = Arc::try_unwrap(collector)
        .map_err(|_| ApiError::Internal("the camera still holds the enrolment".into()))?
        .into_inner()
        .unwrap_or_else(|p| p.into_inner());
    let same_person = state.cameras.gallery().read().threshold();
    let (report, shots) = collector.finish(same_person).map_err(shots_error)?;
    let shots = with_pictures(state, shots).await?;
    let faces = store_person(state, &name, &shots, &body.metadata)?;
    tracing::info!(
        camera = id,
        name,
        shots = faces.len(),
        "person enrolled from a camera"
    );
    let message = format!(
        "Registered {} shot(s) of {name} from camera {id}",
        faces.len()
    );
    let mut answer: Enrolled = enrolled(&name, &faces, message);
    answer.camera_id = Some(id.to_owned());
    answer.video = Some(report);
    ok_json(&answer)
}

/// The pictures every enrolment keeps: the crop aligned again from the kept frame (the camera's
/// engine has moved on), and the frame as the photo.
async fn with_pictures(
    state: &State,
    shots: Vec<crate::enrol::camera::Shot>,
) -> Result<Vec<shot::Shot>, ApiError> {
    with_engine(state, move |engine| {
        shots
            .iter()
            .map(|s| {
                let face = Face {
                    bbox: s.pick.bbox.map(|v| v as f32),
                    score: s.pick.detection_confidence,
                    keypoints: s.keypoints,
                    embedding: None,
                };
                let (f, (w, h)) = (&s.frame, (s.frame.width, s.frame.height));
                let (crop, side) = engine.crop_of(&f.rgb, w, h, &face);
                let images = shot::pictures(crop, side, &f.rgb, w, h).map_err(|e| {
                    ApiError::Internal(format!("cannot keep the shot's pictures: {e}"))
                })?;
                Ok(shot::Shot {
                    embedding: s.pick.embedding.clone(),
                    images,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
}

fn lock(c: &Mutex<ShotCollector>) -> std::sync::MutexGuard<'_, ShotCollector> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}
