//! Enrolment and recognition under `/api/v1/faces`, with FaceCV's multipart field names (`file`,
//! `name`, `department`, `employee_id`, `file1`, `file2`, `threshold`, `min_confidence`) and the
//! appliance's own answers. FaceCV's paths, in FaceCV's shapes, are `facecv/`.
//!
//! Uploads are analysed by the API's own engine (`engine.rs`); the forms are read by `form.rs`.

use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

pub(super) use super::bodies::Jpeg;
use super::bodies::{DetectForm, RecognizeForm, RegisterForm, VerifyForm};
use super::engine::{image_error, with_engine};
use super::form::read_form;
use super::people::{enrolled, person, store_person, Enrolled};
use super::routes::{route, Params, Route};
use super::{enrol, ok_json, query, query_param, ApiError, ApiResult, State};
use crate::enrol::shot;
use crate::score;
use crate::store::faces::{FacePicture, FaceRecord};

/// Our face routes under `/api/v1/faces` (FaceCV's are in `facecv/`).
pub(super) fn routes() -> Vec<Route> {
    let register = route!(register_face);
    let register_old = register.alias("/api/v1/faces/register");
    vec![
        register,
        register_old,
        route!(recognize_faces),
        route!(verify_faces),
        route!(detect_faces),
        route!(enrol::enrol_video),
        route!(enrol::enrol_folder),
        route!(list_faces),
        route!(count_faces),
        route!(face_crop),
        route!(face_photo),
        route!(delete_faces_by_name),
        route!(delete_face),
    ]
}

const FACE_ID: &str = "The face's id (one enrolled image)";

/// Enrol a person
///
/// One or more photos of one person, each with exactly one face; all are checked before any is
/// stored, so a bad one fails the whole enrolment. The cameras recognise the person from their
/// next frame. Also served at `/api/v1/faces/register`.
#[utoipa::path(post, path = "/api/v1/faces", tag = "faces",
    request_body(content = RegisterForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The person enrolled", body = Enrolled)))]
async fn register_face(state: Arc<State>, req: Request<Incoming>, _: Params) -> ApiResult {
    register(&state, req).await
}

/// Recognise the faces in a photo
///
/// Each face found, named by the gallery: a face less similar than `threshold` to everyone is
/// `Unknown`, with its best similarity as its confidence.
#[utoipa::path(post, path = "/api/v1/faces/recognize", tag = "faces",
    request_body(content = RecognizeForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The faces found", body = Recognition)))]
async fn recognize_faces(state: Arc<State>, req: Request<Incoming>, _: Params) -> ApiResult {
    recognize(&state, req).await
}

/// Whether two photos show the same person
#[utoipa::path(post, path = "/api/v1/faces/verify", tag = "faces",
    request_body(content = VerifyForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The verdict", body = Verification)))]
async fn verify_faces(state: Arc<State>, req: Request<Incoming>, _: Params) -> ApiResult {
    verify(&state, req).await
}

/// Find the faces in a photo
///
/// Boxes and landmarks only, without naming anyone.
#[utoipa::path(post, path = "/api/v1/faces/detect", tag = "faces",
    request_body(content = DetectForm, content_type = "multipart/form-data"),
    responses((status = 200, description = "The faces found", body = Detection)))]
async fn detect_faces(state: Arc<State>, req: Request<Incoming>, _: Params) -> ApiResult {
    detect(&state, req).await
}

/// The enrolled faces
///
/// One entry per enrolled image, newest first, with whether its pictures are kept.
#[utoipa::path(get, path = "/api/v1/faces", tag = "faces",
    params(("limit" = Option<usize>, Query, description = "At most this many", minimum = 1, maximum = 10000, example = 100),
        ("name" = Option<String>, Query, description = "Only this person's", example = "John Doe")),
    responses((status = 200, description = "The faces", body = FaceList)))]
async fn list_faces(state: Arc<State>, req: Request<Incoming>, _: Params) -> ApiResult {
    list(&state, &req)
}

/// How many faces and people are enrolled
#[utoipa::path(get, path = "/api/v1/faces/count", tag = "faces",
    responses((status = 200, description = "The counts", body = FaceCount)))]
async fn count_faces(state: Arc<State>, _req: Request<Incoming>, _: Params) -> ApiResult {
    count(&state)
}

