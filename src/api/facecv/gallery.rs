//! FaceCV's face database routes: the listing with `total` counted before `limit`, the count,
//! the deletes with FaceCV's messages and 404s, and the bulk enrolments (`video_face`,
//! `faces/offline`), which run the appliance's own enrolment (`api/enrol.rs`) and answer with
//! FaceCV's fields.

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;

use super::super::enrol;
use super::super::routes::Params;
use super::super::{ok_json, query, query_param, ApiError, ApiResult, State};
use super::wire::{
    FacecvCount, FacecvDeleted, FacecvFace, FacecvFaces, FacecvOfflineDetails,
    FacecvOfflineEnrolled, FacecvOfflineSummary, FacecvPhotoOutcome, FacecvRegistered,
    FacecvVideoEnrolled, FacecvVideoFrame,
};
use crate::store::StoreError;

/// FaceCV's face list.
///
/// `name` filters by the person's exact name; `limit` (default 100) caps `faces`, while `total`
/// counts every face that matches, as FaceCV's did.
#[utoipa::path(get, path = "/api/v1/insightface/faces", tag = "facecv",
    params(("name" = Option<String>, Query, description = "Only this person's faces"),
        ("limit" = Option<usize>, Query, minimum = 0, description = "At most this many faces (default 100)")),
    responses((status = 200, description = "The enrolled faces", body = FacecvFaces)))]
pub(super) async fn facecv_list_faces(
    state: Arc<State>,
    req: Request<Incoming>,
    _p: Params,
) -> ApiResult {
    let q = query(&req);
    let limit = query_param::<usize>(&q, "limit")?.unwrap_or(100);
    let name = q.iter().find(|(k, _)| k == "name").map(|(_, v)| v.as_str());
    let all = state.store.faces(name, i64::MAX as usize)?;
    let gallery = state.cameras.gallery();
    // The running embedder's size, known once the gallery holds one of its embeddings.
    let dim = gallery.read().dim();
    let faces: Vec<FacecvFace> = all
        .iter()
        .take(limit)
        .map(|f| FacecvFace {
            id: f.id.clone(),
            name: f.name.clone(),
            metadata: f.metadata.clone(),
            created_at: f.created_at.clone(),
            updated_at: f.updated_at.clone(),
            embedding_size: dim.filter(|_| f.embedding_model == gallery.model()),
        })
        .collect();
    ok_json(&FacecvFaces {
        total: all.len(),
        returned: faces.len(),
        faces,
    })
}

/// FaceCV's face count.
#[utoipa::path(get, path = "/api/v1/insightface/faces/count", tag = "facecv",
    responses((status = 200, description = "How many faces are enrolled", body = FacecvCount)))]
pub(super) async fn facecv_count_faces(
    state: Arc<State>,
    _req: Request<Incoming>,
    _p: Params,
) -> ApiResult {
    ok_json(&FacecvCount {
        total_faces: state.store.face_count()?.0,
    })
}

/// FaceCV's delete of one face; 404 `"Face not found"` for an unknown id.
#[utoipa::path(delete, path = "/api/v1/insightface/faces/{face_id}", tag = "facecv",
    params(("face_id" = String, Path, description = "The face's id, from the listing or registration", pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses((status = 200, description = "Deleted", body = FacecvDeleted)))]
pub(super) async fn facecv_delete_face(
    state: Arc<State>,
    _req: Request<Incoming>,
    p: Params,
) -> ApiResult {
    let id = p.get("face_id");
    state
        .store
        .delete_face(id)
        .map_err(|e| not_found(e, "Face not found"))?;
    state.cameras.gallery().reload(&state.store)?;
    ok_json(&FacecvDeleted {
        message: format!("Successfully deleted face {id}"),
        deleted_count: None,
    })
}

/// FaceCV's delete of every face of a person; 404 `"No faces found for this name"`.
#[utoipa::path(delete, path = "/api/v1/insightface/faces/by-name/{name}", tag = "facecv",
    params(("name" = String, Path, description = "The person's exact name (percent-encoded)", min_length = 1, max_length = 128)),
    responses((status = 200, description = "Deleted", body = FacecvDeleted)))]
