//! FaceCV's face routes answered in FaceCV's shapes by the real binary, with the real runtime,
//! models and photos: a FaceCV client's scripts parse these answers field by field, so each is
//! checked field by field (types, ranges, thresholds as written), along with the answers for a
//! photo without a face, FastAPI's `detail` on errors, and detection of small tight photos.

mod common;

use std::path::PathBuf;

use common::{free_port, post_form, write_config, Api, Binary};
use http::{Method, StatusCode};
use serde_json::{json, Value};

const NEW: &str = "/api/v1/insightface";
const OLD: &str = "/api/v1/face_recognition_insightface";

fn photos(person: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/faces/johns")
        .join(person);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn obama() -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/faces/misc/obama.jpg"))
        .unwrap()
}

/// A grey photo: no face in it.
fn blank() -> Vec<u8> {
    let img = image::RgbImage::from_pixel(224, 224, image::Rgb([128, 128, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
    out.into_inner()
}

async fn start() -> (Binary, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    (Binary::start(&config, port).await, dir)
}

/// A number printed as its `f32` was written (`0.63`, not `0.6299999952316284`).
fn as_written(v: &Value) -> bool {
    let x = v.as_f64().unwrap_or_else(|| panic!("{v} is a number"));
    format!("{:?}", x as f32).parse::<f64>().unwrap() == x
}

fn unit(v: &Value) -> f64 {
    let x = v.as_f64().unwrap_or_else(|| panic!("{v} is a number"));
    assert!((0.0..=1.0).contains(&x), "{x} is within [0, 1]");
    x
}

fn check_bbox(v: &Value) {
    let b = v.as_array().unwrap_or_else(|| panic!("{v} is a box"));
    assert_eq!(b.len(), 4, "{v}");
    assert!(b.iter().all(|x| x.is_i64()), "whole pixels: {v}");
}

fn check_landmarks(v: &Value) {
    for p in v.as_array().unwrap() {
        let p = p.as_array().unwrap();
        assert_eq!(p.len(), 2);
        assert!(p.iter().all(Value::is_f64));
    }
}

#[tokio::test]
async fn facecv_clients_get_facecvs_shapes_on_facecvs_paths() {
    let (app, _dir) = start().await;
    let api = &app.api;

    // The probe FaceCV's clients and tests make first, on both prefixes.
    for prefix in [NEW, OLD] {
        let (code, v) = api.get(&format!("{prefix}/health")).await;
        assert_eq!(code, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "healthy");
        assert!(v["service"]
            .as_str()
            .unwrap()
            .contains("Real InsightFace API"));
        assert_eq!(v["initialized"], true);
        assert!(v["model_pack"].is_string() && v["database_connected"].is_boolean());
        assert!(v["timestamp"].is_string());
    }
    let (code, info) = api.get(&format!("{NEW}/models/info")).await;
    assert_eq!(code, StatusCode::OK, "{info}");
    assert_eq!(info["initialized"], true, "{info}");
    assert_eq!(info["status"], "active");
    assert!(info["model_pack"].is_string());
    assert!(as_written(&info["similarity_threshold"]), "{info}");
    assert!(as_written(&info["detection_threshold"]), "{info}");
    assert!(info["embedding_size"].as_u64().unwrap() > 0);
    let calibrated = info["similarity_threshold"].as_f64().unwrap();
    // The API's models can be unloaded (its memory given back) and come back on the next upload.
    let (_, status) = api.get(&format!("{NEW}/models/status")).await;
    assert_eq!(
        status["loaded_models"],
        json!([info["model_pack"]]),
        "{status}"
    );
    assert_eq!(status["current_model"], info["model_pack"]);
    let (code, v) = api
        .raw(Method::POST, &format!("{OLD}/models/clear"), "")
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["success"], &v["current_models"]),
        (&json!(true), &json!([]))
    );
    let (_, status) = api.get(&format!("{NEW}/models/status")).await;
    assert_eq!(
        (&status["loaded_models"], &status["model_count"]),
        (&json!([]), &json!(0))
    );
    assert!(status["current_model"].is_null());

    registration(api).await;
    let (_, status) = api.get(&format!("{NEW}/models/status")).await;
    assert_eq!(
        status["model_count"], 1,
        "loaded again by the uploads: {status}"
    );
    recognition(api, calibrated).await;
    verification(api, calibrated).await;
    listing_and_deletes(api).await;
}

async fn registration(api: &Api) {
    let salley = photos("John_Salley");
    let (code, v) = post_form(
        api,
        &format!("{NEW}/register"),
        &[
            ("name", "John Salley"),
            ("department", "Front desk"),
            ("employee_id", "E1"),
        ],
        &[("file", salley[0].clone())],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["success"], true);
    assert_eq!(v["person_name"], "John Salley");
    assert!(v["face_id"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    assert!(v["face_ids"].is_null(), "{v}");
    assert_eq!(v["face_count"], 1);
    assert_eq!(v["message"], "Successfully registered 1 face(s)");
    // Several photos (on the older prefix): `face_ids`, and `face_id` null, as FaceCV.
    let (code, v) = post_form(
        api,
        &format!("{OLD}/register"),
        &[("name", "John Salley")],
        &[("file", salley[1].clone()), ("file", salley[2].clone())],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["face_ids"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["face_id"].is_null());
    assert_eq!(v["face_count"], 2);

    // No face: FaceCV's 400 and message, in `detail` beside our `error`.
    let (code, v) = post_form(
        api,
        &format!("{NEW}/register"),
        &[("name", "Nobody")],
        &[("file", blank())],
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["detail"], "No faces detected in the image");
    assert_eq!(v["error"]["code"], "bad_request");
    // A blurred face: FaceCV's 400, whose message says what failed and by how much.
    let blurred = {
        let face = image::load_from_memory(&salley[4]).unwrap().to_rgb8();
        let mut out = std::io::Cursor::new(Vec::new());
        image::imageops::blur(&face, 4.0)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        out.into_inner()
    };
    let (code, v) = post_form(
        api,
        &format!("{NEW}/register"),
        &[("name", "John Salley")],
        &[("file", blurred)],
    )
    .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
    let detail = v["detail"].as_str().unwrap();
    assert!(detail.starts_with("the face is blurred (sharpness "), "{v}");
    // A missing field is FastAPI's 422 with `loc`, `msg` and `type`.
    let (code, v) = post_form(
        api,
        &format!("{NEW}/register"),
        &[],
        &[("file", salley[3].clone())],
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["detail"][0]["loc"], json!(["body", "name"]), "{v}");
    assert!(v["detail"][0]["msg"].is_string() && v["detail"][0]["type"].is_string());
    assert_eq!(v["error"]["field"], "name");
    // No form at all (FaceCV's test posts nothing): 422 naming the file, not a 400.
    let (code, v) = api.raw(Method::POST, &format!("{NEW}/detect"), "").await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["detail"][0]["loc"], json!(["body", "file"]));
}

async fn recognition(api: &Api, calibrated: f64) {
    let salley = photos("John_Salley");
    let (code, v) = post_form(
        api,
        &format!("{NEW}/recognize"),
        &[],
        &[("file", salley[7].clone())],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let faces = v.as_array().unwrap_or_else(|| panic!("a bare list: {v}"));
    assert_eq!(faces.len(), 1, "{v}");
    let f = &faces[0];
    assert_eq!(f["name"], "John Salley", "{v}");
    assert_eq!(unit(&f["confidence"]), unit(&f["similarity"]));
    assert!(unit(&f["confidence"]) >= calibrated, "{v}");
    assert!(f["id"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        f["metadata"],
        json!({"department": "Front desk", "employee_id": "E1"})
    );
    assert_eq!(
        f["threshold"].as_f64(),
        Some(calibrated),
        "absent = the gallery's: {v}"
    );
    unit(&f["detection_score"]);
    assert!(f["quality_score"].is_number());
    check_bbox(&f["bbox"]);
    check_landmarks(&f["landmarks"]);

    // A threshold FaceCV's way (a form field), printed as written; under it the face is
    // Unknown, with its best similarity as confidence and no id.
    let (code, v) = post_form(
        api,
        &format!("{OLD}/recognize"),
        &[("threshold", "0.99")],
        &[("file", salley[7].clone())],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v[0]["name"], "Unknown", "{v}");
    assert_eq!(v[0]["threshold"], json!(0.99));
    assert!(unit(&v[0]["confidence"]) > 0.0 && v[0]["confidence"] == v[0]["similarity"]);
    assert_eq!(v[0]["id"], "");
    // Someone not enrolled.
    let (_, v) = post_form(api, &format!("{NEW}/recognize"), &[], &[("file", obama())]).await;
    assert_eq!(v[0]["name"], "Unknown", "{v}");
    assert!(unit(&v[0]["confidence"]) < calibrated);
    // No face: an empty list.
    let (code, v) = post_form(api, &format!("{NEW}/recognize"), &[], &[("file", blank())]).await;
    assert_eq!((code, v), (StatusCode::OK, json!([])));
}

async fn verification(api: &Api, calibrated: f64) {
    let savage = photos("John_Savage");
    let pair = [("file1", savage[0].clone()), ("file2", savage[1].clone())];
    let (code, v) = post_form(api, &format!("{NEW}/verify"), &[], &pair).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["is_same_person"], true, "{v}");
    let c = unit(&v["confidence"]);
    let d = v["distance"].as_f64().unwrap();
    assert!(
        (d - (1.0 - c)).abs() < 1e-4 && (0.0..=2.0).contains(&d),
        "{v}"
    );
    assert_eq!(v["threshold"].as_f64(), Some(calibrated));
    assert!(v["message"].is_null());
    check_bbox(&v["face1_bbox"]);
    check_bbox(&v["face2_bbox"]);
    assert!(v["face1_quality"].is_number() && v["face2_quality"].is_number());
    // The threshold is a query parameter in FaceCV, and is printed as written.
    let (_, v) = post_form(api, &format!("{OLD}/verify?threshold=0.97"), &[], &pair).await;
    assert_eq!(v["threshold"], json!(0.97), "{v}");
    let (_, v) = post_form(
        api,
        &format!("{NEW}/verify"),
        &[],
        &[("file1", savage[0].clone()), ("file2", obama())],
    )
    .await;
    assert_eq!(v["is_same_person"], false, "{v}");
    // A photo without a face is FaceCV's answer, not an error.
    let (code, v) = post_form(
        api,
        &format!("{NEW}/verify"),
        &[],
        &[("file1", savage[0].clone()), ("file2", blank())],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["is_same_person"], false);
    assert_eq!(v["confidence"], json!(0.0));
    assert_eq!(v["distance"], json!(2.0));
    assert_eq!(v["face2_bbox"], json!([0, 0, 0, 0]));
    assert_eq!(v["face2_quality"], json!(0.0));
}

async fn listing_and_deletes(api: &Api) {
    let (code, v) = api.get(&format!("{NEW}/faces?limit=1")).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["total"], 3, "counted before the limit: {v}");
    assert_eq!(v["returned"], 1);
    let face = &v["faces"][0];
    assert!(
        face["id"].is_string() && face["created_at"].is_string() && face["updated_at"].is_string()
    );
    assert_eq!(face["name"], "John Salley");
    assert_eq!(face["metadata"]["employee_id"], "E1");
    assert!(face["embedding_size"].as_u64().unwrap() > 0, "{v}");
    let one = face["id"].as_str().unwrap().to_owned();
    let (_, v) = api.get(&format!("{OLD}/faces/count")).await;
    assert_eq!(v, json!({"total_faces": 3}));

    let (code, v) = api.delete(&format!("{NEW}/faces/{one}")).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(
        v,
        json!({"message": format!("Successfully deleted face {one}")})
    );
    let (code, v) = api.delete(&format!("{NEW}/faces/{one}")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(v["detail"], "Face not found");
    assert_eq!(v["error"]["code"], "not_found");
    let (code, v) = api
        .delete(&format!("{OLD}/faces/by-name/John%20Salley"))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["deleted_count"], 2);
    assert_eq!(
        v["message"],
        "Successfully deleted all faces for John Salley"
    );
    let (code, v) = api
        .delete(&format!("{NEW}/faces/by-name/John%20Salley"))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(v["detail"], "No faces found for this name");
    let (_, v) = api.get(&format!("{NEW}/faces")).await;
    assert_eq!(v, json!({"faces": [], "total": 0, "returned": 0}));
}

/// `/detect` finds the faces that fill the small photos of `johns` (150x150), on FaceCV's path
/// and on ours, because both look again on a padded canvas as recognition does.
#[tokio::test]
async fn detect_finds_every_face_of_the_small_photos() {
    let (app, _dir) = start().await;
    let api = &app.api;
    for person in [
        "John_Salley",
        "John_Savage",
        "John_Schneider",
        "John_Shimkus",
        "John_Simm",
    ] {
        for (n, photo) in photos(person).into_iter().enumerate().step_by(3) {
            let (code, v) = post_form(
                api,
                &format!("{NEW}/detect"),
                &[],
                &[("file", photo.clone())],
            )
            .await;
            assert_eq!(code, StatusCode::OK, "{v}");
            let faces = v.as_array().unwrap();
            assert_eq!(faces.len(), 1, "{person} #{n}: {v}");
            let f = &faces[0];
            check_bbox(&f["bbox"]);
            assert!(unit(&f["confidence"]) >= 0.5);
            assert!(
                f["id"].as_str().is_some_and(|s| s.len() == 36),
                "a UUID: {v}"
            );
            check_landmarks(&f["landmarks"]);
            assert_eq!(f["name"], "Unknown");
            assert_eq!(f["similarity"], json!(0.0));
            assert!(f["quality_score"].is_number());
            let (_, ours) = post_form(api, "/api/v1/faces/detect", &[], &[("file", photo)]).await;
            assert_eq!(ours["face_count"], 1, "{person} #{n} on our path: {ours}");
        }
    }
    // `min_confidence` above every face leaves none; a photo without a face gives none.
    let photo = photos("John_Simm").remove(0);
    let (_, v) = post_form(
        api,
        &format!("{OLD}/detect"),
        &[("min_confidence", "0.999")],
        &[("file", photo)],
    )
    .await;
    assert_eq!(v, json!([]));
    let (_, v) = post_form(api, &format!("{NEW}/detect"), &[], &[("file", blank())]).await;
    assert_eq!(v, json!([]));
    // Errors on any path carry `detail` too.
    let (code, v) = api.get("/api/v1/webhooks/nobody").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(v["detail"], v["error"]["message"], "{v}");
    let (code, v) = api.get(&format!("{NEW}/nothing-here")).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert!(v["detail"].is_string(), "{v}");
}
