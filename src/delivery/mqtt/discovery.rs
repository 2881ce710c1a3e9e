//! Home Assistant MQTT discovery: three entities per camera, announced with retained config
//! messages so that Home Assistant finds them whenever it starts.
//!
//! * `sensor` "last person": the names in the camera's latest `face_recognized` event;
//! * `binary_sensor` "stranger": on at a `stranger_alert`, off `stranger_off_delay` seconds later;
//! * `switch` "running": the camera's state, and `ON`/`OFF` commands to start and stop it.
//!
//! Every entity reads the events the bridge already publishes, so discovery adds no traffic of its
//! own, and every entity follows the appliance's availability topic.

use serde_json::{json, Value};

use super::topics::{ident, Topics};
use crate::camera::control::CameraInfo;
use crate::events::EventType;

/// One retained config message.
#[derive(Debug, Clone, PartialEq)]
pub struct Announcement {
    pub topic: String,
    pub payload: String,
}

/// The config messages for every camera, in a stable order.
pub fn announcements(
    topics: &Topics,
    device_id: &str,
    stranger_off_delay: u32,
    cameras: &[CameraInfo],
) -> Vec<Announcement> {
    let node = format!("facecv_{}", ident(device_id));
    let device = json!({
        "identifiers": [node],
        "name": format!("FaceCV {device_id}"),
        "manufacturer": "FaceCV",
        "model": "FaceCV Edge",
        "sw_version": env!("CARGO_PKG_VERSION"),
    });
    let mut out = Vec::with_capacity(cameras.len() * 3);
    for camera in cameras {
        let cam = ident(&camera.id);
        let common = |object: &str, name: &str| {
            json!({
                "name": format!("{} {name}", camera.name),
                "unique_id": format!("{node}_{cam}_{object}"),
                "object_id": format!("{node}_{cam}_{object}"),
                "availability_topic": topics.availability(),
                "payload_available": "online",
                "payload_not_available": "offline",
                "device": device,
            })
        };
        let mut sensor = common("last_person", "last person");
        merge(
            &mut sensor,
            json!({
                "state_topic": topics.camera_event(&camera.id, EventType::FaceRecognized),
                "value_template":
                    "{{ value_json.data.recognized_faces | map(attribute='name') | join(', ') }}",
                "json_attributes_topic": topics.camera_event(&camera.id, EventType::FaceRecognized),
                "json_attributes_template": "{{ value_json.data | tojson }}",
                "icon": "mdi:face-recognition",
            }),
        );
        let mut stranger = common("stranger", "stranger");
        merge(
            &mut stranger,
            json!({
                "state_topic": topics.camera_event(&camera.id, EventType::StrangerAlert),
                "value_template": "ON",
                "payload_on": "ON",
                "off_delay": stranger_off_delay,
                "device_class": "occupancy",
                "icon": "mdi:account-alert",
            }),
        );
        let mut switch = common("running", "running");
        merge(
            &mut switch,
            json!({
                "command_topic": topics.camera_set(&camera.id),
                "state_topic": topics.camera_state(&camera.id),
                "payload_on": "ON",
                "payload_off": "OFF",
                "icon": "mdi:cctv",
            }),
        );
        for (component, object, config) in [
            ("sensor", "last_person", sensor),
            ("binary_sensor", "stranger", stranger),
            ("switch", "running", switch),
        ] {
            out.push(Announcement {
                topic: topics.discovery(component, &node, &format!("{cam}_{object}")),
                payload: config.to_string(),
            });
        }
    }
    out
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(a), Value::Object(b)) = (into, from) {
        a.extend(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_camera_gets_a_sensor_a_binary_sensor_and_a_switch() {
        let topics = Topics::new("facecv", "door1", "homeassistant");
        let cams = [CameraInfo {
            id: "entrance".into(),
            name: "Entrance".into(),
            running: true,
        }];
        let a = announcements(&topics, "door1", 30, &cams);
        let names: Vec<&str> = a.iter().map(|a| a.topic.as_str()).collect();
        assert_eq!(
            names,
            [
                "homeassistant/sensor/facecv_door1/entrance_last_person/config",
                "homeassistant/binary_sensor/facecv_door1/entrance_stranger/config",
                "homeassistant/switch/facecv_door1/entrance_running/config",
            ]
        );
        let switch: Value = serde_json::from_str(&a[2].payload).unwrap();
        assert_eq!(switch["command_topic"], "facecv/door1/cameras/entrance/set");
        assert_eq!(switch["state_topic"], "facecv/door1/cameras/entrance/state");
        assert_eq!(switch["unique_id"], "facecv_door1_entrance_running");
        let stranger: Value = serde_json::from_str(&a[1].payload).unwrap();
        assert_eq!(
            stranger["state_topic"],
            "facecv/door1/cameras/entrance/stranger_alert"
        );
        assert_eq!(stranger["off_delay"], 30);
    }
}
