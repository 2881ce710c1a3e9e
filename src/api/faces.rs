//! Enrolment and recognition: FaceCV's routes under `/api/v1/insightface` and the older
//! `/api/v1/face_recognition_insightface`, with the same multipart field names (`file`, `name`,
//! `department`, `employee_id`, `file1`, `file2`, `threshold`, `min_confidence`), and ours under
//! `/api/v1/faces`.
//!
//! Images are analysed on a blocking thread by one engine kept for the API, so an upload never
//! stalls the async runtime, and cameras keep their own engines.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request};
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use super::{ok_json, query, query_param, read_body_limit, ApiError, ApiResult, State};
use crate::store::faces::FaceRecord;
use crate::vision::{Embedding, FaceEngine, ImageLimits, VisionConfig, VisionError, VisionHealth};

/// The engine for uploaded images, made on first use: the appliance (and its webhooks) runs
/// without the TFLite runtime, and says what is missing when a request needs it.
/// A failure to make it (a damaged model) is a 503 naming the model and the reason, is tried
/// again on the next request (the file may have been put right), and shows in `/health`.
pub struct ApiEngine {
    config: VisionConfig,
    health: Arc<VisionHealth>,
    engine: Option<FaceEngine>,
}

impl ApiEngine {
    pub fn new(config: VisionConfig, health: Arc<VisionHealth>) -> Self {
        ApiEngine {
            config,
            health,
            engine: None,
        }
    }

    pub fn get(&mut self) -> Result<&mut FaceEngine, VisionError> {
        if self.engine.is_none() {
            let made = FaceEngine::new(self.config.clone());
            self.health.engine_made(made.as_ref().map(|_| ()));
            self.engine = Some(made?);
        }
        Ok(self.engine.as_mut().expect("just made"))
    }
}

/// Routes under one of the three prefixes; `rest` is the path after it.
pub async fn route(state: &State, req: Request<Incoming>, rest: &[&str], ours: bool) -> ApiResult {
    let method = req.method().clone();
    match (rest, &method) {
        (["register"], &Method::POST) => register(state, req).await,
        ([], &Method::POST) if ours => register(state, req).await,
        (["recognize"], &Method::POST) => recognize(state, req).await,
        (["verify"], &Method::POST) => verify(state, req).await,
        (["detect"], &Method::POST) => detect(state, req).await,
        (["video_face"], &Method::POST) if !ours => super::enrol::video(state, req).await,
        (["video"], &Method::POST) if ours => super::enrol::video(state, req).await,
        (["faces", "offline"], &Method::POST) if !ours => super::enrol::offline(state, req).await,
        (["offline"], &Method::POST) if ours => super::enrol::offline(state, req).await,
        ([], &Method::GET) if ours => list(state, &req),
        (["faces"], &Method::GET) if !ours => list(state, &req),
        (["count"], &Method::GET) if ours => count(state),
        (["faces", "count"], &Method::GET) if !ours => count(state),
        (["by-name", name], &Method::DELETE) if ours => delete_by_name(state, name),
        (["faces", "by-name", name], &Method::DELETE) if !ours => delete_by_name(state, name),
        ([id], &Method::DELETE) if ours => delete(state, id),
        (["faces", id], &Method::DELETE) if !ours => delete(state, id),
        _ => Err(ApiError::NotFound(format!("path {}", req.uri().path()))),
    }
}

/// The parts of a multipart form: files by field name (in order), and text fields.
#[derive(Default)]
pub(super) struct Form {
    pub(super) files: Vec<(String, Bytes)>,
    pub(super) fields: Map<String, Value>,
}

impl Form {
    pub(super) fn file(&self, name: &str) -> Result<Bytes, ApiError> {
        self.files
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
            .ok_or_else(|| ApiError::invalid(name, "an image file is required"))
    }

    pub(super) fn text(&self, name: &str) -> Option<&str> {
        self.fields
            .get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    pub(super) fn number(&self, name: &str, lo: f32, hi: f32) -> Result<Option<f32>, ApiError> {
        match self.text(name) {
            None => Ok(None),
            Some(v) => match v.parse::<f32>() {
                Ok(x) if (lo..=hi).contains(&x) => Ok(Some(x)),
                _ => Err(ApiError::invalid(
                    name,
                    format!("must be a number between {lo} and {hi}, got {v:?}"),
                )),
            },
        }
    }
}

pub(super) async fn read_form(state: &State, req: Request<Incoming>) -> Result<Form, ApiError> {
    let boundary = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| multer::parse_boundary(ct).ok())
        .ok_or_else(|| ApiError::BadRequest("expected a multipart/form-data body".into()))?;
    let limit = state.config.max_upload_mb as usize * 1024 * 1024;
    let body = read_body_limit(req, limit).await?;
    parse_form(boundary, body).await
}

/// The form in a whole body; apart from [`read_form`] so that it can be fuzzed without a socket.
pub(super) async fn parse_form(boundary: String, body: Bytes) -> Result<Form, ApiError> {
    let stream = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut form = Form::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?
    {
        let name = field.name().unwrap_or("").to_owned();
        let is_file = field.file_name().is_some();
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::BadRequest(format!("malformed multipart body: {e}")))?;
        if is_file || name.starts_with("file") {
            form.files.push((name, data));
        } else {
            form.fields.insert(
                name,
                Value::String(String::from_utf8_lossy(&data).into_owned()),
            );
        }
    }
    Ok(form)
}

