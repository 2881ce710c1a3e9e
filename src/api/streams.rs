//! FaceCV's live streams: `GET /api/v1/face_recognition_insightface/recognize/webcam/stream` and
//! its `deepface` twin. They start the camera, answer `text/event-stream` with one
//! `data: {"camera_id","timestamp","faces"}` message per analysed frame while the client stays,
//! and register the ad-hoc `webhook_urls` as webhooks on the same durable path (limited to this
//! camera, batch size 1 as FaceCV had them). When the client leaves, a camera the stream started is
//! stopped, and the ad-hoc webhooks are deleted once they have delivered what they owe.
//!
//! A source that cannot be read is told on the stream, not only in the camera's status: each
//! failed attempt to open it sends `event: error` (`retrying: true`) while the camera keeps
//! reopening it with back-off, and the frames resume when it comes back; a source that can never
//! work (a damaged file, a wrong setting) sends `event: error` with `retrying: false`, then
//! `event: end`, and the stream ends.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::{broadcast, mpsc};

use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::limits::StreamPermit;
use super::routes::{route, Params, Route};
use super::stream_cameras::Hold;
use super::{query, query_param, ApiError, ApiResult, State};
use crate::config::check::{check_range, ConfigError};
use crate::pipeline::CameraConfig;
use crate::store::sinks::Origin;
use crate::store::subscription::SinkName;
use crate::store::webhook::{WebhookConfig, WebhookId};

/// How often a comment line keeps proxies from closing a quiet stream (and finds gone clients).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long ad-hoc webhooks may take to drain after their stream ended before they are dropped.
const DRAIN_LIMIT: Duration = Duration::from_secs(600);

/// FaceCV's query parameters, with the ranges [`check_params`] enforces.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamParams {
    /// The camera: one of the config file's or the API's, or a new one made for this stream.
    #[param(value_type = Option<String>, default = "0", pattern = r"^[A-Za-z0-9_.\-]{1,64}$",
        example = "entrance")]
    camera_id: String,
    /// For a new camera: a V4L2 device number, an `rtsp://` or `http(s)://` URL, `synthetic`,
    /// or a video file, picture or folder in `api.media_dir`.
    #[param(value_type = Option<String>, default = "0", example = "synthetic")]
    source: String,
    /// For a new camera: the similarity a face needs to be named; absent, the calibrated one.
    #[param(minimum = 0, maximum = 1, example = 0.6)]
    threshold: Option<f32>,
    /// For a new camera: frames analysed per second.
    #[param(value_type = Option<f32>, minimum = 0.1, maximum = 60, default = 10, example = 10)]
    fps: f32,
    /// Comma-separated http(s) URLs (at most 8) that receive this camera's events while the
    /// stream lasts, and until they have delivered them.
    #[param(value_type = Option<String>, example = "http://127.0.0.1:8080/webhook")]
    webhook_urls: Vec<String>,
    /// Seconds each ad-hoc webhook waits for its receiver.
    #[param(value_type = Option<f64>, minimum = 1, maximum = 300, default = 30, example = 30)]
    webhook_timeout: f64,
    /// Retries of each ad-hoc webhook after its first attempt.
    #[param(value_type = Option<u32>, minimum = 0, maximum = 10, default = 3, example = 3)]
    webhook_retry_count: u32,
}

