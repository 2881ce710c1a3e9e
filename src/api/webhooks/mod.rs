//! `/api/v1/webhooks`: FaceCV's management API, answered as FaceCV answered (enable and disable
//! with `message`, the test route's answer and test event), with deliveries, replay and signing
//! secrets added. A create repeated with the same settings answers the stored webhook, so
//! FaceCV's integration script can run twice; with other settings it is refused with 409 and
//! pointed to `PUT`.

mod probe;
mod views;

use std::collections::BTreeMap;
use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::routes::{route, Params, Route};
use super::{ok_json, query, query_param, read_json, ApiError, ApiResult, State};
use crate::events::{EventType, Seq};
use crate::store::sinks::{Origin, WebhookRecord};
use crate::store::subscription::SinkName;
use crate::store::webhook::{SigningKey, WebhookConfig, WebhookId};
use crate::store::StoreError;
pub(super) use probe::check_test;
use views::{
    DeadLetters, Deleted, Deliveries, DeliveryState, NewSecret, Replay, ReplayKind, Stats,
    WebhookFigures, WebhookPayload, WebhookView,
};

/// Every `/api/v1/webhooks...` route. `stats` and `test` are literal segments, which the table
/// prefers to `{webhook_id}` (FaceCV declared `{webhook_id}` first and never reached `stats`).
pub(super) fn routes() -> Vec<Route> {
    let mut create = route!(create_webhook);
    create.schemas = create_schemas;
    vec![
        route!(list_webhooks),
        create,
        route!(webhook_stats),
        route!(probe::test_webhook),
        route!(get_webhook),
        route!(replace_webhook),
        route!(delete_webhook),
        route!(enable_webhook),
        route!(disable_webhook),
        route!(rotate_webhook_secret),
        route!(webhook_deliveries),
        route!(webhook_dead_letters),
        route!(replay_webhook),
    ]
}

fn parse_id(raw: &str) -> Result<WebhookId, ApiError> {
    // An id that could never have been stored cannot be found.
    WebhookId::parse(raw).map_err(|_| ApiError::NotFound(format!("webhook {raw:?}")))
}

/// The `{webhook_id}` of the path.
fn path_id(params: &Params) -> Result<WebhookId, ApiError> {
    parse_id(params.get("webhook_id"))
}

/// Lists every webhook: the config file's, the API's and live streams' (`origin`).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "Every webhook, without secrets",
        body = Vec<WebhookView>)))]
pub(super) async fn list_webhooks(
    state: Arc<State>,
    _req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    let all: Vec<WebhookView> = state
        .store
        .webhooks()?
        .iter()
        .map(WebhookView::of)
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
    /// Reads a body already parsed as JSON. `event_types` is checked first, so that an unknown
    /// type is refused naming the field (serde would name only the body).
    fn read(body: Value) -> Result<WebhookBody, ApiError> {
        if let Some(types) = body.get("event_types") {
            check_event_types(types)?;
        }
        Ok(serde_json::from_value(body)?)
    }

    fn ignored(&self) -> Option<Vec<String>> {
        if self.extra.is_empty() {
            return None;
        }
        let names: Vec<String> = self.extra.keys().cloned().collect();
        tracing::warn!(webhook = %self.config.webhook_id, ignored = ?names, "a webhook request had fields the appliance does not know; they were ignored");
        Some(names)
    }
}

/// `event_types`: null, or a list of the six names.
fn check_event_types(types: &Value) -> Result<(), ApiError> {
    let names = match types {
        Value::Null => return Ok(()),
        Value::Array(names) => names,
        _ => {
            return Err(ApiError::invalid(
                "event_types",
                "must be a list of event types or null",
            ))
        }
    };
    for name in names {
        let Some(name) = name.as_str() else {
            return Err(ApiError::invalid(
                "event_types",
                format!("{name} is not an event type name"),
            ));
        };
        name.parse::<EventType>()
            .map_err(|e| ApiError::invalid("event_types", e.to_string()))?;
    }
    Ok(())
}

/// Creates a webhook; it receives what is recorded from now on.
///
/// The answer is the stored webhook with its signing secret (generated unless given), shown
/// this once. Creating an id that exists with the same settings answers the stored webhook
/// again (without the secret), so a setup script can run twice; with other settings it is a 409
/// that names the fields that differ (change them with `PUT /api/v1/webhooks/{webhook_id}`).
/// Deliveries are POSTed to `url` as `#/components/schemas/WebhookPayload`.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body = WebhookConfig,
    responses(
        (status = 200, description = "Created (with `secret`), or already there with these \
            settings (with `message`, without `secret`)", body = WebhookView),
        (status = 409, description = "The id exists with other settings: `PUT` changes them")))]
