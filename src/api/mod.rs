//! The LAN API: hyper 1, FaceCV's paths and bodies, one file per resource.
//!
//! `server` owns the accept loop and graceful shutdown; `route` maps a path to a handler; handlers
//! return `Result<Response, ApiError>` and [`error::ApiError`] decides status codes in one place.

mod cameras;
mod enrol;
pub mod error;
mod events;
mod faces;
mod mqtt;
mod ops;
mod streams;
mod webhooks;

pub use faces::ApiEngine;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::ApiConfig;
use crate::delivery::mqtt::Bridge;
use crate::delivery::Delivery;
use crate::metrics::Metrics;
use crate::pipeline::Cameras;
use crate::store::{Outbox, Store};
pub use error::ApiError;

/// Connections served at once; more wait in the kernel's backlog. An appliance has few clients.
const MAX_CONNECTIONS: usize = 64;
/// How long in-flight requests get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// A response body: a whole JSON document, or a stream (server-sent events).
pub type Body = BoxBody<Bytes, Infallible>;
pub type ApiResult = Result<Response<Body>, ApiError>;

/// What every handler may use.
pub struct State {
    pub store: Store,
    pub outbox: Outbox,
    pub delivery: Arc<Delivery>,
    pub cameras: Arc<Cameras>,
    /// The engine that analyses uploaded images (cameras have their own).
    pub engine: Arc<std::sync::Mutex<ApiEngine>>,
    /// `None` without `[mqtt]` or with `mqtt.enabled = false`.
    pub mqtt: Option<Arc<Bridge>>,
    pub metrics: Arc<Metrics>,
    pub config: ApiConfig,
    pub started: Instant,
    pub stopping: CancellationToken,
}

/// Serves the API on `listener` until `stop` is cancelled, then lets requests in flight finish.
pub async fn serve(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    let graceful = GracefulShutdown::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stop.cancelled() => break,
            p = limit.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(handle(state, peer, req).await) }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(10))
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some API requests did not finish before shutdown");
    }
}

async fn handle(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let result = match authorize(&state, peer, &req) {
        Ok(()) => route(state, req).await,
        Err(e) => Err(e),
    };
    let response = result.unwrap_or_else(ApiError::into_response);
    tracing::debug!(%peer, %method, path, status = response.status().as_u16(), "api request");
    response
}