fn params(req: &Request<Incoming>) -> Result<StreamParams, ApiError> {
    let q = query(req);
    let text = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    Ok(StreamParams {
        camera_id: text("camera_id").unwrap_or_else(|| "0".into()),
        source: text("source").unwrap_or_else(|| "0".into()),
        threshold: query_param(&q, "threshold")?,
        fps: query_param(&q, "fps")?.unwrap_or(10.0),
        webhook_urls: text("webhook_urls")
            .map(|v| {
                v.split(',')
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        webhook_timeout: query_param(&q, "webhook_timeout")?.unwrap_or(30.0),
        webhook_retry_count: query_param(&q, "webhook_retry_count")?.unwrap_or(3),
    })
}

/// Ad-hoc webhooks one stream may ask for: each is a worker, a cursor and a row in the store.
/// FaceCV's clients pass one or two; eight leaves room and keeps one request from making hundreds.
const MAX_STREAM_WEBHOOKS: usize = 8;

/// Checks what the stream asks for before anything is made, whether or not the camera exists:
/// a stream on a known camera ignores `fps` and `threshold`, but a wrong value is still a mistake
/// worth telling. Returns the ad-hoc webhooks to create, each already validated.
fn check_params(p: &StreamParams) -> Result<Vec<WebhookConfig>, ApiError> {
    check_range("fps", p.fps.into(), 0.1, 60.0, "")?;
    if let Some(t) = p.threshold {
        check_range("threshold", t.into(), 0.0, 1.0, "")?;
    }
    if p.webhook_urls.len() > MAX_STREAM_WEBHOOKS {
        return Err(ApiError::invalid(
            "webhook_urls",
            format!(
                "a stream may have at most {MAX_STREAM_WEBHOOKS} webhooks, got {}",
                p.webhook_urls.len()
            ),
        ));
    }
    let tag = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let mut hooks = Vec::new();
    for (i, url) in p.webhook_urls.iter().enumerate() {
        let mut w = WebhookConfig::new(&format!("stream_{}_{tag}_{i}", p.camera_id), url);
        w.timeout = p.webhook_timeout;
        w.retry_count = p.webhook_retry_count;
        w.batch_size = 1;
        w.camera_ids = Some(vec![p.camera_id.clone()]);
        w.validate().map_err(|e| match e {
            ConfigError::Invalid { key, message } => {
                let field = match key.as_str() {
                    "timeout" | "retry_count" => format!("webhook_{key}"),
                    _ => "webhook_urls".to_owned(),
                };
                ApiError::invalid(field, format!("{url:?}: {message}"))
            }
            other => other.into(),
        })?;
        hooks.push(w);
    }
    Ok(hooks)
}

/// Ad-hoc webhooks that may exist at once, live or draining: twice what open streams may hold, so
/// a client that opens and closes streams in a loop against a receiver that is down cannot pile
/// up hundreds of webhooks that each retry for [`DRAIN_LIMIT`].
pub fn stream_webhook_limit(max_streams: u32) -> usize {
    2 * max_streams as usize * MAX_STREAM_WEBHOOKS
}

/// What a stream holds until it ends; dropped in [`end_stream`], in order.
struct Held {
    camera: String,
    hold: Hold,
    hooks: Vec<(WebhookId, StreamPermit)>,
    permit: StreamPermit,
}

/// Both stream paths: FaceCV's InsightFace one, and its DeepFace twin (the same engine here).
pub(super) fn routes() -> Vec<Route> {
    let mut stream = route!(recognize_webcam_stream);
    stream.schemas = message_schemas;
    let deepface = stream.alias("/api/v1/face_recognition_deepface/recognize/webcam/stream");
    vec![stream, deepface]
}

/// One server-sent event as a client's parser hands it over (the body is a sequence of them):
/// what OpenAPI tools, Schemathesis among them, check each event against. `data` is JSON text:
/// a `LiveFrame`, or with `event` a `StreamError` or `StreamEnd`.
#[derive(ToSchema)]
#[allow(dead_code)] // Describes the stream's events; they are written by `sse_event` and friends.
struct SseEvent {
    /// `message` (a client's name for an event without `event:`) for frames; `error` or `end`.
    #[schema(nullable = false)]
    event: Option<SseEventName>,
    /// The message, JSON text.
    #[schema(
        example = "{\"camera_id\":\"entrance\",\"timestamp\":\"2025-05-26T10:30:45.123Z\",\"faces\":[]}"
    )]
    data: String,
    #[schema(nullable = false)]
    id: Option<String>,
    #[schema(nullable = false)]
    retry: Option<u64>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum SseEventName {
    Message,
    Error,
    End,
}

/// The stream's messages, as components of the document (the body itself is a string).
fn message_schemas(
    out: &mut Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )>,
) {
    fn add<T: ToSchema>(
        out: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        out.push((T::name().into_owned(), T::schema()));
        T::schemas(out);
    }
    add::<crate::pipeline::runner::LiveFrame>(out);
    add::<StreamError>(out);
    add::<StreamEnd>(out);
    add::<SseEvent>(out);
    add::<SseEventName>(out);
}

/// Recognises faces on a camera live, as server-sent events, with ad-hoc webhooks.
///
/// Starts the camera (a new one from `source`, or a known one as it is) and sends, while the
/// client stays: `data: <LiveFrame>` per analysed frame (`#/components/schemas/LiveFrame`; an
/// Unknown face's `confidence` is its best similarity in the gallery), `: keep-alive` comments,
/// `event: error` + `data: <StreamError>` each time the source cannot be read (`retrying` says
/// whether the camera keeps trying), and last, unless the client left, `event: end` + `data:
/// <StreamEnd>`. The ad-hoc `webhook_urls` receive the camera's events (batch size 1).
#[utoipa::path(get, path = "/api/v1/face_recognition_insightface/recognize/webcam/stream",
    tag = "streams", params(StreamParams),
    responses((status = 200, description = "Server-sent events: `data:` LiveFrame messages, \
        `event: error` StreamError and `event: end` StreamEnd (see the schemas)",
        content_type = "text/event-stream", body = SseEvent)))]
