//! GPIO pins in memory, for tests: outputs record every level they are driven to, with the time;
//! inputs are driven by the test. The unit tests of the actions and `tests/gpio.rs` (a whole app)
//! use them; see `pins.rs` for why this is public.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Level, PinError, Pins, Pull};

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
