//! People: who an enrolment form names and storing them (shared by FaceCV's register route in
//! `faces.rs`, the video and folder enrolments in `enrol.rs`, enrolment from an event in
//! `events.rs` and from a live camera), and `PUT /api/v1/people/{name}`, the rename.

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::form::Form;
use super::routes::{route, Params, Route};
use super::{ok_json, read_json, ApiError, ApiResult, State};
use crate::enrol::video::VideoReport;
use crate::enrol::{shot, Shot};
use crate::store::faces::FaceRecord;

/// The person a form enrols: FaceCV's `name`, `department`, `employee_id` and `metadata`.
pub(super) fn person(form: &Form) -> Result<(String, Map<String, Value>), ApiError> {
    let name = check_name(
        form.text("name")
            .ok_or_else(|| ApiError::invalid("name", "the person's name is required"))?,
    )?;
    let mut metadata = match form.text("metadata") {
        None => Map::new(),
        Some(m) => serde_json::from_str(m)
            .map_err(|_| ApiError::invalid("metadata", "must be a JSON object"))?,
    };
    for key in ["department", "employee_id"] {
        if let Some(v) = form.text(key) {
            metadata.insert(key.into(), json!(v));
        }
    }
    Ok((name, metadata))
}

/// A person's name as enrolment takes it: trimmed, 1 to 128 bytes.
pub(super) fn check_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::invalid("name", "must be 1 to 128 characters"));
    }
    Ok(name.to_owned())
}

/// Stores a person's shots (embedded by the gallery's model, with their pictures) and reloads
/// the cameras' gallery, so that whichever route enrolled them, they are recognised from the
/// next frame. Every enrolment route of the API ends here.
pub(super) fn store_person(
    state: &State,
    name: &str,
    shots: &[Shot],
    metadata: &Map<String, Value>,
) -> Result<Vec<FaceRecord>, ApiError> {
    let model = state.cameras.gallery().model().to_owned();
    let faces = shot::enrol(&state.store, name, &model, shots, metadata)?;
    state.cameras.gallery().reload(&state.store)?;
    Ok(faces)
}

/// `POST /api/v1/faces`'s answer, which every enrolment of one person gives: the images of a
/// video or a camera add what was seen and picked (`video`), a camera names itself.
#[derive(Serialize, ToSchema)]
pub(super) struct Enrolled {
    success: bool,
    #[schema(example = "Registered 1 image(s) of John Doe")]
    message: String,
    #[schema(example = "John Doe")]
    name: String,
    /// The camera the shots were taken by (`POST /api/v1/cameras/{camera_id}/enrol`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) camera_id: Option<String>,
    face_ids: Vec<String>,
    faces: Vec<FaceRecord>,
    /// For a video or a camera: the frames seen and the ones picked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) video: Option<VideoReport>,
}

pub(super) fn enrolled(name: &str, faces: &[FaceRecord], message: String) -> Enrolled {
    Enrolled {
        success: true,
        message,
        name: name.to_owned(),
        camera_id: None,
        face_ids: faces.iter().map(|f| f.id.clone()).collect(),
        faces: faces.to_vec(),
        video: None,
    }
}

pub(super) fn routes() -> Vec<Route> {
    vec![route!(rename_person)]
}

/// A person's new name.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Jane Doe"}))]
#[schema(as = PersonRename)]
struct Rename {
    /// Trimmed, 1 to 128 bytes.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "\\S",
        example = "Jane Doe"
    )]
    name: String,
}

/// The person under their new name.
#[derive(Serialize, ToSchema)]
#[schema(as = PersonRenamed)]
struct Renamed {
    name: String,
    /// The faces that took the new name.
    face_count: usize,
}

/// A rename body read and checked as [`rename`] does, for the fuzzer.
pub(super) fn check_rename(bytes: &[u8]) -> Result<(), ApiError> {
    check_name(&super::parse_json::<Rename>(bytes)?.name).map(drop)
}

/// Rename a person
///
/// Every face of the person takes the new name, and the cameras recognise them by it from the
/// next frame: a typo at enrolment is mended without enrolling again.
#[utoipa::path(put, path = "/api/v1/people/{name}", tag = "people",
    params(("name" = String, Path, description = "The person's name as enrolled",
        min_length = 1, max_length = 128, example = "John Doe")),
    request_body = Rename,
    responses((status = 200, description = "The person renamed", body = Renamed),
        (status = 404, description = "Nobody is enrolled under that name"),
        (status = 409, description = "Someone is enrolled under the new name already")))]
async fn rename_person(state: Arc<State>, req: Request<Incoming>, params: Params) -> ApiResult {
    let state: &State = &state;
    let from = params.get("name");
    let body: Rename = read_json(state, req).await?;
    let to = check_name(&body.name)?;
    let face_count = state.store.rename_person(from, &to)?;
    state.cameras.gallery().reload(&state.store)?;
    tracing::info!(from, to, face_count, "person renamed");
    ok_json(&Renamed {
        name: to,
        face_count,
    })
}
