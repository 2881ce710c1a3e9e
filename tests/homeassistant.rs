//! Home Assistant over MQTT: discovery that survives Home Assistant restarting, and cameras switched
//! by commands with their state published back.

mod common;

use std::sync::{Arc, Mutex};

use common::mqtt::{app_on, mqtt_config, mqtt_stats, until_connected, Broker, Subscriber, LONG};
use common::{eventually, wait_until, Api};
use facecv::camera::control::{CameraControl, CameraControlError, CameraInfo, ListedCameras};
use facecv::App;

#[tokio::test]
async fn home_assistant_discovery_is_retained_and_repeated_when_home_assistant_comes_online() {
    let broker = Broker::start();
    let app = app_on(&broker, |c| {
        for id in ["entrance", "lobby"] {
            let mut cam = facecv::pipeline::CameraConfig::new(id, "synthetic");
            cam.autostart = false;
            c.cameras.push(cam);
        }
    })
    .await;
    // Home Assistant starting later still finds everything: the configs are retained.
    let ha = Subscriber::connect(
        broker.port,
        &["homeassistant/#", "facecv/door1/cameras/+/state"],
    )
    .await;
    let configs = |s: &Subscriber| {
        s.under("homeassistant/")
            .into_iter()
            .filter(|m| m.topic.ends_with("/config"))
            .collect::<Vec<_>>()
    };
    wait_until(LONG, "six retained configs and two states", || {
        configs(&ha).len() == 6 && ha.under("facecv/").len() == 2
    })
    .await;
    let first = configs(&ha);
    assert!(first.iter().all(|m| m.retain), "{first:?}");
    let mut topics: Vec<&str> = first.iter().map(|m| m.topic.as_str()).collect();
    topics.sort();
    assert_eq!(
        topics,
        [
            "homeassistant/binary_sensor/facecv_door1/entrance_stranger/config",
            "homeassistant/binary_sensor/facecv_door1/lobby_stranger/config",
            "homeassistant/sensor/facecv_door1/entrance_last_person/config",
            "homeassistant/sensor/facecv_door1/lobby_last_person/config",
            "homeassistant/switch/facecv_door1/entrance_running/config",
            "homeassistant/switch/facecv_door1/lobby_running/config",
        ]
    );
    let switch = first
        .iter()
        .find(|m| m.topic.contains("entrance_running"))
        .unwrap()
        .json();
    assert_eq!(switch["command_topic"], "facecv/door1/cameras/entrance/set");
    assert_eq!(switch["availability_topic"], "facecv/door1/availability");
    assert!(ha
        .under("facecv/")
        .iter()
        .all(|m| m.retain && m.payload == "OFF"));

    // Home Assistant restarted: it says so, and the bridge announces everything again.
    ha.publish("homeassistant/status", "online", false).await;
    wait_until(LONG, "the configs again", || configs(&ha).len() == 12).await;
    app.app.shutdown().await.unwrap();
}

/// Cameras for the command test: listed ones that also note every call.
struct RecordingCameras {
    inner: ListedCameras,
    calls: Mutex<Vec<(String, bool)>>,
}

impl CameraControl for RecordingCameras {
    fn cameras(&self) -> Vec<CameraInfo> {
        self.inner.cameras()
    }
    fn set_running(&self, camera_id: &str, on: bool) -> Result<(), CameraControlError> {
        self.calls.lock().unwrap().push((camera_id.into(), on));
        self.inner.set_running(camera_id, on)
    }
    fn subscribe(&self) -> tokio::sync::broadcast::Receiver<CameraInfo> {
        self.inner.subscribe()
    }
}

#[tokio::test]
async fn a_camera_is_started_and_stopped_by_an_mqtt_command_and_its_state_published() {
    common::init_logging();
    let broker = Broker::start();
    let cameras = Arc::new(RecordingCameras {
        inner: ListedCameras::new(["entrance".to_owned(), "lobby".to_owned()]),
        calls: Mutex::new(Vec::new()),
    });
    let dir = tempfile::tempdir().unwrap();
    let mut config = common::test_config(dir.path());
    config.mqtt = Some(mqtt_config(broker.port));
    let devices = facecv::app::Devices {
        cameras: Some(cameras.clone()),
        pins: None,
    };
    let app = App::start_with(config, devices).await.unwrap();
    let api = Api::new(app.addr());
    until_connected(&api).await;
    let state = "facecv/door1/cameras/entrance/state";
    let sub = Subscriber::connect(broker.port, &[state]).await;
    let states = || {
        sub.on(state)
            .into_iter()
            .map(|m| m.payload)
            .collect::<Vec<_>>()
    };
    wait_until(LONG, "the retained state", || states() == ["OFF"]).await;

    sub.publish("facecv/door1/cameras/entrance/set", "ON", false)
        .await;
    wait_until(LONG, "the camera started", || states() == ["OFF", "ON"]).await;
    sub.publish("facecv/door1/cameras/entrance/set", "off", false)
        .await;
    wait_until(LONG, "the camera stopped", || {
        states() == ["OFF", "ON", "OFF"]
    })
    .await;
    // Nonsense and unknown cameras change nothing.
    sub.publish("facecv/door1/cameras/entrance/set", "maybe", false)
        .await;
    sub.publish("facecv/door1/cameras/garage/set", "ON", false)
        .await;
    eventually(LONG, "four commands counted", || {
        let api = api.clone();
        async move { mqtt_stats(&api).await["commands"] == 4 }
    })
    .await;
    assert_eq!(
        *cameras.calls.lock().unwrap(),
        [
            ("entrance".to_owned(), true),
            ("entrance".to_owned(), false)
        ]
    );
    // A change from elsewhere (the API, a lost source) is published too.
    cameras.inner.set_running("entrance", true).unwrap();
    wait_until(LONG, "the state from elsewhere", || states().len() == 4).await;
    assert_eq!(states().last().unwrap(), "ON");
    app.shutdown().await.unwrap();
}
