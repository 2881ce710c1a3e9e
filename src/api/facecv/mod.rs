//! FaceCV's face routes, in FaceCV's shapes: `/api/v1/insightface/...`, and the same under the
//! older `/api/v1/face_recognition_insightface/...`. A FaceCV user's scripts and dashboards parse
//! these answers (a bare list from `/detect` and `/recognize`, `is_same_person` from `/verify`,
//! `person_name` from `/register`, `total_faces` from `/faces/count`), so they are kept field by
//! field as FaceCV's route code and Pydantic schemas had them (`facecv-source/at-head`;
//! `at-b47c6a8` for `/faces/count`; `models/status` and `models/clear` from `insightface_lazy.py`,
//! the router FaceCV's newest `main.py` mounts). Our own paths (`/api/v1/faces/...`, `faces.rs`) keep the
//! appliance's richer shapes.
//!
//! Where FaceCV and the appliance differ on purpose (thresholds, what `confidence` means, image
//! errors) `docs/facecv-compat.md` says so: an absent `threshold` is the gallery's calibrated one,
//! not FaceCV's 0.35 or 0.4, which were tuned for InsightFace's models, not ours.
//! The forms and answers are in `wire.rs`; the face database routes in `gallery.rs`; the model
//! routes in `models.rs`.

mod gallery;
mod models;
mod wire;

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use uuid::Uuid;

use super::engine::{image_error, with_engine};
use super::form::{read_form, Form};
use super::people::{person, store_person};
use super::routes::{route, Params, Route};
use super::{ok_json, query, query_param, read_body, ApiError, ApiResult, State};
use crate::enrol::shot;
use crate::vision::{Face, VisionError};
use wire::*;

/// FaceCV's older prefix, which served the same routes.
const OLD: &str = "/api/v1/face_recognition_insightface";

pub(super) fn routes() -> Vec<Route> {
    let both = |r: Route| {
        let old = r.path.replacen("/api/v1/insightface", OLD, 1);
        let alias = r.alias(&old);
        [r, alias]
    };
    [
        route!(facecv_health),
        route!(models::facecv_models_info),
        route!(models::facecv_models_status),
        route!(models::facecv_models_clear),
        route!(facecv_detect),
        route!(facecv_recognize),
        route!(facecv_verify),
        route!(facecv_register),
        route!(gallery::facecv_list_faces),
        route!(gallery::facecv_count_faces),
        route!(gallery::facecv_delete_face),
        route!(gallery::facecv_delete_faces_by_name),
        route!(gallery::facecv_video_face),
        route!(gallery::facecv_offline_faces),
    ]
    .into_iter()
    .flat_map(both)
    .collect()
}

/// FaceCV's health check.
///
/// FaceCV's clients (and its test suite) probe this before anything else. `initialized` says
/// whether the configured models can be used (checked without loading them, so the probe stays
/// cheap); `model_pack` names the embedder the gallery was enrolled with.
#[utoipa::path(get, path = "/api/v1/insightface/health", tag = "facecv",
    responses((status = 200, description = "The service is up", body = FacecvHealth)))]
async fn facecv_health(state: Arc<State>, _req: Request<Incoming>, _p: Params) -> ApiResult {
    ok_json(&FacecvHealth {
        status: "healthy",
        service: "Real InsightFace API (FaceCV Edge)",
        initialized: state.vision.report().ok,
        model_pack: state.cameras.gallery().model().to_owned(),
        database_connected: true,
        timestamp: now(),
    })
}

