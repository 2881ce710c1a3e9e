//! FaceCV's webhook answers, as FaceCV's clients read them: enable and disable say `message`,
//! the test route answers and sends FaceCV's test event, a create repeated with the same body is
//! answered with the stored webhook (FaceCV's integration script can run twice) and with another
//! body a 409 that names `PUT`, and an unknown event type is refused naming `event_types`.
//! Each test runs in a network namespace with only loopback, with real receivers on it.

mod common;

use common::{start_app, Receiver};
use http::StatusCode;
use serde_json::{json, Value};

/// FaceCV's integration script's first webhook (`examples/webhook_integration.py`).
fn main_recognition(url: &str) -> Value {
    json!({"webhook_id": "main_recognition", "url": url,
           "headers": {"Authorization": "Bearer your-token"},
           "batch_size": 5, "batch_timeout": 0.5,
           "event_types": ["face_recognized", "stranger_alert"]})
}

#[tokio::test]
async fn enable_and_disable_answer_with_facecvs_message() {
    if !common::netns::loopback_only("enable_and_disable_answer_with_facecvs_message") {
        return;
    }
    let app = start_app().await;
    let rx = Receiver::start().await;
    app.api
        .create_webhook(main_recognition(&rx.url("/h")))
        .await;
    let (code, v) = app
        .api
        .post("/api/v1/webhooks/main_recognition/disable", json!({}))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["message"], "Webhook main_recognition disabled", "{v}");
    assert_eq!(v["enabled"], false, "{v}");
    let (code, v) = app
        .api
        .post("/api/v1/webhooks/main_recognition/enable", json!({}))
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["message"], "Webhook main_recognition enabled", "{v}");
    assert_eq!(v["enabled"], true, "{v}");
    assert!(v.get("secret").is_none(), "{v}");

    let (code, v) = app.api.delete("/api/v1/webhooks/main_recognition").await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(
        v["message"],
        "Webhook main_recognition deleted successfully"
    );
    let (code, v) = app
        .api
        .post("/api/v1/webhooks/main_recognition/enable", json!({}))
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
}

