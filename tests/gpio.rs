//! GPIO actions through the whole appliance, with test pins: a recognised face opens the door, a
//! stranger sounds the buzzer, a PIR wakes a camera, an old face opens nothing, and a machine without
//! GPIO runs on without the actions.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{start_app_with, test_config, wait_until, Api};
use facecv::actions::pins::test_pins::TestPins;
use facecv::actions::pins::{Level, Pins};
use facecv::actions::ActionConfig;
use facecv::app::Devices;
use facecv::store::subscription::SinkName;
use facecv::{App, Config};

const LONG: Duration = Duration::from_secs(20);

fn actions() -> Vec<ActionConfig> {
    let toml = r#"
        [[actions]]
        on = "face_recognized"
        pin = 17
        pulse_ms = 300
        active_low = true
        [[actions]]
        on = "stranger_alert"
        pin = 27
        pulse_ms = 200
        [[actions]]
        on = "input"
        pin = 22
        camera = "hall"
        idle_secs = 1
        debounce_ms = 20
    "#;
    Config::from_toml(toml).unwrap().actions
}

async fn start(dir: &std::path::Path, pins: Arc<TestPins>) -> (App, Api) {
    common::init_logging();
    let mut config = test_config(dir);
    config.actions = actions();
    // The camera the PIR wakes: a real one of the camera manager, on a synthetic source.
    let mut hall = facecv::pipeline::CameraConfig::new("hall", "synthetic");
    hall.autostart = false;
    config.cameras.push(hall);
    let devices = Devices {
        cameras: None,
        pins: Some(pins as Arc<dyn Pins>),
    };
    let app = App::start_with(config, devices).await.unwrap();
    let api = Api::new(app.addr());
    (app, api)
}

/// The levels pin `pin` went through, and how long each pulse lasted.
fn pulses(pins: &TestPins, pin: u8) -> (Vec<Level>, Vec<Duration>) {
    let changes = pins.changes_of(pin);
    let levels = changes.iter().map(|c| c.level).collect();
    // After the initial level, changes come in pairs: on, off.
    let ons = changes[1..]
        .chunks_exact(2)
        .map(|c| c[1].at - c[0].at)
        .collect();
    (levels, ons)
}

#[tokio::test]
async fn a_recognised_face_pulses_the_door_relay_and_a_stranger_the_buzzer() {
    let dir = tempfile::tempdir().unwrap();
    let pins = TestPins::new();
    let (app, api) = start(dir.path(), pins.clone()).await;
    // Active-low relay: high (off) from the start.
    assert_eq!(pins.level(17), Some(Level::High));
    assert_eq!(pins.level(27), Some(Level::Low));

    api.trigger("face_recognized", 1).await;
    wait_until(LONG, "the door pulse", || pins.changes_of(17).len() == 3).await;
    let (levels, ons) = pulses(&pins, 17);
    assert_eq!(levels, [Level::High, Level::Low, Level::High]);
    assert!(ons[0] >= Duration::from_millis(300), "{ons:?}");

    api.trigger("stranger_alert", 1).await;
    wait_until(LONG, "the buzzer", || pins.changes_of(27).len() == 3).await;
    assert_eq!(pulses(&pins, 27).0, [Level::Low, Level::High, Level::Low]);
    assert_eq!(
        pins.changes_of(17).len(),
        3,
        "a stranger does not open the door"
    );

    let (_, metrics) = api.get("/metrics").await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("facecv_actions_fired_total{on=\"face_recognized\",pin=\"17\"} 1"),
        "{metrics}"
    );
    // The console's MQTT & GPIO page reads the same from the API.
    let (status, v) = api.get("/api/v1/actions").await;
    assert_eq!(status, http::StatusCode::OK, "{v}");
    assert_eq!(v["state"], "running", "{v}");
    let fired: Vec<_> = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["on"].as_str().unwrap(),
                a["pin"].as_u64().unwrap(),
                a["claimed"].as_bool().unwrap(),
                a["fired"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fired,
        [
            ("face_recognized", 17, true, 1),
            ("stranger_alert", 27, true, 1),
            ("input", 22, true, 0)
        ]
    );
    let (_, health) = api.get("/health").await;
    assert_eq!(health["gpio"]["state"], "running", "{health}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_pir_input_wakes_its_camera_and_quiet_puts_it_back_to_sleep() {
    let dir = tempfile::tempdir().unwrap();
    let pins = TestPins::new();
    let (app, _api) = start(dir.path(), pins.clone()).await;
    let running = || app.control().camera("hall").unwrap().running;
    assert!(!running());
    assert!(pins.drive(22, Level::High));
    wait_until(LONG, "the camera started", running).await;
    pins.drive(22, Level::Low);
    wait_until(LONG, "the camera stopped after the idle time", || {
        !running()
    })
    .await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_face_recorded_long_before_the_actions_read_it_opens_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A first run creates the actions' cursor, then stops.
    let (app, _) = start(dir.path(), TestPins::new()).await;
    app.shutdown().await.unwrap();

    // While the actions are not running (a restart, a stall), faces are recorded...
    let mut config = test_config(dir.path());
    config.actions = Vec::new();
    let store = facecv::store::Store::open(&config.storage, Default::default()).unwrap();
    let outbox = facecv::store::Outbox::start(store.clone()).unwrap();
    let events = (0..3)
        .map(|_| facecv::samples::sample(facecv::events::EventType::FaceRecognized, "door"))
        .collect();
    outbox.append(events).await.unwrap();
    outbox.stop().await;
    store.close().unwrap();
    drop(store);
    // ...and the actions see them only later than max_age_ms.
    let mut old = actions();
    if let ActionConfig::FaceRecognized(a) = &mut old[0] {
        a.max_age_ms = 100;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let pins = TestPins::new();
    let mut config = test_config(dir.path());
    config.actions = old;
    let devices = Devices {
        cameras: None,
        pins: Some(pins.clone() as Arc<dyn Pins>),
    };
    let app = App::start_with(config, devices).await.unwrap();
    let api = Api::new(app.addr());
    let stale = || {
        let api = api.clone();
        async move {
            let (_, m) = api.get("/metrics").await;
            m.as_str()
                .unwrap()
                .contains("facecv_actions_stale_events_total 3")
        }
    };
    common::eventually(LONG, "three stale events", stale).await;
    assert_eq!(
        pins.changes_of(17).len(),
        1,
        "only the initial level: the door stayed shut"
    );
    // The cursor moved past them all the same.
    let head = app.outbox().head();
    wait_until(LONG, "the cursor past them", || {
        app.store().cursor(&SinkName::ACTIONS).unwrap() == Some(head)
    })
    .await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_gpio_the_appliance_runs_on_without_the_actions() {
    // Without the `rpi` feature there is no GPIO on any machine; with it, none here either.
    let app = start_app_with(|c| c.actions = actions()).await;
    let (status, health) = app.api.get("/health").await;
    assert_eq!(status, http::StatusCode::OK);
    // Seen, not only logged once: the health and the console's page say the actions do not run.
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["gpio"]["state"], "unavailable", "{health}");
    assert!(
        health["gpio"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{health}"
    );
    let (_, v) = app.api.get("/api/v1/actions").await;
    assert_eq!(v["state"], "unavailable", "{v}");
    assert_eq!(v["actions"], serde_json::json!([]), "{v}");
    app.api.trigger("face_recognized", 1).await;
    assert_eq!(
        app.app.store().cursor(&SinkName::ACTIONS).unwrap(),
        None,
        "no cursor holds events back for actions that do not run"
    );
    app.app.shutdown().await.unwrap();
}
