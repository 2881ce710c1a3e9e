//! Generated bodies sent to the real API in this process: JSON (arbitrary values and valid bodies
//! with a field changed, removed or added) and multipart forms (any boundary, any parts). Whatever
//! arrives, the answer is never a 5xx, and a 4xx is the JSON error `{"error":{"code","message"}}`.
//! Webhook bodies carry URLs the appliance dials (webhook workers, test sends), so these run in a
//! loopback-only network namespace.

use bytes::Bytes;
use http::{Method, StatusCode};
use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::common;

/// Any JSON value, with the edges serde meets: huge and negative numbers, empty and odd strings,
/// nesting.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "\\PC{0,16}".prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "..",
            "../../etc",
            "\0",
            "face_detected",
            "http://127.0.0.1:9/x",
            "whsec_AAAA"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid body of each JSON route, with the route.
fn valid_bodies() -> Vec<(Method, &'static str, Value)> {
    vec![
        (
            Method::POST,
            "/api/v1/webhooks",
            json!({
            "webhook_id": "gen", "url": "http://127.0.0.1:9/hook", "headers": {"X-A": "b"},
            "timeout": 5, "retry_count": 1, "retry_delay": 1, "batch_size": 10, "batch_timeout": 0.5,
            "enabled": true, "event_types": ["face_detected"], "camera_ids": ["door"]}),
        ),
        (
            Method::PUT,
            "/api/v1/webhooks/seed",
            json!({
            "url": "http://127.0.0.1:9/other", "timeout": 2, "enabled": false}),
        ),
        (
            Method::POST,
            "/api/v1/webhooks/test",
            json!({
            "url": "http://127.0.0.1:9/test", "timeout": 1, "headers": {"X-A": "b"},
            "test_data": {"a": 1}, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
        ),
        (
            Method::POST,
            "/api/v1/webhooks/seed/replay",
            json!({"from_seq": 1}),
        ),
        (
            Method::POST,
            "/api/v1/events/trigger",
            json!({
            "event_type": "face_detected", "count": 2, "camera_id": "door"}),
        ),
        (
            Method::POST,
            "/api/v1/cameras",
            json!({
            "camera_id": "gen", "source": "synthetic", "fps": 5, "autostart": false,
            "policy": {"stranger_cooldown": 60}}),
        ),
    ]
}

/// `body` with one field changed to `value`, removed, or `value` added under a new name.
fn mutate(mut body: Value, pick: prop::sample::Index, value: Value, how: u8) -> Value {
    let obj = body.as_object_mut().expect("valid bodies are objects");
    let key = pick.get(&obj.keys().cloned().collect::<Vec<_>>()).clone();
    match how {
        0 => obj[&key] = value,
        1 => drop(obj.remove(&key)),
        _ => drop(obj.insert(format!("{key}_x"), value)),
    }
    body
}

/// What every answer must be: not a 5xx, and a 4xx in the JSON error shape.
fn check_answer(what: &str, status: StatusCode, body: &Value) -> Result<(), TestCaseError> {
    prop_assert!(!status.is_server_error(), "{what}: {status} {body}");
    if status.is_client_error() {
        let e = &body["error"];
        prop_assert!(
            e["code"].is_string() && e["message"].is_string(),
            "{what}: {status} without the JSON error shape: {body}"
        );
    }
    Ok(())
}

/// JSON bodies, arbitrary and mutated, to every route that reads one.
#[test]
fn json_bodies_are_taken_or_refused_with_a_json_4xx() {
    if !common::netns::loopback_only("parsers::json_bodies_are_taken_or_refused_with_a_json_4xx") {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(common::start_app());
    let api = running.api.clone();
    rt.block_on(api.create_webhook(json!({"webhook_id": "seed", "url": "http://127.0.0.1:9/s"})));
    let routes = valid_bodies();
    let body = prop_oneof![
        json_value(),
        (
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            json_value(),
            0u8..3
        )
            .prop_map(move |(route, pick, value, how)| {
                let (_, _, valid) = route.get(&valid_bodies()).clone();
                mutate(valid, pick, value, how)
            }),
    ];
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<u16, usize>::new());
    let mut runner = TestRunner::new(Cases::with_cases(512));
    runner
        .run(
            &(any::<prop::sample::Index>(), body),
            |(route, mut body)| {
                let (method, path, _) = route.get(&routes);
                if *path == "/api/v1/cameras" {
                    // A generated camera is parsed and stored, never started: no program, no device.
                    if let Some(obj) = body.as_object_mut() {
                        obj.insert("autostart".into(), json!(false));
                    }
                }
                let (status, answer) = rt.block_on(api.raw(method.clone(), path, body.to_string()));
                *seen.borrow_mut().entry(status.as_u16()).or_default() += 1;
                check_answer(&format!("{method} {path} {body}"), status, &answer)
            },
        )
        .unwrap();
    let seen = seen.into_inner();
    eprintln!("answers by status: {seen:?}");
    // Not a vacuous run: some bodies were taken and some refused for their shape or values.
    assert!(
        seen.contains_key(&200) && seen.contains_key(&422),
        "{seen:?}"
    );
    // Still serving after all of it.
    let (status, _) = rt.block_on(api.get("/health"));
    assert_eq!(status, StatusCode::OK);
}

/// Characters RFC 2046 allows in a boundary.
const BOUNDARY: &str = "[0-9A-Za-z'()+_,./:=?-]{1,70}";

/// A form part: a text field (FaceCV's names among others) or a file of a few bytes.
fn part() -> impl Strategy<Value = (String, Option<String>, Vec<u8>)> {
    let name = prop_oneof![
        prop::sample::select(vec![
            "name",
            "file",
            "threshold",
            "count",
            "metadata",
            "method",
            "quality_threshold",
            "department"
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
    ];
    let filename = prop::option::of("[a-z.]{0,8}");
    let data = prop_oneof![
        "\\PC{0,24}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..64),
        Just(b"YUV4MPEG2 W8 H8 C444\nFRAME\n".to_vec()),
        Just(vec![0xFF, 0xD8, 0xFF, 0xD9]),
    ];
    (name, filename, data)
}

fn form(boundary: &str, parts: &[(String, Option<String>, Vec<u8>)], end: bool) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, filename, data) in parts {
        let file = filename
            .as_ref()
            .map(|f| format!("; filename=\"{f}\""))
            .unwrap_or_default();
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"{file}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend(data);
        body.extend(b"\r\n");
    }
    if end {
        body.extend(format!("--{boundary}--\r\n").as_bytes());
    }
    body
}

/// Multipart forms with any boundary and parts, whole or cut short, with the boundary right or
/// wrong in the header, to every route that reads a form.
#[test]
fn multipart_forms_are_taken_or_refused_with_a_json_4xx() {
    if !common::netns::loopback_only(
        "parsers::multipart_forms_are_taken_or_refused_with_a_json_4xx",
    ) {
        return;
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let running = rt.block_on(common::start_app());
    let api = running.api.clone();
    let routes = [
        "/api/v1/faces",
        "/api/v1/faces/recognize",
        "/api/v1/faces/verify",
        "/api/v1/faces/detect",
        "/api/v1/faces/video",
        "/api/v1/insightface/video_face",
    ];
    let cases = (
        any::<prop::sample::Index>(),
        BOUNDARY,
        prop::collection::vec(part(), 0..4),
        any::<bool>(),
        prop_oneof![4 => Just(None), 1 => "\\PC{0,30}".prop_map(Some)],
    );
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<u16, usize>::new());
    let mut runner = TestRunner::new(Cases::with_cases(128));
    runner
        .run(&cases, |(route, boundary, parts, end, header)| {
            let path = route.get(&routes);
            let ct =
                header.unwrap_or_else(|| format!("multipart/form-data; boundary=\"{boundary}\""));
            let body = Bytes::from(form(&boundary, &parts, end));
            let (status, answer) = rt.block_on(api.raw_with(Method::POST, path, &ct, body));
            *seen.borrow_mut().entry(status.as_u16()).or_default() += 1;
            check_answer(&format!("POST {path} {ct} {parts:?}"), status, &answer)
        })
        .unwrap();
    let seen = seen.into_inner();
    eprintln!("answers by status: {seen:?}");
    // Not a vacuous run: malformed forms (400) and well-formed ones refused for a field (422).
    assert!(
        seen.contains_key(&400) && seen.contains_key(&422),
        "{seen:?}"
    );
    let (status, _) = rt.block_on(api.get("/health"));
    assert_eq!(status, StatusCode::OK);
}
