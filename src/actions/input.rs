//! An input pin (a PIR sensor, a button) that wakes a camera and lets it sleep again.
//!
//! * **Debounce.** A level counts only once it has held for `debounce_ms`: contacts bounce for a
//!   few milliseconds and PIRs flicker, and neither should start and stop a camera.
//! * **Start.** When the input becomes active and the camera is stopped, the camera is started.
//! * **Idle.** When the input has been inactive for `idle_secs`, the camera is stopped again, but
//!   only if this input started it: a camera an operator started (over MQTT or the API) is theirs.

use std::sync::Arc;

use crate::shutdown::Shutdown;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::InputConfig;
use super::pins::Level;
use crate::camera::control::CameraControl;

/// Follows one input until `stop` is cancelled or the pin's channel closes.
pub async fn run(
    config: InputConfig,
    mut levels: mpsc::UnboundedReceiver<Level>,
    cameras: Arc<dyn CameraControl>,
    stop: Shutdown,
) {
    let active_level = config.active();
    // The debounced state, and a change waiting to prove itself.
    let mut active = false;
    let mut pending: Option<(bool, Instant)> = None;
    let mut idle_until: Option<Instant> = None;
    let mut started_by_us = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            level = levels.recv() => {
                let Some(level) = level else { return };
                let now_active = level == active_level;
                pending = (now_active != active).then(|| (now_active, Instant::now() + config.debounce()));
            }
            _ = sleep_until(pending.map(|(_, at)| at)) => {
                let Some((level, _)) = pending.take() else { continue };
                active = level;
                if active {
                    idle_until = None;
                    started_by_us |= start(&config, cameras.as_ref());
                } else {
                    idle_until = Some(Instant::now() + config.idle());
                }
            }
            _ = sleep_until(idle_until) => {
                idle_until = None;
                if std::mem::take(&mut started_by_us) {
                    tracing::info!(pin = config.pin, camera = %config.camera, "input idle; stopping the camera");
                    if let Err(e) = cameras.set_running(&config.camera, false) {
                        tracing::warn!(camera = %config.camera, error = %e, "cannot stop the camera");
                    }
                }
            }
        }
    }
}

/// Starts the camera if it is stopped; true if this call started it.
fn start(config: &InputConfig, cameras: &dyn CameraControl) -> bool {
    match cameras.camera(&config.camera) {
        Some(c) if c.running => false,
        Some(_) => {
            tracing::info!(pin = config.pin, camera = %config.camera, "input active; starting the camera");
            match cameras.set_running(&config.camera, true) {
                Ok(()) => true,
                Err(e) => {
                    tracing::warn!(camera = %config.camera, error = %e, "cannot start the camera");
                    false
                }
            }
        }
        None => {
            tracing::warn!(pin = config.pin, camera = %config.camera, "input action names an unknown camera");
            false
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::sync::broadcast;

    use super::*;
    use crate::actions::pins::test_pins::TestPins;
    use crate::actions::pins::{Pins, Pull};
    use crate::camera::control::{CameraControlError, CameraInfo, ListedCameras};

    /// Listed cameras that also note each switch with its time.
    struct Noting {
        inner: ListedCameras,
        calls: Mutex<Vec<(bool, Instant)>>,
    }

    impl CameraControl for Noting {
        fn cameras(&self) -> Vec<CameraInfo> {
            self.inner.cameras()
        }
        fn set_running(&self, id: &str, on: bool) -> Result<(), CameraControlError> {
            self.calls.lock().unwrap().push((on, Instant::now()));
            self.inner.set_running(id, on)
        }
        fn subscribe(&self) -> broadcast::Receiver<CameraInfo> {
            self.inner.subscribe()
        }
    }

    fn setup() -> (Arc<TestPins>, Arc<Noting>, Shutdown, Instant) {
        let pins = TestPins::new();
        let cams = Arc::new(Noting {
            inner: ListedCameras::new(["hall".to_owned()]),
            calls: Mutex::new(Vec::new()),
        });
        let config = InputConfig {
            pin: 22,
            camera: "hall".into(),
            idle_secs: 10,
            debounce_ms: 50,
            pull: Pull::Down,
            active_low: false,
        };
        let levels = pins.input(22, Pull::Down).unwrap();
        let stop = Shutdown::new();
        tokio::spawn(run(config, levels, cams.clone(), stop.clone()));
        (pins, cams, stop, Instant::now())
    }

    async fn at(t0: Instant, ms: u64) {
        tokio::time::sleep_until(t0 + Duration::from_millis(ms)).await;
    }

    fn calls(cams: &Noting, t0: Instant) -> Vec<(bool, u128)> {
        let calls = cams.calls.lock().unwrap();
        calls
            .iter()
            .map(|(on, t)| (*on, (*t - t0).as_millis()))
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn bounces_shorter_than_the_debounce_do_nothing() {
        let (pins, cams, _stop, t0) = setup();
        for i in 0..5 {
            at(t0, i * 20).await;
            pins.drive(22, Level::High);
            at(t0, i * 20 + 10).await;
            pins.drive(22, Level::Low);
        }
        at(t0, 5_000).await;
        assert!(calls(&cams, t0).is_empty(), "{:?}", calls(&cams, t0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_input_starts_the_camera_and_quiet_stops_it_after_the_idle_time() {
        let (pins, cams, _stop, t0) = setup();
        // Bouncing on the way in: the camera starts 50 ms after the last bounce.
        pins.drive(22, Level::High);
        at(t0, 5).await;
        pins.drive(22, Level::Low);
        at(t0, 8).await;
        pins.drive(22, Level::High);
        // Motion stops at 3 s, comes back briefly at 6 s (the idle timer starts over), then quiet.
        at(t0, 3_000).await;
        pins.drive(22, Level::Low);
        at(t0, 6_000).await;
        pins.drive(22, Level::High);
        at(t0, 6_500).await;
        pins.drive(22, Level::Low);
        at(t0, 30_000).await;
        assert_eq!(calls(&cams, t0), [(true, 58), (false, 16_550)]);
        assert!(!cams.camera("hall").unwrap().running);
    }

    #[tokio::test(start_paused = true)]
    async fn a_camera_started_by_someone_else_is_left_running() {
        let (pins, cams, _stop, t0) = setup();
        cams.inner.set_running("hall", true).unwrap();
        pins.drive(22, Level::High);
        at(t0, 1_000).await;
        pins.drive(22, Level::Low);
        at(t0, 60_000).await;
        assert!(calls(&cams, t0).is_empty());
        assert!(cams.camera("hall").unwrap().running);
    }
}
