//! FaceCV's live stream endpoint: a client asks for a camera with ad-hoc webhooks, reads
//! server-sent events while it stays, and leaves; the camera it started stops and its webhooks go
//! once they have delivered.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{eventually, start_app_with, Receiver};
use http_body_util::BodyExt;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

fn photos() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/faces/johns/John_Shimkus");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_sends_faces_while_the_client_stays_and_cleans_up_when_it_leaves() {
    // A stream's `source` may name a video file or folder only in `api.media_dir`.
    let media = tempfile::tempdir().unwrap();
    let media_dir = media.path().to_owned();
    let app = start_app_with(|c| c.api.media_dir = Some(media_dir)).await;
    let rx = Receiver::start().await;
    let video = media.path().join("lobby");
    std::fs::create_dir_all(&video).unwrap();
    for (n, p) in photos().iter().cycle().take(60).enumerate() {
        let mut canvas = image::RgbImage::from_pixel(640, 480, image::Rgb([110, 115, 112]));
        let face = image::open(p).unwrap().to_rgb8();
        let face = image::imageops::resize(&face, 180, 180, image::imageops::FilterType::Triangle);
        image::imageops::overlay(&mut canvas, &face, 230, 150);
        canvas.save(video.join(format!("f{n:03}.png"))).unwrap();
    }
    let url = format!(
        "{}/api/v1/face_recognition_insightface/recognize/webcam/stream?camera_id=lobby&source={}&fps=10&threshold=0.6&webhook_urls={}&webhook_timeout=5&webhook_retry_count=1",
        app.api.base,
        video.display(),
        rx.url("/hook"),
    );
    let client =
        Client::builder(TokioExecutor::new()).build_http::<http_body_util::Full<bytes::Bytes>>();
    let resp = client.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");

    // Read messages until three frames with a face have come.
    let mut body = resp.into_body();
    let mut text = String::new();
    let mut with_faces = Vec::new();
    while with_faces.len() < 3 {
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("a message within 30 s")
            .expect("the stream goes on")
            .unwrap();
        if let Some(d) = frame.data_ref() {
            text.push_str(&String::from_utf8_lossy(d));
        }
        while let Some(end) = text.find("\n\n") {
            let message: String = text.drain(..end + 2).collect();
            if let Some(json) = message.strip_prefix("data: ") {
                let v: Value = serde_json::from_str(json.trim()).unwrap();
                assert_eq!(v["camera_id"], "lobby");
                assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
                if !v["faces"].as_array().unwrap().is_empty() {
                    with_faces.push(v);
                }
            }
        }
    }
    let face = &with_faces[0]["faces"][0];
    assert_eq!(face["name"], "Unknown", "nobody is enrolled");
    let bbox: Vec<i64> = face["bbox"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(bbox[0] > 200 && bbox[2] < 440, "{bbox:?}");
    let (_, hooks) = app.api.get("/api/v1/webhooks").await;
    let hook = hooks
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["origin"] == "stream")
        .expect("an ad-hoc webhook")
        .clone();
    assert_eq!(hook["batch_size"], 1);
    assert_eq!(hook["camera_ids"], serde_json::json!(["lobby"]));

    // The client leaves.
    drop(body);
    let api = app.api.clone();
    eventually(Duration::from_secs(20), "the ad-hoc camera gone", || {
        let api = api.clone();
        async move { api.get("/api/v1/cameras/lobby").await.0 == 404 }
    })
    .await;
    eventually(
        Duration::from_secs(20),
        "the ad-hoc webhook gone after draining",
        || {
            let api = api.clone();
            async move { api.get("/api/v1/webhooks").await.1 == serde_json::json!([]) }
        },
    )
    .await;
    let events: Vec<Value> = rx
        .accepted()
        .iter()
        .flat_map(|r| r.json()["events"].as_array().unwrap().clone())
        .collect();
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types.first(), Some(&"stream_started"), "{types:?}");
    assert_eq!(
        types.last(),
        Some(&"stream_stopped"),
        "the webhook drained before it went: {types:?}"
    );
    assert!(types.contains(&"face_detected"), "{types:?}");
    assert!(events.iter().all(|e| e["camera_id"] == "lobby"));
}
