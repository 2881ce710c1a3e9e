//! A bad day for the hardware: a damaged model file, a camera that keeps dying. Both against the
//! real binary, with real damaged copies of the shipped models and real camera commands.
//!
//! Nothing here dials an address (the cameras are `sh` commands, the API is read on loopback), so
//! these tests need no network namespace.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{self, free_port, write_config, Api, Binary};

const DETECTOR: &str = "blazeface_full_int8.tflite";

/// The default embedder's file.
fn embedder_file() -> &'static str {
    facecv::vision::EmbedderKind::default().default_model()
}

fn shipped_models() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

/// A copy of the shipped `models/` folder in `dir`, to damage.
fn copy_models(dir: &Path) -> PathBuf {
    let to = dir.join("models");
    std::fs::create_dir_all(&to).unwrap();
    for entry in std::fs::read_dir(shipped_models()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
    to
}

/// A config whose models are in `models`, with one camera of `camera` (a `[[cameras]]` body).
fn config(dir: &Path, port: u16, models: &Path, camera: &str) -> PathBuf {
    write_config(
        dir,
        port,
        &format!(
            "[vision]\nmodels_dir = \"{}\"\n\n[[cameras]]\n{camera}\n",
            models.display()
        ),
    )
}

/// `facecv check-config`: (success, stdout + stderr).
fn check_config(config: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["check-config", "--config"])
        .arg(config)
        .output()
        .expect("run facecv check-config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn camera(api: &Api, id: &str) -> Value {
    let (code, v) = api.get(&format!("/api/v1/cameras/{id}")).await;
    assert_eq!(code, 200, "{v}");
    v
}

/// The camera's status once its start (after the API is up) has failed.
async fn failed_camera(api: &Api, id: &str) -> Value {
    common::eventually(
        Duration::from_secs(20),
        "the camera's start to fail",
        || {
            let api = api.clone();
            let id = id.to_owned();
            async move { camera(&api, &id).await["state"] != "stopped" }
        },
    )
    .await;
    let status = camera(api, id).await;
    assert_eq!(status["state"], "error", "{status}");
    assert_eq!(status["running"], false, "{status}");
    status
}

/// What `/health` says of the detector, after checking its overall answer is `degraded`.
async fn degraded_detector(api: &Api) -> Value {
    let (code, h) = api.get("/health").await;
    assert_eq!(code, 200, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["vision"]["ok"], false, "{h}");
    let model = h["vision"]["models"][0].clone();
    assert_eq!(model["key"], "vision.detector.model", "{h}");
    model
}

/// Posts a real photo to `/detect` (the API's own engine).
async fn detect(api: &Api) -> (http::StatusCode, Value) {
    let photo = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/faces/misc/biden.jpg"),
    )
    .unwrap();
    common::post_form(api, "/api/v1/insightface/detect", &[], &[("file", photo)]).await
}

const SYNTHETIC: &str = "camera_id = \"door\"\nsource = \"synthetic\"\nfps = 2";

/// A truncated detector: `check-config` fails naming it, `/health` is degraded and names it, the
/// camera's status is `error` with the reason, `/detect` is a 503 naming it; once the file is put
/// back, `/health` is ok again and the camera starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_model_is_named_everywhere_and_its_repair_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let models = copy_models(dir.path());
    let detector = models.join(DETECTOR);
    let good = std::fs::read(&detector).unwrap();
    std::fs::write(&detector, &good[..good.len() / 3]).unwrap();
    let port = free_port();
    let config = config(dir.path(), port, &models, SYNTHETIC);

    let (ok, out) = check_config(&config);
    assert!(!ok, "check-config passed a truncated model: {out}");
    assert!(
        out.contains("vision.detector.model") && out.contains(DETECTOR) && out.contains("damaged"),
        "{out}"
    );
    assert!(!out.contains(": valid"), "{out}");

    let app = Binary::start(&config, port).await;
    let model = degraded_detector(&app.api).await;
    let error = model["error"].as_str().unwrap();
    assert!(
        error.contains(DETECTOR) && error.contains("damaged"),
        "{error}"
    );

    let door = failed_camera(&app.api, "door").await;
    let why = door["last_error"].as_str().unwrap();
    assert!(why.contains(DETECTOR) && why.contains("damaged"), "{why}");

    assert!(metrics(&app.api).await.contains("facecv_vision_ok 0"));

    let (code, v) = detect(&app.api).await;
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["error"]["code"], "vision_unavailable", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains(DETECTOR), "{message}");

    // Put right: /health sees the new file without a restart, and the camera can start.
    std::fs::write(&detector, &good).unwrap();
    let (_, h) = app.api.get("/health").await;
    assert_eq!(h["vision"]["models"][0].get("error"), None, "{h}");
    let (code, door) = app
        .api
        .post("/api/v1/cameras/door/start", Value::Null)
        .await;
    assert_eq!(code, 200, "{door}");
    assert_eq!(door["running"], true, "{door}");
    assert_eq!(door.get("last_error"), None, "{door}");
    let (code, v) = detect(&app.api).await;
    assert_eq!(code, 200, "{v}");
    let (_, h) = app.api.get("/health").await;
    assert_eq!(h["status"], "ok", "{h}");
    assert!(metrics(&app.api).await.contains("facecv_vision_ok 1"));
}

