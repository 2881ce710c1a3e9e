//! Delivery benchmark: `cargo bench --bench delivery`.
//!
//! Runs the real `facecv` release binary as a child process (so its RSS is its own) against the
//! tests' loopback receiver (`tests/common`, in its counting mode that keeps nothing) in this
//! process, everything on 127.0.0.1, and prints:
//! 1. durable events/s delivered with `batch_size` 100, beside the rate a bare hyper client gets
//!    from the same receiver with the same bodies and one request in flight (as one webhook has);
//! 2. record-to-receiver latency with `batch_size` 1 at a steady 200 events/s;
//! 3. the appliance's RSS when idle and under the load of (1).
//!
//! A plain `fn main` (no criterion): the figures are end-to-end and printed once.

#[path = "../tests/common/mod.rs"]
mod common;

use common::procfs::{self, Proc};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};

/// Events recorded for the throughput run, unless `PRODUCE_FOR` runs out first.
const TP_EVENTS: u64 = 200_000;
const PRODUCE_FOR: Duration = Duration::from_secs(10);
/// How long delivery may take to catch up after the producers stop.
const DRAIN_FOR: Duration = Duration::from_secs(25);
/// Concurrent `POST /events/trigger` callers, each recording `TRIGGER_COUNT` events per call.
const PRODUCERS: usize = 4;
const TRIGGER_COUNT: u64 = 1000;
const TP_BATCH: u64 = 100;
const TP_TARGET: f64 = 20_000.0;
/// The sustained run: producers paced at the target rate, in calls of this many events.
const PACED_COUNT: u64 = 100;
const PACED_FOR: Duration = Duration::from_secs(5);
/// How long the bare hyper client sends.
const BARE_FOR: Duration = Duration::from_secs(3);
/// The latency run: single-event records at this rate for this long.
const LAT_RATE: u64 = 200;
const LAT_FOR: Duration = Duration::from_secs(5);
const LAT_TARGET_P99_MS: f64 = 50.0;
/// What marks one event in a delivered body.
const EVENT_MARK: &[u8] = br#""id":"evt_"#;

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

// ---------------------------------------------------------------------------------------------
// The receiver

/// Requests and events one receiver path got, and when the last one came (ns since the
/// receiver started).
#[derive(Default)]
struct Tally {
    requests: AtomicU64,
    events: AtomicU64,
    last_ns: AtomicU64,
}

impl Tally {
    fn add(&self, events: u64, at_ns: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events, Ordering::Relaxed);
        self.last_ns.fetch_max(at_ns, Ordering::Relaxed);
    }
    fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// One request as the appliance sent it, for the bare client to send again.
struct Sample {
    headers: HeaderMap,
    body: Bytes,
}

/// What the receiver counts, by path.
struct Tallies {
    base: Instant,
    /// `/tp`: the appliance, batch_size 100.
    tp: Tally,
    /// `/bare`: the bare hyper client.
    bare: Tally,
    /// `/lat`: the appliance, batch_size 1; every event id with its arrival time.
    arrivals: Mutex<HashMap<String, Instant>>,
    sample: Mutex<Option<Sample>>,
}

/// The tests' receiver, counting into [`Tallies`].
struct Receiver {
    http: common::Receiver,
    tallies: Arc<Tallies>,
}

impl std::ops::Deref for Receiver {
    type Target = Tallies;
    fn deref(&self) -> &Tallies {
        &self.tallies
    }
}

impl Receiver {
    async fn start() -> Result<Receiver> {
        let tallies = Arc::new(Tallies {
            base: Instant::now(),
            tp: Tally::default(),
            bare: Tally::default(),
            arrivals: Mutex::new(HashMap::new()),
            sample: Mutex::new(None),
        });
        let t = tallies.clone();
        let tap: common::Tap =
            Arc::new(move |path, headers, body, at| t.receive(path, headers, body, at));
        let http = common::Receiver::start_tapped(tap).await;
        Ok(Receiver { http, tallies })
    }

    fn url(&self, path: &str) -> String {
        self.http.url(path)
    }
}

