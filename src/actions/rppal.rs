//! [`Pins`] on a Raspberry Pi, through rppal's character-device GPIO (`/dev/gpiochip*`).

use std::collections::HashMap;
use std::sync::Mutex;

use rppal::gpio::{Gpio, InputPin, OutputPin, Trigger};
use tokio::sync::mpsc;

use super::pins::{Level, PinError, Pins, Pull};

/// The Pi's GPIO, with the pins the actions claimed. Dropping it releases them; rppal then returns
/// outputs to inputs, which leaves a relay board's own pull resistor in charge (usually "off").
pub struct RppalPins {
    gpio: Gpio,
    outputs: Mutex<HashMap<u8, OutputPin>>,
    /// Kept so that their interrupt threads keep running.
    inputs: Mutex<HashMap<u8, InputPin>>,
}

impl RppalPins {
    pub fn open() -> Result<RppalPins, PinError> {
        if !std::path::Path::new("/dev/gpiochip0").exists() {
            return Err(PinError::Unavailable(
                "/dev/gpiochip0 does not exist".into(),
            ));
        }
        let gpio = Gpio::new().map_err(|e| PinError::Unavailable(e.to_string()))?;
        Ok(RppalPins {
            gpio,
            outputs: Mutex::new(HashMap::new()),
            inputs: Mutex::new(HashMap::new()),
        })
    }
}

fn pin_error(pin: u8, e: impl std::fmt::Display) -> PinError {
    PinError::Pin {
        pin,
        message: e.to_string(),
    }
}

impl Pins for RppalPins {
    fn output(&self, pin: u8, initial: Level) -> Result<(), PinError> {
        let p = self.gpio.get(pin).map_err(|e| pin_error(pin, e))?;
        let out = match initial {
            Level::High => p.into_output_high(),
            Level::Low => p.into_output_low(),
        };
        self.outputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pin, out);
        Ok(())
    }

    fn set(&self, pin: u8, level: Level) -> Result<(), PinError> {
        let mut outputs = self.outputs.lock().unwrap_or_else(|p| p.into_inner());
        let out = outputs
            .get_mut(&pin)
            .ok_or_else(|| pin_error(pin, "not claimed as an output"))?;
        match level {
            Level::High => out.set_high(),
            Level::Low => out.set_low(),
        }
        Ok(())
    }

    fn input(&self, pin: u8, pull: Pull) -> Result<mpsc::UnboundedReceiver<Level>, PinError> {
        let p = self.gpio.get(pin).map_err(|e| pin_error(pin, e))?;
        let mut input = match pull {
            Pull::Down => p.into_input_pulldown(),
            Pull::Up => p.into_input_pullup(),
            Pull::None => p.into_input(),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        // The current level first, so that an input already active at start-up counts.
        let _ = tx.send(match input.read() {
            rppal::gpio::Level::High => Level::High,
            rppal::gpio::Level::Low => Level::Low,
        });
        input
            .set_async_interrupt(Trigger::Both, None, move |event| {
                let level = match event.trigger {
                    Trigger::FallingEdge => Level::Low,
                    _ => Level::High,
                };
                let _ = tx.send(level);
            })
            .map_err(|e| pin_error(pin, e))?;
        self.inputs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pin, input);
        Ok(rx)
    }
}