async fn metrics(api: &Api) -> String {
    let (code, v) = api.get("/metrics").await;
    assert_eq!(code, 200, "{v}");
    v.as_str().expect("metrics are text").to_owned()
}

/// A few flipped bytes in the middle of the embedder (a bad SD card sector): the file still parses,
/// but its sha256 is not the pinned one, and it is refused and named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_with_flipped_bytes_fails_its_checksum_and_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let models = copy_models(dir.path());
    let embedder_name = embedder_file();
    let embedder = models.join(embedder_name);
    let mut bytes = std::fs::read(&embedder).unwrap();
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(&embedder, &bytes).unwrap();
    let port = free_port();
    let config = config(dir.path(), port, &models, SYNTHETIC);

    let (ok, out) = check_config(&config);
    assert!(!ok, "{out}");
    assert!(
        out.contains("vision.embedder.model")
            && out.contains(embedder_name)
            && out.contains("sha256"),
        "{out}"
    );

    let app = Binary::start(&config, port).await;
    let (_, h) = app.api.get("/health").await;
    assert_eq!(h["status"], "degraded", "{h}");
    let model = &h["vision"]["models"][1];
    assert_eq!(model["key"], "vision.embedder.model", "{h}");
    assert!(
        model["error"].as_str().unwrap().contains(embedder_name),
        "{h}"
    );
    assert_eq!(h["vision"]["models"][0].get("error"), None, "{h}");
    let door = failed_camera(&app.api, "door").await;
    assert!(
        door["last_error"].as_str().unwrap().contains(embedder_name),
        "{door}"
    );
    let (code, v) = detect(&app.api).await;
    assert_eq!(code, 503, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains(embedder_name),
        "{v}"
    );
}

/// An embedder put where the detector belongs, with its digest written into the folder's
/// `SHA256SUMS` (as `make-models.sh` would for a rebuild): the checksum passes, the shape does not,
/// and the detector's key and file are named with what was expected and what was found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_with_a_listed_digest_but_the_wrong_shape_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let models = copy_models(dir.path());
    let wrong = std::fs::read(models.join("mobilefacenet_expo_int8.tflite")).unwrap();
    std::fs::write(models.join(DETECTOR), &wrong).unwrap();
    let digest: String = Sha256::digest(&wrong)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(models.join("SHA256SUMS"), format!("{digest}  {DETECTOR}\n")).unwrap();
    let port = free_port();
    let config = config(dir.path(), port, &models, SYNTHETIC);

    let (ok, out) = check_config(&config);
    assert!(!ok, "{out}");
    assert!(
        out.contains("vision.detector.model")
            && out.contains(DETECTOR)
            && out.contains("BlazeFace"),
        "{out}"
    );
    assert!(
        !out.contains("sha256"),
        "the digest matched; the shape is the reason: {out}"
    );

    let app = Binary::start(&config, port).await;
    let model = degraded_detector(&app.api).await;
    let error = model["error"].as_str().unwrap();
    assert!(
        error.contains("is not a BlazeFace") && error.contains("it has input"),
        "{error}"
    );
    let door = failed_camera(&app.api, "door").await;
    assert!(
        door["last_error"].as_str().unwrap().contains("BlazeFace"),
        "{door}"
    );
}

