//! `/api/v1/webhooks`: FaceCV's management API, with deliveries, replay and signing secrets added.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{ok_json, query, query_param, read_json, ApiError, ApiResult, State};
use crate::events::{envelope, format_timestamp, Seq};
use crate::store::sinks::{Origin, WebhookRecord, WebhookStats};
use crate::store::subscription::SinkName;
use crate::store::webhook::{SigningKey, WebhookConfig, WebhookId};

pub async fn route(state: &State, req: Request<Incoming>, rest: &[&str]) -> ApiResult {
    let method = req.method().clone();
    match (rest, &method) {
        ([], &Method::GET) => list(state),
        ([], &Method::POST) => create(state, req).await,
        (["stats"], &Method::GET) => stats(state),
        (["test"], &Method::POST) => test(state, req).await,
        ([id], &Method::GET) => get(state, &parse_id(id)?),
        ([id], &Method::PUT) => replace(state, &parse_id(id)?, req).await,
        ([id], &Method::DELETE) => delete(state, &parse_id(id)?).await,
        ([id, "enable"], &Method::POST) => set_enabled(state, &parse_id(id)?, true).await,
        ([id, "disable"], &Method::POST) => set_enabled(state, &parse_id(id)?, false).await,
        ([id, "rotate_secret"], &Method::POST) => rotate_secret(state, &parse_id(id)?).await,
        ([id, "deliveries"], &Method::GET) => deliveries(state, &parse_id(id)?, &req),
        ([id, "dead_letters"], &Method::GET) => dead_letters(state, &parse_id(id)?, &req),
        ([id, "replay"], &Method::POST) => replay(state, &parse_id(id)?, req).await,
        (
            []
            | ["stats"]
            | ["test"]
            | [_]
            | [_, "enable" | "disable" | "deliveries" | "dead_letters" | "replay" | "rotate_secret"],
            _,
        ) => Err(ApiError::MethodNotAllowed(method)),
        _ => Err(ApiError::NotFound(format!("path {}", req.uri().path()))),
    }
}

fn parse_id(raw: &str) -> Result<WebhookId, ApiError> {
    // An id that could never have been stored cannot be found.
    WebhookId::parse(raw).map_err(|_| ApiError::NotFound(format!("webhook {raw:?}")))
}

/// A webhook as the API shows it: FaceCV's fields, `created_at` and `statistics`.
#[derive(Serialize)]
struct View<'a> {
    #[serde(flatten)]
    config: &'a WebhookConfig,
    created_at: &'a str,
    origin: Origin,
    statistics: &'a WebhookStats,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<Value>,
}

fn view(record: &WebhookRecord, delivery: Option<Value>) -> Value {
    let mut config = record.config.clone();
    config.secret = None;
    let mut v = serde_json::to_value(View {
        config: &config,
        created_at: &record.created_at,
        origin: record.origin,
        statistics: &record.stats,
        delivery,
    })
    .expect("a webhook view serialises");
    // FaceCV always answered with the field, null meaning every type.
    if v.get("event_types").is_none() {
        v["event_types"] = Value::Null;
    }
    v
}

fn list(state: &State) -> ApiResult {
    let all: Vec<Value> = state
        .store
        .webhooks()?
        .iter()
        .map(|r| view(r, None))
        .collect();
    ok_json(&all)
}

/// A webhook as a client sends it. FaceCV accepted fields it did not know, and so do we, but a
/// typo (`"event_type"` for `"event_types"`) silently widens what a receiver gets; the answer
/// names every field that was ignored, and the log warns.
#[derive(Deserialize)]
struct WebhookBody {
    #[serde(flatten)]
    config: WebhookConfig,
    #[serde(flatten)]
    extra: serde_json::Map<String, Value>,
}

impl WebhookBody {
    fn ignored(&self) -> Option<Vec<&str>> {
        if self.extra.is_empty() {
            return None;
        }
        let names: Vec<&str> = self.extra.keys().map(String::as_str).collect();
        tracing::warn!(webhook = %self.config.webhook_id, ignored = ?names, "a webhook request had fields the appliance does not know; they were ignored");
        Some(names)
    }
}

