//! `/api/v1/mqtt/stats`: the bridge's counterpart of the webhooks' stats.

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use serde::Serialize;
use utoipa::ToSchema;

use super::routes::{route, Params, Route};
use super::{ok_json, ApiResult, State};
use crate::delivery::mqtt::MqttStats;

pub(super) fn routes() -> Vec<Route> {
    vec![route!(mqtt_stats)]
}

/// The bridge's answer: its counters, or that there is none.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub(super) enum MqttAnswer {
    Running(Box<MqttStats>),
    Off(MqttOff),
}

/// No running bridge (no `[mqtt]`, or `mqtt.enabled = false`).
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MqttOff {
    /// Always `false`.
    enabled: bool,
    /// Always `false`.
    connected: bool,
}

/// The MQTT bridge's state and counters.
///
/// Counts are since the appliance started; `backlog`, `dropped` and `cursor` come from the store.
/// Without a running bridge, `{"enabled": false, "connected": false}`.
#[utoipa::path(get, path = "/api/v1/mqtt/stats", tag = "mqtt",
    responses((status = 200, description = "The bridge's counters", body = MqttAnswer)))]
pub(super) async fn mqtt_stats(
    state: Arc<State>,
    _req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    match &state.mqtt {
        Some(bridge) => ok_json(&MqttAnswer::Running(Box::new(bridge.stats()?))),
        None => ok_json(&MqttAnswer::Off(MqttOff {
            enabled: false,
            connected: false,
        })),
    }
}
