//! The console's System page: what runs here (version, device id, the configuration in use with
//! its secrets hidden, the certificate), the store's integrity on demand, and rotating the token.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::session::Caller;
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

/// `/api/v1/system/...`.
pub(super) async fn route(state: &State, req: Request<Incoming>, rest: &[&str]) -> ApiResult {
    let method = req.method().clone();
    match (rest, method) {
        ([], Method::GET) => info(state),
        (["token"], Method::POST) => rotate(state, &req).await,
        (["integrity"], Method::POST) => integrity(state).await,
        ([] | ["token"] | ["integrity"], m) => Err(ApiError::MethodNotAllowed(m)),
        _ => Err(ApiError::NotFound(format!("system/{}", rest.join("/")))),
    }
}

fn info(state: &State) -> ApiResult {
    let health = state.store.health();
    let used = state.store.used_bytes().unwrap_or(health.used_bytes);
    ok_json(&json!({
        "version": env!("CARGO_PKG_VERSION"),
        "device_id": state.system.device_id,
        "hostname": super::tls::hostname(),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "config_file": state.system.config_file,
        "config": state.system.config,
        "token_source": state.token.source().as_str(),
        "https": state.https.as_ref().map(|h| json!({
            "port": h.addr.port(),
            "fingerprint_sha256": h.fingerprint,
            "certificate": h.source.as_str(),
        })),
        "store": {
            "path": state.store.path(),
            "used_bytes": used,
            "quota_bytes": health.quota_bytes,
        },
    }))
}

/// A new token in the state folder, in force at once; every session but the caller's ends (a
/// stolen cookie goes with the old token). Bearer clients must be given the new token.
async fn rotate(state: &State, req: &Request<Incoming>) -> ApiResult {
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
    ok_json(&json!({
        "token": new,
        "written_to": file,
        "in_effect": "state",
    }))
}

/// Clears the running flag when the check ends, however it ends.
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// SQLite's `quick_check` of the store on a blocking thread, one at a time: a second request
/// while one runs gets 409 `integrity_check_running`.
async fn integrity(state: &State) -> ApiResult {
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
        Ok(crate::store::QuickCheck::Ok) => ok_json(&json!({
            "ok": true, "checked_at": checked_at, "messages": [],
        })),
        Ok(crate::store::QuickCheck::Damaged(problems)) => ok_json(&json!({
            "ok": false, "checked_at": checked_at, "messages": problems,
        })),
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
