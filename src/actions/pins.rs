//! GPIO pins behind a trait: rppal on a Raspberry Pi (feature `rpi`), and pins in memory for the
//! tests ([`test_pins`]), so that the action logic (pulse lengths, active levels, debouncing) is
//! tested without hardware.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

// Test support, not for production: the integration tests (`tests/gpio.rs`) drive a whole `App`
// with these pins, and integration tests see only the library's public items. A cargo feature
// would make a plain `cargo test` skip or fail those tests, so this stays public but hidden, and
// nothing outside the tests names it (the release binary drops it as unused).
#[doc(hidden)]
pub mod test_pins;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Level {
    Low,
    High,
}

impl Level {
    pub fn inverse(self) -> Level {
        match self {
            Level::Low => Level::High,
            Level::High => Level::Low,
        }
    }
}

/// The internal resistor of an input pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pull {
    /// Idle low: a PIR or a button to 3.3 V.
    #[default]
    Down,
    /// Idle high: a button to ground (with `active_low = true`).
    Up,
    /// An external resistor does it.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinError {
    #[error("no GPIO on this machine: {0}")]
    Unavailable(String),
    #[error("GPIO pin {pin}: {message}")]
    Pin { pin: u8, message: String },
}

/// What the actions need from the GPIO pins.
pub trait Pins: Send + Sync + 'static {
    /// Claims `pin` as an output and drives it to `initial` at once, so that a relay does not click
    /// while the appliance starts.
    fn output(&self, pin: u8, initial: Level) -> Result<(), PinError>;

    /// Drives a claimed output.
    fn set(&self, pin: u8, level: Level) -> Result<(), PinError>;

    /// Claims `pin` as an input. Every raw level change arrives on the channel, bounces and all:
    /// debouncing is the action's job, so that it is the same (and tested) on every board.
    fn input(&self, pin: u8, pull: Pull) -> Result<mpsc::UnboundedReceiver<Level>, PinError>;
}

/// The GPIO of this machine, or why there is none. Without the `rpi` feature there never is.
pub fn open_system_pins() -> Result<Arc<dyn Pins>, PinError> {
    #[cfg(feature = "rpi")]
    {
        super::rppal::RppalPins::open().map(|p| Arc::new(p) as Arc<dyn Pins>)
    }
    #[cfg(not(feature = "rpi"))]
    {
        Err(PinError::Unavailable(
            "this build has no GPIO support (build with --features rpi)".into(),
        ))
    }
}
