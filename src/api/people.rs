//! People: who an enrolment form names and storing them (shared by FaceCV's register route in
//! `faces.rs`, the video and folder enrolments in `enrol.rs`, enrolment from an event in
//! `events.rs` and from a live camera), and `PUT /api/v1/people/{name}`, the rename.

use http::{Method, Request};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::form::Form;
use super::{ok_json, read_json, ApiError, ApiResult, State};
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

/// `POST /api/v1/faces`'s answer, which every enrolment of one person's photos gives.
pub(super) fn enrolled(name: &str, faces: &[FaceRecord], message: String) -> Value {
    json!({
        "success": true,
        "message": message,
        "name": name,
        "face_ids": faces.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        "faces": faces,
    })
}

/// `/api/v1/people/{name}`.
pub async fn route(state: &State, req: Request<Incoming>, rest: &[&str]) -> ApiResult {
    match (rest, req.method()) {
        ([name], &Method::PUT) => {
            let name = name.to_string();
            rename(state, req, &name).await
        }
        ([_], m) => Err(ApiError::MethodNotAllowed(m.clone())),
        _ => Err(ApiError::NotFound(format!("path {}", req.uri().path()))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    name: String,
}

/// A rename body read and checked as [`rename`] does, for the fuzzer.
pub(super) fn check_rename(bytes: &[u8]) -> Result<(), ApiError> {
    check_name(&super::parse_json::<Rename>(bytes)?.name).map(drop)
}

/// `PUT /api/v1/people/{name}` `{"name": "<new>"}`: every face of the person takes the new
/// name, and the cameras recognise them by it from the next frame.
async fn rename(state: &State, req: Request<Incoming>, from: &str) -> ApiResult {
    let body: Rename = read_json(state, req).await?;
    let to = check_name(&body.name)?;
    let face_count = state.store.rename_person(from, &to)?;
    state.cameras.gallery().reload(&state.store)?;
    tracing::info!(from, to, face_count, "person renamed");
    ok_json(&json!({ "name": to, "face_count": face_count }))
}
