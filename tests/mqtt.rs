//! The MQTT bridge against a real Mosquitto: events on the right topics at QoS 1, nothing lost while
//! the broker is away, refusals that are counted, and TLS with client certificates. Crashes are in
//! `mqtt_crash.rs`, Home Assistant in `homeassistant.rs`.

mod common;

use std::time::Duration;

use common::mqtt::{
    app_on, first_arrivals, mqtt_config, mqtt_stats, until_connected, Broker, Subscriber, LONG,
};
use common::tls::TestCa;
use common::{eventually, free_port, start_app_with, wait_until};
use rumqttc::QoS;
use serde_json::{json, Value};

#[tokio::test]
async fn each_event_goes_to_its_type_and_camera_topics_at_qos_1_as_the_webhook_object() {
    let broker = Broker::start();
    let sub = Subscriber::connect(broker.port, &["facecv/door1/#"]).await;
    let app = app_on(&broker, |_| {}).await;
    app.api.trigger_on("face_recognized", 2, "entrance").await;
    // Camera ids are A-Z a-z 0-9 _ - . (the API refuses `/`), so none needs escaping in a topic.
    app.api.trigger_on("stranger_alert", 1, "lobby-2").await;
    let is_event = |m: &common::mqtt::Message| m.payload.starts_with('{');
    wait_until(LONG, "six event messages", || {
        sub.messages().into_iter().filter(is_event).count() == 6
    })
    .await;

    // Scores as written: the samples' threshold 0.6 is `0.6`, not its f32 widened to f64.
    for m in sub.messages().into_iter().filter(is_event) {
        assert!(m.payload.contains("\"threshold\":0.6,"), "{}", m.payload);
        let v = m.json();
        let confidences = v["data"]["recognized_faces"]
            .as_array()
            .map(|f| f.iter().map(|f| f["confidence"].clone()).collect())
            .unwrap_or_else(|| vec![v["data"]["confidence"].clone()]);
        for c in confidences {
            let c = c.as_f64().unwrap();
            let shortest: f64 = format!("{:?}", c as f32).parse().unwrap();
            assert_eq!(c, shortest, "a confidence as written: {}", m.payload);
            assert!(c <= 1.0, "{}", m.payload);
        }
    }

    let (_, log) = app.api.get("/api/v1/events?after_seq=0").await;
    let stored: Vec<Value> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .collect();
    assert_eq!(stored.len(), 3);
    for event in &stored {
        let (t, camera) = (
            event["event_type"].as_str().unwrap(),
            event["camera_id"].as_str().unwrap(),
        );
        for topic in [
            format!("facecv/door1/events/{t}"),
            format!("facecv/door1/cameras/{camera}/{t}"),
        ] {
            let got: Vec<_> = sub
                .on(&topic)
                .into_iter()
                .filter(|m| m.json()["id"] == event["id"])
                .collect();
            assert_eq!(got.len(), 1, "{topic}: {:?}", sub.messages());
            assert_eq!(got[0].json(), *event, "the stored object, id included");
            assert_eq!(got[0].qos, QoS::AtLeastOnce, "{topic}");
            assert!(!got[0].retain);
        }
    }
    let api = app.api.clone();
    eventually(LONG, "three acknowledged events", || {
        let api = api.clone();
        async move { mqtt_stats(&api).await["acknowledged"] == 3 }
    })
    .await;
    let stats = mqtt_stats(&app.api).await;
    assert_eq!(
        (
            &stats["published"],
            &stats["refused"],
            &stats["backlog"],
            &stats["in_flight"]
        ),
        (&json!(3), &json!(0), &json!(0), &json!(0)),
        "{stats}"
    );
    let (_, metrics) = app.api.get("/metrics").await;
    let metrics = metrics.as_str().unwrap();
    for line in [
        "facecv_sink_events_published_total{sink=\"mqtt\"} 3",
        "facecv_sink_events_delivered_total{sink=\"mqtt\"} 3",
        "facecv_sink_backlog_events{sink=\"mqtt\"} 0",
        "facecv_sink_connected{sink=\"mqtt\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    app.app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_broker_that_is_down_for_a_while_gets_every_event_in_order_once_it_is_back() {
    let mut broker = Broker::start_persistent();
    // A persistent session: the broker keeps what arrives for it while it reconnects too.
    let sub =
        Subscriber::connect_persistent(broker.port, "outage-watcher", &["facecv/door1/#"]).await;
    let app = app_on(&broker, |_| {}).await;
    let mut sent: Vec<String> = app
        .api
        .trigger_on("face_recognized", 5, "entrance")
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    wait_until(LONG, "the first events", || {
        sub.event_ids("facecv/door1/events/").len() == 5
    })
    .await;
    let api = app.api.clone();
    eventually(LONG, "the first events acknowledged", || {
        let api = api.clone();
        async move { mqtt_stats(&api).await["backlog"] == 0 }
    })
    .await;

    broker.stop();
    for _ in 0..6 {
        sent.extend(
            app.api
                .trigger_on("attendance_recorded", 5, "entrance")
                .await
                .into_iter()
                .map(|(_, id)| id),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // While the broker is away the events wait in the store, not in memory.
    let api = app.api.clone();
    eventually(LONG, "a backlog of 30 in the store", || {
        let api = api.clone();
        async move {
            let s = mqtt_stats(&api).await;
            s["backlog"] == 30 && s["connected"] == false && s["in_flight"] == 0
        }
    })
    .await;

    broker.restart();
    sent.extend(
        app.api
            .trigger_on("stranger_alert", 5, "entrance")
            .await
            .into_iter()
            .map(|(_, id)| id),
    );
    wait_until(
        Duration::from_secs(60),
        "every event after the outage",
        || first_arrivals(&sub.event_ids("facecv/door1/events/")).len() >= sent.len(),
    )
    .await;
    assert_eq!(
        first_arrivals(&sub.event_ids("facecv/door1/events/")),
        sent,
        "every event, in order"
    );
    assert_eq!(
        first_arrivals(&sub.event_ids("facecv/door1/cameras/entrance/")),
        sent,
        "and on the camera's topics too"
    );
    let stats = mqtt_stats(&app.api).await;
    assert!(stats["connection_losses"].as_u64().unwrap() >= 1, "{stats}");
    assert!(stats["connects"].as_u64().unwrap() >= 2, "{stats}");
    app.app.shutdown().await.unwrap();
}

/// A config file for the binary: the API on `port`, the store in `dir`, MQTT to `broker`.
#[tokio::test]
async fn a_message_the_broker_refuses_is_logged_counted_and_does_not_hold_up_the_rest() {
    let broker = Broker::start_prepared("persistence false\nacl_file {dir}/acl\n", |dir| {
        let acl = "topic readwrite #\ntopic deny facecv/door1/cameras/forbidden/#\n";
        std::fs::write(dir.join("acl"), acl).unwrap();
    });
    let sub = Subscriber::connect(broker.port, &["facecv/door1/events/#"]).await;
    let app = app_on(&broker, |_| {}).await;
    let refused = app.api.trigger_on("stranger_alert", 1, "forbidden").await;
    let fine = app.api.trigger_on("face_detected", 2, "entrance").await;
    let api = app.api.clone();
    eventually(LONG, "one refused, two acknowledged", || {
        let api = api.clone();
        async move {
            let s = mqtt_stats(&api).await;
            s["refused"] == 1 && s["acknowledged"] == 2 && s["backlog"] == 0
        }
    })
    .await;
    let ids: Vec<String> = refused
        .iter()
        .chain(&fine)
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(
        sub.event_ids("facecv/door1/events/"),
        ids,
        "the allowed topic still got it"
    );
    let (_, metrics) = app.api.get("/metrics").await;
    assert!(metrics
        .as_str()
        .unwrap()
        .contains("facecv_sink_events_refused_total{sink=\"mqtt\"} 1"));
    app.app.shutdown().await.unwrap();
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
fn certificates(dir: &std::path::Path) {
    let ca = TestCa::generate();
    let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
    write("ca.pem", ca.pem.clone());
    for (name, sans) in [("server", "127.0.0.1"), ("client", "door1")] {
        let (cert, key) = ca.issue(&[sans]);
        write(&format!("{name}.pem"), cert.pem());
        write(&format!("{name}.key"), key.serialize_pem());
    }
}

#[tokio::test]
async fn tls_with_a_private_ca_and_a_client_certificate() {
    common::init_logging();
    let tls_port = free_port();
    // A plain listener for the test's subscriber, and a TLS one that wants a client certificate.
    let broker = Broker::start_prepared(
        &format!(
            "persistence false\nlistener {tls_port} 127.0.0.1\ncafile {{dir}}/ca.pem\n\
             certfile {{dir}}/server.pem\nkeyfile {{dir}}/server.key\nrequire_certificate true\n"
        ),
        certificates,
    );
    let sub = Subscriber::connect(broker.port, &["facecv/door1/events/#"]).await;
    let certs = broker.dir.path().to_owned();
    let app = start_app_with(|c| {
        let mut m = mqtt_config(tls_port);
        m.tls = Some(facecv::delivery::mqtt::MqttTlsConfig {
            ca_file: Some(certs.join("ca.pem")),
            cert_file: Some(certs.join("client.pem")),
            key_file: Some(certs.join("client.key")),
        });
        c.mqtt = Some(m);
    })
    .await;
    until_connected(&app.api).await;
    let sent: Vec<String> = app
        .api
        .trigger_on("face_recognized", 3, "entrance")
        .await
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    wait_until(LONG, "the events over TLS", || {
        sub.event_ids("facecv/door1/events/") == sent
    })
    .await;
    app.app.shutdown().await.unwrap();

    // Without the client certificate the broker turns the appliance away, and the stats say why.
    let app = start_app_with(|c| {
        let mut m = mqtt_config(tls_port);
        m.tls = Some(facecv::delivery::mqtt::MqttTlsConfig {
            ca_file: Some(certs.join("ca.pem")),
            ..Default::default()
        });
        c.mqtt = Some(m);
    })
    .await;
    let api = app.api.clone();
    eventually(LONG, "a connection error in the stats", || {
        let api = api.clone();
        async move { !mqtt_stats(&api).await["last_error"].is_null() }
    })
    .await;
    assert_eq!(mqtt_stats(&app.api).await["connected"], false);
    app.app.shutdown().await.unwrap();
}
