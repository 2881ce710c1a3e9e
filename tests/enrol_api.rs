//! FaceCV's bulk enrolment: a short video of one person (`POST /video_face/`) and a folder on the
//! device laid out `<dir>/<name>/*.jpg` (`POST /faces/offline`), with the real runtime, models and
//! photos, and the answers the wrong inputs get.

mod common;

use std::path::Path;

use common::video::{photos_of, root, scene, write_mjpeg, write_y4m};
use common::{post_form, start_app_with, Api, Running};
use http::StatusCode;
use image::RgbImage;
use serde_json::{json, Value};

async fn app(enrol_dir: Option<&Path>) -> Running {
    let dir = enrol_dir.map(Path::to_owned);
    start_app_with(move |c| {
        c.vision.models_dir = root().join("models");
        c.api.offline_enrol_dir = dir;
    })
    .await
}

/// A person "in front of the camera": `photos` in turn, moving and growing a little, 400x300.
fn walk_up(photos: &[&Path], frames: usize) -> Vec<RgbImage> {
    (0..frames)
        .map(|i| {
            let p = photos[i % photos.len()];
            let side = 170 + (i as u32 % 4) * 10;
            scene(
                (400, 300),
                &[(p, side, (60 + 12 * i as i64, 40 + (i as i64 % 3) * 8))],
            )
        })
        .collect()
}

/// `route`: ours (`faces/video`) or FaceCV's (`insightface/video_face/`).
async fn post_video(
    api: &Api,
    route: &str,
    fields: &[(&str, &str)],
    video: Vec<u8>,
) -> (StatusCode, Value) {
    post_form(api, &format!("/api/v1/{route}"), fields, &[("file", video)]).await
}

