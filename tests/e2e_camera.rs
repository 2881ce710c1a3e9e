//! From a camera to a webhook, with nothing mocked: a video made of real photos drives a camera,
//! the real TFLite runtime and models find and recognise the faces, and the events reach a
//! receiver on loopback with the right names.
//!
//! The story: an installer enrols two people over FaceCV's API. Then, in front of the door camera,
//! John Salley walks up, leaves; a stranger (John Simm, never enrolled) lingers; John Savage walks
//! up. The receiver must hear `face_recognized` and `attendance_recorded` for both Johns, one
//! `stranger_alert`, and `stream_started` / `stream_stopped` (the video ends).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::video::{photos_of, root, write_door_frames};
use common::{eventually, start_app_with, Received, Receiver};
use http::StatusCode;
use serde_json::{json, Value};

/// Writes the "video" as an image folder, one PNG per frame.
fn make_video(dir: &Path) -> PathBuf {
    let salley = photos_of("John_Salley");
    let simm = photos_of("John_Simm");
    let savage = photos_of("John_Savage");
    let mut scenes: Vec<Option<PathBuf>> = Vec::new();
    // Photos 0-2 of each enrolled person are enrolled; the camera sees the others.
    for i in 0..12 {
        scenes.push(Some(salley[3 + i % 8].clone()));
    }
    scenes.extend(std::iter::repeat_n(None, 8));
    for i in 0..12 {
        scenes.push(Some(simm[i % 11].clone()));
    }
    scenes.extend(std::iter::repeat_n(None, 8));
    for i in 0..12 {
        scenes.push(Some(savage[3 + i % 8].clone()));
    }
    scenes.extend(std::iter::repeat_n(None, 4));
    write_door_frames(&dir.join("door_video"), &scenes)
}

