//! The appliance's own resources (events, snapshots, cameras, people, our `/api/v1/faces`) are
//! served by the route table: every route of theirs answers the real binary's client through its
//! described handler, and a path the table knows refuses a method it lacks with 405.
//!
//! One request per route, each checked for what only its handler answers (a field of its answer
//! or an error code of its own), so a route that fell back to "path not found" fails here.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::video::{frame_with, photos_of, root, write_y4m};
use common::{eventually, free_port, post_form, Api, Binary};
use http::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn photo(rel: &str) -> Vec<u8> {
    std::fs::read(root().join("tests/data/faces").join(rel)).unwrap()
}

fn config(dir: &Path, port: u16) -> PathBuf {
    let models = root().join("models");
    common::write_config(
        dir,
        port,
        &format!("[vision]\nmodels_dir = \"{}\"\n", models.display()),
    )
}

/// The status line and headers of a live view: its body never ends, so only they are read.
async fn live_view_head(port: u16, path: &str) -> String {
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), conn.read(&mut buf))
            .await
            .expect("the live view answers")
            .unwrap();
        assert!(n > 0, "the connection closed before the headers");
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head).into_owned()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

async fn events_routes(api: &Api) {
    let (status, v) = api
        .post(
            "/api/v1/events/trigger",
            json!({"event_type": "stranger_alert", "count": 2, "camera_id": "door"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["event_type"].as_str(), v["count"].as_u64()),
        (Some("stranger_alert"), Some(2))
    );
    let id = v["events"][1]["id"].as_str().unwrap().to_owned();

    let (status, v) = api
        .get("/api/v1/events?order=desc&limit=1&event_type=stranger_alert")
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        v["events"][0]["event"]["id"],
        id.as_str(),
        "newest first: {v}"
    );
    assert_eq!(v["events"][0]["snapshot"], false, "{v}");
    let (status, v) = api.get("/api/v1/events?limit=0").await;
    assert_eq!(
        (status, v["error"]["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("limit"))
    );

    // A sample has no snapshot: the handler, not the router, says so.
    let (status, v) = api.get(&format!("/api/v1/events/{id}/snapshot.jpg")).await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::NOT_FOUND, "no_snapshot"),
        "{v}"
    );
    let (status, v) = api
        .post(
            &format!("/api/v1/events/{id}/enrol"),
            json!({"name": "Someone"}),
        )
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::NOT_FOUND, "no_snapshot"),
        "{v}"
    );
}

/// Devices, and the yard added, listed, read and changed.
async fn camera_routes(api: &Api) {
    let (status, v) = api.get("/api/v1/cameras/devices").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["devices"].is_array(), "{v}");

    let yard = json!({"camera_id": "yard", "source": "synthetic", "fps": 2, "autostart": false});
    let (status, v) = api.post("/api/v1/cameras", yard.clone()).await;
    assert_eq!(
        (status, &v["running"]),
        (StatusCode::OK, &json!(false)),
        "{v}"
    );
    let (status, v) = api.post("/api/v1/cameras", yard).await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let (status, v) = api.get("/api/v1/cameras").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|c| c["camera_id"] == "yard"),
        "{v}"
    );
    let (status, v) = api.get("/api/v1/cameras/yard").await;
    assert_eq!(
        (status, &v["origin"]),
        (StatusCode::OK, &json!("api")),
        "{v}"
    );
    let (status, v) = api.get("/api/v1/cameras/yard/status").await;
    assert_eq!(
        (status, &v["camera_id"]),
        (StatusCode::OK, &json!("yard")),
        "{v}"
    );
    let (status, v) = api
        .put(
            "/api/v1/cameras/yard",
            json!({"source": "synthetic", "fps": 4, "autostart": false}),
        )
        .await;
    assert_eq!((status, &v["fps"]), (StatusCode::OK, &json!(4.0)), "{v}");
}

/// Starts the yard, looks at it, fails to enrol anyone from it, stops and removes it.
async fn running_camera_routes(api: &Api, port: u16) {
    let (status, v) = api
        .raw(Method::POST, "/api/v1/cameras/yard/start", "")
        .await;
    assert_eq!(
        (status, &v["running"]),
        (StatusCode::OK, &json!(true)),
        "{v}"
    );
    let api2 = api.clone();
    eventually(Duration::from_secs(60), "a picture of the yard", || {
        let api = api2.clone();
        async move {
            let (status, ct, jpeg) = api.get_bytes("/api/v1/cameras/yard/snapshot.jpg").await;
            status == StatusCode::OK && ct == "image/jpeg" && jpeg.starts_with(&[0xFF, 0xD8])
        }
    })
    .await;
    let head = live_view_head(port, "/api/v1/cameras/yard/live.mjpg?fps=2").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: multipart/x-mixed-replace; boundary=frame"),
        "{head}"
    );
    // Nobody stands in the synthetic pattern: the enrolment's own answer.
    let (status, v) = api
        .post(
            "/api/v1/cameras/yard/enrol",
            json!({"name": "Nobody", "shots": 1, "timeout_s": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "shots", "{v}");
    let (status, v) = api.raw(Method::POST, "/api/v1/cameras/yard/stop", "").await;
    assert_eq!(
        (status, &v["running"]),
        (StatusCode::OK, &json!(false)),
        "{v}"
    );
    let (status, v) = api.delete("/api/v1/cameras/yard").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"success": true, "camera_id": "yard"}));
}

