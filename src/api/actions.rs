//! `GET /api/v1/actions`: which GPIO actions run, which were left out and why, and how often each
//! fired; an installer wiring a door relay reads it (or the console's MQTT & GPIO page).

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;

use super::routes::{route, Params, Route};
use super::{ok_json, ApiResult, State};
use crate::actions::GpioReport;

pub(super) fn routes() -> Vec<Route> {
    vec![route!(list_actions)]
}

/// The GPIO actions and their state.
///
/// `state` is `off` without `[[actions]]`, `unavailable` on a machine (or build) without GPIO,
/// `degraded` when some could not claim their pin (each says why).
#[utoipa::path(get, path = "/api/v1/actions", tag = "actions",
    responses((status = 200, description = "The actions as the start left them, with pulse counts",
        body = GpioReport)))]
pub(super) async fn list_actions(
    state: Arc<State>,
    _req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    ok_json(&state.gpio.report(&state.metrics))
}
