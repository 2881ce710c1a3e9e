//! A network camera as an installer meets one: a 16:9 H.264 stream on the LAN, read by the real
//! binary through its `ffmpeg` child, recognises an enrolled person from a photo the gallery
//! never saw and alerts on a stranger. The stream server is `ffmpeg` itself, serving MPEG-TS over
//! HTTP on loopback (`-listen 1`), inside a loopback-only network namespace.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::video::{photos_of, root, scene};
use common::{eventually, free_port, Binary, Received, Receiver};
use http::StatusCode;
use serde_json::{json, Value};

/// A 1280x720 H.264 clip of `photo` scaled up in the middle, as an IP camera close to a face.
fn clip(dir: &Path, name: &str, photo: &Path) -> PathBuf {
    let png = dir.join(format!("{name}.png"));
    scene((1280, 720), &[(photo, 720, (280, 0))])
        .save(&png)
        .unwrap();
    let ts = dir.join(format!("{name}.ts"));
    let status = Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-loop",
            "1",
            "-i",
        ])
        .arg(&png)
        .args([
            "-t", "4", "-r", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p",
        ])
        .args(["-g", "10", "-f", "mpegts", "-y"])
        .arg(&ts)
        .status()
        .expect("ffmpeg is installed (scripts/test.sh installs it)");
    assert!(status.success(), "ffmpeg could not encode {ts:?}");
    ts
}

/// `ffmpeg` serving `ts` over HTTP at `url`, looped, at its own rate, to one client.
struct StreamServer(Child);

impl StreamServer {
    fn start(ts: &Path, url: &str) -> StreamServer {
        let child = Command::new("ffmpeg")
            .args(["-nostdin", "-hide_banner", "-loglevel", "fatal", "-re"])
            .args(["-stream_loop", "-1", "-i"])
            .arg(ts)
            .args(["-c", "copy", "-f", "mpegts", "-listen", "1", url])
            .stdin(Stdio::null())
            .spawn()
            .expect("start the ffmpeg stream server");
        StreamServer(child)
    }
}

impl Drop for StreamServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn events_of(received: &[Received]) -> Vec<Value> {
    received
        .iter()
        .flat_map(|r| r.json()["events"].as_array().unwrap().clone())
        .collect()
}

fn of(events: &[Value], kind: &str, camera: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == kind && e["camera_id"] == camera)
        .cloned()
        .collect()
}

#[test]
fn a_16_9_network_stream_recognises_an_enrolled_person_and_alerts_on_a_stranger() {
    if !common::netns::loopback_only(
        "a_16_9_network_stream_recognises_an_enrolled_person_and_alerts_on_a_stranger",
    ) {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(stream_story());
}

async fn stream_story() {
    let dir = tempfile::tempdir().unwrap();
    let savage = photos_of("John_Savage");
    let simm = photos_of("John_Simm");
    // Photos 0-2 are enrolled; the camera sees photo 5, which the gallery never saw.
    let known = clip(dir.path(), "known", &savage[5]);
    let stranger = clip(dir.path(), "stranger", &simm[0]);
    let (known_url, stranger_url) = (
        format!("http://127.0.0.1:{}/cam.ts", free_port()),
        format!("http://127.0.0.1:{}/cam.ts", free_port()),
    );
    let _servers = [
        StreamServer::start(&known, &known_url),
        StreamServer::start(&stranger, &stranger_url),
    ];

    let port = free_port();
    let config = common::write_config(
        dir.path(),
        port,
        &format!(
            "[vision]\nmodels_dir = \"{}\"\n",
            root().join("models").display()
        ),
    );
    let mut bin = Binary::start(&config, port).await;
    let rx = Receiver::start().await;
    bin.api
        .create_webhook(json!({"webhook_id": "hook", "url": rx.url("/hook"), "batch_size": 10, "batch_timeout": 0.2}))
        .await;
    let files: Vec<(&str, Vec<u8>)> = savage[..3]
        .iter()
        .map(|p| ("file", std::fs::read(p).unwrap()))
        .collect();
    let (code, v) = common::post_form(
        &bin.api,
        "/api/v1/insightface/register",
        &[("name", "John Savage")],
        &files,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");

    for (id, url) in [("ipcam", &known_url), ("lobby", &stranger_url)] {
        let (code, v) = bin
            .api
            .post(
                "/api/v1/cameras",
                json!({"camera_id": id, "source": url, "fps": 5}),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{v}");
    }
    eventually(
        Duration::from_secs(60),
        "John Savage recognised on the stream, the stranger alerted",
        || {
            let events = events_of(&rx.accepted());
            async move {
                let named = of(&events, "face_recognized", "ipcam").iter().any(|e| {
                    e["data"]["recognized_faces"]
                        .as_array()
                        .is_some_and(|f| f.iter().any(|f| f["name"] == "John Savage"))
                });
                named && !of(&events, "stranger_alert", "lobby").is_empty()
            }
        },
    )
    .await;
    let events = events_of(&rx.accepted());
    for e in of(&events, "face_recognized", "ipcam") {
        for f in e["data"]["recognized_faces"].as_array().unwrap() {
            assert_eq!(f["name"], "John Savage", "misnamed: {e}");
            // The 16:9 picture fills the 640x480 frame's middle 640x360 (y 60 to 420), between
            // black bars: a face squeezed into 4:3 reached from y 9 to 443.
            let (top, bottom) = (
                f["bbox"][1].as_i64().unwrap(),
                f["bbox"][3].as_i64().unwrap(),
            );
            assert!(
                top >= 50 && bottom <= 430,
                "the face is not inside the stream's 16:9 band: {f}"
            );
        }
    }
    assert!(
        of(&events, "face_recognized", "lobby").is_empty(),
        "the stranger was named: {events:?}"
    );
    let (_, v) = bin.api.get("/api/v1/cameras/ipcam").await;
    assert!(
        v["source"]
            .as_str()
            .is_some_and(|s| s.contains("127.0.0.1")),
        "{v}"
    );
    bin.sigterm();
}
