//! The demo `scripts/demo.sh` starts (the README's first command): its config is valid, and the
//! real binary run with it, from the same frames and gallery, recognises an enrolled person and
//! raises a stranger alert within a minute. It runs in a loopback-only network namespace: the demo
//! must need nothing but loopback.

mod common;

// The demo's own frame maker (its `main` unused here); it brings `common/video.rs` a second time.
#[path = "../demo/frames.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod demo_frames;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::Api;
use facecv::Config;
use http::StatusCode;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_demo_config_is_valid_and_has_its_looping_camera() {
    // The camera's folder is made by the script (relative to the checkout); here it is made in a
    // temp folder, so the check does not depend on an earlier run of the demo.
    let dir = tempfile::tempdir().unwrap();
    demo_frames::write_demo(&dir.path().join("target/demo")).expect("the demo's frames");
    let text = std::fs::read_to_string(root().join("config/demo.toml")).unwrap();
    let frames = dir.path().join("target/demo/frames");
    let text = text.replace(
        "path = \"target/demo/frames\"",
        &format!("path = {:?}", frames.to_str().unwrap()),
    );
    assert!(
        text.contains(frames.to_str().unwrap()),
        "the camera reads target/demo/frames"
    );
    let config = Config::from_toml(&text).expect("config/demo.toml loads");
    assert_eq!(config.cameras.len(), 1);
    assert!(config.cameras[0].autostart);
    assert!(
        config.api.listen.ip().is_loopback(),
        "{}",
        config.api.listen
    );
    assert!(config.webhooks.is_empty() && config.mqtt.is_none());
}

#[test]
fn the_plain_default_stays_camera_less() {
    assert!(Config::embedded_default().cameras.is_empty());
}

/// `facecv ARGS` in `cwd`, as the script runs it from the checkout.
fn facecv(cwd: &std::path::Path) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"));
    cmd.current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("FACECV_CONFIG")
        .env("LOG_LEVEL", "WARNING");
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_recognises_faces_within_a_minute_on_loopback_only() {
    if !common::netns::loopback_only("the_demo_recognises_faces_within_a_minute_on_loopback_only") {
        return;
    }
    // The demo's paths are relative to the checkout; a copy of its layout in a temp folder keeps
    // the checkout's own target/demo out of it.
    let dir = tempfile::tempdir().unwrap();
    demo_frames::write_demo(&dir.path().join("target/demo")).expect("the demo's frames");
    let config = root().join("config/demo.toml");
    let enrol = facecv(dir.path())
        .args(["enroll", "--dir", "target/demo/people", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&enrol.stdout);
    assert!(
        enrol.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&enrol.stderr)
    );
    assert!(said.contains("3 people enrolled, 0 skipped"), "{said}");

    let mut child = facecv(dir.path())
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let api = Api::new(SocketAddr::from(([127, 0, 0, 1], 7000)));
    let started = Instant::now();
    let (mut recognized, mut stranger) = (None, false);
    while started.elapsed() < Duration::from_secs(60) && (recognized.is_none() || !stranger) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok((status, page)) = tokio::time::timeout(
            Duration::from_secs(2),
            api.get("/api/v1/events?after_seq=0&limit=200"),
        )
        .await
        else {
            continue;
        };
        if status != StatusCode::OK {
            continue;
        }
        for e in page["events"].as_array().unwrap() {
            match e["event"]["event_type"].as_str() {
                Some("face_recognized") if recognized.is_none() => {
                    recognized = Some((
                        e["event"]["data"]["recognized_faces"][0]["name"].clone(),
                        started.elapsed(),
                    ));
                }
                Some("stranger_alert") => stranger = true,
                _ => {}
            }
        }
    }
    // The console the script points at: served on this machine without signing in (no token,
    // loopback), with the door camera's annotated live picture.
    let (status, ct, _) = api.get_bytes("/").await;
    assert_eq!(
        (status, ct.as_str()),
        (StatusCode::OK, "text/html; charset=utf-8")
    );
    let (status, session) = api.get("/api/v1/session").await;
    assert_eq!(status, StatusCode::OK, "{session}");
    assert_eq!(
        (&session["signed_in"], &session["auth"]),
        (&serde_json::json!(true), &serde_json::json!("loopback")),
        "{session}"
    );
    let (status, ct, jpeg) = api
        .get_bytes("/api/v1/cameras/demo_door/snapshot.jpg")
        .await;
    assert_eq!((status, ct.as_str()), (StatusCode::OK, "image/jpeg"));
    assert!(image::load_from_memory(&jpeg).is_ok());
    let _ = child.kill();
    let _ = child.wait();
    let (name, after) = recognized.expect("a face_recognized event within 60 s");
    assert_eq!(name, "John Salley", "the first person at the door");
    assert!(
        stranger,
        "John Simm, never enrolled, raises a stranger_alert"
    );
    eprintln!(
        "first face_recognized {:.1} s after start",
        after.as_secs_f64()
    );
}
