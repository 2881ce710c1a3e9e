//! One output pin that pulses: on for `pulse_ms`, then off again.

use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::Shutdown;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::PulseConfig;
use super::pins::{Level, PinError, Pins};

/// Asks an output's task for a pulse. A request during a pulse extends it to `pulse_ms` from the
/// new request, so a door stays open while people keep being recognised and a relay never chatters.
#[derive(Clone)]
pub struct Pulser {
    tx: mpsc::UnboundedSender<()>,
}

impl Pulser {
    /// Claims the pin, drives it inactive at once, and starts its task. The pin goes back to
    /// inactive when `stop` is cancelled, even mid-pulse.
    pub fn start(
        pins: Arc<dyn Pins>,
        config: &PulseConfig,
        stop: Shutdown,
    ) -> Result<(Pulser, JoinHandle<()>), PinError> {
        let active = config.active();
        pins.output(config.pin, active.inverse())?;
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(pins, config.pin, active, config.pulse(), rx, stop));
        Ok((Pulser { tx }, task))
    }

    pub fn fire(&self) {
        let _ = self.tx.send(());
    }
}

async fn run(
    pins: Arc<dyn Pins>,
    pin: u8,
    active: Level,
    pulse: Duration,
    mut requests: mpsc::UnboundedReceiver<()>,
    stop: Shutdown,
) {
    let set = |level: Level| {
        if let Err(e) = pins.set(pin, level) {
            tracing::warn!(pin, error = %e, "cannot drive a GPIO output");
        }
    };
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            r = requests.recv() => if r.is_none() { return },
        }
        set(active);
        let mut until = Instant::now() + pulse;
        let mut open = true;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    set(active.inverse());
                    return;
                }
                _ = tokio::time::sleep_until(until) => break,
                r = requests.recv(), if open => match r {
                    Some(()) => until = Instant::now() + pulse,
                    None => open = false,
                },
            }
        }
        set(active.inverse());
    }
}

#[cfg(test)]
mod tests {
    use super::super::pins::test_pins::TestPins;
    use super::*;

    fn config(active_low: bool) -> PulseConfig {
        PulseConfig {
            pin: 17,
            pulse_ms: 1500,
            active_low,
            max_age_ms: 5000,
        }
    }

    /// (level, ms since the first change) of each change of pin 17.
    fn timeline(pins: &TestPins) -> Vec<(Level, u128)> {
        let changes = pins.changes_of(17);
        let t0 = changes[0].at;
        changes
            .iter()
            .map(|c| (c.level, (c.at - t0).as_millis()))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_pulse_lasts_exactly_pulse_ms_at_the_active_level() {
        for active_low in [false, true] {
            let pins = TestPins::new();
            let stop = Shutdown::new();
            let (p, task) = Pulser::start(pins.clone(), &config(active_low), stop.clone()).unwrap();
            let (on, off) = if active_low {
                (Level::Low, Level::High)
            } else {
                (Level::High, Level::Low)
            };
            assert_eq!(pins.level(17), Some(off), "inactive from the start");
            tokio::time::sleep(Duration::from_millis(100)).await;
            p.fire();
            tokio::time::sleep(Duration::from_secs(5)).await;
            assert_eq!(timeline(&pins), [(off, 0), (on, 100), (off, 1600)]);
            stop.cancel();
            task.await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_during_a_pulse_extends_it_and_stop_releases_the_pin() {
        let pins = TestPins::new();
        let stop = Shutdown::new();
        let (p, task) = Pulser::start(pins.clone(), &config(false), stop.clone()).unwrap();
        p.fire();
        tokio::time::sleep(Duration::from_millis(1000)).await;
        p.fire();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            timeline(&pins),
            [(Level::Low, 0), (Level::High, 0), (Level::Low, 2500)]
        );
        p.fire();
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop.cancel();
        task.await.unwrap();
        assert_eq!(pins.level(17), Some(Level::Low), "released on stop");
    }
}
