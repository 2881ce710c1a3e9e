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
    // An Unknown face's confidence is its best similarity in the gallery: 0 when it is empty
    // (not the detector's score), as `/recognize` and `stranger_alert` give it.
    assert_eq!(face["confidence"], 0.0, "{face}");
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

/// A server-sent events reader over a response body: `(event name, data)` per message, comments
/// (keep-alives) skipped; `None` when the stream ends.
struct Sse {
    body: hyper::body::Incoming,
    text: String,
}

impl Sse {
    async fn open(url: &str) -> Sse {
        let client = Client::builder(TokioExecutor::new())
            .build_http::<http_body_util::Full<bytes::Bytes>>();
        let resp = client.get(url.parse().unwrap()).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        Sse {
            body: resp.into_body(),
            text: String::new(),
        }
    }

    async fn next(&mut self) -> Option<(Option<String>, String)> {
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let message: String = self.text.drain(..end + 2).collect();
                let mut event = None;
                let mut data = None;
                for line in message.lines() {
                    if let Some(e) = line.strip_prefix("event: ") {
                        event = Some(e.to_owned());
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = Some(d.to_owned());
                    }
                }
                if let Some(data) = data {
                    return Some((event, data));
                }
            }
            let frame = tokio::time::timeout(Duration::from_secs(30), self.body.frame())
                .await
                .expect("a message within 30 s")?
                .unwrap();
            if let Some(d) = frame.data_ref() {
                self.text.push_str(&String::from_utf8_lossy(d));
            }
        }
    }
}

