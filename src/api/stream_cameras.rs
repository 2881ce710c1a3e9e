//! Which cameras live streams hold, so that several clients can watch one camera and the last one
//! to leave undoes what the streams did: an ad-hoc camera (made from the stream's `source`) is
//! removed, a camera the streams started is stopped, one that ran before is left running.
//!
//! A camera whose last client just left is *ending* until the manager has stopped it (the thread
//! joined, `stream_stopped` recorded). A client that asks for the same camera meanwhile waits for
//! that to finish and then starts it afresh, rather than joining a camera that is about to go
//! (which used to give a stream that ended a second later, without `event: end`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::ApiError;
use crate::pipeline::{CameraConfig, CameraOrigin, Cameras};

#[derive(Default)]
pub(crate) struct StreamCameras {
    leases: Arc<Mutex<HashMap<String, Lease>>>,
}

enum Lease {
    Held {
        clients: usize,
        /// Made for the streams: removed when the last one leaves.
        adhoc: bool,
        /// Stopped when the last one leaves (it was not running when the first came).
        stop_at_end: bool,
        /// One start at a time: the manager's `start` is not safe to race with itself.
        starting: Arc<tokio::sync::Mutex<()>>,
    },
    /// The last client left; the sender is dropped once the camera is stopped or removed.
    Ending(watch::Receiver<()>),
}

/// One stream's hold on its camera; dropping it lets the camera go if it was the last.
pub(crate) struct Hold {
    leases: Arc<Mutex<HashMap<String, Lease>>>,
    cameras: Arc<Cameras>,
    camera: String,
    starting: Arc<tokio::sync::Mutex<()>>,
}

impl StreamCameras {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
        lock(&self.leases)
    }

    /// Joins the streams on `camera`. When no stream holds it and the manager does not know it,
    /// `adhoc` gives the config of a camera made for the streams (its errors are the caller's 422).
    pub(crate) async fn join(
        &self,
        cameras: &Arc<Cameras>,
        camera: &str,
        adhoc: impl Fn() -> CameraConfig,
    ) -> Result<Hold, ApiError> {
        loop {
            let mut ending = {
                let mut leases = self.lock();
                match leases.get_mut(camera) {
                    Some(Lease::Held {
                        clients, starting, ..
                    }) => {
                        *clients += 1;
                        return Ok(self.hold(cameras, camera, starting.clone()));
                    }
                    Some(Lease::Ending(rx)) => rx.clone(),
                    None => {
                        let is_adhoc = cameras.status(camera).is_err();
                        if is_adhoc {
                            cameras.add(adhoc(), CameraOrigin::Stream)?;
                        }
                        let running = !is_adhoc && cameras.status(camera)?.running;
                        let starting = Arc::new(tokio::sync::Mutex::new(()));
                        leases.insert(
                            camera.to_owned(),
                            Lease::Held {
                                clients: 1,
                                adhoc: is_adhoc,
                                stop_at_end: !running,
                                starting: starting.clone(),
                            },
                        );
                        return Ok(self.hold(cameras, camera, starting));
                    }
                }
            };
            // Err means the sender is gone: the camera has ended; look again.
            let _ = ending.changed().await;
        }
    }

    fn hold(
        &self,
        cameras: &Arc<Cameras>,
        camera: &str,
        starting: Arc<tokio::sync::Mutex<()>>,
    ) -> Hold {
        Hold {
            leases: self.leases.clone(),
            cameras: cameras.clone(),
            camera: camera.to_owned(),
            starting,
        }
    }

    /// Waits until `camera` is not ending (its last stream's stop or removal is done).
    pub(crate) async fn settled(&self, camera: &str) {
        loop {
            let mut ending = match self.lock().get(camera) {
                Some(Lease::Ending(rx)) => rx.clone(),
                _ => return,
            };
            let _ = ending.changed().await;
        }
    }
}

impl Hold {
    /// Starts the camera unless it runs; loads the models, so it runs on a blocking thread.
    pub(crate) async fn start(&self) -> Result<(), ApiError> {
        let _one_at_a_time = self.starting.lock().await;
        let cameras = self.cameras.clone();
        let id = self.camera.clone();
        tokio::task::spawn_blocking(move || cameras.start(&id))
            .await
            .map_err(|_| ApiError::Unavailable)?
            .map_err(ApiError::from)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut leases = lock(&self.leases);
        let (adhoc, stop) = match leases.get_mut(&self.camera) {
            Some(Lease::Held {
                clients,
                adhoc,
                stop_at_end,
                ..
            }) => {
                *clients -= 1;
                if *clients > 0 {
                    return;
                }
                (*adhoc, *stop_at_end)
            }
            _ => return,
        };
        let (done, ending) = watch::channel(());
        leases.insert(self.camera.clone(), Lease::Ending(ending));
        drop(leases);
        let (cameras, id, leases) = (
            self.cameras.clone(),
            self.camera.clone(),
            self.leases.clone(),
        );
        let end = move || {
            let result = if adhoc {
                cameras.remove(&id)
            } else if stop {
                cameras.stop(&id)
            } else {
                Ok(())
            };
            if let Err(e) = result {
                tracing::warn!(camera = %id, error = %e, "the camera of an ended stream did not stop");
            }
            if adhoc {
                give_back_freed_memory();
            }
            lock(&leases).remove(&id);
            drop(done);
        };
        // The manager's stop joins the camera's thread: off the async threads, unless the runtime
        // is already gone (the process is ending).
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(end)),
            Err(_) => end(),
        }
    }
}

/// An ad-hoc camera's vision engine (~20 MB: the models, XNNPACK's packed weights and arenas) was
/// allocated on its own threads, so glibc keeps the freed pages in those threads' arenas; without
/// a trim the process stays at its peak after the streams are gone.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own arenas; it takes no pointer from us.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn lock(m: &Mutex<HashMap<String, Lease>>) -> std::sync::MutexGuard<'_, HashMap<String, Lease>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