/// Runs vision work on the API's engine, on a blocking thread; uploads are decoded within
/// `api.max_image_pixels`.
pub(super) async fn with_engine<T: Send + 'static>(
    state: &State,
    f: impl FnOnce(&mut FaceEngine) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let engine = state.engine.clone();
    let limits = ImageLimits {
        max_pixels: state.config.max_image_pixels,
    };
    tokio::task::spawn_blocking(move || {
        let mut guard = engine.lock().unwrap_or_else(|p| p.into_inner());
        let engine = guard.get().map_err(|e| image_error("file", e))?;
        engine.set_image_limits(limits);
        f(engine)
    })
    .await
    .map_err(|_| ApiError::Unavailable)?
}

/// What was wrong with an uploaded image, said against its form field; problems of the appliance
/// itself (no runtime, a broken model) are 503s.
pub(super) fn image_error(field: &str, e: VisionError) -> ApiError {
    let Some(code) = crate::enrol::folder::photo_code(&e) else {
        return ApiError::VisionUnavailable(e.to_string());
    };
    if let VisionError::ImageFormat(_) = e {
        return ApiError::UnsupportedMedia {
            code,
            message: format!("{field}: {e}"),
        };
    }
    ApiError::Unprocessable {
        field: field.to_owned(),
        code,
        message: e.to_string(),
    }
}

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
    let embeddings = with_engine(state, move |engine| {
        let mut out = Vec::with_capacity(images.len());
        for (i, img) in images.iter().enumerate() {
            let e: Embedding = engine
                .embed_single(img)
                .map_err(|e| image_error(&format!("file[{i}]"), e))?;
            out.push(e.as_slice().to_vec());
        }
        Ok(out)
    })
    .await?;
    let faces = store_person(state, &name, &embeddings, &metadata)?;
    tracing::info!(name, images = faces.len(), "person enrolled");
    ok_json(&json!({
        "success": true,
        "message": format!("Registered {} image(s) of {name}", faces.len()),
        "name": name,
        "face_ids": faces.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        "faces": faces,
    }))
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
                json!({
                    "name": known.map_or("Unknown", |m| m.id.name.as_str()),
                    "confidence": known.map_or(0.0, |m| m.similarity),
                    "best_similarity": best.as_ref().map(|m| m.similarity),
                    "bbox": f.bbox.map(|v| v.round() as i32),
                    "detection_confidence": f.score,
                    "metadata": known.map(|m| Value::Object(m.id.metadata.clone())).unwrap_or(json!({})),
                })
            })
            .collect::<Vec<_>>())
    })
    .await?;
    ok_json(&json!({ "faces": faces, "face_count": faces.len() }))
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
    ok_json(
        &json!({ "verified": similarity >= threshold, "similarity": similarity, "threshold": threshold }),
    )
}

async fn detect(state: &State, req: Request<Incoming>) -> ApiResult {
    let form = read_form(state, req).await?;
    let image = form.file("file")?;
    let min_confidence = form.number("min_confidence", 0.0, 1.0)?.unwrap_or(0.5);
    let faces = with_engine(state, move |engine| {
        let (rgb, w, h) = engine.decode(&image).map_err(|e| image_error("file", e))?;
        let mut found = heapless::Vec::new();
        engine
            .detect(&rgb, w, h, &mut found)
            .map_err(|e| image_error("file", e))?;
        Ok(found
            .iter()
            .filter(|d| d.score >= min_confidence)
            .map(|d| json!({ "bbox": d.bbox.map(|v| v.round() as i32), "confidence": d.score, "landmarks": d.keypoints }))
            .collect::<Vec<_>>())
    })
    .await?;
    ok_json(&json!({ "faces": faces, "face_count": faces.len() }))
}

fn list(state: &State, req: &Request<Incoming>) -> ApiResult {
    let q = query(req);
    let limit = query_param::<usize>(&q, "limit")?.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 10000"));
    }
    let name = q.iter().find(|(k, _)| k == "name").map(|(_, v)| v.as_str());
    let faces = state.store.faces(name, limit)?;
    ok_json(&json!({ "faces": faces, "total": faces.len() }))
}

fn count(state: &State) -> ApiResult {
    let (faces, people) = state.store.face_count()?;
    ok_json(&json!({ "count": faces, "people": people }))
}

fn delete(state: &State, id: &str) -> ApiResult {
    state.store.delete_face(id)?;
    state.cameras.gallery().reload(&state.store)?;
    ok_json(&json!({ "success": true, "deleted": 1, "face_id": id }))
}

/// `name` comes percent-decoded as a path segment (`A+B` is "A+B", `A%20B` is "A B").
fn delete_by_name(state: &State, name: &str) -> ApiResult {
    let n = state.store.delete_faces_by_name(name)?;
    state.cameras.gallery().reload(&state.store)?;
    ok_json(&json!({ "success": true, "deleted": n, "name": name }))
}
