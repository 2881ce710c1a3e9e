//! `[mqtt]`: where the broker is, who we are on it, and how hard to push.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::check::{check_range, ConfigError};
use crate::events::EventType;

/// The bridge's settings. Only `host` is required; everything else has a default that works with a
/// stock Mosquitto and Home Assistant.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `false` pauses the bridge: its cursor stays, and events wait in the store (up to the quota)
    /// until it is enabled again. Removing the `[mqtt]` section forgets the cursor.
    #[serde(default = "yes")]
    pub enabled: bool,
    pub host: String,
    /// 1883, or 8883 with `tls`.
    #[serde(default)]
    pub port: Option<u16>,
    /// Present (even empty, `tls = {}`) means TLS through rustls.
    #[serde(default)]
    pub tls: Option<MqttTlsConfig>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// `facecv-<device_id>` when absent. Two clients with one id throw each other off the broker.
    #[serde(default)]
    pub client_id: Option<String>,
    #[serde(default = "default_prefix")]
    pub topic_prefix: String,
    /// This appliance's name in topics; the host name when absent.
    #[serde(default = "default_device_id")]
    pub device_id: String,
    /// 1 (at least once, the default) or 0 (at most once: the cursor moves once a message is
    /// written to the socket). 2 is not offered: receivers deduplicate on the event `id` instead.
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// Seconds between pings while idle; the broker declares us gone (and sends the last will) after
    /// one and a half of these without a word.
    #[serde(default = "default_keep_alive")]
    pub keep_alive: u64,
    /// Events published and not yet acknowledged, at most.
    #[serde(default = "default_inflight")]
    pub inflight: u16,
    /// Seconds before the first reconnection attempt; each failure doubles it, with jitter.
    #[serde(default = "default_reconnect_delay")]
    pub reconnect_delay: f64,
    /// The longest wait between reconnection attempts, in seconds.
    #[serde(default = "default_reconnect_max_delay")]
    pub reconnect_max_delay: f64,
    /// Largest MQTT packet we send, in KiB (the broker may announce a smaller one). An event that
    /// does not fit is refused here: logged, counted, and skipped.
    #[serde(default = "default_max_packet_kb")]
    pub max_packet_kb: u32,
    /// Absent means every type.
    #[serde(default)]
    pub event_types: Option<Vec<EventType>>,
    /// Home Assistant MQTT discovery: retained config messages for each camera.
    #[serde(default = "yes")]
    pub discovery: bool,
    #[serde(default = "default_discovery_prefix")]
    pub discovery_prefix: String,
    /// Seconds the "stranger present" binary sensor stays on after a stranger alert.
    #[serde(default = "default_stranger_off_delay")]
    pub stranger_off_delay: u32,
}

/// TLS for the broker connection. The broker is checked against Mozilla's roots, the system's, and
/// `ca_file`; `cert_file` and `key_file` together give a client certificate.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}
fn default_prefix() -> String {
    "facecv".into()
}
fn default_qos() -> u8 {
    1
}
fn default_keep_alive() -> u64 {
    30
}
fn default_inflight() -> u16 {
    64
}
fn default_reconnect_delay() -> f64 {
    1.0
}
fn default_reconnect_max_delay() -> f64 {
    30.0
}
fn default_max_packet_kb() -> u32 {
    256
}
fn default_discovery_prefix() -> String {
    "homeassistant".into()
}
fn default_stranger_off_delay() -> u32 {
    30
}

/// The host name, kept to the topic-safe alphabet; `facecv` if there is none. Also the
/// appliance's id where MQTT is not configured (the console's System page), so it has one id.
pub fn default_device_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let id: String = host
        .trim()
        .chars()
        .map(|c| if is_id_char(c) { c } else { '_' })
        .take(64)
        .collect();
    if id.is_empty() {
        "facecv".into()
    } else {
        id
    }
}

fn is_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn check_id(key: &str, value: &str) -> Result<(), ConfigError> {
    if !value.is_empty() && value.len() <= 64 && value.chars().all(is_id_char) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be 1 to 64 characters of A-Z a-z 0-9 _ -, got {value:?}"),
        ))
    }
}

/// A topic or topic prefix we publish to: no wildcards, no empty levels at the ends.
fn check_topic_prefix(key: &str, value: &str) -> Result<(), ConfigError> {
    let bad = value.is_empty()
        || value.len() > 128
        || value.starts_with('/')
        || value.ends_with('/')
        || value.contains(['+', '#', '\0']);
    if bad {
        Err(ConfigError::invalid(
            key,
            format!(
                "must be a topic without + or # and without a leading or trailing /, got {value:?}"
            ),
        ))
    } else {
        Ok(())
    }
}

fn check_file(key: &str, path: &Option<PathBuf>) -> Result<(), ConfigError> {
    match path {
        Some(p) if !p.is_file() => Err(ConfigError::invalid(
            key,
            format!("{} is not a readable file", p.display()),
        )),
        _ => Ok(()),
    }
}

