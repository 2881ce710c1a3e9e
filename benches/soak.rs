//! Soak: the release binary for half an hour with everything around it misbehaving, to show that
//! memory and file descriptors stay flat and that no recorded event is lost on the way out.
//!
//! `cargo bench --bench soak` (30 minutes and a drain of up to 5), or shorter with
//! `cargo bench --bench soak -- --minutes 4` (or `SOAK_MINUTES=4`). Not in CI. Exits 1 when an
//! event is lost.
//!
//! What runs, all on loopback:
//! * `facecv serve` (the real binary, release profile) with a config-file camera on a looped y4m
//!   of the photos in `tests/data/faces/johns` at 3 fps: two enrolled people and a stranger walk
//!   up in turn, so the real models record recognitions, attendance and stranger alerts; and a
//!   producer that records sample events through `POST /api/v1/events/trigger` (~10/s).
//! * a webhook receiver that flaps on a schedule: up, down (connection refused), up, slow (3 s an
//!   answer), 500s, up; the webhook retries 10 times from 1 s, so an outage never runs them out.
//! * Mosquitto (persistent, as a real broker keeps its sessions) restarted three times, and a
//!   persistent-session subscriber on every event topic.
//! * three `kill -9`s of the appliance, each followed by a restart.
//!
//! Every minute it prints the appliance's VmRSS, VmHWM and open fds. At the end, once both sinks
//! are up for good and have caught up: events recorded (in the outbox), events lost (an id the
//! API acknowledged that is not in the outbox, or an outbox id that never reached the receiver or
//! the subscriber), duplicates per sink, and the RSS / fd trend from minute 2 to the end (and over
//! the last process's life, since a kill -9 starts the figures again).

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::mqtt::{Broker, Subscriber};
use common::video::{frame_with, photos_of, root, write_y4m};
use common::{Api, Receiver, Reply};
use http::{Method, StatusCode};
use rand::Rng;
use serde_json::json;

const WEBHOOK: &str = "soak";
const TOPICS: &str = "facecv/soak/events/";
/// The longest the drain waits for both sinks to catch up after the soak.
const DRAIN: Duration = Duration::from_secs(300);