#[tokio::test]
async fn the_test_route_answers_and_sends_as_facecv_did() {
    if !common::netns::loopback_only("the_test_route_answers_and_sends_as_facecv_did") {
        return;
    }
    let app = start_app().await;
    let rx = Receiver::start().await;
    // FaceCV's own default test event, when no test_data is given.
    let (code, r) = app
        .api
        .post(
            "/api/v1/webhooks/test",
            json!({"url": rx.url("/webhook/test")}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["message"], "Test webhook sent", "{r}");
    assert_eq!(r["url"], rx.url("/webhook/test"));
    assert_eq!(r["success"], true, "{r}");
    let event = &r["test_event"];
    assert_eq!(event["event_type"], "test");
    assert_eq!(event["camera_id"], "test_camera");
    assert_eq!(event["metadata"], json!({"test": true}));
    assert_eq!(event["data"]["message"], "This is a test webhook event");
    assert_eq!(event["data"]["faces"][0]["name"], "Test Person");
    assert_eq!(event["data"]["faces"][0]["confidence"], 0.95);

    // What the receiver got is the event the answer shows, in FaceCV's envelope.
    let got = rx.received();
    assert_eq!(got.len(), 1);
    let body = got[0].json();
    assert_eq!(body["webhook_id"], "test");
    assert_eq!(body["events"], json!([event]), "{body}");

    // The client's test_data is the event's data.
    let (code, r) = app
        .api
        .post(
            "/api/v1/webhooks/test",
            json!({"url": rx.url("/webhook/test"), "test_data": {"message": "Testing webhook delivery", "test_id": "12345"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{r}");
    let sent = rx.received().pop().unwrap().json();
    assert_eq!(
        sent["events"][0]["data"],
        json!({"message": "Testing webhook delivery", "test_id": "12345"})
    );
    assert_eq!(sent["events"][0]["metadata"], json!({"test": true}));

    // A receiver that refuses: still FaceCV's fields, and the message says what happened.
    rx.script([common::Reply::status(503)]);
    let (code, r) = app
        .api
        .post(
            "/api/v1/webhooks/test",
            json!({"url": rx.url("/webhook/test")}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["success"], false, "{r}");
    assert_eq!(r["status_code"], 503, "{r}");
    assert_eq!(r["message"], "Test webhook sent; the receiver answered 503");
    assert_eq!(r["test_event"]["camera_id"], "test_camera");

    // test_data must be an object, as FaceCV's Dict was.
    let (code, r) = app
        .api
        .post(
            "/api/v1/webhooks/test",
            json!({"url": rx.url("/h"), "test_data": "hello"}),
        )
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{r}");
    assert_eq!(r["error"]["field"], "test_data", "{r}");
}

#[tokio::test]
async fn creating_an_existing_webhook_again_is_fine_and_different_settings_are_a_409_naming_put() {
    if !common::netns::loopback_only(
        "creating_an_existing_webhook_again_is_fine_and_different_settings_are_a_409_naming_put",
    ) {
        return;
    }
    let app = start_app().await;
    let rx = Receiver::start().await;
    let first = app
        .api
        .create_webhook(main_recognition(&rx.url("/h")))
        .await;
    let secret = first["secret"].as_str().unwrap().to_owned();

    // FaceCV's integration script, run a second time: 200 with the stored webhook.
    let (code, again) = app
        .api
        .post("/api/v1/webhooks", main_recognition(&rx.url("/h")))
        .await;
    assert_eq!(code, StatusCode::OK, "{again}");
    assert_eq!(again["webhook_id"], "main_recognition");
    assert_eq!(again["created_at"], first["created_at"], "the stored one");
    assert_eq!(again["batch_size"], 5);
    assert!(
        again.get("secret").is_none(),
        "the secret is shown once: {again}"
    );
    assert!(
        again["message"]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{again}"
    );
    // The same secret given again is the same body too.
    let mut with_secret = main_recognition(&rx.url("/h"));
    with_secret["secret"] = json!(secret);
    let (code, v) = app.api.post("/api/v1/webhooks", with_secret).await;
    assert_eq!(code, StatusCode::OK, "{v}");

    // Another body: 409, naming what differs and PUT.
    let mut other = main_recognition(&rx.url("/h"));
    other["batch_size"] = json!(7);
    let (code, v) = app.api.post("/api/v1/webhooks", other.clone()).await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    assert_eq!(v["error"]["code"], "webhook_exists", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("PUT /api/v1/webhooks/main_recognition") && message.contains("batch_size"),
        "{message}"
    );
    // Nothing changed; PUT changes it.
    let (_, stored) = app.api.get("/api/v1/webhooks/main_recognition").await;
    assert_eq!(stored["batch_size"], 5, "{stored}");
    let (code, v) = app
        .api
        .put("/api/v1/webhooks/main_recognition", other)
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["batch_size"], 7, "{v}");

    // A different secret is a different body as well.
    let mut other_secret = main_recognition(&rx.url("/h"));
    other_secret["batch_size"] = json!(7);
    other_secret["secret"] = json!("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    let (code, v) = app.api.post("/api/v1/webhooks", other_secret).await;
    assert_eq!(code, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("secret"),
        "{v}"
    );
}

#[tokio::test]
async fn unknown_event_types_are_refused_naming_the_field() {
    if !common::netns::loopback_only("unknown_event_types_are_refused_naming_the_field") {
        return;
    }
    let app = start_app().await;
    let rx = Receiver::start().await;
    for types in [json!(["face_seen"]), json!("face_detected"), json!([1])] {
        let mut body = main_recognition(&rx.url("/h"));
        body["event_types"] = types.clone();
        let (code, v) = app.api.post("/api/v1/webhooks", body).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{types}: {v}");
        assert_eq!(v["error"]["field"], "event_types", "{types}: {v}");
    }
    let mut body = main_recognition(&rx.url("/h"));
    body["event_types"] = json!(["face_recognized", "face_seen"]);
    let (_, v) = app.api.post("/api/v1/webhooks", body.clone()).await;
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("face_seen"),
        "{v}"
    );
    // The same check on PUT, and nothing was stored by the refused creates.
    let (code, _) = app.api.get("/api/v1/webhooks/main_recognition").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    app.api
        .create_webhook(main_recognition(&rx.url("/h")))
        .await;
    let (code, v) = app.api.put("/api/v1/webhooks/main_recognition", body).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "event_types", "{v}");
    // null means every type, as in FaceCV.
    let mut every = main_recognition(&rx.url("/h"));
    every["event_types"] = Value::Null;
    let (code, v) = app
        .api
        .put("/api/v1/webhooks/main_recognition", every)
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["event_types"], Value::Null, "{v}");
}

#[tokio::test]
async fn the_table_serves_every_webhook_route_and_refuses_other_methods() {
    if !common::netns::loopback_only(
        "the_table_serves_every_webhook_route_and_refuses_other_methods",
    ) {
        return;
    }
    let app = start_app().await;
    let rx = Receiver::start().await;
    app.api
        .create_webhook(main_recognition(&rx.url("/h")))
        .await;
    for path in [
        "/api/v1/webhooks",
        "/api/v1/webhooks/stats",
        "/api/v1/webhooks/main_recognition",
        "/api/v1/webhooks/main_recognition/deliveries?limit=5",
        "/api/v1/webhooks/main_recognition/dead_letters",
    ] {
        let (code, v) = app.api.get(path).await;
        assert_eq!(code, StatusCode::OK, "{path}: {v}");
    }
    let (_, stats) = app.api.get("/api/v1/webhooks/stats").await;
    for field in [
        "total_webhooks",
        "enabled_webhooks",
        "queue_size",
        "manager_running",
    ] {
        assert!(stats.get(field).is_some(), "FaceCV's {field}: {stats}");
    }
    // `stats` is a literal path, not a webhook called "stats".
    let (code, _) = app.api.put("/api/v1/webhooks/stats", json!({})).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (code, _) = app.api.get("/api/v1/webhooks/test").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (code, _) = app
        .api
        .get("/api/v1/webhooks/main_recognition/enable")
        .await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let (code, v) = app.api.get("/api/v1/webhooks/no_such_hook").await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{v}");
    let (code, v) = app
        .api
        .get("/api/v1/webhooks/main_recognition/deliveries?limit=0")
        .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["error"]["field"], "limit", "{v}");
}
