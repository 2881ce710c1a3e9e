//! The LAN API: hyper 1, FaceCV's paths and bodies, one file per resource.
//!
//! `server` owns the accept loop and graceful shutdown; `route` maps a path to a handler; handlers
//! return `Result<Response, ApiError>` and [`error::ApiError`] decides status codes in one place.

mod actions;
mod attempts;
mod bodies;
mod camera_enrol;
mod cameras;
mod config;
mod console;
mod engine;
mod enrol;
pub(crate) mod error;
mod events;
mod facecv;
mod faces;
mod form;
mod guard;
pub(crate) mod limits;
mod live;
mod mqtt;
mod openapi;
mod ops;
mod people;
mod routes;
mod server;
mod session;
mod snapshots;
pub(crate) mod stream_cameras;
mod streams;
mod system;
pub mod tls;
pub(crate) mod token;
mod webhooks;
mod wire;

pub use config::ApiConfig;
pub use engine::ApiEngine;
pub use server::Listeners;
pub use session::Sessions;
pub use streams::stream_webhook_limit;
pub use system::SystemInfo;
pub use token::ApiToken;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::delivery::mqtt::Bridge;
use crate::delivery::Webhooks;
use crate::metrics::Metrics;
use crate::pipeline::Cameras;
use crate::shutdown::Shutdown;
use crate::store::{Outbox, Store};
pub use error::ApiError;

/// A response body: a whole JSON document, or a stream (server-sent events).
pub type Body = BoxBody<Bytes, Infallible>;
pub type ApiResult = Result<Response<Body>, ApiError>;

/// What every handler may use.
pub struct State {
    pub store: Store,
    pub outbox: Outbox,
    pub webhooks: Arc<Webhooks>,
    pub cameras: Arc<Cameras>,
    /// The engine that analyses uploaded images (cameras have their own).
    pub engine: Arc<std::sync::Mutex<ApiEngine>>,
    /// The models and the last engine failure, for `/health`.
    pub vision: Arc<crate::vision::VisionHealth>,
    /// `None` without `[mqtt]` or with `mqtt.enabled = false`.
    pub mqtt: Option<Arc<Bridge>>,
    /// The GPIO actions: claimed, left out, or no GPIO here.
    pub gpio: Arc<crate::actions::GpioStatus>,
    pub metrics: Arc<Metrics>,
    pub config: ApiConfig,
    pub started: Instant,
    /// Cancelled when the API stops (the first step of the appliance's stop): new events are
    /// refused and live streams end.
    pub stopping: Shutdown,
    /// The cap on live streams (`api.max_streams`); anything that streams takes a permit.
    pub streams: limits::StreamSlots,
    /// The cap on streams' ad-hoc webhooks, live or still delivering after their stream ended.
    pub stream_webhooks: limits::StreamSlots,
    /// Which cameras live streams hold, so that the last one to leave stops what they started.
    pub(crate) stream_cameras: stream_cameras::StreamCameras,
    /// The HTTPS listener and its certificate, for `/health`; `None` without `api.tls_listen`.
    pub https: Option<HttpsInfo>,
    /// The token in force (the state folder's or `api.token`), changeable by a rotation.
    pub token: Arc<ApiToken>,
    /// The console's sign-in sessions.
    pub sessions: Sessions,
    /// What `GET /api/v1/system` tells.
    pub system: SystemInfo,
}

/// What `/health` says about HTTPS: where, and which certificate, so that a script or a person
/// can check the fingerprint a browser shows.
#[derive(Debug, Clone)]
pub struct HttpsInfo {
    pub addr: SocketAddr,
    pub fingerprint: String,
    pub source: tls::CertSource,
}

/// Serves the API on `listeners` until `stop` is cancelled, then lets requests in flight finish.
/// Connection limits and read timeouts: [`server`].
pub async fn serve(listeners: Listeners, state: Arc<State>, stop: Shutdown) {
    server::serve(listeners, state, stop).await
}

async fn handle(state: Arc<State>, peer: SocketAddr, mut req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let result = match authorize(&state, peer, &req) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            req.extensions_mut().insert(session::Peer(peer));
            // A handler that panics (a bug) answers 500 and keeps the connection, instead of
            // hyper dropping it without an answer; the panic itself is in the log.
            use futures_util::FutureExt;
            std::panic::AssertUnwindSafe(route(state, req))
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(ApiError::Internal(format!(
                        "{method} {path} failed on a bug"
                    )))
                })
        }
        Err(e) => {
            drain_refused(&state, req).await;
            Err(e)
        }
    };
    let response = result.unwrap_or_else(ApiError::into_response);
    tracing::debug!(%peer, %method, path, status = response.status().as_u16(), "api request");
    response
}

/// Reads (and drops) a refused request's body, at most `api.max_body_kb` and for at most 2 s.
/// Closing a socket whose request body is still unread makes the kernel answer with a reset,
/// which can destroy the 403 or 401 before the client reads it: the client would see a broken
/// connection instead of why it was refused.
async fn drain_refused(state: &State, req: Request<Incoming>) {
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), read_body(state, req)).await;
}