pub(super) async fn create_webhook(
    state: Arc<State>,
    req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    let state: &State = &state;
    let body = WebhookBody::read(read_json(state, req).await?)?;
    let ignored = body.ignored();
    let config = body.config;
    config.validate()?;
    let record = match state.store.create_webhook(&config, Origin::Api) {
        Ok(record) => record,
        Err(StoreError::Conflict(_)) => return same_again(state, &config, ignored),
        Err(e) => return Err(e.into()),
    };
    state.webhooks.sync(&record.id()).await;
    tracing::info!(webhook = %record.config.webhook_id, url = %record.config.url, "webhook created");
    let mut view = WebhookView::of(&record);
    // The only time the secret is shown: the receiver needs it to verify signatures.
    view.secret = Some(record.secret.clone());
    view.ignored_fields = ignored;
    ok_json(&view)
}

/// The create route's components, and the payload its receiver will get (`WebhookPayload`).
fn create_schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
    use utoipa::__dev::SchemaReferences;
    __path_create_webhook::schemas(out);
    out.push((
        WebhookPayload::name().into_owned(),
        WebhookPayload::schema(),
    ));
}

/// A create for an id that exists: the stored webhook when the settings are the same, else 409.
fn same_again(state: &State, config: &WebhookConfig, ignored: Option<Vec<String>>) -> ApiResult {
    let id = config.id();
    let record = state.store.webhook(&id)?;
    let differ = differences(&record, config);
    if !differ.is_empty() {
        return Err(ApiError::Refused {
            code: "webhook_exists",
            message: format!(
                "webhook {id} already exists with a different {}; change it with PUT \
                 /api/v1/webhooks/{id} (or DELETE it first)",
                differ.join(", ")
            ),
        });
    }
    let mut view = WebhookView::of(&record);
    view.ignored_fields = ignored;
    view.message = Some(format!(
        "Webhook {id} already exists with these settings; nothing was changed"
    ));
    ok_json(&view)
}

/// The fields a create asks for that the stored webhook does not have; a secret left out of the
/// request (generated at the first create) is no difference.
fn differences(record: &WebhookRecord, asked: &WebhookConfig) -> Vec<String> {
    let mut differ = Vec::new();
    if asked.secret.as_ref().is_some_and(|s| *s != record.secret) {
        differ.push("secret".to_owned());
    }
    let mut asked = asked.clone();
    asked.secret = None;
    let (Value::Object(stored), Value::Object(asked)) = (
        serde_json::to_value(&record.config).expect("a webhook config serialises"),
        serde_json::to_value(&asked).expect("a webhook config serialises"),
    ) else {
        unreachable!("a webhook config serialises as an object")
    };
    for (field, value) in &asked {
        if stored.get(field).unwrap_or(&Value::Null) != value {
            differ.push(field.clone());
        }
    }
    for field in stored.keys() {
        if !asked.contains_key(field) {
            differ.push(field.clone());
        }
    }
    differ
}

/// One webhook, with what waits for it and why it is not running, if it is not.
#[utoipa::path(get, path = "/api/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(WebhookPath),
    responses((status = 200, description = "The webhook, with `delivery`", body = WebhookView)))]
pub(super) async fn get_webhook(
    state: Arc<State>,
    _req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    let id = path_id(&params)?;
    let record = state.store.webhook(&id)?;
    let (backlog, dropped) = state
        .store
        .sink_backlog(&SinkName::webhook(&id), record.config.filter())?;
    let mut view = WebhookView::of(&record);
    view.delivery = Some(DeliveryState {
        backlog,
        dropped,
        dead_letters: state.store.dead_letter_count(&id)?,
        // Enabled but not running: say why where the operator looks.
        error: state.webhooks.problem(&id),
    });
    ok_json(&view)
}

/// Replaces a webhook's settings; its cursor, statistics and secret stay.
#[utoipa::path(put, path = "/api/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(WebhookPath),
    request_body(content = WebhookConfig, description = "`webhook_id` may be left out; if \
        given it must be the path's (a webhook cannot be renamed)"),
    responses((status = 200, description = "The webhook as stored now", body = WebhookView)))]
pub(super) async fn replace_webhook(
    state: Arc<State>,
    req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    let state: &State = &state;
    let id = path_id(&params)?;
    let mut body: Value = read_json(state, req).await?;
    let Some(obj) = body.as_object_mut() else {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    };
    match obj.get("webhook_id") {
        None => {
            obj.insert("webhook_id".into(), Value::from(id.as_str()));
        }
        Some(v) if v == id.as_str() => {}
        Some(_) => {
            return Err(ApiError::invalid(
                "webhook_id",
                "must match the id in the path (a webhook cannot be renamed)",
            ))
        }
    }
    let body = WebhookBody::read(body)?;
    let ignored = body.ignored();
    let config = body.config;
    config.validate()?;
    let record = state.store.replace_webhook(&id, &config)?;
    state.webhooks.sync(&id).await;
    let mut view = WebhookView::of(&record);
    view.ignored_fields = ignored;
    ok_json(&view)
}