/// An enrolled face's crop
///
/// The aligned face as the embedder saw it (the console's thumbnail).
#[utoipa::path(get, path = "/api/v1/faces/{face_id}/crop.jpg", tag = "faces",
    params(("face_id" = String, Path, description = FACE_ID, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "4f0c2f9e-8a51-4a8e-9a33-0d6c1f1f7b21")),
    responses((status = 200, description = "The crop", content_type = "image/jpeg", body = Jpeg),
        (status = 404, description = "`not_found`: no such face; `no_image`: enrolled before pictures were kept")))]
async fn face_crop(state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
    picture(&state, params.get("face_id"), FacePicture::Crop)
}

/// An enrolled face's photo
///
/// The photo or frame it was enrolled from (long side at most 1024 px), so that it can be
/// enrolled again under another model.
#[utoipa::path(get, path = "/api/v1/faces/{face_id}/photo.jpg", tag = "faces",
    params(("face_id" = String, Path, description = FACE_ID, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "4f0c2f9e-8a51-4a8e-9a33-0d6c1f1f7b21")),
    responses((status = 200, description = "The photo", content_type = "image/jpeg", body = Jpeg),
        (status = 404, description = "`not_found`: no such face; `no_image`: enrolled before pictures were kept")))]
async fn face_photo(state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
    picture(&state, params.get("face_id"), FacePicture::Photo)
}

/// Forget a person
///
/// Every face enrolled under the name; the cameras stop recognising them from the next frame.
#[utoipa::path(delete, path = "/api/v1/faces/by-name/{name}", tag = "faces",
    params(("name" = String, Path, description = "The person's name as enrolled (a path segment: `%20` for a space)",
        min_length = 1, max_length = 128, example = "John Doe")),
    responses((status = 200, description = "The faces deleted", body = NameDeleted)))]
async fn delete_faces_by_name(
    state: Arc<State>,
    _req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    delete_by_name(&state, params.get("name"))
}

/// Forget one enrolled face
#[utoipa::path(delete, path = "/api/v1/faces/{face_id}", tag = "faces",
    params(("face_id" = String, Path, description = FACE_ID, pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$",
        example = "4f0c2f9e-8a51-4a8e-9a33-0d6c1f1f7b21")),
    responses((status = 200, description = "The face deleted", body = FaceDeleted)))]
async fn delete_face(state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
    delete(&state, params.get("face_id"))
}

async fn register(state: &State, req: Request<Incoming>) -> ApiResult {
    let form = read_form(state, req).await?;
    let (name, metadata) = person(&form)?;
    let images: Vec<Bytes> = form.files.iter().map(|(_, b)| b.clone()).collect();
    if images.is_empty() {
        return Err(ApiError::invalid(
            "file",
            "at least one image file is required",
        ));
    }
    // All photos are checked before any is stored: a bad one fails the whole registration.
    let shots = with_engine(state, move |engine| {
        let mut out = Vec::with_capacity(images.len());
        for (i, img) in images.iter().enumerate() {
            let s =
                shot::from_image(engine, img).map_err(|e| image_error(&format!("file[{i}]"), e))?;
            out.push(s);
        }
        Ok(out)
    })
    .await?;
    let faces = store_person(state, &name, &shots, &metadata)?;
    tracing::info!(name, images = faces.len(), "person enrolled");
    let message = format!("Registered {} image(s) of {name}", faces.len());
    ok_json(&enrolled(&name, &faces, message))
}

