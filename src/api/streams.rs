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

use super::{query, query_param, ApiError, ApiResult, State};
use crate::config::WebhookConfig;
use crate::pipeline::{CameraConfig, CameraOrigin};
use crate::store::sinks::{webhook_sink, Origin};

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

pub async fn stream(state: Arc<State>, req: Request<Incoming>) -> ApiResult {
    let p = params(&req)?;
    let camera = p.camera_id.clone();
    // A camera of the config or the API is used as it is; another is made for this stream.
    let adhoc = state.cameras.status(&camera).is_err();
    if adhoc {
        let mut c = CameraConfig::new(&camera, &p.source);
        c.fps = p.fps;
        c.threshold = p.threshold;
        c.autostart = false;
        state.cameras.add(c, CameraOrigin::Stream)?;
    }
    let was_running = !adhoc && state.cameras.status(&camera)?.running;
    // The webhooks first, so that they see the camera's `stream_started`.
    let hooks = match add_webhooks(&state, &p).await {
        Ok(h) => h,
        Err(e) => {
            end_stream(
                state.clone(),
                camera.clone(),
                adhoc,
                was_running,
                Vec::new(),
            );
            return Err(e);
        }
    };
    let cameras = state.cameras.clone();
    let id = camera.clone();
    let started = tokio::task::spawn_blocking(move || cameras.start(&id))
        .await
        .map_err(|_| ApiError::Unavailable)?;
    if let Err(e) = started {
        end_stream(state.clone(), camera.clone(), adhoc, was_running, hooks);
        return Err(e.into());
    }
    let live = state.cameras.subscribe(&camera)?;
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    tokio::spawn(forward(
        state.clone(),
        camera,
        live,
        tx,
        adhoc,
        was_running,
        hooks,
    ));
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

async fn add_webhooks(
    state: &State,
    p: &StreamParams,
) -> Result<Vec<crate::config::WebhookId>, ApiError> {
    let tag = &uuid::Uuid::now_v7().simple().to_string()[20..];
    let mut hooks = Vec::new();
    for (i, url) in p.webhook_urls.iter().enumerate() {
        let mut w = WebhookConfig::new(&format!("stream_{}_{tag}_{i}", p.camera_id), url);
        w.timeout = p.webhook_timeout;
        w.retry_count = p.webhook_retry_count;
        w.batch_size = 1;
        w.camera_ids = Some(vec![p.camera_id.clone()]);
        w.validate()?;
        let record = state.store.create_webhook(&w, Origin::Stream)?;
        state.delivery.sync(&record.id()).await;
        hooks.push(record.id());
    }
    Ok(hooks)
}

/// Sends each analysed frame to the client until it leaves or the camera stops.
async fn forward(
    state: Arc<State>,
    camera: String,
    mut live: broadcast::Receiver<Arc<crate::pipeline::runner::LiveFrame>>,
    tx: mpsc::Sender<Bytes>,
    adhoc: bool,
    was_running: bool,
    hooks: Vec<crate::config::WebhookId>,
) {
    let mut check = tokio::time::interval(Duration::from_secs(1));
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    loop {
        let message = tokio::select! {
            frame = live.recv() => match frame {
                Ok(f) => Bytes::from(format!("data: {}\n\n", serde_json::to_string(&*f).unwrap_or_default())),
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
            _ = check.tick() => {
                if state.cameras.status(&camera).map(|s| s.running).unwrap_or(false) && !state.stopping.is_cancelled() {
                    continue;
                }
                let _ = tx.send(Bytes::from_static(b"event: end\ndata: {\"reason\":\"camera stopped\"}\n\n")).await;
                break;
            }
        };
        if tx.send(message).await.is_err() {
            break; // the client left
        }
    }
    end_stream(state, camera, adhoc, was_running, hooks);
}

fn end_stream(
    state: Arc<State>,
    camera: String,
    adhoc: bool,
    was_running: bool,
    hooks: Vec<crate::config::WebhookId>,
) {
    tokio::spawn(async move {
        let cameras = state.cameras.clone();
        let id = camera.clone();
        let _ = tokio::task::spawn_blocking(move || {
            if adhoc {
                cameras.remove(&id)
            } else if !was_running {
                cameras.stop(&id)
            } else {
                Ok(())
            }
        })
        .await;
        tracing::info!(camera, "stream ended");
        // `stream_stopped` was just recorded: let the ad-hoc webhooks deliver it, then go.
        let deadline = tokio::time::Instant::now() + DRAIN_LIMIT;
        for id in hooks {
            loop {
                let drained = state
                    .store
                    .webhook(&id)
                    .and_then(|r| {
                        state
                            .store
                            .sink_backlog(&webhook_sink(&id), r.config.filter())
                    })
                    .map(|(backlog, _)| backlog == 0)
                    .unwrap_or(true);
                if drained || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            if state.store.delete_webhook(&id).is_ok() {
                state.delivery.sync(&id).await;
            }
        }
    });
}