/// Who may ask (a loopback peer without a token; with one, its holder or a signed-in browser;
/// anyone for the console's pages: `session`), then whether a browser was made to ask (`guard`,
/// for every path).
fn authorize(
    state: &State,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Result<session::Caller, ApiError> {
    // A signed snapshot link stands for the token, for that one GET (`snapshots`).
    if snapshots::signed_snapshot(state, req) {
        guard::check(req, true)?;
        return Ok(session::Caller::Anonymous);
    }
    let caller = session::identify(state, peer, req)?;
    guard::check(req, state.token.is_set())?;
    Ok(caller)
}

fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Every route of the table: each module lists its own (`routes()` beside its handlers).
fn table() -> Vec<routes::Route> {
    let modules: Vec<Vec<routes::Route>> = vec![
        openapi::routes(),
        console::routes(),
        ops::routes(),
        mqtt::routes(),
        actions::routes(),
        session::routes(),
        system::routes(),
        events::routes(),
        snapshots::routes(),
        cameras::routes(),
        people::routes(),
        faces::routes(),
        webhooks::routes(),
        streams::routes(),
        facecv::routes(),
    ];
    modules.into_iter().flatten().collect()
}

static TABLE: std::sync::LazyLock<routes::Table> =
    std::sync::LazyLock::new(|| routes::Table::new(table()));

async fn route(state: Arc<State>, req: Request<Incoming>) -> ApiResult {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let decoded = path_segments(&path)?;
    let method = req.method().clone();
    match TABLE.find(&method, &decoded) {
        routes::Lookup::Found(route, params) => (route.handler)(state, req, params).await,
        routes::Lookup::WrongMethod(allowed) => Ok(method_not_allowed(method, &allowed)),
        routes::Lookup::Missing => Err(ApiError::NotFound(format!("path {path}"))),
    }
}

/// 405, with `Allow` naming the methods the path has (from the table), as RFC 9110 asks: a
/// client (or a fuzzer) learns what it may send instead.
fn method_not_allowed(method: Method, allowed: &[Method]) -> Response<Body> {
    let mut response = ApiError::MethodNotAllowed(method).into_response();
    let allow: Vec<&str> = allowed.iter().map(Method::as_str).collect();
    let value =
        http::HeaderValue::from_str(&allow.join(", ")).expect("method names make a valid header");
    response.headers_mut().insert(http::header::ALLOW, value);
    response
}

/// The path's segments, each percent-decoded as a path is (`%20` is a space, `+` is a plus: form
/// decoding belongs to query strings), so that every route sees a name or id as the client meant
/// it. A `%2F` decodes inside its segment and never splits the path.
fn path_segments(path: &str) -> Result<Vec<String>, ApiError> {
    path.split('/')
        .skip(1)
        .map(|seg| {
            percent_encoding::percent_decode_str(seg)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| ApiError::BadRequest("the path is not UTF-8 once decoded".into()))
        })
        .collect()
}

/// Reads a JSON body of at most `api.max_body_kb`; 413 past that, 415 unless it is sent as JSON,
/// 400 for broken JSON, 422 for JSON of the wrong shape. An empty body reads as `{}` so that
/// bodies with only defaults can be left out.
pub(crate) async fn read_json<T: DeserializeOwned>(
    state: &State,
    req: Request<Incoming>,
) -> Result<T, ApiError> {
    let is_json = is_json(req.headers());
    let bytes = read_body(state, req).await?;
    if !is_json && !bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(not_json());
    }
    parse_json(&bytes)
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

/// Whether the body is declared JSON: `application/json` or any `type/subtype+json`. Browsers
/// send `text/plain` and forms to other sites freely, JSON never without asking (see `guard`).
pub(crate) fn is_json(headers: &http::HeaderMap) -> bool {
    let Some(ct) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.split_once('/') {
        Some((kind, sub)) => {
            !kind.is_empty() && (essence == "application/json" || sub.ends_with("+json"))
        }
        None => false,
    }
}

/// The 415 for a body that is not declared JSON.
pub(crate) fn not_json() -> ApiError {
    ApiError::UnsupportedMedia {
        code: "unsupported_media_type",
        message: "send the body as JSON with Content-Type: application/json (curl: --json or \
                  -H 'Content-Type: application/json')"
            .into(),
    }
}

/// The API's parsers run on bytes as their routes run them, without a socket or a store: the
/// entry points of the fuzz targets and property tests (`crate::fuzzing`).
pub(crate) mod parsers {
    use super::*;

    /// Each JSON body type of the API read from `bytes` and checked as its route checks it
    /// (before anything is stored or dialled): the error each route would answer, or `Ok`.
    pub fn json_bodies(bytes: &[u8]) -> Vec<Result<(), ApiError>> {
        vec![
            parse_json::<crate::store::webhook::WebhookConfig>(bytes)
                .and_then(|w| w.validate().map_err(ApiError::from)),
            parse_json::<crate::pipeline::CameraConfig>(bytes)
                .and_then(|c| c.validate().map_err(ApiError::from)),
            events::check_trigger(bytes),
            webhooks::check_test(bytes),
            webhooks::check_replay(bytes),
            people::check_rename(bytes),
            snapshots::check_enrol(bytes),
        ]
    }

    /// A multipart body read as the face routes read it: (files, text fields) or the error.
    pub async fn multipart(content_type: &str, body: Bytes) -> Result<(usize, usize), ApiError> {
        let boundary = multer::parse_boundary(content_type)
            .map_err(|_| ApiError::BadRequest("expected a multipart/form-data body".into()))?;
        let form = form::parse_form(boundary, body).await?;
        Ok((form.files.len(), form.fields.len()))
    }
}

pub(crate) async fn read_body(state: &State, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    read_body_limit(req, state.config.max_body_kb as usize * 1024).await
}

/// Reads a body of at most `limit` bytes; 413 past that, before it is read whole; 408 when the
/// client stalls (see [`limits::read_body_within`] for the deadlines).
pub(crate) async fn read_body_limit(
    req: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    limits::read_body_within(req, limit).await
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

/// An empty body (204 answers).
pub(crate) fn empty_body() -> Body {
    Full::new(Bytes::new()).boxed()
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
}