/// Damage only the runtime sees: bytes flipped in the detector's flatbuffer header, with the
/// damaged file's digest in `SHA256SUMS` (as after a rebuild gone wrong). The file checks pass;
/// LiteRT refuses it. The camera's status, `/health` and `/detect` name the file and the runtime's
/// reason, rather than a runtime error that names nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_only_the_runtime_finds_damaged_is_named_when_an_engine_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let models = copy_models(dir.path());
    let mut bytes = std::fs::read(models.join(DETECTOR)).unwrap();
    for b in &mut bytes[8..16] {
        *b ^= 0xa5;
    }
    std::fs::write(models.join(DETECTOR), &bytes).unwrap();
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(models.join("SHA256SUMS"), format!("{digest}  {DETECTOR}\n")).unwrap();
    let port = free_port();
    let config = config(dir.path(), port, &models, SYNTHETIC);
    let app = Binary::start(&config, port).await;

    let door = failed_camera(&app.api, "door").await;
    let why = door["last_error"].as_str().unwrap();
    assert!(
        why.contains("vision.detector.model") && why.contains(DETECTOR) && why.contains("runtime"),
        "{why}"
    );
    let (_, h) = app.api.get("/health").await;
    assert_eq!(h["status"], "degraded", "{h}");
    let engine = h["vision"]["engine_error"].as_str().unwrap();
    assert!(engine.contains(DETECTOR), "{h}");
    let (code, v) = detect(&app.api).await;
    assert_eq!(code, 503, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains(DETECTOR),
        "{v}"
    );
}

