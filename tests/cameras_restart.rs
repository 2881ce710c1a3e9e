//! Cameras an installer adds over the API come back after a restart — a clean stop or a power
//! cut — running if they were, stopped if they were stopped, gone if deleted. Cameras of the
//! config file stay the file's, and a live stream's camera dies with its stream.
//!
//! The real binary, the real runtime and models: the door camera plays a y4m made of real photos,
//! and "producing events" means the appliance recorded new `face_detected` events after the restart.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::video::{frame_with, photos_of, root, write_y4m};
use common::{eventually, free_port, Api, Binary};
use http::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn binary_config(dir: &Path, port: u16) -> PathBuf {
    let models = root().join("models");
    let path = common::write_config(
        dir,
        port,
        &format!(
            "[vision]\nmodels_dir = \"{}\"\n\n[[cameras]]\ncamera_id = \"lobby\"\nsource = \"synthetic\"\nfps = 1\nautostart = false\n",
            models.display()
        ),
    );
    // Cameras added over the API read video files only from `api.media_dir`: the test's folder.
    let text = std::fs::read_to_string(&path).unwrap().replacen(
        "[api]\n",
        &format!("[api]\nmedia_dir = \"{}\"\n", dir.display()),
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// A looped y4m of a face at the door, with a few empty frames so the person comes and goes.
fn door_video(dir: &Path) -> PathBuf {
    let salley = photos_of("John_Salley");
    let mut frames: Vec<_> = salley[..4].iter().map(|p| frame_with(Some(p))).collect();
    frames.push(frame_with(None));
    let path = dir.join("door.y4m");
    write_y4m(&path, &frames);
    path
}

async fn camera(api: &Api, id: &str) -> (StatusCode, Value) {
    api.get(&format!("/api/v1/cameras/{id}")).await
}

/// The newest sequence number of the door camera's `face_detected` events (0: none).
async fn last_face_seq(api: &Api) -> u64 {
    let (code, v) = api
        .get("/api/v1/events?camera_id=door&event_type=face_detected&limit=1000")
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    v["events"]
        .as_array()
        .unwrap()
        .last()
        .map_or(0, |e| e["seq"].as_u64().unwrap())
}

/// Waits until the door camera runs and records a face after `after`.
async fn door_sees_a_face_after(api: &Api, after: u64, when: &str) -> u64 {
    let api2 = api.clone();
    eventually(Duration::from_secs(90), when, || {
        let api = api2.clone();
        async move { last_face_seq(&api).await > after }
    })
    .await;
    let (_, door) = camera(api, "door").await;
    assert_eq!(door["running"], true, "{when}: {door}");
    assert_eq!(door["origin"], "api", "{door}");
    last_face_seq(api).await
}

/// The `reason` of every `stream_stopped` of a camera, oldest first.
async fn stop_reasons(api: &Api, id: &str) -> Vec<String> {
    let (code, v) = api
        .get(&format!(
            "/api/v1/events?camera_id={id}&event_type=stream_stopped&limit=1000"
        ))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["data"]["reason"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cameras_added_over_the_api_survive_sigterm_and_kill_9_and_deleted_ones_stay_gone() {
    common::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = binary_config(dir.path(), port);
    let video = door_video(dir.path());
    let mut facecv = Binary::start(&config, port).await;

    let (code, v) = facecv
        .api
        .post(
            "/api/v1/cameras",
            json!({"camera_id": "door", "fps": 4,
                   "spec": {"kind": "file", "path": video, "fps": 4, "looped": true}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    // A second camera the installer stops: after a restart it must stay stopped.
    let (code, v) = facecv
        .api
        .post(
            "/api/v1/cameras",
            json!({"camera_id": "yard", "source": "synthetic", "fps": 1}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let (code, v) = facecv
        .api
        .post("/api/v1/cameras/yard/stop", json!({}))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["running"], false);
    let seen = door_sees_a_face_after(&facecv.api, 0, "a face before any restart").await;

    // A clean stop.
    assert!(facecv.sigterm().success());
    let facecv = Binary::start(&config, port).await;
    let seen = door_sees_a_face_after(&facecv.api, seen, "a face after SIGTERM").await;
    // The stop said why each stream ended: the installer's stop, then the appliance's.
    assert_eq!(stop_reasons(&facecv.api, "yard").await, ["requested"]);
    assert_eq!(stop_reasons(&facecv.api, "door").await, ["shutdown"]);
    let (code, yard) = camera(&facecv.api, "yard").await;
    assert_eq!(code, StatusCode::OK, "{yard}");
    assert_eq!(
        yard["running"], false,
        "a stopped camera stays stopped: {yard}"
    );

    // A change over the API is remembered too: the yard camera, started and slowed down.
    let (code, v) = facecv
        .api
        .post("/api/v1/cameras/yard/start", json!({}))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let (code, v) = facecv
        .api
        .put(
            "/api/v1/cameras/yard",
            json!({"source": "synthetic", "fps": 0.5}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(
        v["running"], true,
        "a running camera restarts with its new definition: {v}"
    );

    // A power cut.
    let mut facecv = facecv;
    facecv.kill9();
    let facecv = Binary::start(&config, port).await;
    door_sees_a_face_after(&facecv.api, seen, "a face after kill -9").await;
    // Cameras start one after another, each loading its models: the yard may come a moment later.
    let api = facecv.api.clone();
    eventually(
        Duration::from_secs(30),
        "the yard camera running again",
        || {
            let api = api.clone();
            async move { camera(&api, "yard").await.1["running"] == true }
        },
    )
    .await;
    let (_, yard) = camera(&facecv.api, "yard").await;
    assert_eq!(yard["fps"], 0.5, "{yard}");

    // Deleted, then a restart: gone.
    let (code, v) = facecv.api.delete("/api/v1/cameras/door").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let mut facecv = facecv;
    assert!(facecv.sigterm().success());
    let facecv = Binary::start(&config, port).await;
    let (code, v) = camera(&facecv.api, "door").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    let (_, list) = facecv.api.get("/api/v1/cameras").await;
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["camera_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["lobby", "yard"], "{list}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_cameras_belong_to_the_file_and_stream_cameras_are_not_remembered() {
    common::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = binary_config(dir.path(), port);
    let mut facecv = Binary::start(&config, port).await;
    let api = facecv.api.clone();

    let (code, v) = api.delete("/api/v1/cameras/lobby").await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "config_camera", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("config file"),
        "{v}"
    );
    let (code, v) = api
        .put(
            "/api/v1/cameras/lobby",
            json!({"source": "synthetic", "fps": 2}),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "config_camera");
    let (code, v) = api
        .post(
            "/api/v1/cameras",
            json!({"camera_id": "lobby", "source": "synthetic"}),
        )
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    // Bad input is refused and nothing is stored.
    let (code, v) = api
        .post(
            "/api/v1/cameras",
            json!({"camera_id": "bad/id", "source": "synthetic"}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (code, v) = api
        .put(
            "/api/v1/cameras/nope",
            json!({"camera_id": "other", "source": "synthetic"}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "camera_id");
    // Starting a config camera works, for now.
    let (code, v) = api.post("/api/v1/cameras/lobby/start", json!({})).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["origin"], "config");

    // A live stream makes its own camera; while it runs, the appliance loses power.
    let mut sse = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    sse.write_all(
        b"GET /api/v1/face_recognition_insightface/recognize/webcam/stream?camera_id=adhoc&source=synthetic&fps=2 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(30), sse.read(&mut head))
        .await
        .expect("the stream answers")
        .unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    let (_, adhoc) = camera(&api, "adhoc").await;
    assert_eq!(adhoc["origin"], "stream", "{adhoc}");
    let (code, v) = api
        .put("/api/v1/cameras/adhoc", json!({"source": "synthetic"}))
        .await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    facecv.kill9();
    drop(sse);

    let facecv = Binary::start(&config, port).await;
    let (code, v) = camera(&facecv.api, "adhoc").await;
    assert_eq!(
        code,
        StatusCode::NOT_FOUND,
        "a stream's camera is not remembered: {v}"
    );
    let (_, lobby) = camera(&facecv.api, "lobby").await;
    assert_eq!(
        lobby["running"], false,
        "the file says autostart = false: {lobby}"
    );
}
