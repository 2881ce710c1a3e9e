//! Webhook delivery, told as a receiver sees it: batches, filters, headers, signatures, retries,
//! Retry-After, timeouts, 410 Gone, dead letters and replay. Real HTTP receivers on loopback, the
//! real appliance in-process, SQLite on a real file.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, start_app, wait_until, Receiver, Reply};
use http::StatusCode;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_full_batch_goes_at_once_and_a_partial_one_after_batch_timeout() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    app.api
        .create_webhook(json!({"webhook_id": "by_size", "url": rx.url("/hook"), "batch_size": 5, "batch_timeout": 30}))
        .await;
    let ids = app.api.trigger("face_detected", 10).await;
    wait_until(WAIT, "two full batches", || rx.accepted().len() == 2).await;
    let got = rx.accepted();
    assert_eq!(got[0].event_ids(), ids[..5]);
    assert_eq!(got[1].event_ids(), ids[5..]);
    assert_eq!(got[0].json()["webhook_id"], "by_size");

    // Three events never fill a batch of 100: they go when batch_timeout runs out.
    let rx2 = Receiver::start().await;
    app.api
        .create_webhook(json!({"webhook_id": "by_time", "url": rx2.url("/hook"), "batch_size": 100, "batch_timeout": 1.5}))
        .await;
    let t0 = Instant::now();
    let ids = app.api.trigger("face_recognized", 3).await;
    wait_until(WAIT, "the timed-out batch", || rx2.accepted().len() == 1).await;
    let waited = rx2.accepted()[0].at - t0;
    assert!(
        waited >= Duration::from_millis(1400),
        "sent after {waited:?}, before batch_timeout"
    );
    assert_eq!(rx2.accepted()[0].event_ids(), ids);
}

#[tokio::test]
async fn event_types_filter_what_a_webhook_receives() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    app.api
        .create_webhook(
            json!({"webhook_id": "alerts", "url": rx.url("/hook"), "batch_size": 1,
                               "event_types": ["stranger_alert", "attendance_recorded"]}),
        )
        .await;
    app.api.trigger("face_recognized", 3).await;
    let mut wanted = app.api.trigger("stranger_alert", 2).await;
    app.api.trigger("stream_started", 1).await;
    wanted.extend(app.api.trigger("attendance_recorded", 1).await);
    wait_until(WAIT, "the wanted events", || rx.accepted_ids().len() == 3).await;
    assert_eq!(rx.accepted_ids(), wanted);
    for r in rx.accepted() {
        let t = r.json()["events"][0]["event_type"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(t == "stranger_alert" || t == "attendance_recorded", "{t}");
    }
    // The skipped events do not count as a backlog.
    let api = app.api.clone();
    eventually(WAIT, "an empty backlog", || {
        let api = api.clone();
        async move { api.stats("alerts").await["backlog"] == 0 }
    })
    .await;
}

#[tokio::test]
async fn configured_headers_and_a_standard_webhooks_signature_arrive() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    let created = app
        .api
        .create_webhook(json!({"webhook_id": "signed", "url": rx.url("/webhook/face-recognition"), "batch_size": 2,
                               "headers": {"Authorization": "Bearer your-token", "X-Site": "north-gate"}}))
        .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    // The secret is shown once, at creation.
    let (_, shown) = app.api.get("/api/v1/webhooks/signed").await;
    assert!(shown.get("secret").is_none(), "{shown}");

    app.api.trigger("face_recognized", 2).await;
    wait_until(WAIT, "a delivery", || rx.accepted().len() == 1).await;
    let req = &rx.accepted()[0];
    assert_eq!(req.headers["authorization"], "Bearer your-token");
    assert_eq!(req.headers["x-site"], "north-gate");
    assert_eq!(req.headers["content-type"], "application/json");
    assert!(req.headers["webhook-id"]
        .to_str()
        .unwrap()
        .starts_with("msg_"));

    // The Standard Webhooks reference library checks it, independently of our signing code.
    let verifier = standardwebhooks::Webhook::new(&secret).unwrap();
    verifier
        .verify(&req.body, &req.headers)
        .expect("a valid signature");
    let mut tampered = req.body.to_vec();
    tampered[10] ^= 1;
    assert!(verifier.verify(&tampered, &req.headers).is_err());

    // A secret given on create is the one used.
    let rx2 = Receiver::start().await;
    let mine = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    app.api
        .create_webhook(
            json!({"webhook_id": "mine", "url": rx2.url("/h"), "batch_size": 1, "secret": mine}),
        )
        .await;
    app.api.trigger("stream_started", 1).await;
    wait_until(WAIT, "a delivery", || rx2.accepted().len() == 1).await;
    let req = &rx2.accepted()[0];
    standardwebhooks::Webhook::new(mine)
        .unwrap()
        .verify(&req.body, &req.headers)
        .expect("signed with the given secret");
}

