//! FaceCV Edge: a face recognition appliance that never loses an event.
//!
//! Data flows one way: camera -> vision -> events -> [`store::Outbox`] -> sinks ([`delivery`]:
//! webhooks and the MQTT bridge; [`actions`]: GPIO).
//! Everything a sink delivers was first committed to the outbox.

pub mod actions;
pub mod api;
pub mod app;
pub mod camera;
pub mod cmds;
pub mod config;
pub mod confine;
pub mod delivery;
pub mod enrol;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod metrics;
pub mod pipeline;
pub mod samples;
pub mod shutdown;
pub mod store;
pub mod systemd;
pub mod vision;

pub use app::App;
pub use config::Config;