impl Tallies {
    fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    fn at(&self, ns: u64) -> Instant {
        self.base + Duration::from_nanos(ns)
    }

    fn receive(&self, path: &str, headers: HeaderMap, body: Bytes, now: Instant) {
        let ns = self.now_ns();
        match path {
            "/tp" => {
                let n = count_events(&body);
                if n == TP_BATCH {
                    let mut s = self.sample.lock().unwrap();
                    if s.is_none() {
                        *s = Some(Sample { headers, body });
                    }
                }
                self.tp.add(n, ns);
            }
            "/bare" => self.bare.add(count_events(&body), ns),
            "/lat" => {
                let mut arrivals = self.arrivals.lock().unwrap();
                for id in event_ids(&body) {
                    arrivals.entry(id).or_insert(now);
                }
            }
            _ => {}
        }
    }
}

/// Positions just past each `"id":"evt_` in `body`.
fn marks(body: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while let Some(p) = body[i..].iter().position(|&c| c == b'"') {
            let at = i + p;
            if body[at..].starts_with(EVENT_MARK) {
                i = at + EVENT_MARK.len();
                return Some(i);
            }
            i = at + 1;
        }
        None
    })
}

fn count_events(body: &[u8]) -> u64 {
    marks(body).count() as u64
}

/// The event ids (`evt_...`) in a delivered body.
fn event_ids(body: &[u8]) -> Vec<String> {
    marks(body)
        .filter_map(|end| {
            let start = end - 4; // keep the "evt_" prefix
            let len = body[end..].iter().position(|&c| c == b'"')?;
            Some(String::from_utf8_lossy(&body[start..end + len]).into_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The appliance

type HttpClient = Client<HttpConnector, Full<Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// What the runs ask of the appliance, through the tests' API client.
#[derive(Clone)]
struct Api(common::Api);

impl Api {
    async fn json(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let body = body.map_or_else(Bytes::new, |v| Bytes::from(v.to_string()));
        let (status, v) = self
            .0
            .try_raw(method.clone(), path, body)
            .await
            .with_context(|| format!("{method} {path}: no answer"))?;
        ensure!(status == StatusCode::OK, "{method} {path}: {status} {v}");
        Ok(v)
    }

    async fn trigger(&self, count: u64) -> Result<Value> {
        let body = json!({"event_type": "face_recognized", "count": count, "camera_id": "bench"});
        self.json(Method::POST, "/api/v1/events/trigger", Some(body))
            .await
    }

    async fn create_webhook(&self, id: &str, url: &str, batch_size: u64) -> Result<()> {
        let body = json!({
            "webhook_id": id,
            "url": url,
            "batch_size": batch_size,
            "batch_timeout": 0.1,
            "retry_count": 3,
            "retry_delay": 1,
            "timeout": 10,
        });
        self.json(Method::POST, "/api/v1/webhooks", Some(body))
            .await?;
        Ok(())
    }

    /// The Prometheus text (not JSON: the client hands it over as a string).
    async fn metrics(&self) -> Result<String> {
        let v = self.json(Method::GET, "/metrics", None).await?;
        Ok(v.as_str().unwrap_or_default().to_owned())
    }
}

struct Appliance {
    child: Child,
    pid: u32,
    api: Api,
    log: std::path::PathBuf,
}

impl Appliance {
    async fn start(dir: &Path) -> Result<Appliance> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let store = dir.join("store");
        let config = dir.join("facecv.toml");
        std::fs::write(
            &config,
            format!(
                "[api]\nlisten = \"127.0.0.1:{port}\"\n\n[storage]\ndir = {:?}\nfsync = \"always\"\nquota_mb = 4096\n",
                store.display().to_string()
            ),
        )?;
        let log = dir.join("facecv.log");
        let child = Command::new(env!("CARGO_BIN_EXE_facecv"))
            .args(["serve", "--config"])
            .arg(&config)
            .env("LOG_LEVEL", "WARNING")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("starting the facecv binary")?;
        let pid = child.id();
        let api = Api(common::Api::new(SocketAddr::from(([127, 0, 0, 1], port))));
        let mut app = Appliance {
            child,
            pid,
            api,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let probe = tokio::time::timeout(
                Duration::from_secs(1),
                app.api.0.try_raw(Method::GET, "/health", Bytes::new()),
            );
            if let Ok(Some((StatusCode::OK, _))) = probe.await {
                return Ok(app);
            }
            if let Some(status) = app.child.try_wait()? {
                bail!("facecv exited at start ({status}): {}", app.log_tail());
            }
            ensure!(
                Instant::now() < deadline,
                "facecv did not answer /health within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log)
    }

    /// VmRSS and VmHWM in KiB.
    fn memory(&self) -> (u64, u64) {
        let m = procfs::memory(Proc::Pid(self.pid));
        (m.rss_kib, m.hwm_kib)
    }

    /// SIGTERM, then waits; returns how long the shutdown took and the exit status.
    fn stop(mut self) -> Result<(Duration, String)> {
        let started = Instant::now();
        Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .context("sending SIGTERM")?;
        let deadline = started + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok((started.elapsed(), status.to_string()));
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                bail!("facecv did not stop within 15 s of SIGTERM; killed it");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The last lines the appliance wrote to stderr.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

/// Samples the appliance's VmRSS every 50 ms and keeps the largest since the last `take`.
struct RssPeak(Arc<AtomicU64>);

impl RssPeak {
    fn start(pid: u32) -> RssPeak {
        let peak = Arc::new(AtomicU64::new(0));
        let p = peak.clone();
        tokio::spawn(async move {
            loop {
                // A read of /proc does not block on a disk.
                let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                    return;
                };
                let rss = procfs::status_kib(&status, "VmRSS:");
                p.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssPeak(peak)
    }
    fn take(&self) -> u64 {
        self.0.swap(0, Ordering::Relaxed)
    }
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds of the appliance (total and per thread name) and of this process over a phase.
struct CpuMeter {
    pid: Proc,
    hz: f64,
    app_total: u64,
    app_threads: HashMap<String, u64>,
    bench: u64,
}

impl CpuMeter {
    fn start(pid: u32, hz: f64) -> CpuMeter {
        let pid = Proc::Pid(pid);
        CpuMeter {
            app_total: procfs::cpu_total(pid),
            app_threads: procfs::cpu_by_thread_name(pid),
            bench: procfs::cpu_total(Proc::Me),
            pid,
            hz,
        }
    }

    /// `(appliance s, [(thread, s)], bench s)`
    fn stop(&self) -> (f64, Vec<(String, f64)>, f64) {
        let app = (procfs::cpu_total(self.pid) - self.app_total) as f64 / self.hz;
        let mut threads: Vec<(String, f64)> = procfs::cpu_by_thread_name(self.pid)
            .into_iter()
            .map(|(name, t)| {
                let before = self.app_threads.get(&name).copied().unwrap_or(0);
                (name, t.saturating_sub(before) as f64 / self.hz)
            })
            .collect();
        threads.sort_by(|a, b| b.1.total_cmp(&a.1));
        let bench = (procfs::cpu_total(Proc::Me) - self.bench) as f64 / self.hz;
        (app, threads, bench)
    }
}

/// `sum` and `count` of a histogram in the appliance's `/metrics` for one sink.
fn histogram(metrics: &str, name: &str, sink: &str) -> (f64, f64) {
    let find = |suffix: &str| {
        let prefix = format!("facecv_{name}_{suffix}{{");
        metrics
            .lines()
            .filter(|l| l.starts_with(&prefix) && l.contains(&format!("sink=\"{sink}\"")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    (find("sum"), find("count"))
}

// ---------------------------------------------------------------------------------------------
// The runs

struct Throughput {
    recorded: u64,
    trigger_calls: u64,
    produce_secs: f64,
    delivered: u64,
    requests: u64,
    /// From the first trigger call to the receiver's last acknowledged batch.
    deliver_secs: f64,
    delivered_at_produce_end: u64,
    requests_at_produce_end: u64,
    drain_secs: f64,
    drained_all: bool,
    rss_peak_kib: u64,
    hwm_kib: u64,
    cpu: (f64, Vec<(String, f64)>, f64),
    /// Mean of the appliance's own `sink_request_duration_seconds` for the webhook.
    http_secs_per_request: f64,
}

async fn throughput(app: &Appliance, rx: &Receiver, rss: &RssPeak, hz: f64) -> Result<Throughput> {
    app.api
        .create_webhook("tp", &rx.url("/tp"), TP_BATCH)
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    rss.take();
    let cpu = CpuMeter::start(app.pid, hz);

    let started = Instant::now();
    let deadline = started + PRODUCE_FOR;
    let claimed = Arc::new(AtomicU64::new(0));
    let mut producers = tokio::task::JoinSet::new();
    for _ in 0..PRODUCERS {
        let (api, claimed) = (app.api.clone(), claimed.clone());
        producers.spawn(async move {
            let (mut recorded, mut calls) = (0u64, 0u64);
            while Instant::now() < deadline {
                let from = claimed.fetch_add(TRIGGER_COUNT, Ordering::Relaxed);
                if from >= TP_EVENTS {
                    break;
                }
                let n = TRIGGER_COUNT.min(TP_EVENTS - from);
                let answer = api.trigger(n).await?;
                ensure!(
                    answer["count"] == json!(n),
                    "trigger recorded {}",
                    answer["count"]
                );
                recorded += n;
                calls += 1;
            }
            Ok::<_, anyhow::Error>((recorded, calls))
        });
    }
    let (mut recorded, mut trigger_calls) = (0, 0);
    while let Some(r) = producers.join_next().await {
        let (n, c) = r??;
        recorded += n;
        trigger_calls += c;
    }
    let produce_secs = started.elapsed().as_secs_f64();
    let delivered_at_produce_end = rx.tp.events();
    let requests_at_produce_end = rx.tp.requests();
    let produce_end_ns = rx.now_ns();

    let drain_deadline = Instant::now() + DRAIN_FOR;
    while rx.tp.events() < recorded && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cpu = cpu.stop();
    let delivered = rx.tp.events();
    let last = rx.at(rx.tp.last_ns.load(Ordering::Relaxed));
    let deliver_secs = last.saturating_duration_since(started).as_secs_f64();
    let drain_secs = rx
        .tp
        .last_ns
        .load(Ordering::Relaxed)
        .saturating_sub(produce_end_ns) as f64
        / 1e9;
    let rss_peak_kib = rss.take();
    let (_, hwm_kib) = app.memory();
    let metrics = app.api.metrics().await?;
    let (sum, count) = histogram(&metrics, "sink_request_duration_seconds", "webhook:tp");
    Ok(Throughput {
        recorded,
        trigger_calls,
        produce_secs,
        delivered,
        requests: rx.tp.requests(),
        deliver_secs,
        delivered_at_produce_end,
        requests_at_produce_end,
        drain_secs,
        drained_all: delivered >= recorded,
        rss_peak_kib,
        hwm_kib,
        cpu,
        http_secs_per_request: if count > 0.0 { sum / count } else { f64::NAN },
    })
}

struct Paced {
    recorded: u64,
    secs: f64,
    delivered_by_end: u64,
    /// From the last acknowledged record to the receiver having every event.
    catch_up_ms: f64,
    drained_all: bool,
}

/// Records at the target rate (calls of `PACED_COUNT` every few ms) on the `tp` webhook and
/// checks whether delivery keeps up: the backlog when the producers stop, and how long it takes
/// the receiver to have everything after that.
async fn paced(app: &Appliance, rx: &Receiver) -> Result<Paced> {
    let base = rx.tp.events();
    let calls_per_sec = TP_TARGET as u64 / PACED_COUNT;
    let total_calls = calls_per_sec * PACED_FOR.as_secs();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / calls_per_sec));
    // Late ticks are made up at once, so the average rate is the one asked for.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..total_calls {
        ticker.tick().await;
        let api = app.api.clone();
        calls.spawn(async move { api.trigger(PACED_COUNT).await });
    }
    let mut recorded = 0;
    while let Some(r) = calls.join_next().await {
        r??;
        recorded += PACED_COUNT;
    }
    let end = Instant::now();
    let secs = (end - started).as_secs_f64();
    let delivered_by_end = rx.tp.events() - base;
    let deadline = end + DRAIN_FOR;
    while rx.tp.events() - base < recorded && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let last = rx.at(rx.tp.last_ns.load(Ordering::Relaxed));
    Ok(Paced {
        recorded,
        secs,
        delivered_by_end,
        catch_up_ms: last.saturating_duration_since(end).as_secs_f64() * 1000.0,
        drained_all: rx.tp.events() - base >= recorded,
    })
}

struct Bare {
    requests: u64,
    events: u64,
    secs: f64,
    body_bytes: usize,
}

/// The appliance's own request (headers and body), sent again and again by a bare hyper client
/// with one request in flight, as one webhook worker has.
async fn bare(rx: &Receiver) -> Result<Bare> {
    let Some((headers, body)) = rx
        .sample
        .lock()
        .unwrap()
        .as_ref()
        .map(|s| (s.headers.clone(), s.body.clone()))
    else {
        bail!("the receiver never got a {TP_BATCH}-event batch to copy");
    };
    let client = http_client();
    let url = rx.url("/bare");
    let started = Instant::now();
    while started.elapsed() < BARE_FOR {
        let mut req = Request::post(url.as_str()).body(Full::new(body.clone()))?;
        for (name, value) in &headers {
            if name != "host" && name != "content-length" {
                req.headers_mut().insert(name.clone(), value.clone());
            }
        }
        req.headers_mut()
            .entry("content-type")
            .or_insert(HeaderValue::from_static("application/json"));
        let resp = client.request(req).await?;
        ensure!(resp.status() == StatusCode::OK, "bare: {}", resp.status());
        resp.into_body().collect().await?;
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(Bare {
        requests: rx.bare.requests(),
        events: rx.bare.events(),
        secs,
        body_bytes: body.len(),
    })
}

struct Latency {
    sent: usize,
    arrived: usize,
    /// Milliseconds, sorted.
    end_to_end: Vec<f64>,
    record: Vec<f64>,
    secs: f64,
    /// Mean of the appliance's own `sink_event_latency_seconds` (commit to 2xx), ms.
    commit_to_ack_ms: f64,
}

async fn latency(app: &Appliance, rx: &Receiver) -> Result<Latency> {
    app.api.create_webhook("lat", &rx.url("/lat"), 1).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let total = LAT_RATE * LAT_FOR.as_secs();
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / LAT_RATE));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut calls = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..total {
        ticker.tick().await;
        let api = app.api.clone();
        calls.spawn(async move {
            let t0 = Instant::now();
            let answer = api.trigger(1).await?;
            let acked = Instant::now();
            let id = answer["events"][0]["id"]
                .as_str()
                .context("trigger answered without an id")?
                .to_owned();
            Ok::<_, anyhow::Error>((id, t0, acked))
        });
    }
    let mut sent = Vec::with_capacity(total as usize);
    while let Some(r) = calls.join_next().await {
        sent.push(r??);
    }
    let secs = started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.arrivals.lock().unwrap().len() < sent.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mut end_to_end: Vec<f64> = {
        let arrivals = rx.arrivals.lock().unwrap();
        sent.iter()
            .filter_map(|(id, t0, _)| Some(ms(arrivals.get(id)?.saturating_duration_since(*t0))))
            .collect()
    };
    let mut record: Vec<f64> = sent.iter().map(|(_, t0, acked)| ms(*acked - *t0)).collect();
    end_to_end.sort_by(f64::total_cmp);
    record.sort_by(f64::total_cmp);
    let metrics = app.api.metrics().await?;
    let (sum, count) = histogram(&metrics, "sink_event_latency_seconds", "webhook:lat");
    Ok(Latency {
        commit_to_ack_ms: sum / count * 1000.0,
        sent: sent.len(),
        arrived: end_to_end.len(),
        end_to_end,
        record,
        secs,
    })
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// The 1-minute load average: other work on the machine skews every figure here.
fn load_average() -> String {
    procfs::load_average().map_or_else(|| "?".into(), |l| format!("{l:.2}"))
}

/// The type of the file system holding `path` (the longest matching mount point).
fn fs_type(path: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
    mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, mount, fs) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(mount)
                .then(|| (mount.len(), fs.to_owned()))
        })
        .max()
        .map_or_else(|| "?".into(), |(_, fs)| fs)
}

fn grouped(n: f64) -> String {
    let s = format!("{:.0}", n);
    let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{sign}{out}")
}

/// Width of the label column.
const W: usize = 46;

/// One table row: label, amount, unit, seconds, the rate, and a remark.
fn row(label: &str, n: u64, unit: &str, secs: f64, remark: &str) {
    println!(
        "   {label:<W$}{:>9} {unit} {secs:>6.2} s {:>9} {}/s  {remark}",
        grouped(n as f64),
        grouped(n as f64 / secs),
        unit.trim(),
    );
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

async fn run() -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let hz = clock_ticks();
    let dir = tempfile::tempdir()?;
    let rx = Receiver::start().await?;
    let app = Appliance::start(dir.path()).await?;
    let rss = RssPeak::start(app.pid);

    println!();
    println!(
        "FaceCV Edge delivery bench: {cores} cores (load average {}), appliance pid {} ({}), store on {} (fsync always)",
        load_average(),
        app.pid,
        env!("CARGO_BIN_EXE_facecv"),
        fs_type(dir.path()),
    );

    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, _) = app.memory();
    rss.take();

    let tp = throughput(&app, &rx, &rss, hz).await?;
    let paced = paced(&app, &rx).await?;
    // Stop this webhook so the latency run has the appliance to itself.
    app.api
        .json(Method::DELETE, "/api/v1/webhooks/tp", None)
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (after_rss, _) = app.memory();
    let bare = bare(&rx).await?;
    let lat = latency(&app, &rx).await?;
    let (end_rss, end_hwm) = app.memory();
    let log_path = app.log.clone();
    let (stop_took, stop_status) = app.stop()?;
    let log = log_tail(&log_path);

    let tp_rate = tp.delivered as f64 / tp.deliver_secs;
    let bare_eps = bare.events as f64 / bare.secs;
    let drained = tp.delivered - tp.delivered_at_produce_end;
    let drained_requests = tp.requests - tp.requests_at_produce_end;
    let drain_rate = drained as f64 / tp.drain_secs;
    let per = |secs: f64, n: u64| format!("{:.2} ms/batch", secs * 1000.0 / n.max(1) as f64);

    println!();
    println!(
        "1. Throughput, batch_size {TP_BATCH} (1 webhook, batch_timeout 0.1 s); {PRODUCERS} producers x trigger count {TRIGGER_COUNT}"
    );
    row(
        "recorded durably (trigger acknowledged)",
        tp.recorded,
        "ev ",
        tp.produce_secs,
        &format!(
            "({} calls/s)",
            grouped(tp.trigger_calls as f64 / tp.produce_secs)
        ),
    );
    row(
        "delivered (first record -> last 200 OK)",
        tp.delivered,
        "ev ",
        tp.deliver_secs,
        &format!(
            "target >= {}: {}{}",
            grouped(TP_TARGET),
            verdict(tp_rate >= TP_TARGET && tp.drained_all),
            if tp.drained_all {
                ""
            } else {
                " (NOT ALL DELIVERED in time)"
            },
        ),
    );
    row(
        "  while the producers ran",
        tp.delivered_at_produce_end,
        "ev ",
        tp.produce_secs,
        &format!("cycle {}", per(tp.produce_secs, tp.requests_at_produce_end)),
    );
    if drained > 0 && tp.drain_secs > 0.0 {
        row(
            "  after they stopped (backlog drain alone)",
            drained,
            "ev ",
            tp.drain_secs,
            &format!("cycle {}", per(tp.drain_secs, drained_requests)),
        );
    }
    println!(
        "   {:<W$}{:.2} ms/batch (mean of {} requests, {:.1} ev each)",
        "appliance's HTTP exchange (its histogram)",
        tp.http_secs_per_request * 1000.0,
        grouped(tp.requests as f64),
        tp.delivered as f64 / tp.requests.max(1) as f64,
    );
    row(
        "bare hyper client, 1 in flight, same request",
        bare.requests,
        "req",
        bare.secs,
        &format!(
            "= {} ev/s ({:.1} KiB bodies)",
            grouped(bare_eps),
            bare.body_bytes as f64 / 1024.0
        ),
    );
    println!(
        "   {:<W$}{:.1} % (whole run), {:.1} % (drain alone)",
        "appliance ev/s / bare client ev/s",
        100.0 * tp_rate / bare_eps,
        100.0 * drain_rate / bare_eps,
    );
    let (app_cpu, threads, bench_cpu) = &tp.cpu;
    let phase = tp.deliver_secs.max(tp.produce_secs);
    let per_thread: Vec<String> = threads
        .iter()
        .filter(|(_, s)| *s >= 0.01)
        .map(|(n, s)| format!("{n} {s:.2} s"))
        .collect();
    println!(
        "   {:<W$}appliance {:.2} s = {:.0}% of {cores} cores ({}); bench process {:.2} s",
        "CPU during the run",
        app_cpu,
        100.0 * app_cpu / phase / cores as f64,
        per_thread.join(", "),
        bench_cpu,
    );
    let backlog = paced.recorded.saturating_sub(paced.delivered_by_end);
    row(
        &format!("sustained: records paced at {} ev/s", grouped(TP_TARGET)),
        paced.recorded,
        "ev ",
        paced.secs,
        &format!(
            "delivered meanwhile {} ev/s; backlog at stop {} ev{}",
            grouped(paced.delivered_by_end as f64 / paced.secs),
            grouped(backlog as f64),
            match (paced.drained_all, backlog) {
                (false, _) => " (NOT ALL DELIVERED in time)".to_owned(),
                (true, 0) => String::new(),
                (true, _) => format!(", all in {:.0} ms later", paced.catch_up_ms),
            }
        ),
    );

    println!();
    println!(
        "2. Latency, batch_size 1: single-event records at {LAT_RATE}/s for {} s ({} sent in {:.2} s, {} arrived)",
        LAT_FOR.as_secs(),
        lat.sent,
        lat.secs,
        lat.arrived,
    );
    let p99 = percentile(&lat.end_to_end, 0.99);
    for (name, v, target) in [
        ("record call (API + durable commit)", &lat.record, None),
        (
            "record call start -> receiver has it",
            &lat.end_to_end,
            Some(p99),
        ),
    ] {
        println!(
            "   {:<W$}p50 {:>6.2} ms  p99 {:>6.2} ms  max {:>6.2} ms{}",
            name,
            percentile(v, 0.5),
            percentile(v, 0.99),
            v.last().copied().unwrap_or(f64::NAN),
            target.map_or(String::new(), |p| format!(
                "  target p99 <= {LAT_TARGET_P99_MS} ms: {}",
                verdict(p <= LAT_TARGET_P99_MS && lat.arrived == lat.sent)
            )),
        );
    }
    println!(
        "   {:<W$}mean {:.2} ms",
        "appliance's commit -> 2xx (its histogram)", lat.commit_to_ack_ms
    );
    println!();
    println!("3. Appliance memory (VmRSS of the child process)");
    println!("   {:<W$}{:>12}", "idle after start", mib(idle_rss));
    println!(
        "   {:<W$}{:>12}  (VmHWM {})",
        "peak under the load of 1 (sampled / 50 ms)",
        mib(tp.rss_peak_kib),
        mib(tp.hwm_kib)
    );
    println!(
        "   {:<W$}{:>12}",
        "idle 1 s after the load of 1",
        mib(after_rss)
    );
    println!(
        "   {:<W$}{:>12}  (VmHWM {})",
        "after the latency run",
        mib(end_rss),
        mib(end_hwm)
    );
    println!();
    println!(
        "SIGTERM -> exit: {:.0} ms, {stop_status}",
        stop_took.as_secs_f64() * 1000.0
    );
    if !log.trim().is_empty() {
        println!("appliance log (last lines, level WARNING):\n{log}");
    }
    Ok(())
}
