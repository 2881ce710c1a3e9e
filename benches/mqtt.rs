//! How fast the MQTT bridge moves recorded events to a real Mosquitto at QoS 1, and how long one
//! event takes from being recorded to being acknowledged (both PUBACKs, cursor movable).
//!
//! `cargo bench --bench mqtt` (env: `EVENTS` for the throughput run, default 20000; `INFLIGHT`,
//! default the config's 64; `FSYNC=normal` to record without an fsync per commit).
//!
//! Everything runs on this machine: the appliance in-process (store, outbox, bridge), Mosquitto as a
//! child process, and one subscriber on every event topic, as Home Assistant would be. It runs twice:
//! against a stock Mosquitto, and against one with `set_tcp_nodelay true`, because Nagle's
//! algorithm on the broker's side holds back a PUBACK that follows another one.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mqtt::{mqtt_config, Broker, Subscriber};
use facecv::events::{EventType, Seq};
use facecv::samples::sample;
use facecv::store::FsyncPolicy;
use facecv::App;

const BATCH: usize = 100;
const LATENCY_EVENTS: usize = 2000;
const LATENCY_PACE: Duration = Duration::from_millis(2);

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    common::init_logging();
    runtime.block_on(run("stock mosquitto", "persistence false\n"));
    runtime.block_on(run(
        "mosquitto with set_tcp_nodelay true",
        "persistence false\nset_tcp_nodelay true\n",
    ));
}

async fn run(label: &str, broker_conf: &str) {
    let broker = Broker::start_with(broker_conf);
    let watcher = Subscriber::connect(broker.port, &["facecv/bench/events/#"]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    let mut mqtt = mqtt_config(broker.port);
    mqtt.device_id = "bench".into();
    mqtt.inflight = env_or("INFLIGHT", mqtt.inflight);
    config.mqtt = Some(mqtt.clone());
    if std::env::var("FSYNC").as_deref() == Ok("normal") {
        config.storage.fsync = FsyncPolicy::Normal;
    }
    let fsync = config.storage.fsync;
    let app = App::start(config).await.expect("the appliance starts");
    let bridge = app.mqtt().expect("the bridge runs").clone();
    while !bridge.connected() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "\n{label} on {} (one subscriber), QoS {}, inflight {}, fsync {fsync:?}, {} CPUs",
        broker.url(),
        mqtt.qos,
        mqtt.inflight,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    let n: usize = env_or("EVENTS", 20_000);
    throughput(&app, n).await;
    latency(&app).await;
    let expected = n + LATENCY_EVENTS;
    let deadline = Instant::now() + Duration::from_secs(30);
    while watcher.messages().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "the subscriber got {} of {expected} events",
        watcher.messages().len()
    );
    app.shutdown().await.unwrap();
}

/// Waits until every event up to `seq` is acknowledged.
async fn until_settled(app: &App, seq: Seq) {
    let mut settled = app.mqtt().unwrap().settled();
    while *settled.borrow_and_update() < seq {
        settled.changed().await.unwrap();
    }
}

/// `n` events recorded in batches as fast as the store takes them, timed until the last PUBACK.
async fn throughput(app: &App, n: usize) {
    let outbox = app.outbox().clone();
    let types = EventType::ALL;
    let started = Instant::now();
    let mut last = Seq(0);
    for b in 0..n.div_ceil(BATCH) {
        let events = (0..BATCH.min(n - b * BATCH))
            .map(|i| sample(types[i % types.len()], &format!("cam{}", i % 4)))
            .collect();
        let recorded = outbox.append(events).await.unwrap();
        last = recorded.last().unwrap().seq;
    }
    let recorded = started.elapsed();
    until_settled(app, last).await;
    let total = started.elapsed();
    println!(
        "throughput: {n} events recorded in {:.2} s ({:.0}/s); all acknowledged after {:.2} s: {:.0} events/s to PUBACK ({:.0} messages/s)",
        recorded.as_secs_f64(),
        n as f64 / recorded.as_secs_f64(),
        total.as_secs_f64(),
        n as f64 / total.as_secs_f64(),
        2.0 * n as f64 / total.as_secs_f64()
    );
}

/// Events one at a time at a steady pace; each timed from the call that records it to the moment
/// the bridge has both its PUBACKs.
async fn latency(app: &App) {
    let marks: Arc<Mutex<Vec<(Seq, Instant)>>> = Arc::default();
    let mut settled = app.mqtt().unwrap().settled();
    let log = marks.clone();
    let watch = tokio::spawn(async move {
        while settled.changed().await.is_ok() {
            let s = *settled.borrow_and_update();
            log.lock().unwrap().push((s, Instant::now()));
        }
    });
    let outbox = app.outbox().clone();
    let mut sent = Vec::with_capacity(LATENCY_EVENTS);
    for i in 0..LATENCY_EVENTS {
        let at = Instant::now();
        let event = sample(EventType::FaceRecognized, &format!("cam{}", i % 4));
        let seq = outbox.append(vec![event]).await.unwrap()[0].seq;
        sent.push((seq, at, Instant::now()));
        tokio::time::sleep(LATENCY_PACE).await;
    }
    let last = sent.last().unwrap().0;
    until_settled(app, last).await;
    // The watcher may not have noted the last move yet.
    while marks.lock().unwrap().last().is_none_or(|(s, _)| *s < last) {
        tokio::task::yield_now().await;
    }
    watch.abort();
    let marks = marks.lock().unwrap();
    // From the append call (record) and from its return (committed, fsync'd) to both PUBACKs.
    let (mut from_record, mut from_commit): (Vec<f64>, Vec<f64>) = sent
        .iter()
        .map(|(seq, at, committed)| {
            let acked = marks.iter().find(|(s, _)| s >= seq).expect("settled").1;
            let ms = |from: Instant| (acked - from).as_secs_f64() * 1000.0;
            (ms(*at), ms(*committed))
        })
        .unzip();
    for (name, ms) in [
        ("record -> PUBACK", &mut from_record),
        ("commit -> PUBACK", &mut from_commit),
    ] {
        ms.sort_by(f64::total_cmp);
        let pct = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        println!(
            "latency {name} over {} events, one every {:?}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms.len(),
            LATENCY_PACE,
            pct(0.5),
            pct(0.99),
            ms[ms.len() - 1]
        );
    }
}
