//! FaceCV's bulk enrolment routes: `POST /video_face/` (a short video of one person) and
//! `POST /faces/offline` (a folder on the device laid out `<dir>/<name>/*.jpg`), under
//! `/api/v1/insightface` and `/api/v1/face_recognition_insightface`; ours are
//! `/api/v1/faces/video` and `/api/v1/faces/offline`.
//!
//! Field names are FaceCV's: `file`, `name`, `department`, `employee_id`, `metadata`, `count`,
//! `quality_threshold`, `method` for a video; `directory_path` for a folder.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::bodies::{FolderRequest, VideoForm};
use super::engine::with_engine;
use super::form::read_form;
use super::people::{enrolled, person, store_person, Enrolled};
use super::routes::Params;
use super::{is_json, not_json, ok_json, read_body, ApiError, ApiResult, State};
use crate::confine::{ConfineError, Root};
use crate::enrol::folder::FolderError;
use crate::enrol::{self, PersonReport, VideoError, VideoOptions};
use crate::store::faces::FaceRecord;

/// Frames enrolled from a video unless the form says `count`.
const DEFAULT_COUNT: usize = 5;
/// The most frames one video may enrol: more views of the same few seconds add little.
const MAX_COUNT: usize = 20;
/// FaceCV's default `quality_threshold`, here the detector confidence a face needs.
pub(super) const DEFAULT_MIN_CONFIDENCE: f32 = 0.7;

fn video_error(e: VideoError) -> ApiError {
    match e {
        VideoError::Unsupported(_) => ApiError::UnsupportedMedia {
            code: e.code(),
            message: e.to_string(),
        },
        VideoError::Vision(v) => ApiError::VisionUnavailable(v.to_string()),
        e => ApiError::Unprocessable {
            field: "file".into(),
            code: e.code(),
            message: e.to_string(),
        },
    }
}

/// Enrol a person from a video
///
/// A short video of one person (turning their head is good): the best `count` frames, ranked by
/// sharpness, size and detector confidence, are enrolled, and the answer says what was seen.
#[utoipa::path(post, path = "/api/v1/faces/video", tag = "faces",
    request_body(content = VideoForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The person enrolled, with what the video showed", body = Enrolled),
        (status = 415, description = "`unsupported_video`: not y4m or MJPEG")))]
pub(super) async fn enrol_video(state: Arc<State>, req: Request<Incoming>, _: Params) -> ApiResult {
    video(&state, req).await
}

/// Enrol everyone in a folder on the appliance
///
/// Every person folder under `directory_path` (`<dir>/<name>/*.jpg`), which must lie in
/// `api.offline_enrol_dir` (403 `offline_enrolment_disabled` without it); the answer tells, per
/// person and per photo, what was enrolled and why anything was not.
#[utoipa::path(post, path = "/api/v1/faces/offline", tag = "faces",
    request_body(content(
        (FolderRequest = "application/json"),
        (FolderRequest = "multipart/form-data"),
        (FolderRequest = "application/x-www-form-urlencoded"))),
    responses((status = 200, description = "What was enrolled and skipped", body = FolderEnrolled)))]
pub(super) async fn enrol_folder(
    state: Arc<State>,
    req: Request<Incoming>,
    _: Params,
) -> ApiResult {
    offline(&state, req).await
}

/// `POST /api/v1/faces/video`: enrols the best `count` frames of a video showing one person.
pub async fn video(state: &State, req: Request<Incoming>) -> ApiResult {
    let (name, faces, report) = video_enrolment(state, req).await?;
    let message = format!(
        "Registered {} frame(s) of {name} from the video",
        faces.len()
    );
    let mut body = enrolled(&name, &faces, message);
    body.video = Some(report);
    ok_json(&body)
}

