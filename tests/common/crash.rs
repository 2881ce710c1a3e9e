//! `kill -9` of the real binary while events stream through it, then a restart: the story of
//! every "nothing acknowledged is lost" test, whatever the sink that has to catch up (a webhook
//! receiver, an MQTT broker).
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use serde_json::Value;

use super::{wait_until, Api, Binary};

/// How many events the producers get acknowledged before the kill: enough that a backlog is in
/// flight behind a sink that is a little slower than them.
const BEFORE_KILL: usize = 3000;

/// One event type per producer, so that each type's topic or batch sees a steady stream.
pub const EVENT_TYPES: [&str; 4] = [
    "face_recognized",
    "face_detected",
    "stranger_alert",
    "attendance_recorded",
];

/// Records `body` (a `/api/v1/events/trigger` request) up to 400 times, until the appliance is
/// gone, keeping every event the API acknowledged.
async fn produce(api: Api, body: Value, acked: Arc<Mutex<Vec<Value>>>) {
    for _ in 0..400 {
        let r = tokio::time::timeout(
            Duration::from_secs(5),
            api.try_raw(
                http::Method::POST,
                "/api/v1/events/trigger",
                body.to_string(),
            ),
        )
        .await;
        let Ok(Some((StatusCode::OK, v))) = r else {
            return; // the appliance is gone
        };
        acked
            .lock()
            .unwrap()
            .extend(v["events"].as_array().unwrap().iter().cloned());
    }
}

/// One producer per trigger body records events through `facecv`'s API; once a few thousand are
/// acknowledged and `delivered` shows delivery under way, `facecv` is killed with SIGKILL, then
/// started again, and this waits until every acknowledged event has been delivered.
///
/// `delivered` gives the event ids the sink got so far, in arrival order, repeats included.
/// Returns every event the API acknowledged (the JSON it answered with) and the restarted binary.
pub async fn kill9_mid_flow_and_restart(
    mut facecv: Binary,
    bodies: Vec<Value>,
    delivered: impl Fn() -> Vec<String>,
) -> (Vec<Value>, Binary) {
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let producers: Vec<_> = bodies
        .into_iter()
        .map(|body| tokio::spawn(produce(facecv.api.clone(), body, acknowledged.clone())))
        .collect();
    wait_until(
        Duration::from_secs(30),
        "a few thousand events recorded",
        || acknowledged.lock().unwrap().len() >= BEFORE_KILL,
    )
    .await;
    assert!(
        !delivered().is_empty(),
        "delivery was under way when the appliance was killed"
    );
    facecv.kill9();
    for p in producers {
        let _ = p.await;
    }
    let acked: Vec<Value> = acknowledged.lock().unwrap().clone();
    let before = delivered().len();
    assert!(
        before < acked.len(),
        "the kill came mid-flow: {before} of {}",
        acked.len()
    );

    let restarted = Binary::start(&facecv.config, facecv.port).await;
    wait_until(
        Duration::from_secs(90),
        "every acknowledged event after the restart",
        || {
            let got: HashSet<String> = delivered().into_iter().collect();
            acked
                .iter()
                .all(|e| got.contains(e["id"].as_str().unwrap()))
        },
    )
    .await;
    (acked, restarted)
}