#[tokio::test]
async fn a_receiver_answering_503_gets_the_same_batch_again_until_it_accepts() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(503), Reply::status(503)]);
    app.api
        .create_webhook(json!({"webhook_id": "flaky", "url": rx.url("/h"), "batch_size": 3, "retry_count": 3, "retry_delay": 1}))
        .await;
    let ids = app.api.trigger("face_recognized", 3).await;
    wait_until(WAIT, "the third attempt", || rx.accepted().len() == 1).await;
    let all = rx.received();
    assert_eq!(
        all.iter().map(|r| r.status).collect::<Vec<_>>(),
        [503, 503, 200]
    );
    // One message: the same webhook-id and events on every attempt, so receivers can dedupe.
    for r in &all {
        assert_eq!(r.headers["webhook-id"], all[0].headers["webhook-id"]);
        assert_eq!(r.event_ids(), ids);
    }
    // Exponential back-off: about 1 s, then about 2 s (each ±25%).
    let gap1 = all[1].at - all[0].at;
    let gap2 = all[2].at - all[1].at;
    assert!(gap1 >= Duration::from_millis(700), "{gap1:?}");
    assert!(gap2 >= Duration::from_millis(1400), "{gap2:?}");

    // The success is recorded just after the receiver answered.
    let api = app.api.clone();
    eventually(WAIT, "the success recorded", || {
        let api = api.clone();
        async move { api.stats("flaky").await["succeeded"] == 3 }
    })
    .await;
    let stats = app.api.stats("flaky").await;
    assert_eq!(
        (stats["succeeded"].as_u64(), stats["failed"].as_u64()),
        (Some(3), Some(0)),
        "{stats}"
    );
    assert_eq!(stats["attempts"], 3);
    let (_, d) = app.api.get("/api/v1/webhooks/flaky/deliveries").await;
    let statuses: Vec<_> = d["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [200, 503, 503], "newest first: {d}");
    assert!(d["deliveries"][0]["latency_ms"].as_f64().unwrap() >= 0.0);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(429).with_header("retry-after", "3")]);
    app.api
        .create_webhook(
            json!({"webhook_id": "busy", "url": rx.url("/h"), "batch_size": 1, "retry_delay": 1}),
        )
        .await;
    app.api.trigger("stranger_alert", 1).await;
    wait_until(WAIT, "the retry", || rx.accepted().len() == 1).await;
    let all = rx.received();
    let gap = all[1].at - all[0].at;
    assert!(
        gap >= Duration::from_millis(2900),
        "retried after {gap:?}, Retry-After said 3 s"
    );
}

