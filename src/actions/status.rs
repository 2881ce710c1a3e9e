//! What the GPIO actions are doing, for `/health`, `GET /api/v1/actions` and the console's MQTT &
//! GPIO page. A machine without GPIO runs on without its actions, and a pin another program holds
//! leaves its action out: an installer wiring a door relay must see that on the page, not find it
//! in the log of the start.

use std::sync::Mutex;

use serde::Serialize;

use crate::metrics::{ActionLabel, Metrics};

/// The actions' state as the start left it; the pulse counts are read from the metrics when asked.
#[derive(Debug, Default)]
pub struct GpioStatus {
    inner: Mutex<Started>,
}

#[derive(Debug, Default)]
struct Started {
    state: GpioState,
    reason: Option<String>,
    actions: Vec<Claim>,
}

#[derive(Debug)]
struct Claim {
    label: ActionLabel,
    error: Option<String>,
}

/// The actions as a whole.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GpioState {
    /// No `[[actions]]` in the config.
    #[default]
    Off,
    /// Actions are configured, but this machine (or this build) has no GPIO.
    Unavailable,
    /// Every action claimed its pin.
    Running,
    /// Some actions could not claim their pin and were left out.
    Degraded,
}

/// One action, as reported.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ActionReport {
    /// The event type that fires it (`face_recognized`, ...), or `motion` for a PIR input.
    pub on: &'static str,
    pub pin: u8,
    /// Whether it holds its pin; `false` with `error` saying why.
    pub claimed: bool,
    pub error: Option<String>,
    /// Pulses started since the appliance started (outputs only; inputs count 0).
    pub fired: u64,
}

/// The whole report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GpioReport {
    pub state: GpioState,
    pub reason: Option<String>,
    pub actions: Vec<ActionReport>,
    /// Events read too late to fire an output (`max_age_ms`), since the start.
    pub stale_events: u64,
}

impl GpioStatus {
    pub(super) fn unavailable(&self, reason: String) {
        let mut s = self.lock();
        s.state = GpioState::Unavailable;
        s.reason = Some(reason);
    }

    pub(super) fn claimed(&self, label: ActionLabel, result: Result<(), String>) {
        let mut s = self.lock();
        s.actions.push(Claim {
            label,
            error: result.err(),
        });
        let left_out = s.actions.iter().filter(|c| c.error.is_some()).count();
        (s.state, s.reason) = match left_out {
            0 => (GpioState::Running, None),
            n => (
                GpioState::Degraded,
                Some(format!(
                    "{n} of {} actions could not claim their pin",
                    s.actions.len()
                )),
            ),
        };
    }

    /// The report, with the pulse counts as the metrics have them now.
    pub fn report(&self, metrics: &Metrics) -> GpioReport {
        let s = self.lock();
        GpioReport {
            state: s.state,
            reason: s.reason.clone(),
            actions: s
                .actions
                .iter()
                .map(|c| ActionReport {
                    on: c.label.on,
                    pin: c.label.pin,
                    claimed: c.error.is_none(),
                    error: c.error.clone(),
                    fired: metrics.actions_fired.get_or_create(&c.label).get(),
                })
                .collect(),
            stale_events: metrics.actions_stale.get(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Started> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(pin: u8) -> ActionLabel {
        ActionLabel {
            on: "face_recognized",
            pin,
        }
    }

    #[test]
    fn a_pin_left_out_makes_the_actions_degraded_and_says_which() {
        let metrics = Metrics::new();
        let status = GpioStatus::default();
        assert_eq!(status.report(&metrics).state, GpioState::Off);
        status.claimed(label(17), Ok(()));
        assert_eq!(status.report(&metrics).state, GpioState::Running);
        status.claimed(label(27), Err("GPIO 27 is busy".into()));
        let r = status.report(&metrics);
        assert_eq!(r.state, GpioState::Degraded);
        assert_eq!(
            r.reason.as_deref(),
            Some("1 of 2 actions could not claim their pin")
        );
        assert!(r.actions[0].claimed && !r.actions[1].claimed);
        assert_eq!(r.actions[1].error.as_deref(), Some("GPIO 27 is busy"));
    }
}