/// Deletes a webhook, its cursor, its delivery log and its dead letters.
#[utoipa::path(delete, path = "/api/v1/webhooks/{webhook_id}", tag = "webhooks",
    params(WebhookPath),
    responses((status = 200, description = "FaceCV's confirmation", body = Deleted)))]
pub(super) async fn delete_webhook(
    state: Arc<State>,
    _req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    let id = path_id(&params)?;
    state.store.delete_webhook(&id)?;
    state.webhooks.sync(&id).await;
    tracing::info!(webhook = %id, "webhook deleted");
    ok_json(&Deleted {
        message: format!("Webhook {id} deleted successfully"),
        webhook_id: id.to_string(),
    })
}

/// Enables a webhook: it receives what waited while it was disabled (a 410 Gone disables one).
#[utoipa::path(post, path = "/api/v1/webhooks/{webhook_id}/enable", tag = "webhooks",
    params(WebhookPath),
    responses((status = 200, description = "FaceCV's `message`, with the webhook",
        body = WebhookView)))]
pub(super) async fn enable_webhook(
    state: Arc<State>,
    _req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    set_enabled(&state, &path_id(&params)?, true).await
}

/// Disables a webhook; its events wait for it in the outbox (within the store's quota).
#[utoipa::path(post, path = "/api/v1/webhooks/{webhook_id}/disable", tag = "webhooks",
    params(WebhookPath),
    responses((status = 200, description = "FaceCV's `message`, with the webhook",
        body = WebhookView)))]
pub(super) async fn disable_webhook(
    state: Arc<State>,
    _req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    set_enabled(&state, &path_id(&params)?, false).await
}

async fn set_enabled(state: &State, id: &WebhookId, enabled: bool) -> ApiResult {
    let record = state.store.set_webhook_enabled(id, enabled)?;
    state.webhooks.sync(id).await;
    let mut view = WebhookView::of(&record);
    let word = if enabled { "enabled" } else { "disabled" };
    view.message = Some(format!("Webhook {id} {word}"));
    ok_json(&view)
}

/// FaceCV's figures (`total_webhooks`, `enabled_webhooks`, `queue_size`, `manager_running`)
/// and each webhook's.
#[utoipa::path(get, path = "/api/v1/webhooks/stats", tag = "webhooks",
    responses((status = 200, description = "The figures", body = Stats)))]
pub(super) async fn webhook_stats(
    state: Arc<State>,
    _req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
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
            WebhookFigures {
                enabled: r.config.enabled,
                sent: r.stats.total_sent,
                succeeded: r.stats.success_count,
                failed: r.stats.failed_count,
                attempts: r.stats.attempts,
                failed_attempts: r.stats.failed_attempts,
                backlog,
                dead_letters: state.store.dead_letter_count(&r.id())?,
                dropped,
            },
        );
    }
    ok_json(&Stats {
        total_webhooks: records.len(),
        enabled_webhooks: records.iter().filter(|r| r.config.enabled).count(),
        queue_size,
        manager_running: state.webhooks.running(),
        events_recorded: state.outbox.head().0,
        events_dropped: state.store.dropped_total()?,
        webhooks: per,
    })
}

/// `limit` of the delivery log and the dead letters.
/// The `{webhook_id}` of a webhook's routes, described once.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Describes the segment; handlers read it with `path_id`.
struct WebhookPath {
    /// The webhook's id
    #[param(pattern = "^[A-Za-z0-9_.-]{1,64}$", example = "main_recognition")]
    webhook_id: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct LimitQuery {
    /// How many, newest first.
    #[param(minimum = 1, maximum = 1000, default = 50, example = 50)]
    #[allow(dead_code)] // Read by `limit_param`, described here.
    limit: Option<usize>,
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

/// The delivery log: each HTTP request made to the webhook, with its status or error.
#[utoipa::path(get, path = "/api/v1/webhooks/{webhook_id}/deliveries", tag = "webhooks",
    params(WebhookPath, LimitQuery),
    responses((status = 200, description = "Newest first", body = Deliveries)))]
pub(super) async fn webhook_deliveries(
    state: Arc<State>,
    req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    let id = path_id(&params)?;
    let limit = limit_param(&req, 50, 1000)?;
    state.store.webhook(&id)?;
    ok_json(&Deliveries {
        webhook_id: id.to_string(),
        deliveries: state.store.attempts(&id, limit)?,
    })
}