#[tokio::test]
async fn a_receiver_slower_than_timeout_is_retried() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(200).after(Duration::from_secs(3))]);
    app.api
        .create_webhook(json!({"webhook_id": "slow", "url": rx.url("/h"), "batch_size": 1, "timeout": 1, "retry_count": 2}))
        .await;
    let ids = app.api.trigger("attendance_recorded", 1).await;
    wait_until(WAIT, "two requests", || rx.received().len() == 2).await;
    // The slow first answer came too late to count; the retry delivered the same event.
    assert_eq!(rx.received()[1].event_ids(), ids);
    // The receiver logs a request as it arrives; the appliance records the attempt once answered.
    let api = app.api.clone();
    eventually(WAIT, "both attempts recorded", || {
        let api = api.clone();
        async move {
            api.get("/api/v1/webhooks/slow/deliveries").await.1["deliveries"]
                .as_array()
                .is_some_and(|a| a.len() == 2)
        }
    })
    .await;
    let (_, d) = app.api.get("/api/v1/webhooks/slow/deliveries").await;
    let newest_first = d["deliveries"].as_array().unwrap();
    assert_eq!(newest_first.len(), 2, "{d}");
    assert_eq!(newest_first[0]["status"], 200);
    assert!(newest_first[1]["status"].is_null());
    assert!(
        newest_first[1]["error"]
            .as_str()
            .unwrap()
            .contains("no answer within"),
        "{d}"
    );
}

#[tokio::test]
async fn gone_410_disables_the_webhook_and_keeps_its_events() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(410)]);
    app.api
        .create_webhook(json!({"webhook_id": "gone", "url": rx.url("/h"), "batch_size": 10, "batch_timeout": 0.2}))
        .await;
    let ids = app.api.trigger("face_detected", 4).await;
    wait_until(WAIT, "the 410", || rx.received().len() == 1).await;
    let api = app.api.clone();
    eventually(WAIT, "the webhook disabled by 410", || {
        let api = api.clone();
        async move { api.get("/api/v1/webhooks/gone").await.1["enabled"] == false }
    })
    .await;
    let (_, stats) = app.api.get("/api/v1/webhooks/stats").await;
    assert_eq!(stats["enabled_webhooks"], 0);
    assert_eq!(stats["webhooks"]["gone"]["backlog"], 4, "{stats}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.received().len(), 1, "no retries after 410");

    // Enabled again, it gets the events that waited.
    let (s, _) = app
        .api
        .post("/api/v1/webhooks/gone/enable", json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    wait_until(WAIT, "delivery after enable", || rx.accepted().len() == 1).await;
    assert_eq!(rx.accepted_ids(), ids);
}

#[tokio::test]
async fn a_batch_that_exhausts_its_retries_is_dead_lettered_and_can_be_replayed() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    rx.script([Reply::status(500), Reply::status(500)]);
    app.api
        .create_webhook(json!({"webhook_id": "dl", "url": rx.url("/h"), "batch_size": 2, "retry_count": 1, "retry_delay": 1}))
        .await;
    let first = app.api.trigger("face_recognized", 2).await;
    wait_until(WAIT, "the dead letter", || rx.received().len() == 2).await;
    // The cursor moved on: the next events are not stuck behind the failed batch.
    let second = app.api.trigger("face_recognized", 2).await;
    wait_until(WAIT, "the next batch", || rx.accepted().len() == 1).await;
    assert_eq!(rx.accepted_ids(), second);

    let s = app.api.stats("dl").await;
    assert_eq!(s["dead_letters"], 1, "{s}");
    assert_eq!(s["failed"], 2, "{s}");
    let (_, dls) = app.api.get("/api/v1/webhooks/dl/dead_letters").await;
    let dl = &dls["dead_letters"][0];
    assert_eq!(dl["event_count"], 2);
    assert!(dl["error"].as_str().unwrap().contains("500"), "{dl}");
    let stored: Vec<&str> = dl["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(stored, first);

    // Replay the dead letters: the failed batch arrives, and leaves the dead letters.
    let (code, r) = app.api.post("/api/v1/webhooks/dl/replay", json!({})).await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["count"], 1);
    wait_until(WAIT, "the replayed batch", || rx.accepted().len() == 2).await;
    assert_eq!(rx.accepted()[1].event_ids(), first);
    let api = app.api.clone();
    eventually(WAIT, "an empty dead-letter table", || {
        let api = api.clone();
        async move { api.stats("dl").await["dead_letters"] == 0 }
    })
    .await;

    // Replay from a sequence number: everything stored from there on goes again.
    let (_, events) = app.api.get("/api/v1/events?limit=1").await;
    let seq = events["events"][0]["seq"].as_i64().unwrap();
    let (code, r) = app
        .api
        .post("/api/v1/webhooks/dl/replay", json!({"from_seq": seq}))
        .await;
    assert_eq!(code, StatusCode::OK, "{r}");
    wait_until(WAIT, "the replay from a sequence number", || {
        rx.accepted_ids().len() >= 8
    })
    .await;
    let all = rx.accepted_ids();
    let replayed: Vec<String> = all[4..8].to_vec();
    let mut expected = first.clone();
    expected.extend(second.clone());
    assert_eq!(replayed, expected);
}