/// FaceCV's face detection: a bare list of faces.
///
/// A photo the detector finds nothing in at first (a face filling a small photo) is padded and
/// looked at once more, as recognition and enrolment do. Detection only: every face is
/// `"Unknown"` with `similarity` 0, as in FaceCV. `min_confidence` (form field, default 0.5)
/// drops faces the detector is less sure of; the detector's own floor is `vision.detector.threshold`.
#[utoipa::path(post, path = "/api/v1/insightface/detect", tag = "facecv",
    request_body(content = FacecvDetectForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The faces found, highest score first", body = Vec<FacecvDetection>)))]
async fn facecv_detect(state: Arc<State>, req: Request<Incoming>, _p: Params) -> ApiResult {
    let form = facecv_form(&state, req).await?;
    let image = form.file("file")?;
    let min_confidence = form.number("min_confidence", 0.0, 1.0)?.unwrap_or(0.5);
    let found = with_engine(&state, move |engine| {
        let (rgb, w, h) = engine.decode(&image).map_err(|e| image_error("file", e))?;
        let mut found = heapless::Vec::new();
        engine
            .detect_still(&rgb, w, h, &mut found)
            .map_err(|e| image_error("file", e))?;
        Ok(found)
    })
    .await?;
    let faces: Vec<FacecvDetection> = found
        .iter()
        .filter(|d| d.score >= min_confidence)
        .map(|d| FacecvDetection {
            bbox: bbox(&d.bbox),
            confidence: d.score,
            id: Uuid::new_v4().to_string(),
            landmarks: landmarks(&d.keypoints),
            quality_score: 1.0,
            name: "Unknown",
            similarity: 0.0,
        })
        .collect();
    ok_json(&faces)
}

/// FaceCV's recognition: a bare list, one entry per face.
///
/// `threshold` is read from the form, as FaceCV read it; absent, it is the gallery's calibrated
/// threshold (FaceCV's default of 0.35 was tuned for its own models). `confidence` and
/// `similarity` are the best match's cosine similarity, clamped to [0, 1]: for an `"Unknown"`
/// face too (then `id` is empty), the number the live stream and `stranger_alert` carry.
#[utoipa::path(post, path = "/api/v1/insightface/recognize", tag = "facecv",
    request_body(content = FacecvRecognizeForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "One entry per face found", body = Vec<FacecvRecognition>)))]
async fn facecv_recognize(state: Arc<State>, req: Request<Incoming>, _p: Params) -> ApiResult {
    let form = facecv_form(&state, req).await?;
    let image = form.file("file")?;
    let threshold = form.number("threshold", 0.0, 1.0)?;
    let found = analyse(&state, image, "file").await?;
    let gallery = state.cameras.gallery().read();
    let threshold = threshold.unwrap_or(gallery.threshold());
    let faces: Vec<FacecvRecognition> = found
        .iter()
        .map(|f| {
            let best = f.embedding.as_ref().and_then(|e| gallery.best(e));
            let similarity = best.as_ref().map_or(0.0, |m| m.similarity);
            let known = best.as_ref().filter(|m| m.similarity >= threshold);
            FacecvRecognition {
                name: known.map_or_else(|| "Unknown".to_owned(), |m| m.id.name.clone()),
                confidence: similarity,
                similarity,
                bbox: bbox(&f.bbox),
                id: known.map(|m| m.id.face_id.clone()).unwrap_or_default(),
                detection_score: f.score,
                quality_score: 1.0,
                landmarks: landmarks(&f.keypoints),
                metadata: known.map(|m| m.id.metadata.clone()).unwrap_or_default(),
                threshold,
            }
        })
        .collect();
    ok_json(&faces)
}

/// FaceCV's verification: are the faces of two photos one person?
///
/// `threshold` is a query parameter, as in FaceCV; absent, the gallery's calibrated threshold.
/// The first (highest-scoring) face of each photo is compared. A photo with no face, or with a
/// face too small to compare, is FaceCV's answer, not an error: `is_same_person` false,
/// `confidence` 0, `distance` 2 and a `[0, 0, 0, 0]` box for a photo without a face.
#[utoipa::path(post, path = "/api/v1/insightface/verify", tag = "facecv",
    params(("threshold" = Option<f32>, Query, minimum = 0.0, maximum = 1.0,
        description = "Similarity at or above which the faces are one person; absent: the gallery's")),
    request_body(content = FacecvVerifyForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The comparison", body = FacecvVerification)))]
async fn facecv_verify(state: Arc<State>, req: Request<Incoming>, _p: Params) -> ApiResult {
    let q = query(&req);
    let threshold = match query_param::<f32>(&q, "threshold")? {
        Some(t) if !(0.0..=1.0).contains(&t) => {
            return Err(ApiError::invalid("threshold", "must be between 0 and 1"))
        }
        t => t.unwrap_or(state.cameras.gallery().read().threshold()),
    };
    let form = facecv_form(&state, req).await?;
    let (a, b) = (form.file("file1")?, form.file("file2")?);
    let (fa, fb) = (
        analyse(&state, a, "file1").await?,
        analyse(&state, b, "file2").await?,
    );
    let (first_a, first_b) = (fa.first(), fb.first());
    let mut answer = FacecvVerification {
        is_same_person: false,
        confidence: 0.0,
        distance: 2.0,
        threshold,
        message: None,
        face1_bbox: first_a.map_or([0; 4].into(), |f| bbox(&f.bbox)),
        face2_bbox: first_b.map_or([0; 4].into(), |f| bbox(&f.bbox)),
        face1_quality: first_a.map_or(0.0, |_| 1.0),
        face2_quality: first_b.map_or(0.0, |_| 1.0),
    };
    let embeddings = first_a
        .and_then(|f| f.embedding.as_ref())
        .zip(first_b.and_then(|f| f.embedding.as_ref()));
    if let Some((ea, eb)) = embeddings {
        let similarity = ea.cosine(eb);
        answer.is_same_person = similarity >= threshold;
        answer.confidence = similarity;
        answer.distance = (1.0 - similarity).clamp(0.0, 2.0);
    }
    ok_json(&answer)
}

/// FaceCV's registration of one person from a photo.
///
/// The photo must show exactly one face: none, or several, is FaceCV's 400 with FaceCV's
/// message (`"No faces detected in the image"`, `"Multiple faces detected (N faces). ..."`).
/// Several `file` parts enrol several photos of the same person (FaceCV took one); then
/// `face_ids` lists them and `face_id` is null, as FaceCV answered for several faces.
#[utoipa::path(post, path = "/api/v1/insightface/register", tag = "facecv",
    request_body(content = FacecvRegisterForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The person was enrolled", body = FacecvRegistered),
        (status = 400, description = "No face, or several faces, in a photo")))]
