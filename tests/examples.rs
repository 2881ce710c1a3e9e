//! The receivers and the integration script in `examples/`, run for real against the appliance.
//!
//! The Python receiver verifies signatures with the `standardwebhooks` package and the Node one with
//! node's crypto: two implementations that share no code with ours. Each test starts a receiver as a
//! child process with a secret the test chose, points a webhook at it, records events, and reads
//! the events file the receiver writes.
//!
//! These tests need Python 3 with `pip install -r examples/requirements.txt` and Node with
//! `npm ci --prefix examples`; without them they fail (CI installs both) and say what is missing.
//! `PYTHON` and `NODE` name other interpreters than `python3` and `node`.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::Api;
use rand::RngCore;
use serde_json::{json, Value};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples");
const SECRET_ENV: &str = "FACECV_WEBHOOK_SECRET";

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn node() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".into())
}

/// Fails, saying what to install, unless Python has what the examples import.
fn require_python() {
    let check = "import fastapi, uvicorn, requests; from standardwebhooks.webhooks import Webhook";
    match Command::new(python()).args(["-c", check]).output() {
        Err(e) => panic!(
            "cannot run {}: {e}. The example tests need Python 3 with the examples' packages: \
             pip install -r examples/requirements.txt",
            python()
        ),
        Ok(out) if !out.status.success() => panic!(
            "Python lacks a package the examples need:\n{}\nInstall them with: \
             pip install -r examples/requirements.txt",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Ok(_) => {}
    }
}

/// Fails, saying what to install, unless Node and the examples' node_modules are there.
fn require_node() {
    match Command::new(node()).arg("--version").output() {
        Ok(out) if out.status.success() => {}
        Ok(_) | Err(_) => panic!(
            "cannot run {}: the example tests need Node.js 18 or later, then: npm ci --prefix examples",
            node()
        ),
    }
    let express = Path::new(EXAMPLES).join("node_modules/express/package.json");
    assert!(
        express.exists(),
        "{} is missing: install the Node example's dependencies with: npm ci --prefix examples",
        express.display()
    );
}

/// A Standard Webhooks secret chosen here: `whsec_` + base64 of 32 random bytes.
fn new_secret() -> String {
    let mut key = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut key);
    format!("whsec_{}", B64.encode(key))
}

#[derive(Debug, Clone, Copy)]
enum Lang {
    Python,
    Node,
}

impl Lang {
    fn require(self) {
        match self {
            Lang::Python => require_python(),
            Lang::Node => require_node(),
        }
    }

    fn command(self) -> Command {
        let mut cmd = match self {
            Lang::Python => {
                let mut c = Command::new(python());
                c.arg(Path::new(EXAMPLES).join("webhook_server.py"));
                c
            }
            Lang::Node => {
                let mut c = Command::new(node());
                c.arg(Path::new(EXAMPLES).join("webhook_server.js"));
                c
            }
        };
        cmd.env("PYTHONUNBUFFERED", "1");
        cmd
    }
}

/// Where a child writes its output: one file for stdout and stderr, read back for failure messages.
fn output_file(path: &Path) -> (Stdio, Stdio) {
    let f = File::create(path).expect("create the log file");
    let g = f.try_clone().expect("clone the log file");
    (Stdio::from(f), Stdio::from(g))
}

/// An example receiver running as a child process; killed when dropped.
struct Receiver {
    lang: Lang,
    child: Child,
    port: u16,
    events_file: PathBuf,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Receiver {
    /// Starts the receiver with `secret` and waits until its /health says it verifies signatures.
    async fn start(lang: Lang, secret: &str) -> Receiver {
        let dir = tempfile::tempdir().unwrap();
        let port = common::free_port();
        let events_file = dir.path().join("events.jsonl");
        let log = dir.path().join("receiver.log");
        let (stdout, stderr) = output_file(&log);
        let child = lang
            .command()
            .args(["--port", &port.to_string(), "--events-file"])
            .arg(&events_file)
            .env(SECRET_ENV, secret)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {lang:?} receiver: {e}"));
        let mut r = Receiver {
            lang,
            child,
            port,
            events_file,
            log,
            _dir: dir,
        };
        r.wait_until_up().await;
        r
    }

    async fn wait_until_up(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "the {:?} receiver exited with {status} before it listened\n{}",
                    self.lang,
                    self.logs()
                );
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the {:?} receiver did not listen on port {} within 20 s\n{}",
                self.lang,
                self.port,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Ours, and not some other listener that took the port: it knows it has a secret.
        let (status, health) = Api::new(([127, 0, 0, 1], self.port).into())
            .get("/health")
            .await;
        assert_eq!(status, 200, "{health}\n{}", self.logs());
        assert_eq!(health["verifying_signatures"], true, "{health}");
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The events the receiver accepted, from whole lines of its events file.
    fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.events_file).unwrap_or_default();
        text.split_inclusive('\n')
            .filter(|l| l.ends_with('\n'))
            .map(|l| serde_json::from_str(l).expect("a JSON line per event"))
            .collect()
    }

    fn event_ids(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["id"].as_str().expect("an event id").to_owned())
            .collect()
    }

    fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        format!("--- {:?} receiver output ---\n{text}---", self.lang)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls the webhook's entry in /api/v1/webhooks/stats until `cond` holds.
