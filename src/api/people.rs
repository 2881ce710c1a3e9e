//! Who an enrolment form names, and storing them: shared by FaceCV's register route (`faces.rs`)
//! and the video and folder enrolments (`enrol.rs`).

use serde_json::{json, Map, Value};

use super::form::Form;
use super::{ApiError, State};
use crate::store::faces::FaceRecord;

/// The person a form enrols: FaceCV's `name`, `department`, `employee_id` and `metadata`.
pub(super) fn person(form: &Form) -> Result<(String, Map<String, Value>), ApiError> {
    let name = form
        .text("name")
        .ok_or_else(|| ApiError::invalid("name", "the person's name is required"))?
        .trim()
        .to_owned();
    if name.is_empty() || name.len() > 128 {
        return Err(ApiError::invalid("name", "must be 1 to 128 characters"));
    }
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

/// Stores a person's embeddings (made by the gallery's model) and reloads the cameras' gallery,
/// so that whichever route enrolled them, they are recognised from the next frame.
pub(super) fn store_person(
    state: &State,
    name: &str,
    embeddings: &[Vec<f32>],
    metadata: &Map<String, Value>,
) -> Result<Vec<FaceRecord>, ApiError> {
    let model = state.cameras.gallery().model().to_owned();
    let faces = state.store.add_faces(name, &model, embeddings, metadata)?;
    state.cameras.gallery().reload(&state.store)?;
    Ok(faces)
}