pub(super) async fn facecv_delete_faces_by_name(
    state: Arc<State>,
    _req: Request<Incoming>,
    p: Params,
) -> ApiResult {
    let name = p.get("name");
    let n = state
        .store
        .delete_faces_by_name(name)
        .map_err(|e| not_found(e, "No faces found for this name"))?;
    state.cameras.gallery().reload(&state.store)?;
    ok_json(&FacecvDeleted {
        message: format!("Successfully deleted all faces for {name}"),
        deleted_count: Some(n),
    })
}

/// Enrolment from a short video of one person.
///
/// The appliance's video enrolment (`POST /api/v1/faces/video`) answered with FaceCV's fields:
/// its registration answer (`person_name`, `face_id`/`face_ids`, `face_count`) and its frame
/// extractor's (`total_frames_processed`, `faces_found`, `results` per frame kept). Fields: `file`,
/// `name`, `department`, `employee_id`, `metadata`, `count`, `quality_threshold`, `method`.
#[utoipa::path(post, path = "/api/v1/insightface/video_face", tag = "facecv",
    request_body(content = crate::api::bodies::VideoForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The person was enrolled from the video's best frames", body = FacecvVideoEnrolled)))]
pub(super) async fn facecv_video_face(
    state: Arc<State>,
    req: Request<Incoming>,
    _p: Params,
) -> ApiResult {
    let (name, faces, report) = enrol::video_enrolment(&state, req).await?;
    let registered = FacecvRegistered::new(name, faces.into_iter().map(|f| f.id).collect());
    ok_json(&FacecvVideoEnrolled {
        total_frames_processed: report.frames,
        faces_found: report.usable,
        results: report
            .picked
            .iter()
            .map(|p| FacecvVideoFrame {
                frame_index: p.frame_index,
                bbox: p.bbox.to_vec(),
                quality_score: p.quality,
                detection_confidence: p.detection_confidence,
            })
            .collect(),
        registered,
    })
}

/// Enrolment of every person folder under `directory_path` (`<dir>/<name>/*.jpg`).
///
/// The appliance's folder enrolment (`POST /api/v1/faces/offline`), only below
/// `api.offline_enrol_dir`, answered with FaceCV's `summary` and `details` (each photo a
/// success, a failure to read it, or skipped with the reason) beside our `people`. The body is a
/// multipart or urlencoded form, as FaceCV's, or JSON.
#[utoipa::path(post, path = "/api/v1/insightface/faces/offline", tag = "facecv",
    request_body(content(
        (crate::api::bodies::FolderRequest = "application/json"),
        (crate::api::bodies::FolderRequest = "multipart/form-data"),
        (crate::api::bodies::FolderRequest = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "Each photo's outcome", body = FacecvOfflineEnrolled),
        (status = 403, description = "api.offline_enrol_dir is not set, or the folder lies outside it")))]
pub(super) async fn facecv_offline_faces(
    state: Arc<State>,
    req: Request<Incoming>,
    _p: Params,
) -> ApiResult {
    let report = enrol::folder_enrolment(&state, req).await?;
    let mut details = FacecvOfflineDetails::default();
    for person in &report.people {
        for f in &person.files {
            let path = format!("{}/{}", person.name, f.file);
            let outcome = FacecvPhotoOutcome {
                path,
                reason: f.reason.clone().or_else(|| person.reason.clone()),
            };
            match (f.status, person.enrolled) {
                ("ok", true) => details.success.push(outcome),
                ("ok", false) => details.skipped.push(outcome),
                ("not_an_image" | "unsupported_image_format" | "unreadable", _) => {
                    details.failed.push(outcome)
                }
                _ => details.skipped.push(outcome),
            }
        }
    }
    ok_json(&FacecvOfflineEnrolled {
        summary: FacecvOfflineSummary {
            total_success: details.success.len(),
            total_failed: details.failed.len(),
            total_skipped: details.skipped.len(),
        },
        details,
        people: report.people,
    })
}

/// FaceCV's 404 message for a store's not-found; other failures keep their own answers.
fn not_found(e: StoreError, message: &str) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::Missing {
            code: "not_found",
            message: message.to_owned(),
        },
        e => e.into(),
    }
}