/// The video enrolment itself, for both our answer and FaceCV's (`facecv/gallery.rs`): who,
/// the faces stored, and what the video held.
pub(super) async fn video_enrolment(
    state: &State,
    req: Request<Incoming>,
) -> Result<(String, Vec<FaceRecord>, enrol::video::VideoReport), ApiError> {
    let form = read_form(state, req).await?;
    let (name, metadata) = person(&form)?;
    if let Some(m) = form.text("method").filter(|m| *m != "uniform") {
        return Err(ApiError::invalid(
            "method",
            format!("only \"uniform\" sampling is supported, got {m:?}"),
        ));
    }
    let count = match form.number("count", 1.0, MAX_COUNT as f32)? {
        Some(c) if c.fract() != 0.0 => {
            return Err(ApiError::invalid("count", "must be a whole number"))
        }
        Some(c) => c as usize,
        None => DEFAULT_COUNT,
    };
    let min_confidence = form
        .number("quality_threshold", 0.0, 1.0)?
        .unwrap_or(DEFAULT_MIN_CONFIDENCE);
    let video = form.file("file")?;
    let ext = enrol::sniff_video(&video).map_err(video_error)?;
    // The camera module reads files; the upload goes next to the store, where the service may
    // write, and is removed when `upload` is dropped.
    let dir = state
        .store
        .path()
        .parent()
        .unwrap_or(Path::new("."))
        .to_owned();
    let upload = tempfile::Builder::new()
        .prefix(".upload-")
        .suffix(&format!(".{ext}"))
        .tempfile_in(&dir)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &video).map(|()| f))
        .map_err(|e| {
            tracing::error!(dir = %dir.display(), error = %e, "cannot keep an uploaded video");
            ApiError::Internal(format!("cannot keep the upload: {}", e.kind()))
        })?;
    let opts = VideoOptions {
        count,
        min_confidence,
        same_person: state.cameras.gallery().read().threshold(),
    };
    let (report, shots) = with_engine(state, move |engine| {
        enrol::pick_faces(engine, upload.path(), opts).map_err(video_error)
    })
    .await?;
    let faces = store_person(state, &name, &shots, &metadata)?;
    tracing::info!(name, frames = faces.len(), "person enrolled from a video");
    Ok((name, faces, report))
}

/// `POST /api/v1/faces/offline`: enrols every person folder under `directory_path`, which must
/// lie in `api.offline_enrol_dir`. The body is a form (multipart or urlencoded) or JSON.
pub async fn offline(state: &State, req: Request<Incoming>) -> ApiResult {
    let report = folder_enrolment(state, req).await?;
    let names = |it: &mut dyn Iterator<Item = &enrol::PersonReport>| {
        it.map(|p| p.name.clone()).collect::<Vec<_>>()
    };
    let (enrolled, skipped) = (names(&mut report.enrolled()), names(&mut report.skipped()));
    ok_json(&FolderEnrolled {
        success: !enrolled.is_empty(),
        message: format!(
            "{} people enrolled, {} skipped",
            enrolled.len(),
            skipped.len()
        ),
        enrolled,
        skipped,
        people: report.people,
    })
}

/// The folder enrolment itself, for both our answer and FaceCV's (`facecv/gallery.rs`).
pub(super) async fn folder_enrolment(
    state: &State,
    req: Request<Incoming>,
) -> Result<enrol::folder::FolderReport, ApiError> {
    let Some(root) = state.config.offline_enrol_dir.clone() else {
        return Err(ApiError::Denied {
            code: "offline_enrolment_disabled",
            message: "enrolment from a folder is off: set api.offline_enrol_dir to the folder it may read".into(),
        });
    };
    let asked = directory_field(state, req).await?;
    let (root, dir) = confine(&root, &asked)?;
    let (store, model) = (
        state.store.clone(),
        state.cameras.gallery().model().to_owned(),
    );
    let report = with_engine(state, move |engine| {
        enrol::enrol_folder(engine, &store, &model, &dir, Some(&root))
            .map_err(|e| folder_error(e, &root, &asked))
    })
    .await?;
    state.cameras.gallery().reload(&state.store)?;
    tracing::info!(
        enrolled = report.enrolled().count(),
        skipped = report.skipped().count(),
        "folder enrolled"
    );
    Ok(report)
}