async fn create(state: &State, req: Request<Incoming>) -> ApiResult {
    let body: WebhookBody = read_json(state, req).await?;
    let ignored = body.ignored().map(|n| json!(n));
    let config = body.config;
    config.validate()?;
    let record = state.store.create_webhook(&config, Origin::Api)?;
    state.webhooks.sync(&record.id()).await;
    tracing::info!(webhook = %record.config.webhook_id, url = %record.config.url, "webhook created");
    let mut body = view(&record, None);
    // The only time the secret is shown: the receiver needs it to verify signatures.
    body["secret"] = json!(record.secret);
    if let Some(ignored) = ignored {
        body["ignored_fields"] = ignored;
    }
    ok_json(&body)
}

fn get(state: &State, id: &WebhookId) -> ApiResult {
    let record = state.store.webhook(id)?;
    let (backlog, dropped) = state
        .store
        .sink_backlog(&SinkName::webhook(id), record.config.filter())?;
    let mut delivery = json!({
        "backlog": backlog,
        "dropped": dropped,
        "dead_letters": state.store.dead_letter_count(id)?,
    });
    if let Some(problem) = state.webhooks.problem(id) {
        // Enabled but not running: say why where the operator looks.
        delivery["error"] = json!(problem);
    }
    ok_json(&view(&record, Some(delivery)))
}

async fn replace(state: &State, id: &WebhookId, req: Request<Incoming>) -> ApiResult {
    let mut body: Value = read_json(state, req).await?;
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    };
    match obj.get("webhook_id") {
        None => {
            obj.insert("webhook_id".into(), json!(id.as_str()));
        }
        Some(v) if v == id.as_str() => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "webhook_id",
                "must match the id in the path (a webhook cannot be renamed)",
            ))
        }
    }
    let body: WebhookBody = serde_json::from_value(body)?;
    let ignored = body.ignored().map(|n| json!(n));
    let config = body.config;
    config.validate()?;
    let record = state.store.replace_webhook(id, &config)?;
    state.webhooks.sync(id).await;
    let mut answer = view(&record, None);
    if let Some(ignored) = ignored {
        answer["ignored_fields"] = ignored;
    }
    ok_json(&answer)
}

async fn delete(state: &State, id: &WebhookId) -> ApiResult {
    state.store.delete_webhook(id)?;
    state.webhooks.sync(id).await;
    tracing::info!(webhook = %id, "webhook deleted");
    ok_json(&json!({ "message": format!("Webhook {id} deleted"), "webhook_id": id }))
}

async fn set_enabled(state: &State, id: &WebhookId, enabled: bool) -> ApiResult {
    let record = state.store.set_webhook_enabled(id, enabled)?;
    state.webhooks.sync(id).await;
    ok_json(&view(&record, None))
}

fn stats(state: &State) -> ApiResult {
    let records = state.store.webhooks()?;
    let mut per = BTreeMap::new();
    let mut queue_size = 0;
    for r in &records {
        let sink = SinkName::webhook(&r.id());
        let (backlog, dropped) = state.store.sink_backlog(&sink, r.config.filter())?;
        if r.config.enabled {
            queue_size += backlog;
        }
        state
            .metrics
            .backlog
            .get_or_create(&state.metrics.sink(sink.as_str()))
            .set(backlog as i64);
        per.insert(
            r.config.webhook_id.clone(),
            json!({
                "enabled": r.config.enabled,
                "sent": r.stats.total_sent,
                "succeeded": r.stats.success_count,
                "failed": r.stats.failed_count,
                "attempts": r.stats.attempts,
                "failed_attempts": r.stats.failed_attempts,
                "backlog": backlog,
                "dead_letters": state.store.dead_letter_count(&r.id())?,
                "dropped": dropped,
            }),
        );
    }
    ok_json(&json!({
        "total_webhooks": records.len(),
        "enabled_webhooks": records.iter().filter(|r| r.config.enabled).count(),
        "queue_size": queue_size,
        "manager_running": state.webhooks.running(),
        "events_recorded": state.outbox.head(),
        "events_dropped": state.store.dropped_total()?,
        "webhooks": per,
    }))
}

#[derive(Deserialize)]
struct TestRequest {
    url: String,
    /// Sign with this webhook's secret, so a verifying receiver can be tested end to end.
    #[serde(default)]
    webhook_id: Option<String>,
    /// Or sign with this secret.
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    test_data: Value,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default = "default_test_timeout")]
    timeout: f64,
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
}

/// A test body read and checked as [`test`] does before it dials, for the fuzzer.
pub(super) fn check_test(bytes: &[u8]) -> Result<(), ApiError> {
    super::parse_json::<TestRequest>(bytes)?.probe().map(drop)
}