fn minutes() -> f64 {
    let args: Vec<String> = std::env::args().collect();
    let arg = args
        .iter()
        .position(|a| a == "--minutes")
        .and_then(|i| args.get(i + 1).cloned());
    let value = arg.or_else(|| std::env::var("SOAK_MINUTES").ok());
    match value {
        None => 30.0,
        Some(v) => match v.parse::<f64>() {
            Ok(m) if m > 0.0 => m,
            _ => panic!("--minutes / SOAK_MINUTES takes a number of minutes above 0, got {v:?}"),
        },
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lost = runtime.block_on(soak(Duration::from_secs_f64(minutes() * 60.0)));
    std::process::exit(if lost == 0 { 0 } else { 1 });
}

/// The appliance as a child process, its log appended to a file.
struct Appliance {
    child: std::process::Child,
    config: PathBuf,
    log: PathBuf,
    api: Api,
    started: Instant,
}

impl Appliance {
    async fn start(config: &Path, port: u16, log: &Path) -> Appliance {
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
            .args(["serve", "--config"])
            .arg(config)
            .env("LOG_LEVEL", "WARNING")
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start the facecv binary");
        let api = Api::new(([127, 0, 0, 1], port).into());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = tokio::time::timeout(
                Duration::from_secs(2),
                api.try_raw(Method::GET, "/health", ""),
            );
            if let Ok(Some((StatusCode::OK, _))) = up.await {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "facecv did not answer /health in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Appliance {
            child,
            config: config.to_owned(),
            log: log.to_owned(),
            api,
            started: Instant::now(),
        }
    }

    async fn kill9_and_restart(&mut self, port: u16) {
        self.child.kill().expect("kill -9");
        self.child.wait().unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (config, log) = (self.config.clone(), self.log.clone());
        *self = Appliance::start(&config, port, &log).await;
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One minute's figures of the appliance process.
#[derive(Clone, Copy)]
struct Sample {
    minute: u32,
    pid: u32,
    /// Seconds since this process answered /health.
    age_s: u64,
    rss_kb: u64,
    hwm_kb: u64,
    fds: usize,
}

fn sample(minute: u32, app: &Appliance) -> Sample {
    let pid = app.child.id();
    let memory = common::procfs::memory(common::procfs::Proc::Pid(pid));
    let fds = common::procfs::open_fds(common::procfs::Proc::Pid(pid));
    Sample {
        minute,
        pid,
        age_s: app.started.elapsed().as_secs(),
        rss_kb: memory.rss_kib,
        hwm_kb: memory.hwm_kib,
        fds,
    }
}

/// How the receiver answers in one phase of its schedule.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Phase {
    Up,
    Down,
    Slow,
    Errors,
}

/// The receiver's schedule: a cycle of `cycle` seconds, in shares of it.
fn phase_at(elapsed: Duration, cycle: f64) -> Phase {
    let at = (elapsed.as_secs_f64() % cycle) / cycle;
    match at {
        a if a < 0.27 => Phase::Up,
        a if a < 0.40 => Phase::Down,
        a if a < 0.60 => Phase::Up,
        a if a < 0.80 => Phase::Slow,
        a if a < 0.93 => Phase::Errors,
        _ => Phase::Up,
    }
}

/// The flapping receiver: `Receiver` stops and comes back on the same port, keeping its log.
struct Flapper {
    rx: Receiver,
    up: bool,
    phase: Phase,
}

impl Flapper {
    async fn set(&mut self, phase: Phase) {
        if phase == self.phase {
            return;
        }
        self.phase = phase;
        if phase == Phase::Down {
            self.rx.go_down();
            self.up = false;
            return;
        }
        if !self.up {
            self.rx = self.rx.come_back().await;
            self.up = true;
        }
        self.rx.answer_by_default(match phase {
            Phase::Slow => Reply::status(200).after(Duration::from_secs(3)),
            Phase::Errors => Reply::status(500),
            _ => Reply::status(200),
        });
    }
}

/// A y4m loop of 16 s at 3 fps: John Salley, nobody, John Simm (never enrolled), nobody, John
/// Savage, nobody. Photos 0-2 of the enrolled people are enrolled; the camera sees the others.
fn make_video(path: &Path) {
    let (salley, simm, savage) = (
        photos_of("John_Salley"),
        photos_of("John_Simm"),
        photos_of("John_Savage"),
    );
    let mut frames = Vec::new();
    for (person, first) in [(&salley, 3), (&simm, 0), (&savage, 3)] {
        for i in 0..10 {
            let photo = &person[first + i % (person.len() - first)];
            frames.push(frame_with(Some(photo)));
        }
        frames.extend(std::iter::repeat_n(frame_with(None), 6));
    }
    write_y4m(path, &frames);
}

/// The webhook is in the file, not created over the API, so that its cursor starts before the
/// camera's first event (a webhook created later gets what is recorded from then on).
fn config_text(receiver: &str, broker: u16, video: &Path) -> String {
    format!(
        r#"[vision]
models_dir = "{models}"

[[webhooks]]
webhook_id = "{WEBHOOK}"
url = "{receiver}"
batch_size = 100
batch_timeout = 0.5
timeout = 10
retry_count = 10
retry_delay = 1

[mqtt]
host = "127.0.0.1"
port = {broker}
device_id = "soak"
reconnect_delay = 0.2
reconnect_max_delay = 2.0

[[cameras]]
camera_id = "door"
fps = 3
spec = {{ kind = "file", path = "{video}", fps = 3, looped = true }}

[cameras.policy]
detected_interval = 10
recognized_interval = 10
stranger_min_frames = 4
stranger_cooldown = 20
stranger_hourly_cap = 1000
attendance_window = 30
"#,
        models = root().join("models").display(),
        video = video.display(),
    )
}

async fn enrol(api: &Api) {
    for person in ["John_Salley", "John_Savage"] {
        let files: Vec<(&str, Vec<u8>)> = photos_of(person)[..3]
            .iter()
            .map(|p| ("file", std::fs::read(p).unwrap()))
            .collect();
        let name = person.replace('_', " ");
        let (code, v) = common::post_form(
            api,
            "/api/v1/insightface/register",
            &[("name", &name)],
            &files,
        )
        .await;
        assert_eq!(code, StatusCode::OK, "enrolling {name}: {v}");
    }
}

/// Records sample events through the API until `stop`, keeping every id acknowledged with 200.
async fn produce(api: Arc<Mutex<Api>>, acked: Arc<Mutex<HashSet<String>>>, stop: Arc<Mutex<bool>>) {
    let types = [
        "face_recognized",
        "face_detected",
        "stranger_alert",
        "attendance_recorded",
    ];
    let mut n = 0usize;
    while !*stop.lock().unwrap() {
        let count = rand::thread_rng().gen_range(1..=4);
        let body =
            json!({"event_type": types[n % types.len()], "count": count, "camera_id": "trigger"});
        let client = api.lock().unwrap().clone();
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            client.try_raw(Method::POST, "/api/v1/events/trigger", body.to_string()),
        )
        .await;
        if let Ok(Some((StatusCode::OK, v))) = answer {
            let mut acked = acked.lock().unwrap();
            for e in v["events"].as_array().into_iter().flatten() {
                acked.insert(e["id"].as_str().unwrap_or_default().to_owned());
            }
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Every event in the outbox, as (id, event_type), through the API.
async fn outbox(api: &Api) -> Vec<(String, String)> {
    let mut after = 0i64;
    let mut all = Vec::new();
    loop {
        let (code, page) = api
            .get(&format!("/api/v1/events?after_seq={after}&limit=1000"))
            .await;
        assert_eq!(code, StatusCode::OK, "{page}");
        let events = page["events"].as_array().unwrap();
        if events.is_empty() {
            return all;
        }
        for e in events {
            let ev = &e["event"];
            all.push((
                ev["id"].as_str().unwrap().to_owned(),
                ev["event_type"].as_str().unwrap().to_owned(),
            ));
        }
        after = page["next_after_seq"].as_i64().unwrap();
    }
}

/// What each sink got: ids in arrival order, repeats included.
fn webhook_ids(rx: &Receiver) -> Vec<String> {
    rx.accepted_ids()
}
fn mqtt_ids(sub: &Subscriber) -> Vec<String> {
    sub.event_ids(TOPICS)
}

struct World {
    dir: tempfile::TempDir,
    port: u16,
    flapper: Flapper,
    broker: Broker,
    sub: Subscriber,
    app: Appliance,
}

async fn set_up() -> World {
    common::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("door.y4m");
    make_video(&video);
    let rx = Receiver::start().await;
    let broker = Broker::start_persistent();
    let sub =
        Subscriber::connect_persistent(broker.port, "soak-subscriber", &["facecv/soak/events/#"])
            .await;
    let port = common::free_port();
    let config = common::write_config(
        dir.path(),
        port,
        &config_text(&rx.url("/hook"), broker.port, &video),
    );
    let log = dir.path().join("facecv.log");
    let app = Appliance::start(&config, port, &log).await;
    enrol(&app.api).await;
    println!(
        "soak: facecv pid {} on 127.0.0.1:{port}, receiver {}, mosquitto 127.0.0.1:{}, log {}",
        app.child.id(),
        rx.addr,
        broker.port,
        log.display()
    );
    let flapper = Flapper {
        rx,
        up: true,
        phase: Phase::Up,
    };
    World {
        dir,
        port,
        flapper,
        broker,
        sub,
        app,
    }
}

/// The soak itself; returns the number of events lost.
async fn soak(length: Duration) -> usize {
    let mut w = set_up().await;
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(Mutex::new(false));
    let api = Arc::new(Mutex::new(w.app.api.clone()));
    let producer = tokio::spawn(produce(api.clone(), acked.clone(), stop.clone()));

    // Faults at shares of the run; the receiver's cycle is a quarter of it, 1 to 2.5 minutes.
    // The kills come early so that the last process lives for 60% of the run: its own memory
    // trend is the one a leak shows in.
    let cycle = (length.as_secs_f64() / 4.0).clamp(60.0, 150.0);
    let mut kills = vec![0.1, 0.25, 0.4];
    let mut broker_restarts = vec![0.15, 0.5, 0.8];
    let mut samples = Vec::new();
    let mut pids = Vec::new();
    let start = Instant::now();
    let mut next_minute = 1u32;
    println!("minute  pid      VmRSS   VmHWM    fds  acked  webhook  mqtt");
    while start.elapsed() < length {
        let elapsed = start.elapsed();
        let share = elapsed.as_secs_f64() / length.as_secs_f64();
        let phase = phase_at(elapsed, cycle);
        if phase != w.flapper.phase {
            println!("soak: receiver {phase:?} at {:.0} s", elapsed.as_secs_f64());
        }
        w.flapper.set(phase).await;
        if kills.first().is_some_and(|&k| share >= k) {
            kills.remove(0);
            println!(
                "soak: kill -9 of facecv (pid {}) at {:.0} s",
                w.app.child.id(),
                elapsed.as_secs_f64()
            );
            w.app.kill9_and_restart(w.port).await;
            *api.lock().unwrap() = w.app.api.clone();
        }
        if broker_restarts.first().is_some_and(|&b| share >= b) {
            broker_restarts.remove(0);
            println!(
                "soak: mosquitto stopped for 10 s at {:.0} s",
                elapsed.as_secs_f64()
            );
            w.broker.stop();
            tokio::time::sleep(Duration::from_secs(10)).await;
            w.broker.restart();
        }
        if elapsed >= Duration::from_secs(60 * u64::from(next_minute)) {
            let s = sample(next_minute, &w.app);
            let webhook: HashSet<_> = webhook_ids(&w.flapper.rx).into_iter().collect();
            let mqtt: HashSet<_> = mqtt_ids(&w.sub).into_iter().collect();
            println!(
                "{:>6}  {:<7} {:>6}k {:>6}k {:>5} {:>6} {:>8} {:>5}",
                s.minute,
                s.pid,
                s.rss_kb,
                s.hwm_kb,
                s.fds,
                acked.lock().unwrap().len(),
                webhook.len(),
                mqtt.len()
            );
            samples.push(s);
            pids.push(s.pid);
            next_minute += 1;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    *stop.lock().unwrap() = true;
    producer.await.unwrap();
    let end = sample(next_minute, &w.app);
    w.flapper.set(Phase::Up).await;
    let acked = acked.lock().unwrap().clone();
    report(&mut w, &acked, &samples, end, start).await
}

/// Waits for both sinks to hold every outbox event, then prints the figures; returns the loss.
async fn report(
    w: &mut World,
    acked: &HashSet<String>,
    samples: &[Sample],
    end: Sample,
    start: Instant,
) -> usize {
    let api = w.app.api.clone();
    let drain = Instant::now();
    let mut events = outbox(&api).await;
    loop {
        let webhook: HashSet<_> = webhook_ids(&w.flapper.rx).into_iter().collect();
        let mqtt: HashSet<_> = mqtt_ids(&w.sub).into_iter().collect();
        let behind = events
            .iter()
            .filter(|(id, _)| !webhook.contains(id) || !mqtt.contains(id))
            .count();
        if behind == 0 || drain.elapsed() > DRAIN {
            break;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        events = outbox(&api).await;
    }
    println!(
        "soak: drained in {:.0} s (both sinks up); {:.1} min in all",
        drain.elapsed().as_secs_f64(),
        start.elapsed().as_secs_f64() / 60.0
    );
    let in_outbox: HashSet<&String> = events.iter().map(|(id, _)| id).collect();
    let not_recorded = acked.iter().filter(|id| !in_outbox.contains(id)).count();
    let webhook = webhook_ids(&w.flapper.rx);
    let mqtt = mqtt_ids(&w.sub);
    let (webhook_missing, webhook_dups) = sink_figures(&events, &webhook);
    let (mqtt_missing, mqtt_dups) = sink_figures(&events, &mqtt);
    let mut by_type = std::collections::BTreeMap::new();
    for (_, t) in &events {
        *by_type.entry(t.as_str()).or_insert(0usize) += 1;
    }
    let stats = api.stats(WEBHOOK).await;
    let (_, mqtt_stats) = api.get("/api/v1/mqtt/stats").await;
    let (_, camera) = api.get("/api/v1/cameras/door").await;
    println!("== soak summary");
    println!(
        "events recorded (outbox):     {} {:?}",
        events.len(),
        by_type
    );
    println!(
        "acknowledged by trigger:      {} (not in the outbox: {not_recorded})",
        acked.len()
    );
    println!("webhook: lost {webhook_missing}, duplicates {webhook_dups} ({} deliveries, {} requests; dead letters {})",
        webhook.len(), w.flapper.rx.received().len(), stats["dead_letters"]);
    println!("mqtt:    lost {mqtt_missing}, duplicates {mqtt_dups} ({} messages; connects {}, connection losses {})",
        mqtt.len(), mqtt_stats["connects"], mqtt_stats["connection_losses"]);
    println!(
        "camera door: state {}, frames analysed {}, events {}",
        camera["state"], camera["frames_analysed"], camera["events_recorded"]
    );
    print_trend(samples, end);
    let lost = not_recorded + webhook_missing + mqtt_missing;
    println!("events lost: {lost} (must be 0)");
    if lost > 0 {
        // Keep the folder for a look at the log.
        let kept = std::mem::replace(&mut w.dir, tempfile::tempdir().unwrap()).keep();
        println!(
            "the store and the appliance's log are kept in {}",
            kept.display()
        );
    }
    lost
}

/// Outbox events a sink never got, and how many of its deliveries were repeats.
fn sink_figures(events: &[(String, String)], got: &[String]) -> (usize, usize) {
    let unique: HashSet<&String> = got.iter().collect();
    let missing = events.iter().filter(|(id, _)| !unique.contains(id)).count();
    (missing, got.len() - unique.len())
}

fn print_trend(samples: &[Sample], end: Sample) {
    let mut all = samples.to_vec();
    all.push(end);
    let delta = |a: &Sample, b: &Sample| {
        format!(
            "VmRSS {} -> {} kB ({:+}), VmHWM {} -> {} kB, fds {} -> {} ({:+})",
            a.rss_kb,
            b.rss_kb,
            b.rss_kb as i64 - a.rss_kb as i64,
            a.hwm_kb,
            b.hwm_kb,
            a.fds,
            b.fds,
            b.fds as i64 - a.fds as i64
        )
    };
    match all.iter().find(|s| s.minute >= 2) {
        Some(m2) => println!("trend, minute 2 to the end: {}", delta(m2, &end)),
        None => println!("trend: the run was shorter than 2 minutes"),
    }
    // A kill -9 starts a new process, whose first minute is start-up (models loading): the
    // last process's own figures from its first sample a minute or more after its start.
    match all
        .iter()
        .find(|s| s.pid == end.pid && s.age_s >= 60 && s.minute < end.minute)
    {
        Some(first) => println!(
            "trend, the last process (pid {}) from minute {} ({} s old) to the end ({} s old): {}",
            end.pid,
            first.minute,
            first.age_s,
            end.age_s,
            delta(first, &end)
        ),
        None => println!("trend of the last process: it ran less than two minutes"),
    }
}