async fn wait_for_stats(
    api: &Api,
    webhook: &str,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = api.stats(webhook).await;
        if cond(&stats) {
            return stats;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after 20 s waiting for {what}: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut v = ids.to_vec();
    v.sort();
    v
}

/// Signed batches reach the receiver, which verifies them and writes each event exactly once, even
/// when the appliance sends them all again.
async fn verified_events_reach(lang: Lang) {
    lang.require();
    let secret = new_secret();
    let receiver = Receiver::start(lang, &secret).await;
    let app = common::start_app().await;
    let api = &app.api;
    let created = api
        .create_webhook(json!({
            "webhook_id": "example_receiver",
            "url": receiver.url("/webhook/face-recognition"),
            "event_types": ["face_recognized", "stranger_alert"],
            "secret": secret,
            "batch_size": 4,
            "batch_timeout": 0.2,
            "retry_count": 2,
            "retry_delay": 1,
        }))
        .await;
    assert_eq!(created["secret"], secret.as_str());

    // Not among the webhook's event types: must not arrive. Recorded first so that the worker's
    // last write is the success that empties the backlog (see the replay below).
    api.trigger("face_detected", 2).await;
    let mut expected = api.trigger("face_recognized", 5).await;
    expected.extend(api.trigger("stranger_alert", 3).await);

    common::wait_until(
        Duration::from_secs(20),
        "8 events in the receiver's file",
        || receiver.events().len() >= expected.len(),
    )
    .await;
    let stats = wait_for_stats(api, "example_receiver", "an empty backlog", |s| {
        s["backlog"] == 0
    })
    .await;
    assert_eq!(stats["succeeded"], 8, "{stats}");
    assert_eq!(stats["failed"], 0, "{stats}");
    assert_eq!(
        sorted(&receiver.event_ids()),
        sorted(&expected),
        "{}",
        receiver.logs()
    );
    for e in receiver.events() {
        match e["event_type"].as_str() {
            Some("face_recognized") => {
                let face = &e["data"]["recognized_faces"][0];
                assert!(face["name"].is_string(), "{e}");
                assert_eq!(e["data"]["recognized_count"], 1, "{e}");
                assert!(
                    receiver.logs().contains(&format!(
                        "Recognized: {} from entrance",
                        face["name"].as_str().unwrap()
                    )),
                    "the receiver logs each recognition like the guide\n{}",
                    receiver.logs()
                );
            }
            Some("stranger_alert") => assert!(e["data"]["alert_level"].is_string(), "{e}"),
            other => panic!("unexpected event type {other:?}: {e}"),
        }
    }

    // At-least-once: send every stored event again. The receiver accepts the requests and writes
    // nothing new. (The replay rewinds the cursor before the running worker is stopped, so a
    // cursor write still in flight would undo it: here the worker is idle, its cursor at the head.)
    let (status, v) = api
        .post(
            "/api/v1/webhooks/example_receiver/replay",
            json!({"from_seq": 1}),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let stats = wait_for_stats(
        api,
        "example_receiver",
        "the replay to be acknowledged",
        |s| s["succeeded"] == 16 && s["backlog"] == 0,
    )
    .await;
    assert_eq!(stats["failed"], 0, "{stats}");
    assert_eq!(
        sorted(&receiver.event_ids()),
        sorted(&expected),
        "duplicates must be dropped\n{}",
        receiver.logs()
    );
    assert!(
        receiver.logs().contains("Duplicate event"),
        "{}",
        receiver.logs()
    );
    app.app.shutdown().await.unwrap();
}

/// A webhook signed with another secret than the receiver's: every request gets 401 and the
/// receiver writes nothing.
async fn a_wrong_secret_is_refused(lang: Lang) {
    lang.require();
    let receiver = Receiver::start(lang, &new_secret()).await;
    let app = common::start_app().await;
    let api = &app.api;
    api.create_webhook(json!({
        "webhook_id": "wrong_secret",
        "url": receiver.url("/webhook/alerts"),
        "secret": new_secret(),
        "batch_timeout": 0.1,
        "retry_count": 0,
    }))
    .await;
    api.trigger("face_recognized", 2).await;
    api.trigger("stranger_alert", 1).await;

    let stats = wait_for_stats(
        api,
        "wrong_secret",
        "the batch to become a dead letter",
        |s| s["backlog"] == 0 && s["failed"] == 3,
    )
    .await;
    assert_eq!(stats["succeeded"], 0, "{stats}");
    assert!(stats["dead_letters"].as_u64().unwrap() >= 1, "{stats}");
    let (status, v) = api.get("/api/v1/webhooks/wrong_secret/deliveries").await;
    assert_eq!(status, 200, "{v}");
    let deliveries = v["deliveries"].as_array().unwrap();
    assert!(!deliveries.is_empty(), "{v}");
    for d in deliveries {
        assert_eq!(d["status"], 401, "every attempt is refused: {v}");
    }
    assert!(
        receiver.events().is_empty(),
        "nothing is accepted\n{}",
        receiver.logs()
    );
    app.app.shutdown().await.unwrap();
}

#[tokio::test]
async fn python_receiver_verifies_and_dedupes() {
    verified_events_reach(Lang::Python).await;
}

#[tokio::test]
async fn node_receiver_verifies_and_dedupes() {
    verified_events_reach(Lang::Node).await;
}

#[tokio::test]
async fn python_receiver_refuses_a_wrong_secret() {
    a_wrong_secret_is_refused(Lang::Python).await;
}

#[tokio::test]
async fn node_receiver_refuses_a_wrong_secret() {
    a_wrong_secret_is_refused(Lang::Node).await;
}

/// Runs `examples/webhook_integration.py` to its end; returns its exit status and output.
async fn run_integration(
    args: &[&str],
    secret: &str,
    out: &Path,
) -> (std::process::ExitStatus, String) {
    let (stdout, stderr) = output_file(out);
    let mut child = Command::new(python())
        .arg(Path::new(EXAMPLES).join("webhook_integration.py"))
        .args(args)
        .env(SECRET_ENV, secret)
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .expect("start webhook_integration.py");
    // Polled, not waited for: the appliance runs on this test's runtime.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "webhook_integration.py did not finish within 30 s:\n{}",
                std::fs::read_to_string(out).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    (status, std::fs::read_to_string(out).unwrap_or_default())
}

/// The guide's complete example, against an appliance that wants a token, with the Python receiver.
#[tokio::test]
async fn the_integration_script_runs_against_the_appliance() {
    require_python();
    const TOKEN: &str = "example-token-0123456789";
    let secret = new_secret();
    let receiver = Receiver::start(Lang::Python, &secret).await;
    let app = common::start_app_with(|c| c.api.token = Some(TOKEN.into())).await;
    let api = app.api.clone().with_token(TOKEN);
    let url = receiver.url("/webhook/face-recognition");
    let args = [
        "--api",
        &api.base,
        "--receiver",
        &url,
        "--token",
        TOKEN,
        "--webhook-id",
        "integration_demo",
        "--wait",
        "20",
    ];

    let (status, output) = run_integration(&args, &secret, &app.dir.path().join("run1.log")).await;
    assert!(status.success(), "{status}\n{output}\n{}", receiver.logs());
    assert!(
        output.contains("Created webhook integration_demo"),
        "{output}"
    );
    assert!(
        output.contains(&format!("Signing secret: {secret}")),
        "{output}"
    );
    // By default the script asks for these types and triggers 2 events of each of the six.
    let (status, v) = api
        .get("/api/v1/events?event_type=face_recognized,stranger_alert,attendance_recorded")
        .await;
    assert_eq!(status, 200, "{v}");
    let wanted: Vec<String> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(wanted.len(), 6, "{v}");
    assert_eq!(
        sorted(&receiver.event_ids()),
        sorted(&wanted),
        "{output}\n{}",
        receiver.logs()
    );

    // Again: the webhook exists, so the script replaces it and goes on.
    let (status, output) = run_integration(&args, &secret, &app.dir.path().join("run2.log")).await;
    assert!(status.success(), "{status}\n{output}\n{}", receiver.logs());
    assert!(output.contains("replaced"), "{output}");
    let ids: BTreeSet<String> = receiver.event_ids().into_iter().collect();
    assert_eq!(ids.len(), 12, "{output}\n{}", receiver.logs());
    assert_eq!(receiver.event_ids().len(), 12, "no event twice");
    app.app.shutdown().await.unwrap();
}
