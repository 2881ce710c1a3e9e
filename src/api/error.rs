//! Every API error, and the one place that maps each to a status code and JSON:
//! `{"error": {"code": "...", "message": "..."}, "detail": ...}` (plus `field` for validation
//! errors). `detail` is what FastAPI, and so FaceCV, answered: the message, or for a 422 naming a
//! field `[{"loc": ["body", "<field>"], "msg": "...", "type": "<code>"}]`. FaceCV's clients read
//! `detail`; ours read `error`. Every path carries both, so there is one error shape.

use http::{Response, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::check::ConfigError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error(
        "this API needs \"Authorization: Bearer <token>\" with the appliance's API token (or a \
         console sign-in)"
    )]
    Unauthorized,
    #[error("no api.token is configured, so the API answers only clients on this machine")]
    Forbidden,
    /// A sign-in with a token that is not the one in force.
    #[error("that is not the appliance's API token")]
    InvalidToken,
    #[error("{0} not found")]
    NotFound(String),
    /// The thing exists but has not what was asked of it (a face enrolled before its pictures
    /// were kept, an event without a snapshot): 404 with a code saying which.
    #[error("{message}")]
    Missing { code: &'static str, message: String },
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(http::Method),
    #[error("{0} already exists")]
    Conflict(String),
    /// A request that conflicts with how the thing is owned (a camera of the config file).
    #[error("{message}")]
    Refused { code: &'static str, message: String },
    /// Something the configuration does not allow (a folder outside `api.offline_enrol_dir`).
    #[error("{message}")]
    Denied { code: &'static str, message: String },
    /// A body in a format the appliance cannot read (a video codec it has no decoder for).
    #[error("{message}")]
    UnsupportedMedia { code: &'static str, message: String },
    #[error("the body is larger than the limit of {0} bytes")]
    TooLarge(usize),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{field}: {message}")]
    Unprocessable {
        field: String,
        code: &'static str,
        message: String,
    },
    #[error("face recognition is not available: {0}")]
    VisionUnavailable(String),
    #[error("the store is full; the oldest events are being dropped to make room")]
    StoreFull,
    /// A bounded part of the store is at its bound (the gallery's pictures).
    #[error("{message}")]
    NoRoom { code: &'static str, message: String },
    #[error("the appliance is shutting down")]
    Unavailable,
    /// The system refused what the request needed (a thread for a camera): the machine is short
    /// of memory or threads, which is no fault of the client and may pass.
    #[error("{0}")]
    Exhausted(String),
    /// The client stopped sending its request (a body that stalls or trickles): 408, and the
    /// connection is closed, since what is left of the body cannot be told apart from a request.
    #[error("{0}")]
    Timeout(String),
    /// A bounded resource (live streams, connections) is in use to its limit; `retry_after` in
    /// seconds goes out as `Retry-After`, so clients back off instead of hammering.
    #[error("{message}")]
    Busy {
        code: &'static str,
        message: String,
        retry_after: u32,
    },
    /// A limit the client is held to (failed sign-ins, a live view past `api.max_streams`): 429
    /// with `Retry-After`, unlike [`ApiError::Busy`], the appliance's resource being full (503).
    #[error("{message}")]
    TooMany {
        code: &'static str,
        message: String,
        retry_after: u32,
    },
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid_json"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::InvalidToken => (StatusCode::UNAUTHORIZED, "invalid_token"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Missing { code, .. } => (StatusCode::NOT_FOUND, *code),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Refused { code, .. } => (StatusCode::CONFLICT, *code),
            ApiError::Denied { code, .. } => (StatusCode::FORBIDDEN, *code),
            ApiError::UnsupportedMedia { code, .. } => (StatusCode::UNSUPPORTED_MEDIA_TYPE, *code),
            ApiError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Invalid { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
            ApiError::Unprocessable { code, .. } => (StatusCode::UNPROCESSABLE_ENTITY, *code),
            ApiError::VisionUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "vision_unavailable")
            }
            ApiError::StoreFull => (StatusCode::INSUFFICIENT_STORAGE, "store_full"),
            ApiError::NoRoom { code, .. } => (StatusCode::INSUFFICIENT_STORAGE, *code),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
            ApiError::Exhausted(_) => (StatusCode::SERVICE_UNAVAILABLE, "resources_exhausted"),
            ApiError::Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            ApiError::Busy { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, *code),
            ApiError::TooMany { code, .. } => (StatusCode::TOO_MANY_REQUESTS, *code),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    pub fn into_response(self) -> Response<super::Body> {
        let (status, code) = self.status_and_code();
        let message = self.to_string();
        let (field, detail) = match &self {
            ApiError::Invalid { field, message }
            | ApiError::Unprocessable { field, message, .. } => (
                Some(field.clone()),
                Detail::Fields(vec![FieldDetail {
                    loc: vec!["body".into(), field.clone()],
                    msg: message.clone(),
                    kind: code.into(),
                }]),
            ),
            _ => (None, Detail::Message(message.clone())),
        };
        // A full resource is the client's to retry, not a fault of the appliance.
        if status.is_server_error() && !matches!(self, ApiError::Busy { .. }) {
            tracing::error!(status = status.as_u16(), "{self}");
        }
        let body = ErrorBody {
            error: ErrorObject {
                code: code.into(),
                message,
                field,
            },
            detail,
        };
        let mut response = super::json_response(status, &body);
        match &self {
            ApiError::Busy { retry_after, .. } | ApiError::TooMany { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(http::header::RETRY_AFTER, (*retry_after).into());
            }
            ApiError::Timeout(_) => {
                response.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            _ => {}
        }
        response
    }
}

/// The error answer of every route, as [`ApiError::into_response`] writes it (and the OpenAPI
/// document describes it): a stable `code` to branch on,
/// a sentence for people, and for a field's error the field. `detail` is FastAPI's, for FaceCV's
/// clients.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    error: ErrorObject,
    detail: Detail,
}

#[derive(Serialize, ToSchema)]
struct ErrorObject {
    /// Stable, snake_case: `not_found`, `validation_error`, `unauthorized`, ...
    #[schema(example = "not_found")]
    code: String,
    message: String,
    /// The field a validation error is about (a body's key, a query parameter).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    field: Option<String>,
}

/// FastAPI's `detail`: the message, or for a field's error where it is and what is wrong.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum Detail {
    Message(String),
    Fields(Vec<FieldDetail>),
}

#[derive(Serialize, ToSchema)]
struct FieldDetail {
    /// `["body", "<field>"]` or `["query", "<name>"]`.
    loc: Vec<String>,
    msg: String,
    #[serde(rename = "type")]
    kind: String,
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(what),
            StoreError::Conflict(what) => ApiError::Conflict(what),
            StoreError::Full => ApiError::StoreFull,
            e @ StoreError::ImagesFull { .. } => ApiError::NoRoom {
                code: "gallery_images_full",
                message: e.to_string(),
            },
            StoreError::Closed => ApiError::Unavailable,
            e if e.is_disk_full() => ApiError::StoreFull,
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<ConfigError> for ApiError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Invalid { key, message } => ApiError::Invalid {
                field: key,
                message,
            },
            other => ApiError::BadRequest(other.to_string()),
        }
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        use serde_json::error::Category;
        match e.classify() {
            // Well-formed JSON of the wrong shape: a missing field or a wrong type.
            Category::Data => ApiError::invalid(field_of(&e), e.to_string()),
            _ => ApiError::InvalidJson(e.to_string()),
        }
    }
}

