//! systemd integration: `Type=notify` readiness and the watchdog.
//!
//! READY=1 is sent only once the store is open and the API listens, so `systemctl start` returns
//! when the appliance can really take requests. Watchdog pings are sent only while the store still
//! answers a read: a wedged database makes systemd restart the service rather than leaving a
//! zombie that accepts requests it cannot record. Outside systemd (no `NOTIFY_SOCKET`) every call
//! here does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

use crate::shutdown::Shutdown;
use crate::store::Store;

pub fn ready() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        tracing::warn!(error = %e, "cannot tell systemd the service is ready");
    }
}

pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

/// Pings the watchdog at half its interval while the store answers, until `stop`; returns at
/// once if systemd set no watchdog.
pub fn spawn_watchdog(store: Store, stop: Shutdown) {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (interval / 2).max(Duration::from_millis(100));
    tracing::info!(?interval, "systemd watchdog enabled");
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(every) => {}
            }
            let alive = tokio::time::timeout(every, store.run(|s| s.alive())).await;
            match alive {
                Ok(Ok(_)) => {
                    let _ = sd_notify::notify(&[NotifyState::Watchdog]);
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "store check failed; withholding the watchdog ping")
                }
                Err(_) => tracing::error!("store check timed out; withholding the watchdog ping"),
            }
        }
    });
}