fn events_of(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .flat_map(|r| r.json()["events"].as_array().unwrap().clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_of_real_faces_drives_recognition_strangers_and_attendance_to_a_webhook() {
    // Cameras added over the API read video files only from `api.media_dir`.
    let media = tempfile::tempdir().unwrap();
    let media_dir = media.path().to_owned();
    let app = start_app_with(|c| {
        c.vision.models_dir = root().join("models");
        c.api.media_dir = Some(media_dir);
    })
    .await;
    let rx = Receiver::start().await;
    app.api
        .create_webhook(json!({"webhook_id": "door_events", "url": rx.url("/hook"), "batch_size": 10, "batch_timeout": 0.2}))
        .await;
    for person in ["John_Salley", "John_Savage"] {
        let name = person.replace('_', " ");
        let files: Vec<(&str, Vec<u8>)> = photos_of(person)[..3]
            .iter()
            .map(|p| ("file", std::fs::read(p).unwrap()))
            .collect();
        let (code, v) = common::post_form(
            &app.api,
            "/api/v1/insightface/register",
            &[("name", &name), ("department", "Front desk")],
            &files,
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{v}");
        assert_eq!(v["face_ids"].as_array().unwrap().len(), 3, "{v}");
    }

    let video = make_video(media.path());
    let (code, v) = app
        .api
        .post(
            "/api/v1/cameras",
            // Three frames a second: slow enough that even a debug build on a loaded machine
            // analyses every frame (the camera keeps only the newest, as a real one would).
            json!({"camera_id": "front_door", "fps": 3,
                   "spec": {"kind": "file", "path": video, "fps": 3, "looped": false},
                   "policy": {"stranger_min_frames": 4, "attendance_min_confidence": 0.6}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");

    let api = app.api.clone();
    eventually(Duration::from_secs(120), "the video to end", || {
        let api = api.clone();
        async move { api.get("/api/v1/cameras/front_door").await.1["state"] == "ended" }
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "stream_stopped at the receiver",
        || {
            let rx = rx.clone();
            async move {
                events_of(&rx.accepted())
                    .iter()
                    .any(|e| e["event_type"] == "stream_stopped")
            }
        },
    )
    .await;

    let events = events_of(&rx.accepted());
    let of = |t: &str| {
        events
            .iter()
            .filter(|e| e["event_type"] == t)
            .cloned()
            .collect::<Vec<_>>()
    };
    let recognized: Vec<String> = of("face_recognized")
        .iter()
        .flat_map(|e| e["data"]["recognized_faces"].as_array().unwrap().clone())
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recognized, ["John Salley", "John Savage"], "{events:#?}");
    let attended = of("attendance_recorded");
    let attendance: Vec<&str> = attended
        .iter()
        .map(|e| e["data"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(attendance, ["John Salley", "John Savage"]);
    let strangers = of("stranger_alert");
    assert_eq!(strangers.len(), 1, "{events:#?}");
    // FaceCV kept a snapshot of each stranger; so do we, named in the event.
    let snapshot = strangers[0]["data"]["image_path"]
        .as_str()
        .expect("a snapshot path");
    let img = image::open(snapshot).expect("the snapshot is a readable JPEG");
    assert!(
        img.width() >= 100 && img.height() >= 100,
        "{}x{}",
        img.width(),
        img.height()
    );
    assert_eq!(of("stream_started").len(), 1);
    let stopped = &of("stream_stopped")[0];
    assert_eq!(stopped["data"]["reason"], "ended");
    for e in &events {
        assert_eq!(e["camera_id"], "front_door");
        assert!(e["id"].as_str().unwrap().starts_with("evt_"));
    }
    let salley = &of("face_recognized")[0]["data"]["recognized_faces"][0];
    assert_eq!(salley["metadata"]["department"], "Front desk");
    let bbox: Vec<i64> = salley["bbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(
        bbox[0] > 180 && bbox[2] < 460,
        "the face box is around the photo: {bbox:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_loses_its_source_says_so_and_is_back_when_it_returns() {
    // A "camera" command that sends two grey 64x48 frames, then dies: as an RTSP feed that drops.
    // Commands run only from the config file; the API starts the camera once the webhook is there.
    let frame_bytes = 64 * 48 * 3 * 2;
    let yard: facecv::pipeline::CameraConfig = serde_json::from_value(json!({
        "camera_id": "yard", "fps": 5, "autostart": false,
        "spec": {"kind": "pipe", "width": 64, "height": 48, "format": "rgb24",
                 "command": ["sh", "-c", format!("head -c {frame_bytes} /dev/zero; echo feed dropped >&2; exit 3")]}}))
    .unwrap();
    let app = start_app_with(|c| c.cameras.push(yard)).await;
    let rx = Receiver::start().await;
    app.api
        .create_webhook(
            json!({"webhook_id": "ops", "url": rx.url("/hook"), "batch_size": 1,
                               "event_types": ["stream_started", "stream_stopped"]}),
        )
        .await;
    let (code, v) = app.api.post("/api/v1/cameras/yard/start", json!({})).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    eventually(Duration::from_secs(30), "a loss and a return", || {
        let rx = rx.clone();
        async move { events_of(&rx.accepted()).len() >= 3 }
    })
    .await;
    let (code, _) = app.api.post("/api/v1/cameras/yard/stop", json!({})).await;
    assert_eq!(code, StatusCode::OK);
    eventually(Duration::from_secs(20), "the requested stop", || {
        let rx = rx.clone();
        async move {
            events_of(&rx.accepted())
                .iter()
                .any(|e| e["data"]["reason"] == "requested")
        }
    })
    .await;
    let events = events_of(&rx.accepted());
    assert_eq!(events[0]["event_type"], "stream_started");
    assert_eq!(events[1]["event_type"], "stream_stopped");
    assert_eq!(events[1]["data"]["reason"], "source_lost");
    let detail = events[1]["data"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("exit status: 3") && detail.contains("feed dropped"),
        "{detail}"
    );
    assert_eq!(
        events[2]["event_type"], "stream_started",
        "back after the reconnect"
    );
    let (_, status) = app.api.get("/api/v1/cameras/yard").await;
    assert!(status["reconnects"].as_u64().unwrap() >= 1, "{status}");
    assert_eq!(status["running"], false);
}

/// A camera that cannot be opened (here a V4L2 device that does not exist; on a board, a denied
/// or unplugged one) shows why in its status while capture keeps retrying, and is running again
/// in the status as soon as frames come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_that_cannot_be_opened_says_why_in_its_status() {
    let app = start_app_with(|_| {}).await;
    let (code, v) = app
        .api
        .post(
            "/api/v1/cameras",
            json!({"camera_id": "door", "source": "/dev/video99", "fps": 5}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let api = app.api.clone();
    eventually(Duration::from_secs(20), "the status to say why", || {
        let api = api.clone();
        async move {
            let (_, s) = api.get("/api/v1/cameras/door").await;
            s["state"] == "reconnecting"
                && s["reconnects"].as_u64().unwrap_or(0) >= 1
                && s["source_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("/dev/video99") && e.contains("no such device"))
        }
    })
    .await;
    let (code, s) = app.api.post("/api/v1/cameras/door/stop", json!({})).await;
    assert_eq!(code, StatusCode::OK, "{s}");
    assert_eq!(s["state"], "stopped", "{s}");
    assert!(
        s.get("source_error").is_none(),
        "a stopped camera has no source error: {s}"
    );
}
