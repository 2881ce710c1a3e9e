//! `[[actions]]`: what a GPIO pin does, one table per pin.
//!
//! ```toml
//! [[actions]]                # a door relay for the people named
//! on = "face_recognized"
//! names = ["John Doe"]       # absent or empty: anyone recognised (every enrolled person)
//! pin = 17
//! pulse_ms = 1500
//! active_low = true          # most relay boards switch on a low level
//!
//! [[actions]]                # a buzzer
//! on = "stranger_alert"
//! pin = 27
//! pulse_ms = 800
//!
//! [[actions]]                # a PIR sensor or a button that wakes a camera
//! on = "input"
//! pin = 22
//! camera = "entrance"
//! idle_secs = 120
//! debounce_ms = 50
//! pull = "down"
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::pins::{Level, Pull};
use crate::config::check::{check_range, ConfigError};

/// The highest BCM pin on a Raspberry Pi's 40-pin header.
const MAX_PIN: u8 = 27;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "on", rename_all = "snake_case")]
pub enum ActionConfig {
    /// Pulse an output (a door relay) when one of `names` is recognised.
    FaceRecognized(RecognizedAction),
    /// Pulse an output (a buzzer, a light) at a stranger alert.
    StrangerAlert(PulseConfig),
    /// Start a camera when an input goes active; stop it after `idle_secs` of quiet.
    Input(InputConfig),
}

/// A pulse for the people named (serde cannot refuse unknown keys through `flatten`, hence the
/// repeated fields).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RecognizedAction {
    /// Names as enrolled; empty means anyone recognised.
    #[serde(default)]
    pub names: Vec<String>,
    pub pin: u8,
    #[serde(default = "default_pulse_ms")]
    pub pulse_ms: u32,
    #[serde(default)]
    pub active_low: bool,
    #[serde(default = "default_max_age_ms")]
    pub max_age_ms: u32,
}

impl RecognizedAction {
    pub fn pulse(&self) -> PulseConfig {
        PulseConfig {
            pin: self.pin,
            pulse_ms: self.pulse_ms,
            active_low: self.active_low,
            max_age_ms: self.max_age_ms,
        }
    }
}

/// An output pulse.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PulseConfig {
    /// BCM numbering (GPIO17 is 17), as on pinout.xyz.
    pub pin: u8,
    #[serde(default = "default_pulse_ms")]
    pub pulse_ms: u32,
    /// The pin is "on" at a low level (most relay boards).
    #[serde(default)]
    pub active_low: bool,
    /// An event older than this when the action reads it does not fire: a door must not open for a
    /// face seen before a restart or a long stall.
    #[serde(default = "default_max_age_ms")]
    pub max_age_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    pub pin: u8,
    pub camera: String,
    /// Quiet seconds (input inactive) after which the camera is stopped again.
    #[serde(default = "default_idle_secs")]
    pub idle_secs: u32,
    /// A level must hold this long to count; contacts bounce and PIRs flicker.
    #[serde(default = "default_debounce_ms")]
    pub debounce_ms: u32,
    #[serde(default)]
    pub pull: Pull,
    /// The input is "active" at a low level (a button to ground with `pull = "up"`).
    #[serde(default)]
    pub active_low: bool,
}

fn default_pulse_ms() -> u32 {
    1000
}
fn default_max_age_ms() -> u32 {
    5000
}
fn default_idle_secs() -> u32 {
    60
}
fn default_debounce_ms() -> u32 {
    50
}

fn active(active_low: bool) -> Level {
    if active_low {
        Level::Low
    } else {
        Level::High
    }
}

impl PulseConfig {
    pub fn pulse(&self) -> Duration {
        Duration::from_millis(self.pulse_ms.into())
    }
    pub fn active(&self) -> Level {
        active(self.active_low)
    }
    pub fn max_age_ms(&self) -> i64 {
        self.max_age_ms.into()
    }
    fn validate(&self) -> Result<(), ConfigError> {
        check_pin(self.pin)?;
        check_range("pulse_ms", self.pulse_ms.into(), 10.0, 60_000.0, " ms")?;
        check_range(
            "max_age_ms",
            self.max_age_ms.into(),
            100.0,
            600_000.0,
            " ms",
        )
    }
}

impl InputConfig {
    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.idle_secs.into())
    }
    pub fn debounce(&self) -> Duration {
        Duration::from_millis(self.debounce_ms.into())
    }
    pub fn active(&self) -> Level {
        active(self.active_low)
    }
}