/// The batches every retry failed for, kept whole for replay.
#[utoipa::path(get, path = "/api/v1/webhooks/{webhook_id}/dead_letters", tag = "webhooks",
    params(WebhookPath, LimitQuery),
    responses((status = 200, description = "Newest first", body = DeadLetters)))]
pub(super) async fn webhook_dead_letters(
    state: Arc<State>,
    req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    let id = path_id(&params)?;
    let limit = limit_param(&req, 50, 1000)?;
    state.store.webhook(&id)?;
    ok_json(&DeadLetters {
        webhook_id: id.to_string(),
        dead_letters: state.store.dead_letters(&id, false, limit)?,
    })
}

/// What to replay: the dead letters (empty body), or every stored event from `from_seq` on.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// Deliver again every stored event from this sequence number on.
    #[schema(minimum = 1, example = 1)]
    from_seq: Option<i64>,
}

/// A replay body read and checked as [`replay_webhook`] does, for the fuzzer.
pub(super) fn check_replay(bytes: &[u8]) -> Result<(), ApiError> {
    match super::parse_json::<ReplayRequest>(bytes)?.from_seq {
        Some(from) if from < 1 => Err(ApiError::invalid("from_seq", "must be 1 or more")),
        _ => Ok(()),
    }
}

/// Delivers again: the dead letters (empty body), or every stored event from `from_seq` on.
#[utoipa::path(post, path = "/api/v1/webhooks/{webhook_id}/replay", tag = "webhooks",
    params(WebhookPath),
    request_body(content = ReplayRequest, description = "`{}` replays the dead letters"),
    responses((status = 200, description = "What is being replayed", body = Replay)))]
pub(super) async fn replay_webhook(
    state: Arc<State>,
    req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    let state: &State = &state;
    let id = path_id(&params)?;
    let r: ReplayRequest = read_json(state, req).await?;
    let store = &state.store;
    let answer = match r.from_seq {
        Some(from) if from < 1 => return Err(ApiError::invalid("from_seq", "must be 1 or more")),
        Some(from) => {
            state
                .webhooks
                .with_worker_stopped(&id, || store.rewind_webhook(&id, Seq(from)))
                .await?;
            let oldest = store
                .events_after(Seq(0), 1, crate::events::EventFilter::ALL)?
                .first()
                .map(|e| e.seq.0);
            Replay {
                webhook_id: id.to_string(),
                replaying: ReplayKind::FromSeq,
                from_seq: Some(from),
                oldest_stored_seq: Some(oldest),
                count: None,
            }
        }
        None => {
            let n = state
                .webhooks
                .with_worker_stopped(&id, || store.mark_dead_letters_for_replay(&id))
                .await?;
            Replay {
                webhook_id: id.to_string(),
                replaying: ReplayKind::DeadLetters,
                from_seq: None,
                oldest_stored_seq: None,
                count: Some(n as u64),
            }
        }
    };
    ok_json(&answer)
}

/// A new signing secret, returned once; the worker signs with it from its next batch.
#[utoipa::path(post, path = "/api/v1/webhooks/{webhook_id}/rotate_secret", tag = "webhooks",
    params(WebhookPath),
    responses((status = 200, description = "The new secret, shown this once", body = NewSecret)))]
pub(super) async fn rotate_webhook_secret(
    state: Arc<State>,
    _req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    let id = path_id(&params)?;
    let secret = SigningKey::generate_secret();
    let store = &state.store;
    state
        .webhooks
        .with_worker_stopped(&id, || store.set_webhook_secret(&id, &secret))
        .await?;
    tracing::info!(webhook = %id, "webhook secret rotated");
    ok_json(&NewSecret {
        webhook_id: id.to_string(),
        secret,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_webhook_route_is_described_once_with_its_components() {
        let routes = routes();
        let mut ids: Vec<String> = routes
            .iter()
            .map(|r| r.operation.operation_id.clone().unwrap())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 13, "{ids:?}");
        assert!(routes
            .iter()
            .all(|r| r.path.starts_with("/api/v1/webhooks")));
        let create = routes
            .iter()
            .find(|r| r.method == http::Method::POST && r.path == "/api/v1/webhooks")
            .unwrap();
        let mut schemas = Vec::new();
        (create.schemas)(&mut schemas);
        let names: Vec<&str> = schemas.iter().map(|(n, _)| n.as_str()).collect();
        for name in ["WebhookConfig", "WebhookView", "WebhookPayload"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
    }

    #[test]
    fn the_test_routes_example_is_a_body_it_takes() {
        let doc = serde_json::to_value(<probe::TestRequest as PartialSchema>::schema()).unwrap();
        check_test(doc["example"].to_string().as_bytes()).unwrap();
    }
}