async fn facecv_register(state: Arc<State>, req: Request<Incoming>, _p: Params) -> ApiResult {
    let form = facecv_form(&state, req).await?;
    let images: Vec<(String, bytes::Bytes)> = form
        .files
        .iter()
        .filter(|(n, _)| n == "file")
        .cloned()
        .collect();
    if images.is_empty() {
        return Err(ApiError::invalid("file", "an image file is required"));
    }
    let (name, metadata) = person(&form)?;
    let shots = with_engine(&state, move |engine| {
        images
            .iter()
            .map(|(field, img)| shot::from_image(engine, img).map_err(|e| one_face(field, e)))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let faces = store_person(&state, &name, &shots, &metadata)?;
    tracing::info!(
        name,
        images = faces.len(),
        "person enrolled (FaceCV's route)"
    );
    ok_json(&FacecvRegistered::new(
        name,
        faces.into_iter().map(|f| f.id).collect(),
    ))
}

/// FaceCV's 400s for a registration photo without exactly one face, or with one too turned or
/// blurred to enrol (FaceCV's clients show a 400's message to the person enrolling); other
/// problems of the photo are the appliance's own answers (415 for a format it cannot read, 422
/// for a face too small), which say what to change.
fn one_face(field: &str, e: VisionError) -> ApiError {
    match e {
        VisionError::NoFace => ApiError::BadRequest("No faces detected in the image".into()),
        VisionError::MultipleFaces { count } => ApiError::BadRequest(format!(
            "Multiple faces detected ({count} faces). Please provide an image with only one clear \
             face for registration."
        )),
        VisionError::PoorFace(why) => {
            ApiError::BadRequest(format!("{why}. Please provide a sharp, frontal photo."))
        }
        e => image_error(field, e),
    }
}

/// Every face of an uploaded photo, embedded where large enough, padded and looked at again if
/// nothing was found (as `facecv recognize` does).
async fn analyse(
    state: &State,
    image: bytes::Bytes,
    field: &'static str,
) -> Result<heapless::Vec<Face, { crate::vision::MAX_FACES }>, ApiError> {
    with_engine(state, move |engine| {
        let (rgb, w, h) = engine.decode(&image).map_err(|e| image_error(field, e))?;
        let mut found = heapless::Vec::new();
        engine
            .analyze_still(&rgb, w, h, &mut found)
            .map_err(|e| image_error(field, e))?;
        Ok(found)
    })
    .await
}

/// A form as FaceCV's routes read theirs: a body that is not multipart (none at all, or JSON)
/// has none of the form's fields, so a required one is a 422 naming it, as FastAPI answered.
async fn facecv_form(state: &State, req: Request<Incoming>) -> Result<Form, ApiError> {
    let multipart = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("multipart/form-data"));
    if multipart {
        return read_form(state, req).await;
    }
    read_body(state, req).await?;
    Ok(Form::default())
}

/// A box in whole pixels, as FaceCV's `List[int]`.
fn bbox(b: &[f32; 4]) -> Vec<i32> {
    b.iter().map(|v| v.round() as i32).collect()
}

fn landmarks(k: &[[f32; 2]; 6]) -> Vec<[f32; 2]> {
    k.to_vec()
}

/// Now, as FaceCV's `timestamp` fields: ISO 8601.
fn now() -> String {
    crate::events::format_timestamp(time::OffsetDateTime::now_utc())
}