fn stream_url(app: &common::Running, query: &str) -> String {
    format!(
        "{}/api/v1/face_recognition_insightface/recognize/webcam/stream?{query}",
        app.api.base
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_source_cannot_open_says_so_each_time_and_keeps_trying() {
    let app = common::start_app().await;
    // No such device: the camera keeps reopening it, with back-off, as it would a USB camera
    // that is unplugged.
    let mut sse = Sse::open(&stream_url(&app, "camera_id=porch&source=57&fps=5")).await;
    let mut reconnects = Vec::new();
    while reconnects.len() < 2 {
        let (event, data) = sse.next().await.expect("the stream goes on");
        let v: Value = serde_json::from_str(&data).unwrap();
        assert_eq!(event.as_deref(), Some("error"), "{data}");
        assert_eq!(v["camera_id"], "porch", "{v}");
        assert_eq!(v["error"]["code"], "source_unavailable", "{v}");
        let why = v["error"]["message"].as_str().unwrap();
        assert!(why.contains("/dev/video57"), "{v}");
        assert_eq!(v["detail"], why, "FastAPI's detail: {v}");
        assert_eq!(v["retrying"], true, "{v}");
        reconnects.push(v["reconnects"].as_u64().unwrap());
    }
    assert!(
        reconnects[1] > reconnects[0],
        "one message per attempt: {reconnects:?}"
    );
    // The camera is still there, trying.
    let (_, cam) = app.api.get("/api/v1/cameras/porch").await;
    assert_eq!(cam["state"], "reconnecting", "{cam}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_whose_source_can_never_work_says_why_and_ends() {
    let media = tempfile::tempdir().unwrap();
    let media_dir = media.path().to_owned();
    let app = common::start_app_with(|c| c.api.media_dir = Some(media_dir)).await;
    let broken = media.path().join("broken.y4m");
    std::fs::write(&broken, b"this is not a video at all\n").unwrap();
    let mut sse = Sse::open(&stream_url(
        &app,
        &format!("camera_id=attic&source={}&fps=5", broken.display()),
    ))
    .await;
    let (event, data) = sse.next().await.expect("an error message");
    assert_eq!(event.as_deref(), Some("error"), "{data}");
    let v: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(v["error"]["code"], "source_failed", "{v}");
    assert_eq!(v["retrying"], false, "{v}");
    assert!(!v["detail"].as_str().unwrap().is_empty(), "{v}");
    let (event, data) = sse.next().await.expect("the end message");
    assert_eq!(event.as_deref(), Some("end"), "{data}");
    let v: Value = serde_json::from_str(&data).unwrap();
    assert_eq!(v["reason"], "camera_stopped", "{v}");
    assert_eq!(v["state"], "error", "{v}");
    assert!(sse.next().await.is_none(), "the stream ends");
}

/// The numbers after `"key":` in a JSON text, as written.
fn numbers_after<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    let needle = format!("\"{key}\":");
    text.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &text[i + needle.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_digit() || "+-.eE".contains(c)))
                .unwrap_or(rest.len());
            &rest[..end]
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Every `key` in `text` is a number as written (the shortest decimal of an `f32`: `0.55`, not
/// `0.550000011920929`) and, for confidences, at most 1.
fn assert_as_written(text: &str, key: &str, at_most_1: bool) -> usize {
    let numbers = numbers_after(text, key);
    for n in &numbers {
        let v: f64 = n.parse().unwrap();
        let shortest: f64 = format!("{:?}", v as f32).parse().unwrap();
        assert_eq!(v, shortest, "{key} {n} is not as written in {text}");
        assert!(!at_most_1 || v <= 1.0, "{key} {n} above 1 in {text}");
    }
    numbers.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_face_seen_as_enrolled_has_a_confidence_of_at_most_1_and_thresholds_print_as_written() {
    if !common::netns::loopback_only(
        "a_face_seen_as_enrolled_has_a_confidence_of_at_most_1_and_thresholds_print_as_written",
    ) {
        return;
    }
    let media = tempfile::tempdir().unwrap();
    let media_dir = media.path().to_owned();
    let app = common::start_app_with(|c| c.api.media_dir = Some(media_dir)).await;
    let rx = Receiver::start().await;
    // The very picture enrolled is what the camera sees: the similarity of an embedding with
    // itself, which rounding can push past 1 (1.0000001192092896 was once sent).
    let frame = common::video::frame_with(Some(&photos()[0]));
    let mut png = Vec::new();
    frame
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let (code, v) = common::post_form(
        &app.api,
        "/api/v1/faces/register",
        &[("name", "John Shimkus")],
        &[("file", png)],
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let face_id = v["face_ids"][0].as_str().unwrap().to_owned();
    let video = media.path().join("doorway");
    std::fs::create_dir_all(&video).unwrap();
    for n in 0..40 {
        frame.save(video.join(format!("f{n:03}.png"))).unwrap();
    }
    // A stranger, after: an Unknown face's confidence is its best similarity, under the
    // threshold.
    let stranger = common::video::frame_with(Some(&common::video::photos_of("John_Simm")[0]));
    for n in 40..80 {
        stranger.save(video.join(format!("f{n:03}.png"))).unwrap();
    }
    let mut sse = Sse::open(&stream_url(
        &app,
        &format!(
            "camera_id=doorway&source={}&fps=10&threshold=0.55&webhook_urls={}&webhook_timeout=5",
            video.display(),
            rx.url("/hook")
        ),
    ))
    .await;
    let (mut known, mut unknown) = (0, 0);
    while known < 3 || unknown < 3 {
        let (event, data) = sse.next().await.expect("the stream goes on");
        assert_eq!(event, None, "{data}");
        assert_as_written(&data, "confidence", true);
        let v: Value = serde_json::from_str(&data).unwrap();
        for face in v["faces"].as_array().unwrap() {
            let c = face["confidence"].as_f64().unwrap();
            if face["name"] == "John Shimkus" {
                known += 1;
                assert!(c >= 0.55, "{face}");
            } else {
                unknown += 1;
                assert!(c < 0.55, "an Unknown face's best similarity: {face}");
            }
        }
    }
    drop(sse);
    let api = app.api.clone();
    eventually(Duration::from_secs(30), "the events delivered", || {
        let rx = rx.clone();
        async move {
            rx.accepted()
                .iter()
                .any(|r| String::from_utf8_lossy(&r.body).contains("stream_stopped"))
        }
    })
    .await;
    let delivered: String = rx
        .accepted()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(delivered.contains("\"threshold\":0.55"), "{delivered}");
    assert!(assert_as_written(&delivered, "threshold", false) > 0);
    assert!(assert_as_written(&delivered, "confidence", true) > 0);
    assert!(
        delivered.contains("\"source\":\"insightface_stream\""),
        "{delivered}"
    );
    assert!(delivered.contains("face_recognized"), "{delivered}");
    let (code, _, listed) = api.get_bytes("/api/v1/events?limit=500").await;
    assert_eq!(code, 200);
    let listed = String::from_utf8_lossy(&listed).into_owned();
    assert!(assert_as_written(&listed, "confidence", true) > 0);
    assert!(listed.contains("\"threshold\":0.55"), "{listed}");
    let events: Value = serde_json::from_str(&listed).unwrap();
    for e in events["events"].as_array().unwrap() {
        if e["event_type"] == "face_recognized" {
            for f in e["data"]["recognized_faces"].as_array().unwrap() {
                assert_eq!(
                    f["face_id"],
                    face_id.as_str(),
                    "the face's id, not the name: {f}"
                );
            }
        }
        if e["event_type"] == "stranger_alert" {
            let c = e["data"]["confidence"].as_f64().unwrap();
            assert!(c < 0.55, "the stranger's best similarity: {e}");
        }
    }
}
