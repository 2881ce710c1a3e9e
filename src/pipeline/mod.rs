//! One pipeline per camera: capture -> detect -> align -> embed -> match -> tracker -> policy ->
//! events. Everything after `match` is here; the stages before it live in `camera` and `vision`.

pub mod config;
pub mod flap;
pub mod gallery;
pub mod manager;
pub mod policy;
pub mod runner;
pub mod snapshot;
pub mod tracker;

pub use config::{CameraConfig, ReconnectConfig};
pub use gallery::{Person, SharedGallery};
pub use manager::{CameraOrigin, CameraStatus, Cameras, CamerasError};
