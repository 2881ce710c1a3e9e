//! `POST /api/v1/webhooks/test`: one test event sent to a URL now, outside the outbox, answered
//! as FaceCV answered it (`message`, `url`, `test_event`) with what the receiver said added
//! (`success`, `status_code`, `response_time_ms`, `error`): FaceCV sent in the background and
//! could not tell.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::Request;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::super::routes::Params;
use super::super::{ok_json, read_json, ApiError, ApiResult, State};
use super::parse_id;
use crate::events::{envelope, format_timestamp};
use crate::store::webhook::{SigningKey, WebhookConfig};

/// What to test: FaceCV's `url` and `test_data`, and ours to sign and time it.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"url": "http://127.0.0.1:8080/webhook/test",
    "test_data": {"message": "Test webhook"}}))]
pub(super) struct TestRequest {
    /// An http or https URL.
    #[schema(
        pattern = r"^https?://[^\s/?#]+",
        max_length = 2048,
        example = "http://127.0.0.1:8080/webhook/test"
    )]
    url: String,
    /// Sign with this webhook's secret, so a verifying receiver can be tested end to end.
    #[serde(default)]
    #[schema(pattern = r"^[A-Za-z0-9_.\-]{1,64}$", example = "main_recognition")]
    webhook_id: Option<String>,
    /// Or sign with this secret.
    #[serde(default)]
    #[schema(
        pattern = r"^whsec_(?:[A-Za-z0-9+/]{4}){7,20}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)$",
        example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    )]
    secret: Option<String>,
    /// The test event's `data`; absent, null or empty: FaceCV's sample (a "Test Person" face).
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"message": "Test webhook"}))]
    test_data: Option<Value>,
    #[serde(default)]
    #[schema(example = json!({"Authorization": "Bearer your-token"}))]
    headers: BTreeMap<String, String>,
    /// Seconds to wait for the receiver, 1 to 300.
    #[serde(default = "default_test_timeout")]
    #[schema(minimum = 1, maximum = 300, default = 10, example = 10)]
    timeout: f64,
}

fn default_test_timeout() -> f64 {
    10.0
}

impl TestRequest {
    /// The webhook the test posts as, checked like any webhook.
    fn probe(&self) -> Result<WebhookConfig, ApiError> {
        let mut probe = WebhookConfig::new("test", &self.url);
        probe.headers = self.headers.clone();
        probe.timeout = self.timeout;
        probe.validate()?;
        Ok(probe)
    }

    /// FaceCV's `data`: the client's object, or its sample when none (or an empty one) is given.
    fn data(&self) -> Result<Value, ApiError> {
        match &self.test_data {
            None | Some(Value::Null) => Ok(sample_data()),
            Some(Value::Object(m)) if m.is_empty() => Ok(sample_data()),
            Some(v @ Value::Object(_)) => Ok(v.clone()),
            Some(_) => Err(ApiError::invalid("test_data", "must be a JSON object")),
        }
    }
}

/// FaceCV's default test data, to the letter.
fn sample_data() -> Value {
    json!({
        "message": "This is a test webhook event",
        "faces": [{"name": "Test Person", "confidence": 0.95, "bbox": [100, 100, 200, 200]}],
    })
}

/// The event sent: FaceCV's test event (`camera_id: "test_camera"`, `metadata: {"test": true}`)
/// with our `id`, so that a deduplicating receiver handles it like any other.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "evt_0192b6c1f0a47c3e9a51c2f0d1e2a3b4", "event_type": "test",
    "timestamp": "2025-05-26T10:30:45.123Z", "camera_id": "test_camera",
    "data": {"message": "This is a test webhook event",
             "faces": [{"name": "Test Person", "confidence": 0.95, "bbox": [100, 100, 200, 200]}]},
    "metadata": {"test": true}}))]
pub(super) struct TestEvent {
    id: String,
    /// Always `test`.
    event_type: &'static str,
    timestamp: String,
    /// Always `test_camera`.
    camera_id: &'static str,
    #[schema(value_type = Object)]
    data: Value,
    #[schema(value_type = Object)]
    metadata: Map<String, Value>,
}

