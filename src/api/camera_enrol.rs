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
use serde_json::{json, Map, Value};

use super::engine::with_engine;
use super::enrol::DEFAULT_MIN_CONFIDENCE;
use super::people::store_person;
use super::{ok_json, read_json, ApiError, ApiResult, State};
use crate::config::check::check_range;
use crate::enrol::camera::ShotsError;
use crate::enrol::{shot, ShotCollector};
use crate::vision::Face;

/// How often the route looks whether the collection is complete or the camera has stopped.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraEnrol {
    name: String,
    #[serde(default = "default_shots")]
    shots: u32,
    #[serde(default = "default_timeout")]
    timeout_s: u32,
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

pub(super) async fn enrol(state: &State, req: Request<Incoming>, id: &str) -> ApiResult {
    let body: CameraEnrol = read_json(state, req).await?;
    let name = body.name.trim().to_owned();
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::invalid("name", "must be 1 to 128 characters"));
    }
    check_range("shots", body.shots.into(), 1.0, 10.0, "")?;
    check_range("timeout_s", body.timeout_s.into(), 1.0, 60.0, " s")?;
    let tap = super::live::running_tap(state, id)?;
    let collector = Arc::new(Mutex::new(ShotCollector::new(
        body.shots as usize,
        DEFAULT_MIN_CONFIDENCE,
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
    // The pictures every enrolment keeps: the crop aligned again from the kept frame (the
    // camera's engine has moved on), and the frame as the photo.
    let shots = with_engine(state, move |engine| {
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
    .await?;
    let faces = store_person(state, &name, &shots, &body.metadata)?;
    tracing::info!(
        camera = id,
        name,
        shots = faces.len(),
        "person enrolled from a camera"
    );
    ok_json(&json!({
        "success": true,
        "message": format!("Registered {} shot(s) of {name} from camera {id}", faces.len()),
        "name": name,
        "camera_id": id,
        "face_ids": faces.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        "faces": faces,
        "video": report,
    }))
}

fn lock(c: &Mutex<ShotCollector>) -> std::sync::MutexGuard<'_, ShotCollector> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}
