//! HTTPS webhooks through rustls: a receiver behind a private CA is trusted once `delivery.ca_file`
//! names that CA, and refused (a TLS error in the delivery log, the events kept) without it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::tls::TestCa;
use common::{eventually, start_app_with, wait_until, Receiver};
use serde_json::json;

/// A private CA, and a server certificate for 127.0.0.1 and localhost signed by it.
fn private_ca() -> (String, Arc<rustls::ServerConfig>) {
    let ca = TestCa::generate();
    let (cert, key) = ca.issue(&["localhost", "127.0.0.1"]);

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    (ca.pem, Arc::new(server))
}

#[tokio::test]
async fn an_https_receiver_behind_a_private_ca_is_trusted_through_ca_file() {
    let (ca_pem, server) = private_ca();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let app = start_app_with(|c| c.delivery.ca_file = Some(ca_file.clone())).await;
    let rx = Receiver::start_tls(server).await;
    assert!(rx.url("/h").starts_with("https://"));
    app.api
        .create_webhook(json!({"webhook_id": "tls", "url": rx.url("/webhook"), "batch_size": 2}))
        .await;
    let ids = app.api.trigger("face_recognized", 2).await;
    wait_until(Duration::from_secs(20), "the HTTPS delivery", || {
        rx.accepted().len() == 1
    })
    .await;
    assert_eq!(rx.accepted_ids(), ids);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_delivery_and_keeps_the_events() {
    let (_, server) = private_ca();
    let app = start_app_with(|_| {}).await;
    let rx = Receiver::start_tls(server).await;
    app.api
        .create_webhook(json!({"webhook_id": "untrusted", "url": rx.url("/webhook"), "batch_size": 1, "retry_count": 5}))
        .await;
    app.api.trigger("stranger_alert", 1).await;
    let api = app.api.clone();
    eventually(Duration::from_secs(20), "a failed TLS attempt", || {
        let api = api.clone();
        async move {
            api.get("/api/v1/webhooks/untrusted/deliveries").await.1["deliveries"][0]["error"]
                .is_string()
        }
    })
    .await;
    let (_, d) = app.api.get("/api/v1/webhooks/untrusted/deliveries").await;
    let error = d["deliveries"][0]["error"].as_str().unwrap().to_lowercase();
    assert!(error.contains("certificate"), "{error}");
    assert!(rx.accepted().is_empty());
    assert_eq!(app.api.stats("untrusted").await["backlog"], 1);
}

#[test]
fn a_ca_file_that_is_not_pem_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, "not a certificate").unwrap();
    let err = facecv::delivery::http::HttpClient::new(Some(&ca_file))
        .err()
        .expect("refused");
    assert!(err.to_string().starts_with("delivery.ca_file"), "{err}");
}