/// Enrols Barack Obama from two photos (one face id back) and reads them back by recognition.
async fn face_routes(api: &Api) -> String {
    let (status, v) = post_form(
        api,
        "/api/v1/faces",
        &[("name", "Barack Obama")],
        &[("file", photo("misc/obama.jpg"))],
    )
    .await;
    assert_eq!(
        (status, &v["name"]),
        (StatusCode::OK, &json!("Barack Obama")),
        "{v}"
    );
    let face_id = v["face_ids"][0].as_str().unwrap().to_owned();
    let (status, v) = post_form(
        api,
        "/api/v1/faces/register",
        &[("name", "Barack Obama")],
        &[("file", photo("misc/obama2.jpg"))],
    )
    .await;
    assert_eq!(
        (status, v["faces"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(1)),
        "{v}"
    );

    let (status, v) = post_form(
        api,
        "/api/v1/faces/recognize",
        &[],
        &[("file", photo("misc/obama2.jpg"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["faces"][0]["name"], "Barack Obama", "{v}");
    assert!(v["faces"][0]["confidence"].as_f64().unwrap() <= 1.0, "{v}");
    // An Unknown face's confidence is its best similarity in the gallery, not 0.
    let (status, v) = post_form(
        api,
        "/api/v1/faces/recognize",
        &[],
        &[("file", photo("misc/biden.jpg"))],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let biden = &v["faces"][0];
    assert_eq!(biden["name"], "Unknown", "Biden is not Obama: {v}");
    let confidence = biden["confidence"].as_f64().unwrap();
    assert_eq!(Some(confidence), biden["best_similarity"].as_f64(), "{v}");
    assert!(confidence > 0.0 && confidence < 1.0, "{v}");

    let (status, v) = post_form(
        api,
        "/api/v1/faces/verify",
        &[("threshold", "0.55")],
        &[
            ("file1", photo("misc/obama.jpg")),
            ("file2", photo("misc/obama2.jpg")),
        ],
    )
    .await;
    assert_eq!(
        (status, &v["verified"], &v["threshold"]),
        (StatusCode::OK, &json!(true), &json!(0.55)),
        "{v}"
    );
    let (status, v) = post_form(
        api,
        "/api/v1/faces/detect",
        &[],
        &[("file", photo("misc/biden.jpg"))],
    )
    .await;
    assert_eq!(
        (status, &v["face_count"]),
        (StatusCode::OK, &json!(1)),
        "{v}"
    );

    face_id
}

/// Enrols John Salley from a video; the folder enrolment refuses without its folder.
async fn bulk_enrol_routes(api: &Api, dir: &Path) {
    let salley = photos_of("John_Salley");
    let frames: Vec<_> = salley[..3].iter().map(|p| frame_with(Some(p))).collect();
    let video = dir.join("salley.y4m");
    write_y4m(&video, &frames);
    let (status, v) = post_form(
        api,
        "/api/v1/faces/video",
        &[("name", "John Salley"), ("count", "2")],
        &[("file", std::fs::read(&video).unwrap())],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["video"]["frames"], 3, "{v}");
    // No `api.offline_enrol_dir` here: the folder enrolment's own refusal.
    let (status, v) = api
        .post("/api/v1/faces/offline", json!({"directory_path": "staff"}))
        .await;
    assert_eq!(
        (status, code(&v)),
        (StatusCode::FORBIDDEN, "offline_enrolment_disabled"),
        "{v}"
    );
}

/// Lists, counts, pictures, the rename and both deletes.
async fn gallery_routes(api: &Api, face_id: &str) {
    let (status, v) = api.get("/api/v1/faces?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(
        v["faces"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["has_image"] == true),
        "{v}"
    );
    let (status, v) = api.get("/api/v1/faces/count").await;
    assert_eq!((status, &v["people"]), (StatusCode::OK, &json!(2)), "{v}");
    for picture in ["crop.jpg", "photo.jpg"] {
        let (status, ct, _) = api
            .get_bytes(&format!("/api/v1/faces/{face_id}/{picture}"))
            .await;
        assert_eq!(
            (status, ct.as_str()),
            (StatusCode::OK, "image/jpeg"),
            "{picture}"
        );
    }

    let (status, v) = api
        .put(
            "/api/v1/people/Barack%20Obama",
            json!({"name": "President Obama"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"name": "President Obama", "face_count": 2}));
    let (status, v) = api.delete(&format!("/api/v1/faces/{face_id}")).await;
    assert_eq!(
        (status, &v["face_id"]),
        (StatusCode::OK, &json!(face_id)),
        "{v}"
    );
    let (status, v) = api.delete("/api/v1/faces/by-name/President%20Obama").await;
    assert_eq!((status, &v["deleted"]), (StatusCode::OK, &json!(1)), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_events_cameras_people_and_faces_answers_through_the_route_table() {
    common::init_logging();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let facecv = Binary::start(&config(dir.path(), port), port).await;
    let api = &facecv.api;

    events_routes(api).await;
    camera_routes(api).await;
    running_camera_routes(api, port).await;
    let face_id = face_routes(api).await;
    bulk_enrol_routes(api, dir.path()).await;
    gallery_routes(api, &face_id).await;

    // A path the table knows refuses the methods it lacks; literal segments win over ids.
    for (method, path) in [
        (Method::GET, "/api/v1/events/trigger"),
        (Method::PUT, "/api/v1/cameras/devices"),
        (Method::DELETE, "/api/v1/faces/count"),
        (Method::DELETE, "/api/v1/faces/recognize"),
        (Method::POST, "/api/v1/people/someone"),
    ] {
        let (status, v) = api.raw(method.clone(), path, "").await;
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {v}"
        );
    }
}
