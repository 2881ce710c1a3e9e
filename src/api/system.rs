//! The console's System page: what runs here (version, device id, the configuration in use with
//! its secrets hidden, the certificate), the store's integrity on demand, and rotating the token.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::ops::HttpsReport;
use super::routes::{route, Params, Route};
use super::session::Caller;
use super::token::TokenSource;
use super::{ok_json, ApiError, ApiResult, State};
use crate::events::format_timestamp;

/// The longest an integrity check asked for over the API may take. `quick_check` reads every page
/// once: a few seconds for a store of hundreds of MB on a Pi's card.
const CHECK_BUDGET: Duration = Duration::from_secs(120);

/// What the appliance was started with, for `GET /api/v1/system`.
pub struct SystemInfo {
    /// The file `serve` was given; `None` for the embedded default.
    pub config_file: Option<PathBuf>,
    /// The configuration in use as JSON, every secret already replaced by `"<redacted>"`.
    pub config: Value,
    /// The appliance's id in MQTT topics and Home Assistant (`mqtt.device_id`, by default the host
    /// name), the same one whether MQTT is configured or not.
    pub device_id: String,
    /// An integrity check is running (one at a time: each reads the whole store).
    checking: Arc<AtomicBool>,
}

impl SystemInfo {
    pub fn new(config_file: Option<PathBuf>, config: Value, device_id: String) -> SystemInfo {
        SystemInfo {
            config_file,
            config,
            device_id,
            checking: Arc::default(),
        }
    }
}

pub(super) fn routes() -> Vec<Route> {
    vec![
        route!(system_info),
        route!(rotate_token),
        route!(check_integrity),
    ]
}

/// `GET /api/v1/system`.
#[derive(Serialize, ToSchema)]
pub(super) struct SystemAnswer {
    version: &'static str,
    /// The id in MQTT topics and Home Assistant (`mqtt.device_id`, by default the host name).
    device_id: String,
    /// `null` when the system does not say.
    hostname: Option<String>,
    uptime_seconds: u64,
    /// The file `serve` was given; `null` for the embedded default.
    #[schema(value_type = Option<String>)]
    config_file: Option<PathBuf>,
    /// The configuration in use, every secret replaced by `"<redacted>"`.
    #[schema(value_type = Object)]
    config: Value,
    token_source: TokenSource,
    /// `null` without `api.tls_listen`.
    https: Option<HttpsReport>,
    store: SystemStore,
}

#[derive(Serialize, ToSchema)]
struct SystemStore {
    #[schema(value_type = String)]
    path: PathBuf,
    used_bytes: u64,
    quota_bytes: u64,
}

/// `POST /api/v1/system/token`.
#[derive(Serialize, ToSchema)]
pub(super) struct Rotated {
    /// The new token, shown this once.
    token: String,
    /// The state folder's file it was written to, which wins over `api.token` from now on.
    #[schema(value_type = String)]
    written_to: PathBuf,
    /// Always `state`.
    in_effect: &'static str,
}

/// `POST /api/v1/system/integrity`.
#[derive(Serialize, ToSchema)]
pub(super) struct IntegrityAnswer {
    ok: bool,
    /// RFC 3339, UTC.
    checked_at: String,
    /// SQLite's words for the first problems found; empty when ok.
    messages: Vec<String>,
}

/// What runs here: version, device id, the configuration in use, the certificate, the store.
///
/// The configuration's secrets (the API token, webhook secrets and header values, the MQTT
/// password, any key named like a secret) are replaced by `"<redacted>"`.
#[utoipa::path(get, path = "/api/v1/system", tag = "system",
    responses((status = 200, description = "The appliance and its configuration", body = SystemAnswer)))]
pub(super) async fn system_info(
    state: Arc<State>,
    _req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    let health = state.store.health();
    let used = state.store.used_bytes().unwrap_or(health.used_bytes);
    ok_json(&SystemAnswer {
        version: env!("CARGO_PKG_VERSION"),
        device_id: state.system.device_id.clone(),
        hostname: super::tls::hostname(),
        uptime_seconds: state.started.elapsed().as_secs(),
        config_file: state.system.config_file.clone(),
        config: state.system.config.clone(),
        token_source: state.token.source(),
        https: state.https.as_ref().map(HttpsReport::from),
        store: SystemStore {
            path: state.store.path().to_owned(),
            used_bytes: used,
            quota_bytes: health.quota_bytes,
        },
    })
}

/// Rotates the API token.
///
/// A new token in the state folder, in force at once; every session but the caller's ends (a
/// stolen cookie goes with the old token). Bearer clients must be given the new token.
#[utoipa::path(post, path = "/api/v1/system/token", tag = "system",
    responses(
        (status = 200, description = "The new token, shown once, and where it went", body = Rotated),
        (status = 500, description = "The token file could not be written")))]
pub(super) async fn rotate_token(
    state: Arc<State>,
    req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    let keep = match req.extensions().get::<Caller>() {
        Some(Caller::Session(key)) => Some(*key),
        _ => None,
    };
    let token = state.token.clone();
    let new = tokio::task::spawn_blocking(move || token.rotate())
        .await
        .map_err(|e| ApiError::Internal(format!("the token rotation stopped: {e}")))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let ended = state.sessions.end_all_but(keep);
    let file = state.token.file();
    tracing::warn!(
        file = %file.display(),
        sessions_ended = ended,
        "API token rotated: the new one is in the state folder's file, which wins over api.token; \
         delete the file (service stopped) to go back to the config file's token"
    );
    ok_json(&Rotated {
        token: new,
        written_to: file.to_path_buf(),
        in_effect: "state",
    })
}

/// Clears the running flag when the check ends, however it ends.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// Checks the store's integrity now (SQLite's `quick_check`).
///
/// On a blocking thread, one at a time: a second request while one runs gets 409
/// `integrity_check_running`; one that takes over two minutes, 503 `integrity_check_timeout`.
#[utoipa::path(post, path = "/api/v1/system/integrity", tag = "system",
    responses(
        (status = 200, description = "The check's result", body = IntegrityAnswer),
        (status = 409, description = "A check is running (`integrity_check_running`)")))]
pub(super) async fn check_integrity(
    state: Arc<State>,
    _req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    if state.system.checking.swap(true, Ordering::AcqRel) {
        return Err(ApiError::Refused {
            code: "integrity_check_running",
            message: "an integrity check of the store is running; ask again when it is done".into(),
        });
    }
    // The flag goes with the blocking task, not this request: a client that gives up does not
    // let a second check start beside the first.
    let running = Running(state.system.checking.clone());
    let store = state.store.clone();
    let result = tokio::task::spawn_blocking(move || {
        let _running = running;
        store.quick_check(CHECK_BUDGET)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("the integrity check stopped: {e}")))?;
    let checked_at = format_timestamp(time::OffsetDateTime::now_utc());
    match result {
        Ok(crate::store::QuickCheck::Ok) => ok_json(&IntegrityAnswer {
            ok: true,
            checked_at,
            messages: Vec::new(),
        }),
        Ok(crate::store::QuickCheck::Damaged(problems)) => ok_json(&IntegrityAnswer {
            ok: false,
            checked_at,
            messages: problems,
        }),
        Ok(crate::store::QuickCheck::OutOfTime) => Err(ApiError::Busy {
            code: "integrity_check_timeout",
            message: format!(
                "the check did not finish within {} s; the full check runs at every start \
                 (its result is in /health)",
                CHECK_BUDGET.as_secs()
            ),
            retry_after: 60,
        }),
        Err(e) => Err(ApiError::from(e)),
    }
}