/// A replay body read and checked as [`replay`] does, for the fuzzer.
pub(super) fn check_replay(bytes: &[u8]) -> Result<(), ApiError> {
    match super::parse_json::<ReplayRequest>(bytes)?.from_seq {
        Some(from) if from < 1 => Err(ApiError::invalid("from_seq", "must be 1 or more")),
        _ => Ok(()),
    }
}

fn default_test_timeout() -> f64 {
    10.0
}

/// Sends one test event to a URL now, outside the outbox, and reports what the receiver said.
async fn test(state: &State, req: Request<Incoming>) -> ApiResult {
    let t: TestRequest = read_json(state, req).await?;
    let probe = t.probe()?;
    let event = json!({
        "id": format!("evt_test_{}", uuid::Uuid::now_v7().simple()),
        "event_type": "test",
        "timestamp": format_timestamp(time::OffsetDateTime::now_utc()),
        "camera_id": "test",
        "data": t.test_data,
        "metadata": { "source": "webhook_test" },
    })
    .to_string();
    let key = match (&t.webhook_id, &t.secret) {
        (Some(id), _) => Some(state.store.webhook(&parse_id(id)?)?.signing_key()?),
        (None, Some(secret)) => Some(
            SigningKey::parse(secret).map_err(|e| ApiError::invalid("secret", e.to_string()))?,
        ),
        (None, None) => None,
    };
    let body = Bytes::from(envelope(
        t.webhook_id.as_deref().unwrap_or("test"),
        &[&event],
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
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let (success, status, error) = match result {
        Ok(a) => (a.status.is_success(), Some(a.status.as_u16()), None),
        Err(e) => (false, None, Some(e.to_string())),
    };
    ok_json(&json!({
        "success": success,
        "url": probe.url,
        "status_code": status,
        "response_time_ms": ms,
        "error": error,
    }))
}

fn limit_param(req: &Request<Incoming>, default: usize, max: usize) -> Result<usize, ApiError> {
    let limit = query_param::<usize>(&query(req), "limit")?.unwrap_or(default);
    if !(1..=max).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {max}"),
        ));
    }
    Ok(limit)
}

fn deliveries(state: &State, id: &WebhookId, req: &Request<Incoming>) -> ApiResult {
    let limit = limit_param(req, 50, 1000)?;
    state.store.webhook(id)?;
    ok_json(&json!({ "webhook_id": id, "deliveries": state.store.attempts(id, limit)? }))
}

fn dead_letters(state: &State, id: &WebhookId, req: &Request<Incoming>) -> ApiResult {
    let limit = limit_param(req, 50, 1000)?;
    state.store.webhook(id)?;
    ok_json(
        &json!({ "webhook_id": id, "dead_letters": state.store.dead_letters(id, false, limit)? }),
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// Deliver again every stored event from this sequence number on.
    from_seq: Option<i64>,
}

/// Replays the dead letters (empty body), or every stored event from `from_seq` on.
async fn replay(state: &State, id: &WebhookId, req: Request<Incoming>) -> ApiResult {
    let r: ReplayRequest = read_json(state, req).await?;
    let store = &state.store;
    let body = match r.from_seq {
        Some(from) if from < 1 => return Err(ApiError::invalid("from_seq", "must be 1 or more")),
        Some(from) => {
            state
                .webhooks
                .with_worker_stopped(id, || store.rewind_webhook(id, Seq(from)))
                .await?;
            let oldest = state
                .store
                .events_after(Seq(0), 1, crate::events::EventFilter::ALL)?
                .first()
                .map(|e| e.seq);
            json!({ "webhook_id": id, "replaying": "from_seq", "from_seq": from, "oldest_stored_seq": oldest })
        }
        None => {
            let n = state
                .webhooks
                .with_worker_stopped(id, || store.mark_dead_letters_for_replay(id))
                .await?;
            json!({ "webhook_id": id, "replaying": "dead_letters", "count": n })
        }
    };
    ok_json(&body)
}

/// A new signing secret, returned once; the worker signs with it from its next batch.
async fn rotate_secret(state: &State, id: &WebhookId) -> ApiResult {
    let secret = SigningKey::generate_secret();
    let store = &state.store;
    state
        .webhooks
        .with_worker_stopped(id, || store.set_webhook_secret(id, &secret))
        .await?;
    tracing::info!(webhook = %id, "webhook secret rotated");
    ok_json(&json!({ "webhook_id": id, "secret": secret }))
}
