//! Every topic the bridge uses, built in one place so that the README, Home Assistant's discovery
//! and the tests agree:
//!
//! | topic | |
//! |---|---|
//! | `<prefix>/<device>/events/<event_type>` | every event, the JSON object of a webhook's `events[]` |
//! | `<prefix>/<device>/cameras/<camera>/<event_type>` | the same message, per camera |
//! | `<prefix>/<device>/availability` | retained `online`; `offline` as the last will |
//! | `<prefix>/<device>/cameras/<camera>/set` | commands in: `ON` / `OFF` |
//! | `<prefix>/<device>/cameras/<camera>/state` | retained `ON` / `OFF` |
//!
//! Camera ids come from events and configs and may hold characters a topic level cannot (`/`, `+`,
//! `#`); [`level`] replaces them, and commands are matched back through the same mapping.

use std::borrow::Cow;

use crate::events::EventType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// `<prefix>/<device>`
    base: String,
    discovery_prefix: String,
}

impl Topics {
    pub fn new(prefix: &str, device_id: &str, discovery_prefix: &str) -> Topics {
        Topics {
            base: format!("{prefix}/{}", level(device_id)),
            discovery_prefix: discovery_prefix.to_owned(),
        }
    }

    pub fn event(&self, t: EventType) -> String {
        format!("{}/events/{t}", self.base)
    }

    pub fn camera_event(&self, camera_id: &str, t: EventType) -> String {
        format!("{}/cameras/{}/{t}", self.base, level(camera_id))
    }

    pub fn availability(&self) -> String {
        format!("{}/availability", self.base)
    }

    pub fn camera_state(&self, camera_id: &str) -> String {
        format!("{}/cameras/{}/state", self.base, level(camera_id))
    }

    pub fn camera_set(&self, camera_id: &str) -> String {
        format!("{}/cameras/{}/set", self.base, level(camera_id))
    }

    /// The subscription that receives every camera's commands.
    pub fn commands(&self) -> String {
        format!("{}/cameras/+/set", self.base)
    }

    /// Where Home Assistant says `online` after it (re)starts, asking for discovery again.
    pub fn homeassistant_status(&self) -> String {
        format!("{}/status", self.discovery_prefix)
    }

    /// `<discovery_prefix>/<component>/<node>/<object>/config`
    pub fn discovery(&self, component: &str, node: &str, object: &str) -> String {
        format!(
            "{}/{component}/{node}/{object}/config",
            self.discovery_prefix
        )
    }

    /// The camera level of a command topic, if `topic` is one.
    pub fn command_camera<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let rest = topic.strip_prefix(&self.base)?.strip_prefix("/cameras/")?;
        let camera = rest.strip_suffix("/set")?;
        (!camera.is_empty() && !camera.contains('/')).then_some(camera)
    }
}

/// `s` as one topic level: `/`, `+`, `#` and control characters become `_`; empty becomes `_`.
pub fn level(s: &str) -> Cow<'_, str> {
    let bad = |c: char| matches!(c, '/' | '+' | '#') || c.is_control();
    if s.is_empty() {
        Cow::Borrowed("_")
    } else if s.contains(bad) {
        Cow::Owned(s.chars().map(|c| if bad(c) { '_' } else { c }).collect())
    } else {
        Cow::Borrowed(s)
    }
}

/// `s` in the alphabet Home Assistant allows in discovery ids: `[a-zA-Z0-9_-]`.
pub fn ident(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_documented_layout() {
        let t = Topics::new("facecv", "door1", "homeassistant");
        assert_eq!(
            t.event(EventType::FaceRecognized),
            "facecv/door1/events/face_recognized"
        );
        assert_eq!(
            t.camera_event("entrance", EventType::StrangerAlert),
            "facecv/door1/cameras/entrance/stranger_alert"
        );
        assert_eq!(t.availability(), "facecv/door1/availability");
        assert_eq!(t.commands(), "facecv/door1/cameras/+/set");
        assert_eq!(
            t.discovery("switch", "facecv_door1", "entrance_running"),
            "homeassistant/switch/facecv_door1/entrance_running/config"
        );
    }

    #[test]
    fn camera_ids_become_safe_levels_and_commands_map_back() {
        let t = Topics::new("site/a", "door1", "homeassistant");
        assert_eq!(
            t.camera_event("rtsp/cam#1+", EventType::FaceDetected),
            "site/a/door1/cameras/rtsp_cam_1_/face_detected"
        );
        assert_eq!(
            t.command_camera("site/a/door1/cameras/lobby/set"),
            Some("lobby")
        );
        assert_eq!(t.command_camera("site/a/door1/cameras/lobby/state"), None);
        assert_eq!(t.command_camera("site/a/door2/cameras/lobby/set"), None);
        assert_eq!(t.command_camera("site/a/door1/cameras//set"), None);
        assert_eq!(ident("Front door.1"), "Front_door_1");
    }
}
