//! FaceCV's live streams: `GET /api/v1/face_recognition_insightface/recognize/webcam/stream` and
//! its `deepface` twin. They start the camera, answer `text/event-stream` with one
//! `data: {"camera_id","timestamp","faces"}` message per analysed frame while the client stays,
//! and register the ad-hoc `webhook_urls` as webhooks on the same durable path (limited to this
//! camera, batch size 1 as FaceCV had them). When the client leaves, a camera the stream started is
//! stopped, and the ad-hoc webhooks are deleted once they have delivered what they owe.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::{broadcast, mpsc};

use super::limits::StreamPermit;
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

struct StreamParams {
    camera_id: String,
    source: String,
    threshold: Option<f32>,
    fps: f32,
    webhook_urls: Vec<String>,
    webhook_timeout: f64,
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

pub async fn stream(state: Arc<State>, req: Request<Incoming>) -> ApiResult {
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

/// Why a stream ended, as its last message says: `event: end` with `{"reason": ...}`.
fn end_event(reason: &str, state: Option<&str>) -> Bytes {
    let data = match state {
        Some(s) => serde_json::json!({ "reason": reason, "state": s }),
        None => serde_json::json!({ "reason": reason }),
    };
    Bytes::from(format!("event: end\ndata: {data}\n\n"))
}

/// Sends each analysed frame to the client until it leaves or the camera stops; every end but
/// the client's own leaving is told with `event: end`.
async fn forward(
    state: Arc<State>,
    mut live: broadcast::Receiver<Arc<crate::pipeline::runner::LiveFrame>>,
    tx: mpsc::Sender<Bytes>,
    held: Held,
) {
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    let camera = held.camera.clone();
    let end = loop {
        let message = tokio::select! {
            frame = live.recv() => match frame {
                Ok(f) => Bytes::from(format!("data: {}\n\n", serde_json::to_string(&*f).unwrap_or_default())),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break Some(end_event("camera_removed", None)),
            },
            _ = keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
            _ = check.tick() => {
                if state.stopping.is_cancelled() {
                    break Some(end_event("shutdown", None));
                }
                match state.cameras.status(&camera) {
                    Ok(s) if s.running => continue,
                    Ok(s) => break Some(end_event("camera_stopped", Some(&s.state))),
                    Err(_) => break Some(end_event("camera_removed", None)),
                }
            }
        };
        if tx.send(message).await.is_err() {
            break None; // the client left
        }
    };
    if let Some(end) = end {
        let _ = tx.send(end).await;
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