#[tokio::test]
async fn the_test_endpoint_sends_one_event_now() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    let (code, r) = app
        .api
        .post(
            "/api/v1/webhooks/test",
            json!({"url": rx.url("/webhook/test"), "test_data": {"message": "Test webhook"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{r}");
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(r["status_code"], 200);
    let got = rx.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].json()["events"][0]["data"]["message"],
        "Test webhook"
    );

    let dead = format!("http://127.0.0.1:{}/nobody", common::free_port());
    let (code, r) = app
        .api
        .post("/api/v1/webhooks/test", json!({"url": dead}))
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(r["success"], false);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("connect"),
        "{r}"
    );
}

#[tokio::test]
async fn a_replay_is_never_undone_by_the_worker_it_interrupts() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    app.api
        .create_webhook(
            json!({"webhook_id": "replayed", "url": rx.url("/h"), "batch_size": 1,
                               "event_types": ["face_recognized"]}),
        )
        .await;
    let first = app.api.trigger("face_recognized", 1).await;
    wait_until(WAIT, "the first delivery", || rx.accepted().len() == 1).await;
    let (_, page) = app.api.get("/api/v1/events?limit=1").await;
    let seq = page["events"][0]["seq"].as_i64().unwrap();
    for round in 2..=12 {
        // Filtered events keep the worker busy moving its cursor when the replay lands.
        app.api.trigger("face_detected", 3).await;
        let (code, r) = app
            .api
            .post("/api/v1/webhooks/replayed/replay", json!({"from_seq": seq}))
            .await;
        assert_eq!(code, StatusCode::OK, "{r}");
        wait_until(WAIT, "the replayed event", || rx.accepted().len() == round).await;
        assert_eq!(rx.accepted()[round - 1].event_ids(), first, "round {round}");
    }
}

#[tokio::test]
async fn the_test_endpoint_signs_with_a_webhooks_secret_and_secrets_rotate() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    let created = app
        .api
        .create_webhook(json!({"webhook_id": "rot", "url": rx.url("/h"), "batch_size": 1}))
        .await;
    let old = created["secret"].as_str().unwrap().to_owned();
    let (code, r) = app
        .api
        .post(
            "/api/v1/webhooks/test",
            json!({"url": rx.url("/h"), "webhook_id": "rot"}),
        )
        .await;
    assert_eq!(
        (code, r["success"].clone()),
        (StatusCode::OK, json!(true)),
        "{r}"
    );
    let probe = rx.received().pop().unwrap();
    standardwebhooks::Webhook::new(&old)
        .unwrap()
        .verify(&probe.body, &probe.headers)
        .expect("a signed test event");

    let (code, r) = app
        .api
        .post("/api/v1/webhooks/rot/rotate_secret", json!({}))
        .await;
    assert_eq!(code, StatusCode::OK, "{r}");
    let new = r["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    app.api.trigger("stream_stopped", 1).await;
    wait_until(WAIT, "a delivery after rotation", || {
        rx.received().len() == 2
    })
    .await;
    let req = rx.received().pop().unwrap();
    standardwebhooks::Webhook::new(&new)
        .unwrap()
        .verify(&req.body, &req.headers)
        .expect("signed with the new secret");
    assert!(standardwebhooks::Webhook::new(&old)
        .unwrap()
        .verify(&req.body, &req.headers)
        .is_err());
}

