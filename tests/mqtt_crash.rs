//! The MQTT bridge when the appliance dies: `kill -9` mid-flow loses nothing, and the broker tells
//! everyone through the last will. These run the real binary.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::crash::{kill9_mid_flow_and_restart, EVENT_TYPES};
use common::mqtt::{first_arrivals, mqtt_stats, until_connected, Broker, Subscriber, LONG};
use common::{free_port, wait_until, Binary};
use serde_json::json;

/// A config file for the binary: the API on `port`, the store in `dir`, the bridge to the broker
/// on `broker` (with `extra` lines in `[mqtt]`), and one camera for the events to come from.
fn binary_config(dir: &std::path::Path, port: u16, broker: u16, extra: &str) -> std::path::PathBuf {
    common::write_config(
        dir,
        port,
        &format!(
            r#"[mqtt]
host = "127.0.0.1"
port = {broker}
device_id = "door1"
reconnect_delay = 0.2
reconnect_max_delay = 1.0
{extra}

[[cameras]]
camera_id = "entrance"
source = "synthetic"
autostart = false
"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_appliance_mid_flow_loses_nothing() {
    common::init_logging();
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port, &["facecv/door1/events/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // One event in flight at a time, so that a backlog builds up behind the producers.
    let config = binary_config(dir.path(), port, broker.port, "inflight = 1");
    let facecv = Binary::start(&config, port).await;

    let bodies = EVENT_TYPES
        .iter()
        .map(|t| json!({"event_type": t, "count": 20, "camera_id": "entrance"}))
        .collect();
    let (acked, restarted) =
        kill9_mid_flow_and_restart(facecv, bodies, || sub.event_ids("facecv/door1/events/")).await;
    // In order on each topic: an event's first arrival never comes after a later event's.
    let seq_of: HashMap<String, i64> = acked
        .iter()
        .map(|e| (e["id"].as_str().unwrap().into(), e["seq"].as_i64().unwrap()))
        .collect();
    let mut by_topic: HashMap<String, Vec<String>> = HashMap::new();
    for m in sub.under("facecv/door1/events/") {
        by_topic
            .entry(m.topic.clone())
            .or_default()
            .push(m.json()["id"].as_str().unwrap().into());
    }
    for (topic, ids) in by_topic {
        let seqs: Vec<i64> = first_arrivals(&ids)
            .iter()
            .filter_map(|id| seq_of.get(id).copied())
            .collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{topic} out of order");
    }
    let stats = mqtt_stats(&restarted.api).await;
    assert_eq!(stats["refused"], 0, "{stats}");
    assert_eq!(stats["dropped"], 0, "{stats}");
}

/// Waits until the last message `sub` got on `topic` is `payload`. The bridge counts itself
/// connected just before it publishes `online`, so a newcomer that comes in between gets that
/// publish live, not retained: a test of the retained value waits for this first.
async fn says_last(sub: &Subscriber, topic: &str, payload: &str) {
    wait_until(LONG, &format!("{payload} on {topic}"), || {
        sub.on(topic).last().is_some_and(|m| m.payload == payload)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn availability_is_retained_online_and_the_last_will_says_offline() {
    common::init_logging();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = binary_config(dir.path(), port, broker.port, "");
    let availability = "facecv/door1/availability";
    let retained = |payload: &'static str| {
        let port = broker.port;
        async move {
            // A newcomer gets the retained value at once.
            let s = Subscriber::connect(port, &[availability]).await;
            wait_until(Duration::from_secs(10), "the retained availability", || {
                !s.on(availability).is_empty()
            })
            .await;
            let m = s.on(availability).remove(0);
            assert!(m.retain, "{m:?}");
            assert_eq!(m.payload, payload);
        }
    };

    let watcher = Subscriber::connect(broker.port, &[availability]).await;
    let mut facecv = Binary::start(&config, port).await;
    until_connected(&facecv.api).await;
    says_last(&watcher, availability, "online").await;
    retained("online").await;

    facecv.kill9();
    says_last(&watcher, availability, "offline").await;
    retained("offline").await;

    let mut facecv = Binary::start(&config, port).await;
    until_connected(&facecv.api).await;
    says_last(&watcher, availability, "online").await;
    retained("online").await;
    assert!(facecv.sigterm().success());
    retained("offline").await;
    let said: Vec<String> = watcher
        .on(availability)
        .into_iter()
        .map(|m| m.payload)
        .collect();
    assert_eq!(
        said,
        ["online", "offline", "online", "offline"],
        "{}",
        broker.log()
    );
}