/// The field serde names in "missing field `url`" or "unknown variant ..., expected ...".
fn field_of(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match (
        text.find('`'),
        text[text.find('`').map_or(0, |i| i + 1)..].find('`'),
    ) {
        (Some(start), Some(len)) if text.starts_with("missing field") => {
            text[start + 1..start + 1 + len].to_owned()
        }
        _ => "body".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use serde_json::json;

    async fn body(e: ApiError) -> (StatusCode, serde_json::Value) {
        let r = e.into_response();
        let status = r.status();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn every_error_carries_fastapis_detail_beside_ours() {
        let (status, v) = body(ApiError::NotFound("face f1".into())).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(v["error"]["code"], "not_found");
        assert_eq!(v["detail"], "face f1 not found");
        let (status, v) = body(ApiError::invalid("file", "an image file is required")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(v["error"]["field"], "file");
        assert_eq!(
            v["detail"],
            json!([{"loc": ["body", "file"], "msg": "an image file is required", "type": "validation_error"}])
        );
        let (_, v) = body(ApiError::Unprocessable {
            field: "file1".into(),
            code: "no_face",
            message: "no face".into(),
        })
        .await;
        assert_eq!(v["detail"][0]["type"], "no_face");
        assert_eq!(v["detail"][0]["loc"], json!(["body", "file1"]));
    }
}
