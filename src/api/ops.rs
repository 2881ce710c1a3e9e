//! Operations: `/health` for supervisors and deploy scripts, `/metrics` for Prometheus.

use serde_json::json;

use super::{ok_json, text_response, ApiResult, State};
use crate::store::subscription::SinkName;

/// Always 200 while the process answers (supervisors restart on no answer, and a restart mends
/// neither a damaged store nor a damaged model); `status` is `degraded` when a part is not well,
/// and that part says why.
pub fn health(state: &State) -> ApiResult {
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
    let store_ok = store.ok;
    let vision = state.vision.report();
    let gpio = state.gpio.report(&state.metrics);
    let status = if store_ok && vision.ok && !state.stopping.is_cancelled() {
        "ok"
    } else {
        "degraded"
    };
    ok_json(&json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs(),
        "store": {
            "ok": store_ok,
            "state": store.state,
            "reason": store.reason,
            "integrity": store.integrity,
            "used_bytes": store.used_bytes,
            "quota_bytes": store.quota_bytes,
            "head_seq": state.outbox.head(),
        },
        "delivery": { "running": state.webhooks.running() },
        "mqtt": { "connected": state.mqtt.as_ref().is_some_and(|m| m.connected()) },
        // Not part of "status": a board without GPIO still records and delivers; the console and
        // GET /api/v1/actions say which actions run.
        "gpio": { "state": gpio.state, "reason": gpio.reason },
        "vision": vision,
        // Where HTTPS is, and the certificate's fingerprint to check the browser's against.
        // Public knowledge (every TLS client is shown the certificate), so no secret here.
        "https": state.https.as_ref().map(|h| json!({
            "port": h.addr.port(),
            "fingerprint_sha256": h.fingerprint,
            "certificate": h.source.as_str(),
        })),
    }))
}

pub fn metrics(state: &State) -> ApiResult {
    // Backlogs are counted when scraped rather than kept up to date on every commit.
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