async fn recognise(api: &Api, photo: &Path) -> Value {
    let (code, v) = post_form(
        api,
        "/api/v1/insightface/recognize",
        &[],
        &[("file", std::fs::read(photo).unwrap())],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    v[0].clone()
}

async fn enrolled(api: &Api) -> u64 {
    api.get("/api/v1/insightface/faces/count").await.1["total_faces"]
        .as_u64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_video_of_one_person_enrols_its_best_frames_and_the_person_is_recognised() {
    let app = app(None).await;
    let dir = app.dir.path();
    let salley = photos_of("John_Salley");
    let y4m = dir.join("salley.y4m");
    write_y4m(&y4m, &walk_up(&[&salley[0], &salley[1]], 12));
    let (code, v) = post_video(
        &app.api,
        "faces/video",
        &[
            ("name", "John Salley"),
            ("department", "Front desk"),
            ("count", "3"),
        ],
        std::fs::read(&y4m).unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["face_ids"].as_array().unwrap().len(), 3, "{v}");
    assert_eq!(v["video"]["frames"], 12);
    assert_eq!(v["video"]["usable"], 12, "{v}");
    let picked = v["video"]["picked"].as_array().unwrap();
    let q: Vec<f64> = picked
        .iter()
        .map(|p| p["quality"].as_f64().unwrap())
        .collect();
    assert!(
        q.windows(2).all(|w| w[0] >= w[1]) && q[0] > 0.0,
        "best first: {q:?}"
    );
    // Each picked frame is kept with its face: the aligned crop and the frame itself.
    for id in v["face_ids"].as_array().unwrap() {
        common::assert_pictures(&app.api, id.as_str().unwrap()).await;
    }
    // A photo the video never showed is recognised as him.
    let face = recognise(&app.api, &salley[6]).await;
    assert_eq!(face["name"], "John Salley", "{face}");
    assert_eq!(face["metadata"]["department"], "Front desk");

    // MJPEG under FaceCV's older prefix, with its defaults.
    let savage = photos_of("John_Savage");
    let mjpeg = dir.join("savage.mjpeg");
    write_mjpeg(&mjpeg, &walk_up(&[&savage[0], &savage[1], &savage[2]], 9));
    let (code, v) = post_video(
        &app.api,
        "face_recognition_insightface/video_face/",
        &[("name", "John Savage"), ("method", "uniform")],
        std::fs::read(&mjpeg).unwrap(),
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    // FaceCV's fields: its registration answer and its frame extractor's.
    assert_eq!(v["face_ids"].as_array().unwrap().len(), 5, "{v}");
    assert_eq!(
        (&v["person_name"], &v["face_count"]),
        (&json!("John Savage"), &json!(5))
    );
    assert_eq!(v["total_frames_processed"], 9, "{v}");
    assert_eq!(v["results"].as_array().unwrap().len(), 5, "{v}");
    assert_eq!(recognise(&app.api, &savage[7]).await["name"], "John Savage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn videos_that_cannot_enrol_one_person_get_a_clear_answer_and_enrol_nothing() {
    let app = app(None).await;
    let dir = app.dir.path();
    let (salley, simm) = (photos_of("John_Salley"), photos_of("John_Simm"));
    let y4m = |name: &str, frames: Vec<RgbImage>| {
        let path = dir.join(name);
        write_y4m(&path, &frames);
        std::fs::read(path).unwrap()
    };
    let empty = y4m(
        "empty.y4m",
        (0..6).map(|_| scene((400, 300), &[])).collect(),
    );
    let together = y4m(
        "together.y4m",
        (0..6)
            .map(|i| {
                scene(
                    (400, 300),
                    &[(&salley[i], 150, (20, 60)), (&simm[i], 150, (220, 60))],
                )
            })
            .collect(),
    );
    let one_after_another = y4m(
        "relay.y4m",
        walk_up(&[&salley[0]], 5)
            .into_iter()
            .chain(walk_up(&[&simm[0]], 5))
            .collect(),
    );
    let cases: Vec<(&str, Vec<u8>, StatusCode, &str)> = vec![
        (
            "no face",
            empty,
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_face",
        ),
        (
            "two at once",
            together,
            StatusCode::UNPROCESSABLE_ENTITY,
            "multiple_faces",
        ),
        (
            "one after another",
            one_after_another,
            StatusCode::UNPROCESSABLE_ENTITY,
            "multiple_people",
        ),
        (
            "an MP4",
            b"\0\0\0\x20ftypisom\0\0\x02\0isomiso2".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_video",
        ),
        (
            "a cut y4m",
            b"YUV4MPEG2 W400 H300 C444\nFRAME\n\x10\x10".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_video",
        ),
    ];
    for (what, video, status, code) in cases {
        let (got, v) = post_video(
            &app.api,
            "insightface/video_face/",
            &[("name", "Someone")],
            video,
        )
        .await;
        assert_eq!(
            (got, v["error"]["code"].as_str().unwrap_or("")),
            (status, code),
            "{what}: {v}"
        );
        assert!(!v["error"]["message"].as_str().unwrap().is_empty());
    }
    let good = y4m("good.y4m", walk_up(&[&salley[0]], 4));
    for (fields, field) in [
        (vec![], "name"),
        (vec![("name", "A"), ("count", "0")], "count"),
        (vec![("name", "A"), ("count", "2.5")], "count"),
        (vec![("name", "A"), ("method", "scene_change")], "method"),
        (
            vec![("name", "A"), ("quality_threshold", "7")],
            "quality_threshold",
        ),
    ] {
        let (got, v) = post_video(&app.api, "insightface/video_face/", &fields, good.clone()).await;
        assert_eq!(got, StatusCode::UNPROCESSABLE_ENTITY, "{fields:?}: {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    assert_eq!(enrolled(&app.api).await, 0);
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_on_the_device_enrols_each_person_or_says_why_not() {
    let outside = tempfile::tempdir().unwrap();
    let root_dir = tempfile::tempdir().unwrap();
    let people = root_dir.path().join("people");
    for person in ["John_Salley", "John_Savage"] {
        for (i, p) in photos_of(person)[..3].iter().enumerate() {
            copy(p, &people.join(person).join(format!("{i}.jpg")));
        }
    }
    // One good photo and one of an empty room: the person is skipped, not half enrolled.
    copy(&photos_of("John_Simm")[0], &people.join("John_Simm/a.jpg"));
    scene((300, 300), &[])
        .save(people.join("John_Simm/b.png"))
        .unwrap();
    std::fs::write(people.join("John_Simm/notes.txt"), "not a photo").unwrap();
    // A link out of the allowed folder is refused even though the photo is fine.
    copy(&photos_of("John_Shimkus")[0], &outside.path().join("s.jpg"));
    std::fs::create_dir_all(people.join("John_Shimkus")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("s.jpg"),
        people.join("John_Shimkus/s.jpg"),
    )
    .unwrap();

    let app = app(Some(root_dir.path())).await;
    let (code, v) = app
        .api
        .post("/api/v1/faces/offline", json!({"directory_path": "people"}))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["enrolled"], json!(["John Salley", "John Savage"]), "{v}");
    assert_eq!(v["skipped"], json!(["John Shimkus", "John Simm"]), "{v}");
    let person = |name: &str| {
        v["people"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    let simm = person("John Simm");
    let status: Vec<(&str, &str)> = simm["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["file"].as_str().unwrap(), f["status"].as_str().unwrap()))
        .collect();
    assert_eq!(status, [("a.jpg", "ok"), ("b.png", "no_face")], "{simm}");
    assert_eq!(
        person("John Shimkus")["files"][0]["status"],
        "outside_enrol_dir"
    );
    assert_eq!(enrolled(&app.api).await, 6);
    assert_eq!(
        recognise(&app.api, &photos_of("John_Savage")[6]).await["name"],
        "John Savage"
    );
    for id in person("John Savage")["face_ids"].as_array().unwrap() {
        common::assert_pictures(&app.api, id.as_str().unwrap()).await;
    }
    // FaceCV's path answers FaceCV's summary and details (enrolling the folder again).
    let (code, v) = app
        .api
        .post(
            "/api/v1/insightface/faces/offline",
            json!({"directory_path": "people"}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(
        v["summary"],
        json!({"total_success": 6, "total_failed": 0, "total_skipped": 3}),
        "{v}"
    );
    assert_eq!(v["details"]["skipped"][2]["path"], "John Simm/b.png", "{v}");
    assert_eq!(
        v["details"]["success"][0],
        json!({"path": "John Salley/0.jpg"})
    );
    assert_eq!(enrolled(&app.api).await, 12);

    // FaceCV's urlencoded form with an absolute path, under the older prefix.
    let (code, v) = app
        .api
        .raw_with(
            http::Method::POST,
            "/api/v1/face_recognition_insightface/faces/offline",
            "application/x-www-form-urlencoded",
            format!("directory_path={}", people.join("John_Salley").display()).into(),
        )
        .await;
    assert_eq!(
        code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a person's own folder holds no people: {v}"
    );
    assert_eq!(v["error"]["code"], "no_people");

    for (asked, status, code) in [
        ("/etc", StatusCode::FORBIDDEN, "outside_enrol_dir"),
        ("people/../..", StatusCode::FORBIDDEN, "outside_enrol_dir"),
        (
            "nowhere",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        ),
        ("", StatusCode::UNPROCESSABLE_ENTITY, "validation_error"),
    ] {
        let (got, v) = app
            .api
            .post("/api/v1/faces/offline", json!({"directory_path": asked}))
            .await;
        assert_eq!(
            (got, v["error"]["code"].as_str().unwrap()),
            (status, code),
            "{asked}: {v}"
        );
    }
    assert_eq!(enrolled(&app.api).await, 12, "refusals enrol nothing");

    let off = self::app(None).await;
    let (code, v) = off
        .api
        .post("/api/v1/faces/offline", json!({"directory_path": "people"}))
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "offline_enrolment_disabled");
}