impl ActionConfig {
    pub fn pin(&self) -> u8 {
        match self {
            ActionConfig::FaceRecognized(a) => a.pin,
            ActionConfig::StrangerAlert(p) => p.pin,
            ActionConfig::Input(i) => i.pin,
        }
    }

    /// The `on` value, for logs and metric labels.
    pub fn on(&self) -> &'static str {
        match self {
            ActionConfig::FaceRecognized(_) => "face_recognized",
            ActionConfig::StrangerAlert(_) => "stranger_alert",
            ActionConfig::Input(_) => "input",
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        match self {
            ActionConfig::FaceRecognized(a) => {
                if a.names.iter().any(|n| n.trim().is_empty()) {
                    return Err(ConfigError::invalid("names", "must not hold empty names"));
                }
                a.pulse().validate()
            }
            ActionConfig::StrangerAlert(p) => p.validate(),
            ActionConfig::Input(i) => {
                check_pin(i.pin)?;
                if i.camera.is_empty() || i.camera.len() > 64 {
                    return Err(ConfigError::invalid("camera", "must be 1 to 64 characters"));
                }
                check_range("idle_secs", i.idle_secs.into(), 1.0, 86_400.0, " s")?;
                check_range("debounce_ms", i.debounce_ms.into(), 0.0, 5_000.0, " ms")
            }
        }
    }
}

fn check_pin(pin: u8) -> Result<(), ConfigError> {
    if pin <= MAX_PIN {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            "pin",
            format!("must be a BCM pin number from 0 to {MAX_PIN}, got {pin}"),
        ))
    }
}

/// Checks every action, and that no pin serves two; keys come back as `actions[i].<field>`.
pub fn validate_all(actions: &[ActionConfig]) -> Result<(), ConfigError> {
    let mut pins = BTreeSet::new();
    for (i, a) in actions.iter().enumerate() {
        a.validate().map_err(|e| match e {
            ConfigError::Invalid { key, message } => {
                ConfigError::invalid(format!("actions[{i}].{key}"), message)
            }
            other => other,
        })?;
        if !pins.insert(a.pin()) {
            return Err(ConfigError::invalid(
                format!("actions[{i}].pin"),
                format!("pin {} is used by two actions", a.pin()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use super::*;

    #[test]
    fn the_three_kinds_parse_with_defaults() {
        let c = Config::from_toml(
            r#"
            [[actions]]
            on = "face_recognized"
            names = ["John Doe"]
            pin = 17
            active_low = true
            [[actions]]
            on = "stranger_alert"
            pin = 27
            [[actions]]
            on = "input"
            pin = 22
            camera = "entrance"
            "#,
        )
        .unwrap();
        let ActionConfig::FaceRecognized(door) = &c.actions[0] else {
            panic!("{:?}", c.actions[0]);
        };
        assert_eq!(door.names, ["John Doe"]);
        assert_eq!(door.pulse().active(), Level::Low);
        assert_eq!(door.pulse_ms, 1000);
        let ActionConfig::Input(pir) = &c.actions[2] else {
            panic!("{:?}", c.actions[2]);
        };
        assert_eq!(
            (pir.idle_secs, pir.debounce_ms, pir.pull),
            (60, 50, Pull::Down)
        );
    }

    #[test]
    fn mistakes_name_their_key() {
        let err = |toml: &str| Config::from_toml(toml).unwrap_err().to_string();
        assert!(err("[[actions]]\non = \"stranger_alert\"\npin = 40\n")
            .starts_with("actions[0].pin: must be a BCM pin"));
        assert_eq!(
            err("[[actions]]\non = \"stranger_alert\"\npin = 4\npulse_ms = 5\n"),
            "actions[0].pulse_ms: must be between 10 and 60000 ms, got 5"
        );
        assert!(err(
            "[[actions]]\non = \"stranger_alert\"\npin = 4\n[[actions]]\non = \"input\"\npin = 4\ncamera = \"c\"\n"
        )
        .contains("actions[1].pin: pin 4 is used by two actions"));
        assert!(err("[[actions]]\non = \"door\"\npin = 4\n").contains("unknown variant `door`"));
        assert!(
            err("[[actions]]\non = \"input\"\npin = 4\ncamera = \"c\"\nidle = 3\n")
                .contains("unknown field `idle`")
        );
    }
}