impl MqttConfig {
    /// A config for `host` with every default.
    pub fn new(host: &str) -> MqttConfig {
        toml::from_str(&format!("host = {host:?}")).expect("a host alone is a valid [mqtt]")
    }

    /// Checks every field; keys in the error are relative to `[mqtt]` (the caller adds `mqtt.`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.host.trim().is_empty() || self.host.contains(['/', ' ']) {
            return Err(ConfigError::invalid(
                "host",
                format!("must be a host name or address, got {:?}", self.host),
            ));
        }
        if self.port == Some(0) {
            return Err(ConfigError::invalid("port", "must be between 1 and 65535"));
        }
        if let Some(tls) = &self.tls {
            check_file("tls.ca_file", &tls.ca_file)?;
            check_file("tls.cert_file", &tls.cert_file)?;
            check_file("tls.key_file", &tls.key_file)?;
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return Err(ConfigError::invalid(
                    "tls.key_file",
                    "a client certificate needs both cert_file and key_file",
                ));
            }
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(ConfigError::invalid(
                "username",
                "a password needs a username",
            ));
        }
        if let Some(id) = &self.client_id {
            if id.is_empty() || id.len() > 128 || id.chars().any(|c| c.is_control()) {
                return Err(ConfigError::invalid(
                    "client_id",
                    "must be 1 to 128 printable characters",
                ));
            }
        }
        check_topic_prefix("topic_prefix", &self.topic_prefix)?;
        check_topic_prefix("discovery_prefix", &self.discovery_prefix)?;
        check_id("device_id", &self.device_id)?;
        if self.qos > 1 {
            return Err(ConfigError::invalid(
                "qos",
                format!(
                    "must be 0 or 1, got {} (receivers deduplicate on the event id instead of QoS 2)",
                    self.qos
                ),
            ));
        }
        check_range("keep_alive", self.keep_alive as f64, 5.0, 3600.0, " s")?;
        check_range("inflight", self.inflight.into(), 1.0, 1000.0, "")?;
        check_range("reconnect_delay", self.reconnect_delay, 0.1, 60.0, " s")?;
        check_range(
            "reconnect_max_delay",
            self.reconnect_max_delay,
            self.reconnect_delay,
            3600.0,
            " s",
        )?;
        check_range(
            "max_packet_kb",
            self.max_packet_kb.into(),
            1.0,
            262_144.0,
            " KiB",
        )?;
        check_range(
            "stranger_off_delay",
            self.stranger_off_delay.into(),
            1.0,
            86_400.0,
            " s",
        )?;
        Ok(())
    }

    pub fn port(&self) -> u16 {
        self.port
            .unwrap_or(if self.tls.is_some() { 8883 } else { 1883 })
    }

    pub fn client_id(&self) -> String {
        self.client_id
            .clone()
            .unwrap_or_else(|| format!("facecv-{}", self.device_id))
    }

    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive)
    }
    pub fn reconnect_delay(&self) -> Duration {
        Duration::from_secs_f64(self.reconnect_delay)
    }
    pub fn reconnect_max_delay(&self) -> Duration {
        Duration::from_secs_f64(self.reconnect_max_delay)
    }
    pub fn max_packet_bytes(&self) -> usize {
        self.max_packet_kb as usize * 1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn defaults_suit_a_stock_broker() {
        let c = MqttConfig::new("broker.lan");
        c.validate().unwrap();
        assert!(c.enabled && c.discovery);
        assert_eq!(
            (c.port(), c.qos, c.topic_prefix.as_str()),
            (1883, 1, "facecv")
        );
        assert_eq!(c.client_id(), format!("facecv-{}", c.device_id));
        let tls: MqttConfig = toml::from_str("host = \"b\"\ntls = {}").unwrap();
        assert_eq!(tls.port(), 8883);
    }

    #[test]
    fn mistakes_name_their_key() {
        let err = |extra: &str| {
            Config::from_toml(&format!("[mqtt]\nhost = \"b\"\n{extra}\n"))
                .unwrap_err()
                .to_string()
        };
        assert!(err("qos = 2").starts_with("mqtt.qos: must be 0 or 1"));
        assert!(err("topic_prefix = \"a/#\"").starts_with("mqtt.topic_prefix:"));
        assert!(err("device_id = \"door one\"").starts_with("mqtt.device_id:"));
        assert!(err("keep_alive = 1").starts_with("mqtt.keep_alive: must be between 5"));
        assert!(err("password = \"x\"").starts_with("mqtt.username:"));
        assert!(err("tls = { cert_file = \"/etc/hostname\" }").starts_with("mqtt.tls.key_file:"));
        assert!(err("speed = 3").contains("unknown field `speed`"));
    }
}
