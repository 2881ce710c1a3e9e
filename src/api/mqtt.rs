//! `/api/v1/mqtt/stats`: the bridge's counterpart of the webhooks' stats.

use serde_json::json;

use super::{ok_json, ApiResult, State};

/// The bridge's state and counters, or `{"enabled": false}` when there is no running bridge.
pub fn stats(state: &State) -> ApiResult {
    match &state.mqtt {
        Some(bridge) => ok_json(&bridge.stats()?),
        None => ok_json(&json!({ "enabled": false, "connected": false })),
    }
}
