//! One pipeline per camera: capture -> detect -> tracker -> (align -> quality -> embed -> match,
//! when a track needs it: `identity.rs`) -> policy -> events. Everything after `match` is here; the stages before it live in `camera` and `vision`.

pub(crate) mod config;
mod draw;
pub(crate) mod flap;
pub(crate) mod gallery;
pub(crate) mod identity;
pub(crate) mod live;
pub(crate) mod manager;
pub(crate) mod policy;
pub(crate) mod runner;
pub(crate) mod snapshot;
mod status;
pub(crate) mod tracker;

pub use config::{CameraConfig, ReconnectConfig};
pub use gallery::{Person, SharedGallery};
pub use manager::{CameraOrigin, CameraStatus, Cameras, CamerasError};
