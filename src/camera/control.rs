//! Starting and stopping cameras from outside the capture pipeline.
//!
//! The MQTT bridge (`<prefix>/<device>/cameras/<id>/set`, the Home Assistant switch) and the GPIO
//! input actions (a PIR or a button) need three things from the cameras and nothing more: the list,
//! a way to switch one on or off, and word of every change whatever caused it, so that the state they
//! publish is the camera's real state. [`CameraControl`] is that contract; the camera manager
//! (`pipeline::Cameras`) implements it for the appliance, and [`ListedCameras`] stands in for it in
//! tests of the bridge and the inputs that need no real cameras.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::broadcast;

/// How many state changes a slow subscriber may fall behind before it hears `Lagged` (and then
/// re-reads the whole list).
pub const CHANGES_BUFFER: usize = 64;

/// One camera as controllers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CameraInfo {
    /// The id events carry in `camera_id`.
    pub id: String,
    /// A name for people (Home Assistant shows it); the id when there is none.
    pub name: String,
    pub running: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CameraControlError {
    #[error("no camera {0:?}")]
    Unknown(String),
    #[error("camera {camera:?} could not be switched: {message}")]
    Failed { camera: String, message: String },
}

/// What the MQTT bridge and the GPIO actions need from the cameras.
///
/// Implementations must send every change of a camera's running state on the channel
/// [`CameraControl::subscribe`] returns, whatever caused it (a command, the API, a source that was
/// lost), because that channel is the only way the published state follows the real one.
pub trait CameraControl: Send + Sync + 'static {
    /// Every camera, in a stable order.
    fn cameras(&self) -> Vec<CameraInfo>;

    /// Starts (`on`) or stops a camera. Returns once the request is accepted; the change itself is
    /// announced on [`CameraControl::subscribe`]. Switching a camera to the state it is in is not an
    /// error.
    fn set_running(&self, camera_id: &str, on: bool) -> Result<(), CameraControlError>;

    /// Changes from now on. A receiver that lags should re-read [`CameraControl::cameras`].
    fn subscribe(&self) -> broadcast::Receiver<CameraInfo>;

    /// One camera, if it exists.
    fn camera(&self, camera_id: &str) -> Option<CameraInfo> {
        self.cameras().into_iter().find(|c| c.id == camera_id)
    }
}

/// Cameras known only by their ids, with a running flag kept in memory: what the MQTT commands
/// and GPIO inputs switch in tests that give the app these instead of the camera manager
/// (`app::Devices::cameras`). The flag changes and the change is announced, exactly as a real
/// camera's would be.
pub struct ListedCameras {
    running: Mutex<BTreeMap<String, bool>>,
    changes: broadcast::Sender<CameraInfo>,
}

impl ListedCameras {
    /// Cameras with these ids, all stopped.
    pub fn new(ids: impl IntoIterator<Item = String>) -> ListedCameras {
        ListedCameras {
            running: Mutex::new(ids.into_iter().map(|id| (id, false)).collect()),
            changes: broadcast::channel(CHANGES_BUFFER).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl CameraControl for ListedCameras {
    fn cameras(&self) -> Vec<CameraInfo> {
        self.lock()
            .iter()
            .map(|(id, &running)| CameraInfo {
                id: id.clone(),
                name: id.clone(),
                running,
            })
            .collect()
    }

    fn set_running(&self, camera_id: &str, on: bool) -> Result<(), CameraControlError> {
        let mut running = self.lock();
        let flag = running
            .get_mut(camera_id)
            .ok_or_else(|| CameraControlError::Unknown(camera_id.to_owned()))?;
        if *flag != on {
            *flag = on;
            // Nobody listening is fine: the state is still kept.
            let _ = self.changes.send(CameraInfo {
                id: camera_id.to_owned(),
                name: camera_id.to_owned(),
                running: on,
            });
        }
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<CameraInfo> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_cameras_switch_and_announce_changes_only() {
        let cams = ListedCameras::new(["door".to_owned(), "hall".to_owned()]);
        let mut changes = cams.subscribe();
        cams.set_running("door", true).unwrap();
        cams.set_running("door", true).unwrap();
        assert!(changes.try_recv().unwrap().running);
        assert!(changes.try_recv().is_err(), "no change, no announcement");
        assert!(cams.camera("door").unwrap().running);
        assert!(!cams.camera("hall").unwrap().running);
        assert_eq!(
            cams.set_running("garage", true),
            Err(CameraControlError::Unknown("garage".into()))
        );
    }
}
