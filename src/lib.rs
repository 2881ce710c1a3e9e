//! FaceCV Edge: a face recognition appliance that never loses an event.
//!
//! Data flows one way: camera -> vision -> events -> [`store::Outbox`] -> sinks ([`delivery`]:
//! webhooks and the MQTT bridge; [`actions`]: GPIO).
//! Everything a sink delivers was first committed to the outbox.

pub mod actions;
mod api;
pub mod app;
pub mod camera;
pub mod cmds;
pub mod config;
mod confine;
pub mod delivery;
mod enrol;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
mod metrics;
pub mod pipeline;
pub mod samples;
pub mod score;
pub mod shutdown;
pub mod store;
mod systemd;
pub mod vision;

pub use app::App;
pub use config::Config;