pub(super) async fn recognize_webcam_stream(
    state: Arc<State>,
    req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    let p = params(&req)?;
    let webhooks = check_params(&p)?;
    let permit = state.streams.try_acquire().inspect_err(|_| {
        state.metrics.api.streams_refused.inc();
    })?;
    let hook_permits = state
        .stream_webhooks
        .try_take(webhooks.len())
        .ok_or_else(|| ApiError::Busy {
            code: "too_many_stream_webhooks",
            message: format!(
                "{} ad-hoc webhooks of ended streams are still delivering; try again when they \
                 are done",
                state.stream_webhooks.in_use()
            ),
            retry_after: 30,
        })?;
    let camera = p.camera_id.clone();
    // A camera of the config or the API is used as it is; another is made for this stream.
    let hold = state
        .stream_cameras
        .join(&state.cameras, &camera, || {
            let mut c = CameraConfig::new(&camera, &p.source);
            c.fps = p.fps;
            c.threshold = p.threshold;
            c.autostart = false;
            c
        })
        .await?;
    // The webhooks first, so that they see the camera's `stream_started`.
    let hooks = add_webhooks(&state, webhooks).await?;
    let hooks = hooks.into_iter().zip(hook_permits).collect();
    let held = Held {
        camera: camera.clone(),
        hold,
        hooks,
        permit,
    };
    if let Err(e) = held.hold.start().await {
        end_stream(state, held);
        return Err(e);
    }
    let live = match state.cameras.subscribe(&camera) {
        Ok(l) => l,
        Err(e) => {
            end_stream(state, held);
            return Err(e.into());
        }
    };
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(forward(state, live, tx, held));
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    }));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(body.boxed())
        .expect("a valid response"))
}

/// Creates the stream's webhooks, all or none: a failure deletes those already made.
async fn add_webhooks(
    state: &State,
    webhooks: Vec<WebhookConfig>,
) -> Result<Vec<WebhookId>, ApiError> {
    let mut hooks = Vec::new();
    for w in webhooks {
        match state.store.create_webhook(&w, Origin::Stream) {
            Ok(record) => {
                state.webhooks.sync(&record.id()).await;
                hooks.push(record.id());
            }
            Err(e) => {
                for id in hooks {
                    if state.store.delete_webhook(&id).is_ok() {
                        state.webhooks.sync(&id).await;
                    }
                }
                return Err(e.into());
            }
        }
    }
    Ok(hooks)
}

/// The stream's last message when it ends for another reason than its client leaving:
/// `event: end`.
#[derive(Serialize, ToSchema)]
struct StreamEnd {
    /// `camera_stopped`, `camera_removed` or `shutdown`.
    #[schema(example = "camera_stopped")]
    reason: &'static str,
    /// With `camera_stopped`: the camera's state (`stopped`, `ended`, `error`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "error")]
    state: Option<String>,
}

fn end_event(reason: &'static str, state: Option<&str>) -> Bytes {
    let end = StreamEnd {
        reason,
        state: state.map(str::to_owned),
    };
    sse("end", &end)
}

/// `event: error`: the camera's source cannot be read. Shaped as every error answer of the API
/// (`error` with `code` and `message`, FastAPI's `detail`), with FaceCV's `camera_id` beside it:
/// FaceCV's own streams sent `{"error", "camera_id"}` in a `data:` line, so clients that read
/// only `data:` lines and look for `error` see it too.
#[derive(Serialize, ToSchema)]
struct StreamError {
    #[schema(example = "entrance")]
    camera_id: String,
    error: StreamErrorCause,
    /// The message again, where FastAPI clients read it.
    #[schema(example = "cannot open rtsp://10.0.0.7/stream: connection refused")]
    detail: String,
    /// Whether the camera keeps reopening the source (the stream goes on, and frames resume when
    /// it is back); `false` is followed by `event: end`.
    retrying: bool,
    /// While retrying: when the next attempt is due (RFC 3339, UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    next_retry_at: Option<String>,
    /// Attempts to reopen the source so far.
    reconnects: u64,
}

#[derive(Serialize, ToSchema)]
struct StreamErrorCause {
    /// `source_unavailable` (retrying) or `source_failed` (given up).
    #[schema(example = "source_unavailable")]
    code: &'static str,
    message: String,
}

fn error_event(camera: &str, status: &crate::pipeline::CameraStatus, why: &str) -> Bytes {
    let retrying = status.running;
    let error = StreamError {
        camera_id: camera.to_owned(),
        error: StreamErrorCause {
            code: if retrying {
                "source_unavailable"
            } else {
                "source_failed"
            },
            message: why.to_owned(),
        },
        detail: why.to_owned(),
        retrying,
        next_retry_at: status.next_retry_at.clone(),
        reconnects: status.reconnects,
    };
    sse("error", &error)
}

