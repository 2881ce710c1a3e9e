//! Operations: `/health` for supervisors and deploy scripts, `/metrics` for Prometheus.

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use serde::Serialize;
use utoipa::ToSchema;

use super::routes::{route, Params, Route};
use super::{ok_json, text_response, ApiResult, HttpsInfo, State};
use crate::actions::GpioState;
use crate::store::subscription::SinkName;
use crate::store::Integrity;
use crate::vision::VisionReport;

pub(super) fn routes() -> Vec<Route> {
    vec![route!(health), route!(metrics)]
}

/// `GET /health`.
#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    /// `degraded` when the store or the models are not well, or the appliance is stopping.
    status: HealthStatus,
    version: &'static str,
    uptime_seconds: u64,
    store: StoreReport,
    delivery: DeliveryReport,
    mqtt: MqttReport,
    /// Not part of `status`: a board without GPIO still records and delivers.
    gpio: GpioBrief,
    vision: VisionReport,
    /// `null` without `api.tls_listen`.
    https: Option<HttpsReport>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum HealthStatus {
    Ok,
    Degraded,
}

#[derive(Serialize, ToSchema)]
struct StoreReport {
    ok: bool,
    /// `ok` or `degraded`.
    state: &'static str,
    /// Why it is degraded, one sentence per cause; `null` when ok.
    reason: Option<String>,
    integrity: Integrity,
    used_bytes: u64,
    quota_bytes: u64,
    /// The sequence number of the newest event recorded.
    head_seq: i64,
}

#[derive(Serialize, ToSchema)]
struct DeliveryReport {
    running: bool,
}

#[derive(Serialize, ToSchema)]
struct MqttReport {
    connected: bool,
}

#[derive(Serialize, ToSchema)]
struct GpioBrief {
    state: GpioState,
    reason: Option<String>,
}

/// Where HTTPS is, and the certificate's fingerprint to check the browser's against. Public
/// knowledge (every TLS client is shown the certificate), so no secret.
#[derive(Serialize, ToSchema)]
pub(super) struct HttpsReport {
    port: u16,
    #[schema(example = "3a:7f:...")]
    fingerprint_sha256: String,
    /// `self_signed` (made on first start) or `configured` (files the config names).
    certificate: &'static str,
}

impl From<&HttpsInfo> for HttpsReport {
    fn from(h: &HttpsInfo) -> Self {
        HttpsReport {
            port: h.addr.port(),
            fingerprint_sha256: h.fingerprint.clone(),
            certificate: h.source.as_str(),
        }
    }
}

/// Whether the appliance is well, for supervisors and deploy scripts.
///
/// Always 200 while the process answers (supervisors restart on no answer, and a restart mends
/// neither a damaged store nor a damaged model); `status` is `degraded` when a part is not well,
/// and that part says why.
#[utoipa::path(get, path = "/health", tag = "ops",
    responses((status = 200, description = "The appliance's parts and how each is", body = Health)))]
pub(super) async fn health(
    state: Arc<State>,
    _req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    // The store's own account (full filesystem, damage, integrity check) plus a cheap read that
    // proves it answers; a count of the events would fail on one damaged page and scan them all.
    let mut store = state.store.health();
    if let Err(e) = state.store.alive() {
        store.ok = false;
        store.state = "degraded";
        let reason = format!("the store does not answer: {e}");
        store.reason = Some(match store.reason.take() {
            Some(r) => format!("{r}; {reason}"),
            None => reason,
        });
    }
    let vision = state.vision.report();
    let gpio = state.gpio.report(&state.metrics);
    let status = if store.ok && vision.ok && !state.stopping.is_cancelled() {
        HealthStatus::Ok
    } else {
        HealthStatus::Degraded
    };
    ok_json(&Health {
        status,
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.started.elapsed().as_secs(),
        store: StoreReport {
            ok: store.ok,
            state: store.state,
            reason: store.reason,
            integrity: store.integrity,
            used_bytes: store.used_bytes,
            quota_bytes: store.quota_bytes,
            head_seq: state.outbox.head().0,
        },
        delivery: DeliveryReport {
            running: state.webhooks.running(),
        },
        mqtt: MqttReport {
            connected: state.mqtt.as_ref().is_some_and(|m| m.connected()),
        },
        gpio: GpioBrief {
            state: gpio.state,
            reason: gpio.reason,
        },
        vision,
        https: state.https.as_ref().map(HttpsReport::from),
    })
}

/// Prometheus metrics (OpenMetrics text).
///
/// Backlogs are counted when scraped rather than kept up to date on every commit.
#[utoipa::path(get, path = "/metrics", tag = "ops",
    responses((status = 200, description = "The metrics in the OpenMetrics text format",
        content_type = "application/openmetrics-text", body = String)))]
pub(super) async fn metrics(
    state: Arc<State>,
    _req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    let state: &State = &state;
    for r in state.store.webhooks()? {
        let sink = SinkName::webhook(&r.id());
        let (backlog, _) = state.store.sink_backlog(&sink, r.config.filter())?;
        state
            .metrics
            .backlog
            .get_or_create(&state.metrics.sink(sink.as_str()))
            .set(backlog as i64);
    }
    if let Some(mqtt) = &state.mqtt {
        mqtt.refresh_backlog()?;
    }
    state.metrics.api.streams.set(state.streams.in_use() as i64);
    if let Ok(used) = state.store.used_bytes() {
        state.metrics.store_bytes.set(used as i64);
    }
    state.metrics.vision_ok.set(state.vision.report().ok.into());
    // Cleared first, so that a deleted camera's series goes with it.
    state.metrics.camera_restarts.clear();
    state.metrics.camera_flapping.clear();
    for camera in state.cameras.list() {
        let label = crate::metrics::CameraLabel {
            camera: camera.camera_id,
        };
        let restarts = &state.metrics.camera_restarts;
        restarts.get_or_create(&label).set(camera.restarts as i64);
        let flapping = camera.state == "flapping";
        let gauge = &state.metrics.camera_flapping;
        gauge.get_or_create(&label).set(flapping.into());
    }
    live_metrics(state);
    Ok(text_response(
        http::StatusCode::OK,
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        state.metrics.encode(),
    ))
}

/// The live views' figures, read from each camera's tap (see `pipeline::live`); cleared first, so
/// that a deleted camera's series goes with it.
fn live_metrics(state: &State) {
    let m = &state.metrics;
    m.live_viewers.clear();
    m.live_frames_encoded.clear();
    for (camera, tap) in state.cameras.live_taps() {
        let label = crate::metrics::CameraLabel { camera };
        m.live_viewers
            .get_or_create(&label)
            .set(tap.viewers().into());
        m.live_frames_encoded
            .get_or_create(&label)
            .inc_by(tap.frames_encoded());
    }
}
