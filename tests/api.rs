//! The LAN API as FaceCV's clients use it, and what it answers to bad input: every error is JSON
//! `{"error": {"code", "message"}}` with the right status, and nothing bad gets stored.

mod common;

use common::{start_app, start_app_with, Api};
use http::{Method, StatusCode};
use serde_json::{json, Value};

fn error_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("a JSON error body, got {v}"))
}

#[tokio::test]
async fn webhooks_are_created_listed_read_replaced_toggled_and_deleted_like_facecvs() {
    let app = start_app().await;
    let api = &app.api;
    let body = json!({
        "webhook_id": "main_recognition",
        "url": "http://localhost:8080/webhook/face-recognition",
        "headers": {"Authorization": "Bearer your-token"},
        "timeout": 30, "retry_count": 3, "batch_size": 10, "batch_timeout": 1.0,
        "enabled": true, "event_types": ["face_recognized", "stranger_alert"]
    });
    let created = api.create_webhook(body.clone()).await;
    for key in [
        "webhook_id",
        "url",
        "headers",
        "timeout",
        "retry_count",
        "retry_delay",
        "batch_size",
        "batch_timeout",
        "enabled",
        "event_types",
        "created_at",
        "statistics",
        "secret",
    ] {
        assert!(
            created.get(key).is_some(),
            "create answers {key}: {created}"
        );
    }
    assert_eq!(
        created["statistics"],
        json!({"total_sent": 0, "success_count": 0, "failed_count": 0, "attempts": 0, "failed_attempts": 0})
    );

    // The same create again (FaceCV's integration script run twice): the stored webhook; other
    // settings for the same id: 409, pointing to PUT.
    let (code, again) = api.post("/api/v1/webhooks", body.clone()).await;
    assert_eq!(code, StatusCode::OK, "{again}");
    assert_eq!(again["created_at"], created["created_at"]);
    let mut other = body.clone();
    other["batch_size"] = json!(7);
    let (code, again) = api.post("/api/v1/webhooks", other).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(error_code(&again), "webhook_exists");

    let (code, list) = api.get("/api/v1/webhooks").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(list[0].get("secret").is_none());

    // created_at is stable across reads (FaceCV's changed on every read).
    let (_, one) = api.get("/api/v1/webhooks/main_recognition").await;
    assert_eq!(one["created_at"], created["created_at"]);
    assert_eq!(one["delivery"]["backlog"], 0);

    let mut replaced = body.clone();
    replaced["batch_size"] = json!(50);
    replaced.as_object_mut().unwrap().remove("webhook_id");
    let (code, r) = api.put("/api/v1/webhooks/main_recognition", replaced).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["batch_size"], 50);
    assert_eq!(r["created_at"], created["created_at"]);

    let (code, r) = api
        .post("/api/v1/webhooks/main_recognition/disable", json!({}))
        .await;
    assert_eq!((code, r["enabled"].clone()), (StatusCode::OK, json!(false)));
    let (_, stats) = api.get("/api/v1/webhooks/stats").await;
    assert_eq!(stats["total_webhooks"], 1);
    assert_eq!(stats["enabled_webhooks"], 0);
    assert_eq!(stats["queue_size"], 0);
    assert_eq!(stats["manager_running"], true);
    let (code, r) = api
        .post("/api/v1/webhooks/main_recognition/enable", json!({}))
        .await;
    assert_eq!((code, r["enabled"].clone()), (StatusCode::OK, json!(true)));

    let (code, _) = api.delete("/api/v1/webhooks/main_recognition").await;
    assert_eq!(code, StatusCode::OK);
    for (method, path) in [
        (Method::GET, "/api/v1/webhooks/main_recognition"),
        (Method::DELETE, "/api/v1/webhooks/main_recognition"),
        (Method::POST, "/api/v1/webhooks/main_recognition/enable"),
        (Method::GET, "/api/v1/webhooks/main_recognition/deliveries"),
        (Method::POST, "/api/v1/webhooks/main_recognition/replay"),
    ] {
        let (code, v) = api.raw(method.clone(), path, "").await;
        assert_eq!(code, StatusCode::NOT_FOUND, "{method} {path}: {v}");
        assert_eq!(error_code(&v), "not_found");
    }
}

