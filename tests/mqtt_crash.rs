//! The MQTT bridge when the appliance dies: `kill -9` mid-flow loses nothing, and the broker tells
//! everyone through the last will. These run the real binary.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::mqtt::{first_arrivals, mqtt_stats, until_connected, Broker, Subscriber, LONG};
use common::{free_port, wait_until, Api, Binary};
use http::StatusCode;
use serde_json::json;

fn binary_config(dir: &std::path::Path, port: u16, broker: u16, extra: &str) -> std::path::PathBuf {
    let path = dir.join("facecv.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[api]
listen = "127.0.0.1:{port}"

[storage]
dir = "{store}"

[mqtt]
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
"#,
            store = dir.join("store").display()
        ),
    )
    .unwrap();
    path
}

/// Records events of type number `p` through the API until the appliance is gone (or 400 calls),
/// keeping the (seq, id) of every event it acknowledged.
async fn produce(api: Api, p: usize, acked: Arc<Mutex<Vec<(i64, String)>>>) {
    let types = [
        "face_recognized",
        "face_detected",
        "stranger_alert",
        "attendance_recorded",
    ];
    for _ in 0..400 {
        let body = json!({"event_type": types[p], "count": 20, "camera_id": "entrance"});
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
        let events = v["events"].as_array().unwrap().iter().map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["id"].as_str().unwrap().to_owned(),
            )
        });
        acked.lock().unwrap().extend(events);
    }
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
    let mut facecv = Binary::start(&config, port).await;

    let acknowledged = Arc::new(Mutex::new(Vec::<(i64, String)>::new()));
    let producers: Vec<_> = (0..4)
        .map(|p| tokio::spawn(produce(facecv.api.clone(), p, acknowledged.clone())))
        .collect();
    wait_until(LONG, "a few thousand events recorded", || {
        acknowledged.lock().unwrap().len() >= 3000
    })
    .await;
    assert!(
        !sub.event_ids("facecv/door1/events/").is_empty(),
        "publishing was under way when the appliance was killed"
    );
    facecv.kill9();
    for p in producers {
        let _ = p.await;
    }
    let acked = acknowledged.lock().unwrap().clone();
    let before = first_arrivals(&sub.event_ids("facecv/door1/events/")).len();
    assert!(
        before < acked.len(),
        "the kill came mid-flow: {before} of {}",
        acked.len()
    );

    let restarted = Binary::start(&config, port).await;
    wait_until(
        Duration::from_secs(90),
        "every acknowledged event after the restart",
        || {
            let got: std::collections::HashSet<String> =
                sub.event_ids("facecv/door1/events/").into_iter().collect();
            acked.iter().all(|(_, id)| got.contains(id))
        },
    )
    .await;
    // In order on each topic: an event's first arrival never comes after a later event's.
    let seq_of: HashMap<String, i64> = acked.iter().map(|(s, id)| (id.clone(), *s)).collect();
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
    retained("online").await;

    facecv.kill9();
    wait_until(LONG, "the last will", || {
        watcher
            .on(availability)
            .last()
            .is_some_and(|m| m.payload == "offline")
    })
    .await;
    retained("offline").await;

    let mut facecv = Binary::start(&config, port).await;
    until_connected(&facecv.api).await;
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
