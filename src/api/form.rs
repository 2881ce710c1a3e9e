//! The multipart forms of FaceCV's face routes (`file`, `file1`, `name`, `threshold`, ...), read
//! within `api.max_upload_mb`, for the recognition routes (`faces.rs`) and enrolment (`enrol.rs`).

use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::{read_body_limit, ApiError, State};

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