async fn recognize(state: &State, req: Request<Incoming>) -> ApiResult {
    let form = read_form(state, req).await?;
    let image = form.file("file")?;
    let threshold = form.number("threshold", 0.0, 1.0)?;
    let gallery = state.cameras.gallery().clone();
    let faces = with_engine(state, move |engine| {
        let (rgb, w, h) = engine.decode(&image).map_err(|e| image_error("file", e))?;
        let mut found = heapless::Vec::new();
        engine
            .analyze_still(&rgb, w, h, &mut found)
            .map_err(|e| image_error("file", e))?;
        let g = gallery.read();
        let threshold = threshold.unwrap_or(g.threshold());
        Ok(found
            .iter()
            .map(|f| {
                let best = f.embedding.as_ref().and_then(|e| g.best(e));
                let known = best.as_ref().filter(|m| m.similarity >= threshold);
                // An Unknown face's confidence is its best similarity, as SSE and events say.
                let similarity = best.as_ref().map(|m| score::confidence(m.similarity));
                RecognizedFace {
                    name: known.map_or("Unknown", |m| m.id.name.as_str()).to_owned(),
                    confidence: similarity.unwrap_or(0.0),
                    best_similarity: similarity,
                    bbox: f.bbox.map(|v| v.round() as i32),
                    detection_confidence: score::confidence(f.score),
                    metadata: known.map(|m| m.id.metadata.clone()).unwrap_or_default(),
                }
            })
            .collect::<Vec<_>>())
    })
    .await?;
    ok_json(&Recognition {
        face_count: faces.len(),
        faces,
    })
}

/// The faces a photo shows, each named or `Unknown`.
#[derive(Serialize, ToSchema)]
#[schema(as = FacesRecognition)]
struct Recognition {
    faces: Vec<RecognizedFace>,
    face_count: usize,
}

#[derive(Serialize, ToSchema)]
#[schema(as = PhotoRecognizedFace)]
struct RecognizedFace {
    /// The person's name, or `Unknown` under the threshold.
    #[schema(example = "John Doe")]
    name: String,
    /// The similarity to the person named; for `Unknown`, the best similarity in the gallery
    /// (0 with an empty gallery).
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.72)]
    confidence: f64,
    /// The best similarity in the gallery; `null` for a face too small to embed or an empty
    /// gallery.
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.72)]
    best_similarity: Option<f64>,
    /// `[x1, y1, x2, y2]` in pixels of the photo.
    #[schema(min_items = 4, max_items = 4, example = json!([100, 80, 220, 230]))]
    bbox: [i32; 4],
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.98)]
    detection_confidence: f64,
    /// The person's enrolment metadata; `{}` for `Unknown`.
    metadata: Map<String, Value>,
}

async fn verify(state: &State, req: Request<Incoming>) -> ApiResult {
    let form = read_form(state, req).await?;
    let (a, b) = (form.file("file1")?, form.file("file2")?);
    let threshold = form.number("threshold", 0.0, 1.0)?;
    let default = state.cameras.gallery().read().threshold();
    let similarity = with_engine(state, move |engine| {
        let ea = engine
            .embed_single(&a)
            .map_err(|e| image_error("file1", e))?;
        let eb = engine
            .embed_single(&b)
            .map_err(|e| image_error("file2", e))?;
        Ok(ea.cosine(&eb))
    })
    .await?;
    let threshold = threshold.unwrap_or(default);
    ok_json(&Verification {
        verified: similarity >= threshold,
        similarity: score::confidence(similarity),
        threshold: score::as_written(threshold),
    })
}

/// Whether two photos show the same person.
#[derive(Serialize, ToSchema)]
#[schema(as = FacesVerification)]
struct Verification {
    /// `similarity` reaches `threshold`.
    verified: bool,
    /// The faces' similarity (cosine, below 0 shown as 0).
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.81)]
    similarity: f64,
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.55)]
    threshold: f64,
}

async fn detect(state: &State, req: Request<Incoming>) -> ApiResult {
    let form = read_form(state, req).await?;
    let image = form.file("file")?;
    let min_confidence = form.number("min_confidence", 0.0, 1.0)?.unwrap_or(0.5);
    let faces = with_engine(state, move |engine| {
        let (rgb, w, h) = engine.decode(&image).map_err(|e| image_error("file", e))?;
        let mut found = heapless::Vec::new();
        engine
            .detect_still(&rgb, w, h, &mut found)
            .map_err(|e| image_error("file", e))?;
        Ok(found
            .iter()
            .filter(|d| d.score >= min_confidence)
            .map(|d| DetectedFace {
                bbox: d.bbox.map(|v| v.round() as i32),
                confidence: score::confidence(d.score),
                landmarks: d.keypoints,
            })
            .collect::<Vec<_>>())
    })
    .await?;
    ok_json(&Detection {
        face_count: faces.len(),
        faces,
    })
}

