//! Sinks: everything that takes committed events out of the outbox to somebody else, and the
//! shape they share.
//!
//! Every sink follows the outbox through one [`Subscription`] per stream of events it delivers
//! (`store/subscription.rs`: wait for the head, take the next filtered batch after its position,
//! acknowledge to move its cursor). The guarantees are written there and hold for every sink:
//! * at least once, in order per sink: a sink's cursor moves only forward and only when the sink
//!   acknowledges, after its receiver took the events (2xx, PUBACK, a pulse on a pin) or the sink
//!   passed them over on purpose (its filter, a refusal, a dead letter, a stale GPIO event);
//! * a crash or stop mid-batch moves nothing: what was not acknowledged goes again at the start;
//! * what a sink records with an acknowledgement is written in the cursor's transaction;
//! * a sink's cursor is created at the head when the sink first runs, and removed when the sink
//!   leaves the configuration ([`crate::store::Store::retire_sink`]), so that nothing waits for it.
//!
//! The sinks here: [`Webhooks`] (one worker per webhook, `webhook.rs`, `http.rs`, `sign.rs`) and
//! the MQTT bridge ([`mqtt`]); the GPIO actions (`crate::actions`) are one too. Retries and
//! reconnections wait by [`backoff`].
//!
//! What a new sink (a Kafka bridge, a fleet link) takes:
//! 1. a folder, say `delivery/kafka/`, with its config type beside it and a `start` function
//!    `start(config: Option<&KafkaConfig>, ctx: &SinkContext) -> Result<Option<Arc<dyn Sink>>, _>`
//!    that retires its cursor when it is not configured (`store.retire_sink`), and otherwise opens
//!    `Subscription::open(&ctx.outbox, SinkName::new("kafka"), filter)` and spawns a task that
//!    loops on `subscription.next(batch, None, &stop)`, sends, and acknowledges `batch.upto`,
//!    waiting between tries by [`backoff::Backoff`];
//! 2. `impl Sink for Kafka` (its name, and a shutdown that cancels its token and awaits the task);
//! 3. one line in `app.rs`: `sinks.extend(kafka::start(config.kafka.as_ref(), &ctx)?);`, and
//!    its section in the root `Config`.
//!
//! It stops in reverse order of the start with the others, after the cameras and before the
//! outbox, so its last acknowledgement is written before the store closes.

pub(crate) mod backoff;
mod config;
pub mod http;
pub mod mqtt;
pub(crate) mod sign;
pub(crate) mod webhook;
mod webhooks;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use config::DeliveryConfig;
pub use webhooks::{Webhooks, WebhooksError};

use crate::camera::control::CameraControl;
use crate::metrics::Metrics;
#[cfg(doc)]
use crate::store::subscription::Subscription;
use crate::store::Outbox;

/// What every sink is started with, besides its own configuration.
#[derive(Clone)]
pub struct SinkContext {
    /// The outbox to subscribe to (and, through it, the store).
    pub outbox: Outbox,
    pub metrics: Arc<Metrics>,
    /// What MQTT commands and GPIO inputs switch: the camera manager, or a test double.
    pub cameras: Arc<dyn CameraControl>,
}

/// A running sink, as the appliance holds it: started in `app.rs` with one line, stopped in the
/// reverse order of the start.
pub trait Sink: Send + Sync {
    /// For the logs.
    fn name(&self) -> &str;

    /// Stops the sink and waits until it has made its last write. Deliveries in flight are
    /// abandoned without moving the cursor: they go again at the next start.
    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}