/// One named server-sent event with a JSON message.
fn sse(event: &str, data: &impl Serialize) -> Bytes {
    let data = serde_json::to_string(data).expect("stream messages serialise");
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

/// What the stream last told of its camera's source, so that each failed attempt is told once.
#[derive(Default)]
struct SourceWatch {
    told: Option<(String, u64)>,
}

impl SourceWatch {
    /// The messages the camera's status calls for, and whether the stream ends with them.
    fn look(
        &mut self,
        camera: &str,
        status: &crate::pipeline::CameraStatus,
    ) -> (Option<Bytes>, Option<Bytes>) {
        if status.running {
            let Some(why) = &status.source_error else {
                self.told = None; // the source is back
                return (None, None);
            };
            let now = (why.clone(), status.reconnects);
            if self.told.as_ref() == Some(&now) {
                return (None, None);
            }
            self.told = Some(now);
            return (Some(error_event(camera, status, why)), None);
        }
        let error = match (&status.last_error, status.state.as_str()) {
            (Some(why), "error" | "source_lost") => Some(error_event(camera, status, why)),
            _ => None,
        };
        (
            error,
            Some(end_event("camera_stopped", Some(&status.state))),
        )
    }
}

/// Sends each analysed frame to the client until it leaves or the camera stops; every end but
/// the client's own leaving is told with `event: end`, and a source that cannot be read with
/// `event: error`.
async fn forward(
    state: Arc<State>,
    mut live: broadcast::Receiver<Arc<crate::pipeline::runner::LiveFrame>>,
    tx: mpsc::Sender<Bytes>,
    held: Held,
) {
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    let mut watch = SourceWatch::default();
    let camera = held.camera.clone();
    let end = loop {
        let message = tokio::select! {
            frame = live.recv() => match frame {
                Ok(f) => Bytes::from(format!("data: {}\n\n", serde_json::to_string(&*f).unwrap_or_default())),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break vec![end_event("camera_removed", None)],
            },
            _ = keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
            _ = check.tick() => {
                if state.stopping.is_cancelled() {
                    break vec![end_event("shutdown", None)];
                }
                match state.cameras.status(&camera) {
                    Ok(s) => match watch.look(&camera, &s) {
                        (None, None) => continue,
                        (Some(error), None) => error,
                        (error, Some(end)) => break error.into_iter().chain([end]).collect(),
                    },
                    Err(_) => break vec![end_event("camera_removed", None)],
                }
            }
        };
        if tx.send(message).await.is_err() {
            break Vec::new(); // the client left
        }
    };
    for message in end {
        if tx.send(message).await.is_err() {
            break;
        }
    }
    end_stream(state, held);
}

/// Lets the stream's camera go (stopped or removed if this was its last stream), then its place
/// under the cap, then the ad-hoc webhooks once they have delivered what they owe.
fn end_stream(state: Arc<State>, held: Held) {
    tokio::spawn(async move {
        let Held {
            camera,
            hold,
            hooks,
            permit,
        } = held;
        drop(hold);
        state.stream_cameras.settled(&camera).await;
        // The camera (and its engine's memory) is gone: the place can go to the next stream.
        drop(permit);
        tracing::info!(camera, "stream ended");
        // `stream_stopped` was just recorded: let the ad-hoc webhooks deliver it, then go.
        let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
        for (id, _place) in hooks {
            loop {
                let drained = state
                    .store
                    .webhook(&id)
                    .and_then(|r| {
                        state
                            .store
                            .sink_backlog(&SinkName::webhook(&id), r.config.filter())
                    })
                    .map(|(backlog, _)| backlog == 0)
                    .unwrap_or(true);
                if drained || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if state.store.delete_webhook(&id).is_ok() {
                state.webhooks.sync(&id).await;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_stream_paths_are_described_with_their_messages() {
        let routes = routes();
        let paths: Vec<&str> = routes.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/api/v1/face_recognition_insightface/recognize/webcam/stream",
                "/api/v1/face_recognition_deepface/recognize/webcam/stream"
            ]
        );
        assert_ne!(
            routes[0].operation.operation_id,
            routes[1].operation.operation_id
        );
        let mut schemas = Vec::new();
        (routes[1].schemas)(&mut schemas);
        let names: Vec<&str> = schemas.iter().map(|(n, _)| n.as_str()).collect();
        for name in ["LiveFrame", "LiveFace", "StreamError", "StreamEnd"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
        let doc = serde_json::to_value(&routes[0].operation).unwrap();
        let params: Vec<&str> = doc["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            params,
            [
                "camera_id",
                "source",
                "threshold",
                "fps",
                "webhook_urls",
                "webhook_timeout",
                "webhook_retry_count"
            ]
        );
        assert!(
            doc["responses"]["200"]["content"]["text/event-stream"].is_object(),
            "{doc}"
        );
    }
}