/// What a folder's enrolment did, person by person.
#[derive(Serialize, ToSchema)]
#[schema(as = FacesFolderEnrolled)]
struct FolderEnrolled {
    /// Someone was enrolled.
    success: bool,
    #[schema(example = "3 people enrolled, 1 skipped")]
    message: String,
    /// The names enrolled.
    enrolled: Vec<String>,
    /// The names skipped (`people` says why).
    skipped: Vec<String>,
    people: Vec<PersonReport>,
}

/// FaceCV's `directory_path` (or `directory`) from a multipart or urlencoded form, or JSON.
async fn directory_field(state: &State, req: Request<Incoming>) -> Result<PathBuf, ApiError> {
    let ct = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let fields: Vec<(String, String)> = if ct.starts_with("multipart/") {
        let form = read_form(state, req).await?;
        form.fields
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect()
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        let body = read_body(state, req).await?;
        url::form_urlencoded::parse(&body).into_owned().collect()
    } else {
        let json = is_json(req.headers());
        let body = read_body(state, req).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::invalid(
                "directory_path",
                "the folder to enrol from is required",
            ));
        }
        if !json {
            return Err(not_json());
        }
        let body: Value =
            serde_json::from_slice(&body).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
        body.as_object()
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
            .collect()
    };
    fields
        .into_iter()
        .find(|(k, v)| matches!(k.as_str(), "directory_path" | "directory") && !v.is_empty())
        .map(|(_, v)| PathBuf::from(v))
        .ok_or_else(|| ApiError::invalid("directory_path", "the folder to enrol from is required"))
}

/// The enrolment folder and the real path of `asked` in it (relative paths are taken from it).
/// A path outside gets the same 403 whether or not it exists, and no answer names a path the
/// client did not write: the folder's place on the device is the installer's business.
fn confine(root: &Path, asked: &Path) -> Result<(Root, PathBuf), ApiError> {
    // A configured folder that is not there yet (nobody copied photos) is the installer's to fix.
    let root = Root::open(root).map_err(|e| {
        tracing::warn!(offline_enrol_dir = %root.display(), error = %e, "api.offline_enrol_dir cannot be read");
        ApiError::Denied {
            code: "offline_enrol_dir_missing",
            message: "api.offline_enrol_dir cannot be read; the appliance's log says why".into(),
        }
    })?;
    let dir = root.resolve(asked).map_err(|e| match e {
        ConfineError::Outside => ApiError::Denied {
            code: "outside_enrol_dir",
            message: format!(
                "{} is outside api.offline_enrol_dir; the API enrols only from there",
                asked.display()
            ),
        },
        ConfineError::Missing => ApiError::invalid(
            "directory_path",
            format!(
                "{} is not a folder in api.offline_enrol_dir",
                asked.display()
            ),
        ),
    })?;
    if !dir.is_dir() {
        return Err(ApiError::invalid(
            "directory_path",
            format!("{} is not a folder", asked.display()),
        ));
    }
    Ok((root, dir))
}

/// A folder's failure in the client's words: paths relative to the enrolment folder.
fn folder_error(e: FolderError, root: &Root, asked: &Path) -> ApiError {
    let unprocessable = |code, message| ApiError::Unprocessable {
        field: "directory_path".into(),
        code,
        message,
    };
    match e {
        FolderError::Vision(v) => ApiError::VisionUnavailable(v.to_string()),
        FolderError::Store(s) => s.into(),
        FolderError::NoPeople(_) => unprocessable(
            "no_people",
            format!(
                "{} has no folders: lay it out as <dir>/<name>/*.jpg",
                asked.display()
            ),
        ),
        FolderError::Read { path, source } => unprocessable(
            "unreadable",
            format!(
                "cannot read {}: {}",
                root.relative(&path).display(),
                source.kind()
            ),
        ),
    }
}
