//! GPIO pins behind a trait: rppal on a Raspberry Pi (feature `rpi`), [`TestPins`] everywhere else,
//! so that the action logic (pulse lengths, active levels, debouncing) is tested without hardware.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::time::Instant;

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

/// One level change of an output, as [`TestPins`] saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinChange {
    pub pin: u8,
    pub level: Level,
    /// tokio's clock, so that tests with paused time read exact durations.
    pub at: Instant,
}

#[derive(Default)]
struct TestState {
    outputs: HashMap<u8, Level>,
    changes: Vec<PinChange>,
    inputs: HashMap<u8, mpsc::UnboundedSender<Level>>,
}

/// Pins in memory: outputs record every level they are driven to, with the time; inputs are
/// driven by the test with [`TestPins::drive`].
#[derive(Default)]
pub struct TestPins {
    state: Mutex<TestState>,
}

impl TestPins {
    pub fn new() -> Arc<TestPins> {
        Arc::new(TestPins::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TestState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every output level set so far, including the initial ones, oldest first.
    pub fn changes(&self) -> Vec<PinChange> {
        self.lock().changes.clone()
    }

    /// The changes of one pin.
    pub fn changes_of(&self, pin: u8) -> Vec<PinChange> {
        self.changes()
            .into_iter()
            .filter(|c| c.pin == pin)
            .collect()
    }

    pub fn level(&self, pin: u8) -> Option<Level> {
        self.lock().outputs.get(&pin).copied()
    }

    /// Sets an input's level, as a sensor would; false if no action claimed the pin.
    pub fn drive(&self, pin: u8, level: Level) -> bool {
        self.lock()
            .inputs
            .get(&pin)
            .is_some_and(|tx| tx.send(level).is_ok())
    }
}

impl Pins for TestPins {
    fn output(&self, pin: u8, initial: Level) -> Result<(), PinError> {
        let mut s = self.lock();
        if s.outputs.contains_key(&pin) || s.inputs.contains_key(&pin) {
            return Err(PinError::Pin {
                pin,
                message: "already claimed".into(),
            });
        }
        s.outputs.insert(pin, initial);
        s.changes.push(PinChange {
            pin,
            level: initial,
            at: Instant::now(),
        });
        Ok(())
    }

    fn set(&self, pin: u8, level: Level) -> Result<(), PinError> {
        let mut s = self.lock();
        let Some(current) = s.outputs.get_mut(&pin) else {
            return Err(PinError::Pin {
                pin,
                message: "not claimed as an output".into(),
            });
        };
        *current = level;
        s.changes.push(PinChange {
            pin,
            level,
            at: Instant::now(),
        });
        Ok(())
    }

    fn input(&self, pin: u8, _pull: Pull) -> Result<mpsc::UnboundedReceiver<Level>, PinError> {
        let mut s = self.lock();
        if s.outputs.contains_key(&pin) || s.inputs.contains_key(&pin) {
            return Err(PinError::Pin {
                pin,
                message: "already claimed".into(),
            });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        s.inputs.insert(pin, tx);
        Ok(rx)
    }
}