/// The faces a photo shows.
#[derive(Serialize, ToSchema)]
#[schema(as = FacesDetection)]
struct Detection {
    faces: Vec<DetectedFace>,
    face_count: usize,
}

#[derive(Serialize, ToSchema)]
#[schema(as = PhotoDetectedFace)]
struct DetectedFace {
    /// `[x1, y1, x2, y2]` in pixels of the photo.
    #[schema(min_items = 4, max_items = 4, example = json!([100, 80, 220, 230]))]
    bbox: [i32; 4],
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.98)]
    confidence: f64,
    /// Right eye, left eye, nose tip, mouth centre, right ear, left ear: `[x, y]` in pixels
    /// ("right" is the person's right).
    #[schema(min_items = 6, max_items = 6)]
    landmarks: [[f32; 2]; 6],
}

/// Our listing adds `has_image` to each face.
fn list(state: &State, req: &Request<Incoming>) -> ApiResult {
    let q = query(req);
    let limit = query_param::<usize>(&q, "limit")?.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 10000"));
    }
    let name = q.iter().find(|(k, _)| k == "name").map(|(_, v)| v.as_str());
    let faces = state.store.faces(name, limit)?;
    let faces: Vec<FaceEntry> = faces
        .into_iter()
        .map(|face| FaceEntry {
            has_image: face.has_image,
            face,
        })
        .collect();
    ok_json(&FaceList {
        total: faces.len(),
        faces,
    })
}

/// The enrolled faces.
#[derive(Serialize, ToSchema)]
#[schema(as = FacesList)]
struct FaceList {
    faces: Vec<FaceEntry>,
    /// The faces in this answer.
    total: usize,
}

/// An enrolled face as our listing shows it.
#[derive(Serialize, ToSchema)]
#[schema(as = FacesEntry)]
struct FaceEntry {
    #[serde(flatten)]
    face: FaceRecord,
    /// Whether its crop and photo are kept (not for faces enrolled before pictures were).
    has_image: bool,
}

/// `GET /api/v1/faces/{id}/crop.jpg` and `/photo.jpg`: 404 `not_found` for no such face (as
/// the other face routes answer), 404 `no_image` for one enrolled before pictures were kept.
fn picture(state: &State, id: &str, which: FacePicture) -> ApiResult {
    match state.store.face_picture(id, which)? {
        Some(jpeg) => Ok(jpeg_response(jpeg)),
        None => Err(ApiError::Missing {
            code: "no_image",
            message: format!("face {id} was enrolled before its pictures were kept"),
        }),
    }
}

/// A JPEG answer; private, since a picture of a person is not for shared caches.
pub(super) fn jpeg_response(jpeg: Vec<u8>) -> http::Response<super::Body> {
    let mut r = super::text_response(http::StatusCode::OK, "image/jpeg", jpeg);
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, max-age=300"),
    );
    r
}

/// How many faces (enrolled images) and people the gallery holds.
#[derive(Serialize, ToSchema)]
#[schema(as = FacesCount)]
struct FaceCount {
    count: u64,
    people: u64,
}

fn count(state: &State) -> ApiResult {
    let (count, people) = state.store.face_count()?;
    ok_json(&FaceCount { count, people })
}

#[derive(Serialize, ToSchema)]
#[schema(as = FacesDeleted)]
struct FaceDeleted {
    success: bool,
    #[schema(example = 1)]
    deleted: usize,
    face_id: String,
}

fn delete(state: &State, id: &str) -> ApiResult {
    state.store.delete_face(id)?;
    state.cameras.gallery().reload(&state.store)?;
    ok_json(&FaceDeleted {
        success: true,
        deleted: 1,
        face_id: id.to_owned(),
    })
}

#[derive(Serialize, ToSchema)]
#[schema(as = FacesDeletedByName)]
struct NameDeleted {
    success: bool,
    /// The faces deleted (0 when nobody had the name).
    deleted: usize,
    name: String,
}

/// `name` comes percent-decoded as a path segment (`A+B` is "A+B", `A%20B` is "A B").
fn delete_by_name(state: &State, name: &str) -> ApiResult {
    let deleted = state.store.delete_faces_by_name(name)?;
    state.cameras.gallery().reload(&state.store)?;
    ok_json(&NameDeleted {
        success: true,
        deleted,
        name: name.to_owned(),
    })
}