/// The lifecycle events of a camera in the outbox, oldest first: `(event_type, data, timestamp)`.
async fn lifecycle(api: &Api, camera: &str) -> Vec<(String, Value, String)> {
    let (code, v) = api
        .get(&format!(
            "/api/v1/events?limit=1000&camera_id={camera}&event_type=stream_started,stream_stopped"
        ))
        .await;
    assert_eq!(code, 200, "{v}");
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let e = &e["event"];
            (
                e["event_type"].as_str().unwrap().to_owned(),
                e["data"].clone(),
                e["timestamp"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A pipe camera of 64x48 grey frames whose `sh` script is `script`; `$FRAMES` in it writes `n`
/// frames, `$FRAME` one.
fn pipe_camera(id: &str, frames: u32, script: &str, extra: &str) -> String {
    let frame = 64 * 48 * 3;
    let script = script
        .replace("$FRAMES", &format!("head -c {} /dev/zero", frame * frames))
        .replace("$FRAME", &format!("head -c {frame} /dev/zero"));
    format!(
        "camera_id = \"{id}\"\nfps = 5\nsnapshots = false\n{extra}\nspec = {{ kind = \"pipe\", width = 64, height = 48, format = \"rgb24\", command = [\"sh\", \"-c\", {}] }}",
        serde_json::to_string(&script).unwrap()
    )
}

/// The case: a command that emits 20 frames then exits. It used to be restarted every
/// 500 ms, each time a `stream_stopped`/`stream_started` pair (120 events per 30 s). Now its
/// back-off keeps growing, only the first loss, the first return and the second loss are recorded,
/// its status says it flaps, and the final `stream_stopped` carries the returns not told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_camera_does_not_flood_the_outbox() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let cam = pipe_camera("yard", 20, "$FRAMES; echo 'feed dropped' >&2; exit 3", "");
    let config = write_config(dir.path(), port, &format!("[[cameras]]\n{cam}\n"));
    let app = Binary::start(&config, port).await;
    let started = Instant::now();

    let mut seen_flapping = None;
    while started.elapsed() < Duration::from_secs(40) {
        let s = camera(&app.api, "yard").await;
        if s["state"] == "flapping"
            && s["next_retry_at"].is_string()
            && s["restarts"].as_u64() >= Some(2)
        {
            seen_flapping = Some(s);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let s = seen_flapping.expect("the status said `flapping` with a next retry time");
    let text = metrics(&app.api).await;
    assert!(
        text.contains("facecv_camera_source_flapping{camera=\"yard\"} 1"),
        "{text}"
    );
    assert!(
        s["last_error"].as_str().unwrap().contains("feed dropped"),
        "{s}"
    );
    assert_eq!(s["running"], true, "{s}");

    let status = camera(&app.api, "yard").await;
    let restarts = status["restarts"].as_u64().unwrap();
    // 0.5 + 1 + 2 + 4 + 8 + 16 s (±20%) of waits fit in 40 s: about six restarts, not eighty.
    assert!((3..=9).contains(&restarts), "{status}");
    let events = lifecycle(&app.api, "yard").await;
    let kinds: Vec<&str> = events.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "stream_started",
            "stream_stopped",
            "stream_started",
            "stream_stopped"
        ],
        "{events:?}"
    );
    assert_eq!(events[1].1["reason"], "source_lost");
    assert!(events[1].1["detail"]
        .as_str()
        .unwrap()
        .contains("feed dropped"));
    assert_eq!(events[2].1["restarts"], 1, "{events:?}");
    // FaceCV's fields are all there, unchanged.
    assert_eq!(events[2].1["source"], "pipe");
    assert_eq!(events[2].1["fps"], 5.0);

    let (code, v) = app.api.post("/api/v1/cameras/yard/stop", Value::Null).await;
    assert_eq!(code, 200, "{v}");
    let events = lifecycle(&app.api, "yard").await;
    let last = &events.last().unwrap().1;
    assert_eq!(last["reason"], "requested", "{events:?}");
    let told: u64 = events
        .iter()
        .filter_map(|(_, d, _)| d["restarts"].as_u64())
        .sum();
    assert!(
        told >= restarts && told <= restarts + 1,
        "the recorded counts ({told}) stand for every restart ({restarts}): {events:?}"
    );
}

/// A source that flaps, then runs healthily past `reconnect.healthy_after` (3 s here, a minute by
/// default): the flap ends with one `stream_started` carrying the count, the status is `running`
/// again with no restarts, and the back-off is back at its first step: the next loss is retried
/// after `min_delay`, not after the doubled wait it had reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_that_recovers_gets_its_back_off_reset() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let runs = dir.path().join("runs");
    let die = dir.path().join("die-once");
    // Runs 0 to 4 flap (waits 0.25, 0.5, 1, 2, 4 s), later runs stream at 10 fps until `die` shows.
    let script = format!(
        "n=$(cat {runs} 2>/dev/null || echo 0); echo $((n+1)) > {runs}; \
         if [ $n -lt 5 ]; then $FRAMES; exit 3; fi; \
         while :; do if [ -e {die} ]; then rm {die}; echo 'died once' >&2; exit 4; fi; $FRAME; sleep 0.1; done",
        runs = runs.display(),
        die = die.display(),
    );
    let extra = "reconnect = { min_delay = 0.25, healthy_after = 3 }";
    let cam = pipe_camera("gate", 3, &script, extra);
    let config = write_config(dir.path(), port, &format!("[[cameras]]\n{cam}\n"));
    let app = Binary::start(&config, port).await;

    common::eventually(Duration::from_secs(40), "the flap to end", || {
        let api = app.api.clone();
        async move {
            let events = lifecycle(&api, "gate").await;
            events.len() >= 5
        }
    })
    .await;
    let events = lifecycle(&app.api, "gate").await;
    let kinds: Vec<&str> = events.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "stream_started",
            "stream_stopped",
            "stream_started",
            "stream_stopped",
            "stream_started"
        ],
        "{events:?}"
    );
    // Returns 2 to 5 were not recorded one by one; the steady start stands for them.
    assert_eq!(events[2].1["restarts"], 1, "{events:?}");
    assert_eq!(events[4].1["restarts"], 4, "{events:?}");
    let s = camera(&app.api, "gate").await;
    assert_eq!(s["state"], "running", "{s}");
    assert_eq!(s["restarts"], 0, "{s}");
    assert_eq!(s.get("last_error"), None, "{s}");

    // One more loss: a new episode, told at once both ways, and retried after ~0.25 s. Without
    // the reset the wait would have been 8 s (±20%).
    std::fs::write(&die, b"").unwrap();
    common::eventually(Duration::from_secs(20), "the loss and the return", || {
        let api = app.api.clone();
        async move { lifecycle(&api, "gate").await.len() >= 7 }
    })
    .await;
    let events = lifecycle(&app.api, "gate").await;
    let (lost, back) = (&events[5], &events[6]);
    assert_eq!(
        (lost.0.as_str(), back.0.as_str()),
        ("stream_stopped", "stream_started")
    );
    assert!(
        lost.1["detail"].as_str().unwrap().contains("died once"),
        "{events:?}"
    );
    assert_eq!(back.1["restarts"], 1);
    let gap = millis(&back.2) - millis(&lost.2);
    assert!(
        gap < 2_000,
        "retried after {gap} ms: the back-off was not reset"
    );
}

/// Milliseconds of a `2026-01-01T12:00:00.123Z` timestamp within its day (the test spans seconds).
fn millis(ts: &str) -> i64 {
    let time = &ts[11..23];
    let (h, rest) = time.split_at(2);
    let (m, rest) = rest[1..].split_at(2);
    let (s, ms) = rest[1..].split_at(2);
    ((h.parse::<i64>().unwrap() * 60 + m.parse::<i64>().unwrap()) * 60 + s.parse::<i64>().unwrap())
        * 1000
        + ms[1..].parse::<i64>().unwrap()
}