#[tokio::test]
async fn headers_the_appliance_sets_cannot_be_configured() {
    let app = start_app().await;
    for name in ["Content-Type", "webhook-signature", "Webhook-Id"] {
        let (code, v) = app
            .api
            .post(
                "/api/v1/webhooks",
                json!({"webhook_id": "h", "url": "http://127.0.0.1:9/", "headers": {name: "x"}}),
            )
            .await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {v}");
        assert_eq!(v["error"]["field"], format!("headers.{name}"));
    }
}

#[tokio::test]
async fn camera_ids_filter_what_a_webhook_receives() {
    let app = start_app().await;
    let rx = Receiver::start().await;
    app.api
        .create_webhook(json!({"webhook_id": "door", "url": rx.url("/h"), "batch_size": 1, "camera_ids": ["front_door"]}))
        .await;
    app.api.trigger("face_recognized", 2).await; // camera "entrance"
    let (_, v) = app
        .api
        .post(
            "/api/v1/events/trigger",
            json!({"event_type": "stranger_alert", "camera_id": "front_door"}),
        )
        .await;
    let wanted = v["events"][0]["id"].as_str().unwrap().to_owned();
    wait_until(WAIT, "the front door's event", || rx.accepted().len() == 1).await;
    assert_eq!(rx.accepted_ids(), [wanted]);
    let (_, page) = app.api.get("/api/v1/events?camera_id=front_door").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_webhook_whose_stored_secret_is_unusable_is_not_run_says_why_and_the_others_go_on() {
    let app = start_app().await;
    let spoilt = Receiver::start().await;
    let fine = Receiver::start().await;
    for (id, rx) in [("spoilt", &spoilt), ("fine", &fine)] {
        app.api
            .create_webhook(json!({"webhook_id": id, "url": rx.url("/hook"), "batch_size": 1}))
            .await;
    }
    // The row is changed behind the appliance's back (a hand edit, a bad restore).
    let db = rusqlite::Connection::open(app.app.store().path()).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute(
        "UPDATE webhooks SET secret = 'whsec_AAAA' WHERE id = 'spoilt'",
        [],
    )
    .unwrap();
    // Restarting its worker (what any change to it does) reads the secret again.
    for step in ["disable", "enable"] {
        let (status, v) = app
            .api
            .post(&format!("/api/v1/webhooks/spoilt/{step}"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
    }
    let (status, v) = app.api.get("/api/v1/webhooks/spoilt").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let why = v["delivery"]["error"].as_str().unwrap_or_default();
    assert!(why.contains("secret") && why.contains("rotate"), "{v}");

    let ids = app.api.trigger("face_detected", 2).await;
    wait_until(WAIT, "the other webhook has the events", || {
        fine.accepted_ids() == ids
    })
    .await;
    assert!(spoilt.received().is_empty(), "nothing goes out unsigned");
    let (status, _) = app.api.get("/health").await;
    assert_eq!(status, StatusCode::OK, "the appliance runs on");

    // A new secret brings it back, with the events that waited for it.
    let (status, v) = app
        .api
        .post("/api/v1/webhooks/spoilt/rotate_secret", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    wait_until(WAIT, "the waiting events", || spoilt.accepted_ids() == ids).await;
    let (_, v) = app.api.get("/api/v1/webhooks/spoilt").await;
    assert!(v["delivery"].get("error").is_none(), "{v}");
}
