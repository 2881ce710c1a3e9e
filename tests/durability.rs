//! Nothing acknowledged as recorded is ever lost: not when the receiver is down, not when the
//! appliance is killed with SIGKILL mid-flow, not when the store fills up (then the oldest events go,
//! counted, and the API stays up).

mod common;

use std::time::Duration;

use common::crash::{kill9_mid_flow_and_restart, EVENT_TYPES};
use common::{eventually, free_port, start_app_with, wait_until, Binary, Receiver, Reply};
use http::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_receiver_that_is_down_for_a_while_gets_every_event_in_order_once_it_is_back() {
    let app = start_app_with(|_| {}).await;
    let rx = Receiver::start().await;
    app.api
        .create_webhook(
            json!({"webhook_id": "door", "url": rx.url("/h"), "batch_size": 10,
                               "batch_timeout": 0.2, "retry_count": 10, "retry_delay": 1}),
        )
        .await;
    let mut sent = app.api.trigger("face_recognized", 5).await;
    wait_until(Duration::from_secs(10), "the first events", || {
        rx.accepted_ids().len() == 5
    })
    .await;

    rx.go_down();
    for _ in 0..6 {
        sent.extend(app.api.trigger("attendance_recorded", 5).await);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let rx = rx.come_back().await;
    sent.extend(app.api.trigger("stranger_alert", 5).await);
    wait_until(
        Duration::from_secs(60),
        "every event after the outage",
        || rx.accepted_ids().len() >= sent.len(),
    )
    .await;
    assert_eq!(rx.accepted_ids(), sent, "every event, in order, once");
    let stats = app.api.stats("door").await;
    assert_eq!(stats["dead_letters"], 0, "{stats}");
    assert!(stats["failed_attempts"].as_u64().unwrap() >= 1, "{stats}");
}

/// A config file for the binary: the API on `port`, the store in `dir` with every commit on
/// disk, one webhook to `receiver`.
fn binary_config(dir: &std::path::Path, port: u16, receiver: &str) -> std::path::PathBuf {
    // `fsync` still belongs to [storage], the last table `write_config` opened.
    common::write_config(
        dir,
        port,
        &format!(
            r#"fsync = "always"

[[webhooks]]
webhook_id = "crash_test"
url = "{receiver}"
batch_size = 50
batch_timeout = 0.1
retry_count = 10
retry_delay = 1
"#
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_in_the_middle_of_thousands_of_events_loses_none() {
    common::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    // A receiver a little slower than the producers, so a backlog is in flight at the kill.
    rx.answer_by_default(Reply::status(200).after(Duration::from_millis(30)));
    let port = free_port();
    let config = binary_config(dir.path(), port, &rx.url("/hook"));
    let facecv = Binary::start(&config, port).await;

    // Producers keep recording while the appliance is killed under them; every event the API
    // acknowledged must arrive after the restart.
    let bodies = (EVENT_TYPES.iter().enumerate())
        .map(|(p, t)| json!({"event_type": t, "count": 10, "camera_id": format!("cam{p}")}))
        .collect();
    let (_, restarted) = kill9_mid_flow_and_restart(facecv, bodies, || rx.accepted_ids()).await;
    let stats = restarted.api.stats("crash_test").await;
    assert_eq!(stats["dropped"], 0, "{stats}");
    assert_eq!(stats["dead_letters"], 0, "{stats}");
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_the_next_start_carries_on() {
    common::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start().await;
    rx.go_down(); // nothing can be delivered before the stop
    let port = free_port();
    let config = binary_config(dir.path(), port, &rx.url("/hook"));
    let mut facecv = Binary::start(&config, port).await;
    let ids = facecv.api.trigger("stream_started", 20).await;
    let status = facecv.sigterm();
    assert!(status.success(), "exit status {status:?}");
    // A clean stop checkpoints the WAL into the database file.
    let wal = dir.path().join("store/facecv.db-wal");
    assert!(
        !wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0,
        "the WAL was checkpointed"
    );

    let check = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("ok, 20 events"),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let rx = rx.come_back().await;
    let _again = Binary::start(&config, port).await;
    wait_until(
        Duration::from_secs(30),
        "the events recorded before the stop",
        || rx.accepted_ids() == ids,
    )
    .await;
}

#[tokio::test]
async fn a_full_store_drops_the_oldest_undelivered_events_and_keeps_recording() {
    // 2 MiB: the quota counts the WAL and the reserve too, and the newest 1000 events must fit.
    let app = start_app_with(|c| c.storage.quota_mb = 2).await;
    let rx = Receiver::start().await;
    app.api
        .create_webhook(json!({"webhook_id": "offline", "url": rx.url("/h"), "enabled": false}))
        .await;
    let mut last = Vec::new();
    for _ in 0..12 {
        last = app.api.trigger("face_recognized", 1000).await;
    }
    // Recording went on; the oldest went, the newest stayed; the API still answers.
    let (code, health) = app.api.get("/health").await;
    assert_eq!(code, StatusCode::OK, "{health}");
    // The quota is enforced just after a commit, so the last one may still be trimming.
    let store = app.app.store().clone();
    eventually(
        Duration::from_secs(10),
        "the store back under its quota",
        || {
            let store = store.clone();
            async move { store.used_bytes().unwrap() <= 2 * 1024 * 1024 }
        },
    )
    .await;
    let used = app.app.store().used_bytes().unwrap();
    assert!(
        used <= 2 * 1024 * 1024,
        "the store keeps to its quota: {used} bytes"
    );
    // The counter is bumped just after each trimming step commits, so it may trail the store's
    // own count for a moment (and trimming may still be going on, as the quota also counts the
    // WAL and the reserve); it must catch up with the store's count, not merely come close.
    let api = app.api.clone();
    eventually(
        Duration::from_secs(5),
        "facecv_events_dropped_total equal to the store's count",
        || {
            let api = api.clone();
            async move {
                let (_, stats) = api.get("/api/v1/webhooks/stats").await;
                let want = format!(
                    "facecv_events_dropped_total {}",
                    stats["events_dropped"].as_u64().unwrap()
                );
                let (_, metrics) = api.get("/metrics").await;
                metrics.as_str().unwrap().contains(&want)
            }
        },
    )
    .await;

    let (_, stats) = app.api.get("/api/v1/webhooks/stats").await;
    let dropped = stats["events_dropped"].as_u64().unwrap();
    assert!(dropped > 0, "{stats}");
    assert_eq!(
        stats["webhooks"]["offline"]["dropped"].as_u64().unwrap(),
        dropped,
        "{stats}"
    );
    let backlog = stats["webhooks"]["offline"]["backlog"].as_u64().unwrap();
    assert_eq!(backlog + dropped, 12_000, "{stats}");

    // What is left is the newest, and it is delivered once the webhook is enabled.
    app.api
        .post("/api/v1/webhooks/offline/enable", json!({}))
        .await;
    let api = app.api.clone();
    eventually(Duration::from_secs(60), "the backlog delivered", || {
        let api = api.clone();
        async move { api.stats("offline").await["backlog"] == 0 }
    })
    .await;
    let got = rx.accepted_ids();
    assert_eq!(got.len() as u64, backlog);
    assert_eq!(
        got[got.len() - 1000..],
        last[..],
        "the newest events survived"
    );
}

#[tokio::test]
async fn under_systemd_it_says_ready_and_pings_the_watchdog() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let port = free_port();
    let config = binary_config(dir.path(), port, "http://127.0.0.1:9/h");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env("LOG_LEVEL", "WARNING")
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    while !(seen.iter().any(|m: &String| m.contains("READY=1"))
        && seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2)
    {
        let n = socket.recv(&mut buf).expect("a notification within 10 s");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    // READY comes first, once the API answers.
    assert!(seen[0].contains("READY=1"), "{seen:?}");
    let api = common::Api::new(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(api.get("/health").await.0, StatusCode::OK);
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    loop {
        let n = socket.recv(&mut buf).expect("STOPPING=1 on SIGTERM");
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            break;
        }
    }
    assert!(child.wait().unwrap().success());
}
