//! Enrolment and recognition under `/api/v1/faces`, with FaceCV's multipart field names (`file`,
//! `name`, `department`, `employee_id`, `file1`, `file2`, `threshold`, `min_confidence`) and the
//! appliance's own answers. FaceCV's paths, in FaceCV's shapes, are `facecv/`.
//!
//! Uploads are analysed by the API's own engine (`engine.rs`); the forms are read by `form.rs`.

use bytes::Bytes;
use http::{Method, Request};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::engine::{image_error, with_engine};
use super::form::read_form;
use super::people::{enrolled, person, store_person};
use super::{ok_json, query, query_param, ApiError, ApiResult, State};
use crate::enrol::shot;
use crate::store::faces::FacePicture;

/// Routes under `/api/v1/faces`; `rest` is the path after it.
pub async fn route(state: &State, req: Request<Incoming>, rest: &[&str]) -> ApiResult {
    let method = req.method().clone();
    match (rest, &method) {
        (["register"], &Method::POST) => register(state, req).await,
        ([], &Method::POST) => register(state, req).await,
        (["recognize"], &Method::POST) => recognize(state, req).await,
        (["verify"], &Method::POST) => verify(state, req).await,
        (["detect"], &Method::POST) => detect(state, req).await,
        (["video"], &Method::POST) => super::enrol::video(state, req).await,
        (["offline"], &Method::POST) => super::enrol::offline(state, req).await,
        ([], &Method::GET) => list(state, &req),
        ([id, "crop.jpg"], &Method::GET) => picture(state, id, FacePicture::Crop),
        ([id, "photo.jpg"], &Method::GET) => picture(state, id, FacePicture::Photo),
        (["count"], &Method::GET) => count(state),
        (["by-name", name], &Method::DELETE) => delete_by_name(state, name),
        ([id], &Method::DELETE) => delete(state, id),
        _ => Err(ApiError::NotFound(format!("path {}", req.uri().path()))),
    }
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
            .detect_still(&rgb, w, h, &mut found)
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

/// Our listing adds `has_image` to each face.
fn list(state: &State, req: &Request<Incoming>) -> ApiResult {
    let q = query(req);
    let limit = query_param::<usize>(&q, "limit")?.unwrap_or(100);
    if !(1..=10_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 10000"));
    }
    let name = q.iter().find(|(k, _)| k == "name").map(|(_, v)| v.as_str());
    let faces = state.store.faces(name, limit)?;
    let entries: Vec<Value> = faces
        .iter()
        .map(|f| {
            let mut v = json!(f);
            v["has_image"] = json!(f.has_image);
            v
        })
        .collect();
    ok_json(&json!({ "faces": entries, "total": entries.len() }))
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