#[tokio::test]
async fn out_of_range_values_get_422_naming_the_field() {
    let app = start_app().await;
    let base = json!({"webhook_id": "w", "url": "http://127.0.0.1:9/h"});
    let cases = [
        ("timeout", json!(301)),
        ("timeout", json!(0.5)),
        ("retry_count", json!(11)),
        ("retry_delay", json!(0)),
        ("batch_size", json!(0)),
        ("batch_size", json!(101)),
        ("batch_timeout", json!(0.05)),
        ("url", json!("ftp://example.org/x")),
        ("url", json!("not a url")),
        ("webhook_id", json!("has space")),
        ("secret", json!("not-a-secret")),
    ];
    for (field, value) in cases {
        let mut body = base.clone();
        body[field] = value.clone();
        let (code, v) = app.api.post("/api/v1/webhooks", body).await;
        assert_eq!(
            code,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{field}={value}: {v}"
        );
        assert_eq!(error_code(&v), "validation_error");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
    let (code, v) = app
        .api
        .post("/api/v1/webhooks", json!({"webhook_id": "w"}))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["error"]["field"], "url", "{v}");
    let (code, v) = app
        .api
        .post(
            "/api/v1/webhooks",
            json!({"webhook_id": "w", "url": "http://h/", "event_types": ["face_seen"]}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (code, v) = app
        .api
        .post(
            "/api/v1/webhooks",
            json!({"webhook_id": "w", "url": "http://h/", "retry_count": "three"}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    // Nothing was stored by any of these.
    let (_, list) = app.api.get("/api/v1/webhooks").await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn malformed_and_oversized_bodies_get_json_errors() {
    let app = start_app_with(|c| c.api.max_body_kb = 4).await;
    let api = &app.api;
    for bad in [
        "{bad",
        "[1,2",
        "\u{0}",
        "{\"webhook_id\": \"w\", \"url\": }",
    ] {
        let (code, v) = api
            .raw(Method::POST, "/api/v1/webhooks", bad.to_owned())
            .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad:?}: {v}");
        assert_eq!(error_code(&v), "invalid_json");
    }
    let big =
        json!({"webhook_id": "w", "url": "http://h/", "headers": {"X-Pad": "a".repeat(8 * 1024)}});
    let (code, v) = api.post("/api/v1/webhooks", big).await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(error_code(&v), "payload_too_large");
    let (code, v) = api
        .post(
            "/api/v1/events/trigger",
            json!({"event_type": "face_recognized", "count": 5000}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "count");
    let (code, v) = api
        .post("/api/v1/events/trigger", json!({"event_type": "face_seen"}))
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (code, v) = api.get("/api/v1/nothing/here").await;
    assert_eq!((code, error_code(&v)), (StatusCode::NOT_FOUND, "not_found"));
    let (code, v) = api.raw(Method::DELETE, "/api/v1/webhooks", "").await;
    assert_eq!(
        (code, error_code(&v)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
    let (code, v) = api.get("/api/v1/events?limit=0").await;
    assert_eq!(
        (code, v["error"]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("limit"))
    );
    // Still up, still empty.
    let (code, v) = api.get("/api/v1/events").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(v["events"], json!([]));
}

#[tokio::test]
async fn with_a_token_every_request_needs_it() {
    let token = "a-long-enough-test-token";
    let app = start_app_with(|c| c.api.token = Some(token.into())).await;
    for path in ["/health", "/metrics", "/api/v1/webhooks", "/api/v1/events"] {
        let (code, v) = app.api.get(path).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(error_code(&v), "unauthorized");
    }
    let wrong = Api::new(app.app.addr()).with_token("a-long-enough-test-tokem");
    assert_eq!(wrong.get("/health").await.0, StatusCode::UNAUTHORIZED);
    let right = Api::new(app.app.addr()).with_token(token);
    let (code, v) = right.get("/health").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "ok");
}

#[tokio::test]
async fn events_are_read_back_in_order_with_paging_and_a_type_filter() {
    let app = start_app().await;
    let api = &app.api;
    let a = api.trigger("stream_started", 3).await;
    let b = api.trigger("face_recognized", 4).await;
    let (_, page) = api.get("/api/v1/events?limit=5").await;
    let ids: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap())
        .collect();
    let mut all = a.clone();
    all.extend(b.clone());
    assert_eq!(ids, all[..5]);
    let next = page["next_after_seq"].as_i64().unwrap();
    let (_, rest) = api.get(&format!("/api/v1/events?after_seq={next}")).await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 2);
    let (_, only) = api.get("/api/v1/events?event_type=face_recognized").await;
    let only: Vec<&str> = only["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(only, b);

    // Each event carries FaceCV's fields.
    let (_, one) = api
        .get("/api/v1/events?event_type=face_recognized&limit=1")
        .await;
    let e = &one["events"][0]["event"];
    assert_eq!(e["event_type"], "face_recognized");
    assert_eq!(e["camera_id"], "entrance");
    assert!(e["data"]["recognized_faces"][0]["name"].is_string());
    assert_eq!(e["data"]["recognized_count"], 1);
    assert_eq!(e["metadata"]["source"], "trigger");

    let (_, metrics) = api.get("/metrics").await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("facecv_events_recorded_total{event_type=\"face_recognized\"} 4"),
        "{metrics}"
    );
    assert!(metrics.contains("facecv_events_recorded_total{event_type=\"stream_started\"} 3"));
}

#[tokio::test]
async fn webhooks_from_the_config_file_exist_at_start_up() {
    let app = start_app_with(|c| {
        let mut w = facecv::store::webhook::WebhookConfig::new("from_file", "http://127.0.0.1:9/h");
        w.event_types = Some(vec![facecv::events::EventType::StrangerAlert]);
        c.webhooks.push(w);
    })
    .await;
    let (code, v) = app.api.get("/api/v1/webhooks/from_file").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["origin"], "config");
    assert_eq!(v["event_types"], json!(["stranger_alert"]));
}

#[test]
fn the_cli_reports_a_bad_config_by_key_and_prints_its_version() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[webhooks]]\nwebhook_id = \"x\"\nurl = \"http://h/\"\nbatch_size = 500\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["check-config", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("webhooks[0].batch_size: must be between 1 and 100"),
        "{err}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("facecv "));
}