fn authorize(state: &State, peer: SocketAddr, req: &Request<Incoming>) -> Result<(), ApiError> {
    match &state.config.token {
        None if is_loopback(peer.ip()) => Ok(()),
        None => Err(ApiError::Forbidden),
        Some(token) => {
            let given = req
                .headers()
                .get(AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if constant_time_eq(given.as_bytes(), token.as_bytes()) {
                Ok(())
            } else {
                Err(ApiError::Unauthorized)
            }
        }
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn route(state: Arc<State>, req: Request<Incoming>) -> ApiResult {
    let state_ref: &State = &state;
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let method = req.method().clone();
    match segments.as_slice() {
        ["health"] => only(&method, Method::GET, || ops::health(state_ref)),
        ["metrics"] => only(&method, Method::GET, || ops::metrics(state_ref)),
        ["api", "v1", "webhooks", rest @ ..] => webhooks::route(state_ref, req, rest).await,
        ["api", "v1", "mqtt", "stats"] => only(&method, Method::GET, || mqtt::stats(state_ref)),
        ["api", "v1", "events"] => only(&method, Method::GET, || events::list(state_ref, &req)),
        ["api", "v1", "events", "trigger"] => {
            if method != Method::POST {
                return Err(ApiError::MethodNotAllowed(method));
            }
            events::trigger(state_ref, req).await
        }
        ["api", "v1", "cameras", rest @ ..] => cameras::route(state_ref, req, rest).await,
        ["api", "v1", "face_recognition_insightface" | "face_recognition_deepface", "recognize", "webcam", "stream"] =>
        {
            if method != Method::GET {
                return Err(ApiError::MethodNotAllowed(method));
            }
            streams::stream(state.clone(), req).await
        }
        ["api", "v1", "insightface" | "face_recognition_insightface", rest @ ..] => {
            faces::route(state_ref, req, rest, false).await
        }
        ["api", "v1", "faces", rest @ ..] => faces::route(state_ref, req, rest, true).await,
        _ => Err(ApiError::NotFound(format!("path {path}"))),
    }
}

fn only(method: &Method, allowed: Method, f: impl FnOnce() -> ApiResult) -> ApiResult {
    if *method == allowed {
        f()
    } else {
        Err(ApiError::MethodNotAllowed(method.clone()))
    }
}

/// Reads a JSON body of at most `api.max_body_kb`; 413 past that, 400 for broken JSON, 422 for
/// JSON of the wrong shape. An empty body reads as `{}` so that bodies with only defaults can be
/// left out.
pub(crate) async fn read_json<T: DeserializeOwned>(
    state: &State,
    req: Request<Incoming>,
) -> Result<T, ApiError> {
    parse_json(&read_body(state, req).await?)
}

/// [`read_json`] on a body already read: apart so that it can be fuzzed without a socket.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    // Two steps, so that broken JSON (400) is told apart from JSON of the wrong shape (422).
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ApiError::InvalidJson(e.to_string()))?;
    Ok(serde_json::from_value(value)?)
}

/// The API's parsers run on bytes as their routes run them, without a socket or a store: the
/// entry points of the fuzz targets and property tests (`crate::fuzzing`).
pub(crate) mod parsers {
    use super::*;

    /// Each JSON body type of the API read from `bytes` and checked as its route checks it
    /// (before anything is stored or dialled): the error each route would answer, or `Ok`.
    pub fn json_bodies(bytes: &[u8]) -> Vec<Result<(), ApiError>> {
        vec![
            parse_json::<crate::config::WebhookConfig>(bytes)
                .and_then(|w| w.validate().map_err(ApiError::from)),
            parse_json::<crate::pipeline::CameraConfig>(bytes)
                .and_then(|c| c.validate().map_err(ApiError::from)),
            events::check_trigger(bytes),
            webhooks::check_test(bytes),
            webhooks::check_replay(bytes),
        ]
    }

    /// A multipart body read as the face routes read it: (files, text fields) or the error.
    pub async fn multipart(content_type: &str, body: Bytes) -> Result<(usize, usize), ApiError> {
        let boundary = multer::parse_boundary(content_type)
            .map_err(|_| ApiError::BadRequest("expected a multipart/form-data body".into()))?;
        let form = faces::parse_form(boundary, body).await?;
        Ok((form.files.len(), form.fields.len()))
    }
}

pub(crate) async fn read_body(state: &State, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    read_body_limit(req, state.config.max_body_kb as usize * 1024).await
}

/// Reads a body of at most `limit` bytes; 413 past that, before it is read whole.
pub(crate) async fn read_body_limit(
    req: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(body) => Ok(body.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::TooLarge(limit)),
        Err(e) => Err(ApiError::BadRequest(format!("cannot read the body: {e}"))),
    }
}

pub(crate) fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("API responses serialise");
    text_response(status, "application/json", body)
}

pub(crate) fn text_response(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .body(Full::new(body.into()).boxed())
        .expect("a static status and content type make a valid response")
}

pub(crate) fn ok_json(value: &impl serde::Serialize) -> ApiResult {
    Ok(json_response(StatusCode::OK, value))
}

/// The query string as key-value pairs, percent-decoded.
pub(crate) fn query(req: &Request<Incoming>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub(crate) fn query_param<T: std::str::FromStr>(
    pairs: &[(String, String)],
    name: &str,
) -> Result<Option<T>, ApiError> {
    match pairs.iter().find(|(k, _)| k == name) {
        None => Ok(None),
        Some((_, v)) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(name, format!("cannot parse {v:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_includes_mapped_v4() {
        assert!(is_loopback("127.0.0.1".parse().unwrap()));
        assert!(is_loopback("::1".parse().unwrap()));
        assert!(is_loopback("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!is_loopback("192.168.1.20".parse().unwrap()));
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
