//! Enrolment and recognition over the appliance's own face routes (`/api/v1/faces/...`; FaceCV's
//! paths and shapes are `facecv_compat.rs`), with the real runtime, models and photos, and the
//! answers an enrolment form gets for the wrong pictures.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{start_app_with, Receiver};
use http::StatusCode;
use serde_json::json;

fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/faces")
        .join(rel)
}

fn john(person: &str, n: usize) -> Vec<u8> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data("johns").join(person))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    std::fs::read(&files[n]).unwrap()
}

fn png(img: &image::RgbImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[tokio::test]
async fn people_are_registered_recognised_verified_listed_and_deleted() {
    let app = start_app_with(|_| {}).await;
    let api = &app.api;
    let photos: Vec<(&str, Vec<u8>)> = (0..3)
        .map(|n| ("file", john("John_Schneider", n)))
        .collect();
    let (code, v) = common::post_form(
        api,
        "/api/v1/faces/register",
        &[
            ("name", "John Schneider"),
            ("department", "Security"),
            ("employee_id", "E77"),
        ],
        &photos,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["face_ids"].as_array().unwrap().len(), 3);
    let (code, v) = common::post_form(
        api,
        "/api/v1/faces/register",
        &[("name", "Barack Obama")],
        &[("file", std::fs::read(data("misc/obama.jpg")).unwrap())],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");

    // An unseen photo of each is recognised by name, with the enrolment metadata.
    let (code, v) = common::post_form(
        api,
        "/api/v1/faces/recognize",
        &[],
        &[("file", john("John_Schneider", 7))],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["face_count"], 1, "{v}");
    assert_eq!(v["faces"][0]["name"], "John Schneider");
    assert_eq!(
        v["faces"][0]["metadata"],
        json!({"department": "Security", "employee_id": "E77"})
    );
    let (_, v) = common::post_form(
        api,
        "/api/v1/faces/recognize",
        &[],
        &[("file", std::fs::read(data("misc/obama2.jpg")).unwrap())],
    )
    .await;
    assert_eq!(v["faces"][0]["name"], "Barack Obama", "{v}");
    let (_, v) = common::post_form(
        api,
        "/api/v1/faces/recognize",
        &[],
        &[("file", std::fs::read(data("misc/biden.jpg")).unwrap())],
    )
    .await;
    assert_eq!(v["faces"][0]["name"], "Unknown", "Biden is not Obama: {v}");

    let obama = || std::fs::read(data("misc/obama.jpg")).unwrap();
    let (_, v) = common::post_form(
        api,
        "/api/v1/faces/verify",
        &[],
        &[
            ("file1", obama()),
            ("file2", std::fs::read(data("misc/obama2.jpg")).unwrap()),
        ],
    )
    .await;
    assert_eq!(v["verified"], true, "{v}");
    let (_, v) = common::post_form(
        api,
        "/api/v1/faces/verify",
        &[],
        &[
            ("file1", obama()),
            ("file2", std::fs::read(data("misc/biden.jpg")).unwrap()),
        ],
    )
    .await;
    assert_eq!(v["verified"], false, "{v}");

    let (_, v) = common::post_form(
        api,
        "/api/v1/faces/detect",
        &[("min_confidence", "0.5")],
        &[("file", obama())],
    )
    .await;
    assert_eq!(v["face_count"], 1, "{v}");
    assert_eq!(v["faces"][0]["landmarks"].as_array().unwrap().len(), 6);

    let (_, count) = api.get("/api/v1/faces/count").await;
    assert_eq!(count, json!({"count": 4, "people": 2}));
    let (_, list) = api.get("/api/v1/faces?name=John%20Schneider&limit=2").await;
    assert_eq!(list["faces"].as_array().unwrap().len(), 2);
    let one = list["faces"][0]["id"].as_str().unwrap().to_owned();
    let (code, _) = api.delete(&format!("/api/v1/faces/{one}")).await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api.delete(&format!("/api/v1/faces/{one}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, v) = api.delete("/api/v1/faces/by-name/Barack%20Obama").await;
    assert_eq!(
        (code, v["deleted"].clone()),
        (StatusCode::OK, json!(1)),
        "{v}"
    );
    // Deleted means forgotten: Obama is a stranger now.
    let (_, v) = common::post_form(
        api,
        "/api/v1/faces/recognize",
        &[],
        &[("file", std::fs::read(data("misc/obama2.jpg")).unwrap())],
    )
    .await;
    assert_eq!(v["faces"][0]["name"], "Unknown", "{v}");
    let (_, count) = api.get("/api/v1/faces/count").await;
    assert_eq!(count, json!({"count": 2, "people": 1}));
}

#[tokio::test]
async fn the_wrong_pictures_get_a_clear_422_and_nothing_is_enrolled() {
    let app = start_app_with(|_| {}).await;
    let api = &app.api;
    let grey = png(&image::RgbImage::from_pixel(
        320,
        240,
        image::Rgb([128, 128, 128]),
    ));
    let mut two = image::RgbImage::from_pixel(640, 320, image::Rgb([120, 120, 120]));
    for (i, who) in ["John_Salley", "John_Simm"].iter().enumerate() {
        let face = image::load_from_memory(&john(who, 0)).unwrap().to_rgb8();
        let face = image::imageops::resize(&face, 200, 200, image::imageops::FilterType::Triangle);
        image::imageops::overlay(&mut two, &face, 60 + 320 * i as i64, 60);
    }
    let tiny = {
        let face = image::load_from_memory(&john("John_Salley", 0))
            .unwrap()
            .to_rgb8();
        let face = image::imageops::resize(&face, 40, 40, image::imageops::FilterType::Triangle);
        let mut canvas = image::RgbImage::from_pixel(400, 300, image::Rgb([120, 120, 120]));
        image::imageops::overlay(&mut canvas, &face, 180, 130);
        png(&canvas)
    };
    // The same photo that enrols in the test above, blurred past `vision.quality.min_sharpness`
    // (sigma 3% of the face's width; tests/quality.rs measures where the limit sits).
    let blurred = {
        let face = image::load_from_memory(&john("John_Salley", 1))
            .unwrap()
            .to_rgb8();
        png(&image::imageops::blur(&face, 4.0))
    };
    let cases: [(&str, Vec<u8>, &str); 5] = [
        (
            "bytes that are not an image",
            b"no picture, just text".to_vec(),
            "not_an_image",
        ),
        ("a picture with no face", grey, "no_face"),
        ("two faces where one is needed", png(&two), "multiple_faces"),
        ("a face too small to enrol", tiny, "face_too_small"),
        ("a blurred face", blurred, "face_blurred"),
    ];
    for (what, bytes, code) in cases {
        let (status, v) = common::post_form(
            api,
            "/api/v1/faces/register",
            &[("name", "Someone")],
            &[("file", bytes)],
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {v}");
        assert_eq!(v["error"]["code"], code, "{what}: {v}");
        if code == "face_blurred" {
            // What failed and by how much, and the limit.
            let message = v["error"]["message"].as_str().unwrap();
            assert!(
                message.contains("blurred (sharpness") && message.contains("at least 30"),
                "{v}"
            );
        }
    }
    // One bad photo among good ones fails the registration as a whole.
    let (status, v) = common::post_form(
        api,
        "/api/v1/faces/register",
        &[("name", "Someone")],
        &[("file", john("John_Salley", 1)), ("file", b"junk".to_vec())],
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "file[1]");
    let (status, v) = common::post_form(
        api,
        "/api/v1/faces/register",
        &[],
        &[("file", john("John_Salley", 1))],
    )
    .await;
    assert_eq!(
        (status, v["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("name")),
        "{v}"
    );
    let (status, v) = api
        .post("/api/v1/faces/register", json!({"name": "x"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{v}");
    let (_, count) = api.get("/api/v1/faces/count").await;
    assert_eq!(count["count"], 0);
}

#[tokio::test]
async fn a_missing_runtime_is_a_503_that_says_how_to_get_it_and_webhooks_keep_working() {
    let app =
        start_app_with(|c| c.vision.runtime.library = Some("/nonexistent/libLiteRt.so".into()))
            .await;
    let (status, v) = common::post_form(
        &app.api,
        "/api/v1/faces/detect",
        &[],
        &[("file", john("John_Salley", 0))],
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "vision_unavailable");
    let rx = Receiver::start().await;
    app.api
        .create_webhook(json!({"webhook_id": "w", "url": rx.url("/h"), "batch_size": 1}))
        .await;
    app.api.trigger("stream_started", 1).await;
    common::wait_until(Duration::from_secs(10), "a delivery", || {
        rx.accepted().len() == 1
    })
    .await;
}

#[tokio::test]
async fn enrolment_photos_are_kept_and_served_go_with_their_face_and_a_renamed_person_is_recognised_by_the_new_name(
) {
    let app = start_app_with(|_| {}).await;
    let api = &app.api;
    // A photo larger than the 1024 px kept: Obama's, scaled up to 1600 px wide.
    let big = image::load_from_memory(&std::fs::read(data("misc/obama.jpg")).unwrap())
        .unwrap()
        .resize(1600, 1600, image::imageops::FilterType::Triangle)
        .to_rgb8();
    let (code, v) = common::post_form(
        api,
        "/api/v1/faces",
        &[("name", "Barack Obama")],
        &[("file", png(&big))],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let obama = v["face_ids"][0].as_str().unwrap().to_owned();
    common::assert_pictures(api, &obama).await;
    let (_, _, photo) = api
        .get_bytes(&format!("/api/v1/faces/{obama}/photo.jpg"))
        .await;
    let photo = image::load_from_memory(&photo).unwrap();
    assert_eq!(
        photo.width().max(photo.height()),
        1024,
        "scaled down to 1024"
    );

    // Our listing says which faces have pictures; FaceCV's keeps FaceCV's fields only.
    let (_, ours) = api.get("/api/v1/faces").await;
    assert_eq!(ours["faces"][0]["has_image"], true, "{ours}");
    let (_, theirs) = api.get("/api/v1/insightface/faces").await;
    assert!(theirs["faces"][0].get("has_image").is_none(), "{theirs}");

    for (path, code) in [
        ("/api/v1/faces/no-such-face/crop.jpg", "not_found"),
        ("/api/v1/faces/..%2F..%2Fetc/photo.jpg", "not_found"),
    ] {
        let (status, v) = api.get(path).await;
        assert_eq!(
            (status, v["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some(code))
        );
    }

    // A face enrolled before pictures were kept (written as an older version wrote it).
    app.app
        .store()
        .add_faces(
            "Old Timer",
            "test:model",
            &[facecv::store::NewFace::bare(vec![0.5; 8])],
            &Default::default(),
        )
        .unwrap();
    let (_, ours) = api.get("/api/v1/faces?name=Old%20Timer").await;
    let old = ours["faces"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(ours["faces"][0]["has_image"], false);
    let (status, v) = api.get(&format!("/api/v1/faces/{old}/crop.jpg")).await;
    assert_eq!(
        (status, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_image"))
    );

    // A rename: the cameras' gallery knows the new name at once; names are checked as at
    // enrolment, and two people are never merged.
    let (code, v) = api
        .put(
            "/api/v1/people/Barack%20Obama",
            json!({"name": "  President Obama "}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"name": "President Obama", "face_count": 1}));
    let (_, v) = common::post_form(
        api,
        "/api/v1/faces/recognize",
        &[],
        &[("file", std::fs::read(data("misc/obama2.jpg")).unwrap())],
    )
    .await;
    assert_eq!(v["faces"][0]["name"], "President Obama", "{v}");
    for (path, body, status, code) in [
        (
            "Nobody",
            json!({"name": "X"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "Old%20Timer",
            json!({"name": "President Obama"}),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            "Old%20Timer",
            json!({"name": " "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        ),
        (
            "Old%20Timer",
            json!({"name": "x".repeat(129)}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        ),
        (
            "Old%20Timer",
            json!({"nom": "X"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
        ),
    ] {
        let (s, v) = api.put(&format!("/api/v1/people/{path}"), body).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {v}"
        );
    }

    // Deleting the face deletes its pictures.
    let (code, _) = api.delete(&format!("/api/v1/faces/{obama}")).await;
    assert_eq!(code, StatusCode::OK);
    let (status, _) = api.get(&format!("/api/v1/faces/{obama}/crop.jpg")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let left: i64 = rusqlite::Connection::open(app.app.store().path())
        .unwrap()
        .query_row("SELECT COUNT(*) FROM face_images", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0, "the pictures went with the face");
}