/// FaceCV's answer, and what the receiver said.
#[derive(Serialize, ToSchema)]
pub(super) struct TestAnswer {
    /// `Test webhook sent` when the receiver answered 2xx; otherwise says what went wrong.
    #[schema(example = "Test webhook sent")]
    message: String,
    url: String,
    test_event: TestEvent,
    /// Whether the receiver answered 2xx.
    success: bool,
    /// The receiver's status; null when it could not be reached.
    status_code: Option<u16>,
    response_time_ms: f64,
    /// Why it could not be reached.
    error: Option<String>,
}

/// A test body read and checked as [`test_webhook`] does before it dials, for the fuzzer.
pub(in crate::api) fn check_test(bytes: &[u8]) -> Result<(), ApiError> {
    let t = super::super::parse_json::<TestRequest>(bytes)?;
    t.probe()?;
    t.data().map(drop)
}

/// Sends one test event to a URL now and says what the receiver answered.
///
/// FaceCV's `{"message", "url", "test_event"}`, sent as FaceCV sent it (in an envelope with
/// `webhook_id: "test"`, or the given webhook's id), but at once rather than in the background,
/// so the answer can say whether it arrived. Signed with the webhook's secret (`webhook_id`) or
/// the given `secret`; unsigned otherwise. Never retried, never stored.
#[utoipa::path(post, path = "/api/v1/webhooks/test", tag = "webhooks",
    request_body = TestRequest,
    responses(
        (status = 200, description = "The test event was sent (see `success` for whether \
            the receiver took it)", body = TestAnswer),
        (status = 404, description = "`webhook_id` names no webhook")))]
pub(super) async fn test_webhook(
    state: Arc<State>,
    req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    let state: &State = &state;
    let t: TestRequest = read_json(state, req).await?;
    let probe = t.probe()?;
    let mut metadata = Map::new();
    metadata.insert("test".into(), json!(true));
    let event = TestEvent {
        id: format!("evt_test_{}", uuid::Uuid::now_v7().simple()),
        event_type: "test",
        timestamp: format_timestamp(time::OffsetDateTime::now_utc()),
        camera_id: "test_camera",
        data: t.data()?,
        metadata,
    };
    let key = match (&t.webhook_id, &t.secret) {
        (Some(id), _) => Some(state.store.webhook(&parse_id(id)?)?.signing_key()?),
        (None, Some(secret)) => Some(
            SigningKey::parse(secret).map_err(|e| ApiError::invalid("secret", e.to_string()))?,
        ),
        (None, None) => None,
    };
    let text = serde_json::to_string(&event).expect("a test event serialises");
    let body = Bytes::from(envelope(
        t.webhook_id.as_deref().unwrap_or("test"),
        &[&text],
    ));
    let mut headers: Vec<(http::HeaderName, http::HeaderValue)> = probe
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.parse().ok()?, v.parse().ok()?)))
        .collect();
    if let Some(key) = key {
        let msg_id = format!("msg_test_{}", uuid::Uuid::now_v7().simple());
        headers.extend(crate::delivery::sign::headers(&key, &msg_id, &body));
    }
    let started = Instant::now();
    let result = state
        .webhooks
        .client()
        .post_json(&probe.url, &headers, body, probe.timeout())
        .await;
    let response_time_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (success, status_code, error) = match result {
        Ok(a) => (a.status.is_success(), Some(a.status.as_u16()), None),
        Err(e) => (false, None, Some(e.to_string())),
    };
    let message = match (success, status_code, &error) {
        (true, _, _) => "Test webhook sent".to_owned(),
        (false, Some(code), _) => format!("Test webhook sent; the receiver answered {code}"),
        (false, None, e) => format!(
            "Test webhook not delivered: {}",
            e.as_deref().unwrap_or("no answer")
        ),
    };
    ok_json(&TestAnswer {
        message,
        url: probe.url,
        test_event: event,
        success,
        status_code,
        response_time_ms,
        error,
    })
}
