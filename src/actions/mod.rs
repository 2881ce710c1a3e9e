//! GPIO actions: a door relay for recognised people, a buzzer for strangers, and inputs (PIR,
//! button) that wake a camera.
//!
//! The outputs follow the outbox like any sink, through their subscription (cursor `actions`, see
//! `store/subscription.rs`), so an event is seen once it is durable and not before. Unlike the other sinks they do not catch up on old events: an
//! event older than the action's `max_age_ms` (5 s by default) when it is read does not fire. A
//! door must not open for a face seen an hour ago, before a restart or a long stall; such events are
//! passed over, counted in `facecv_actions_stale_events_total`, and logged at debug level. The
//! cursor still matters: after a quick restart, events recorded in the last seconds before it do
//! fire.
//!
//! Without GPIO (no `/dev/gpiochip0`, or a build without the `rpi` feature) the appliance says so
//! once and runs without the actions; their cursor is then removed so it holds nothing back.

pub(crate) mod config;
mod input;
mod output;
pub mod pins;
#[cfg(feature = "rpi")]
mod rppal;
mod status;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::shutdown::Shutdown;
use serde_json::Value;
use tokio::task::JoinHandle;

pub use config::ActionConfig;
use output::Pulser;
use pins::{open_system_pins, Pins};
pub use status::{GpioReport, GpioState, GpioStatus};

use crate::camera::control::CameraControl;
use crate::delivery::{Sink, SinkContext};
use crate::events::{EventType, StoredEvent};
use crate::metrics::{ActionLabel, Metrics};
use crate::store::subscription::{Filter, Next, Receipt, SinkName, Subscription};
use crate::store::{now_ms, Outbox, StoreError};

/// Events read from the outbox at a time.
const READ_BATCH: usize = 256;
/// The only event types an output reacts to.
const TYPES: [EventType; 2] = [EventType::FaceRecognized, EventType::StrangerAlert];

/// An output and what fires it.
struct Output {
    pulser: Pulser,
    /// `None`: stranger alerts. `Some(names)`: recognised faces; empty means anyone.
    names: Option<Vec<String>>,
    max_age_ms: i64,
    label: ActionLabel,
}

impl Output {
    fn wants(&self, event: &StoredEvent, parsed: &mut Option<Value>) -> bool {
        match (&self.names, event.event_type) {
            (None, EventType::StrangerAlert) => true,
            (Some(names), EventType::FaceRecognized) if names.is_empty() => true,
            (Some(names), EventType::FaceRecognized) => {
                let v = parsed.get_or_insert_with(|| {
                    serde_json::from_str(&event.json).unwrap_or(Value::Null)
                });
                v["data"]["recognized_faces"]
                    .as_array()
                    .is_some_and(|faces| {
                        faces.iter().any(|f| {
                            f["name"]
                                .as_str()
                                .is_some_and(|n| names.iter().any(|want| want == n))
                        })
                    })
            }
            _ => false,
        }
    }
}

/// The running actions.
pub struct Actions {
    stop: Shutdown,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

/// Starts the GPIO actions where there is GPIO (`pins`, or this machine's); elsewhere says so
/// once and runs on without them. Without actions their cursor is retired, so it holds nothing
/// back.
/// What happened is kept in `status` for the API.
pub fn start(
    configs: &[ActionConfig],
    pins: Option<Arc<dyn Pins>>,
    ctx: &SinkContext,
    status: &GpioStatus,
) -> Result<Option<Arc<dyn Sink>>, StoreError> {
    let store = ctx.outbox.store();
    if configs.is_empty() {
        store.retire_sink(&SinkName::ACTIONS, "no GPIO actions in the config")?;
        return Ok(None);
    }
    let pins = match pins.map(Ok).unwrap_or_else(open_system_pins) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(
                "{e}; running without the {} GPIO actions in the config",
                configs.len()
            );
            status.unavailable(e.to_string());
            store.retire_sink(&SinkName::ACTIONS, "no GPIO")?;
            return Ok(None);
        }
    };
    let actions = Actions::start(
        configs,
        &ctx.outbox,
        pins,
        ctx.cameras.clone(),
        ctx.metrics.clone(),
        status,
    )?;
    Ok(Some(Arc::new(actions)))
}

impl Actions {
    /// Claims the pins and starts every action. A pin that cannot be claimed is logged and its
    /// action left out; the others run.
    pub fn start(
        configs: &[ActionConfig],
        outbox: &Outbox,
        pins: Arc<dyn Pins>,
        cameras: Arc<dyn CameraControl>,
        metrics: Arc<Metrics>,
        status: &GpioStatus,
    ) -> Result<Actions, StoreError> {
        let stop = Shutdown::new();
        let mut tasks = Vec::new();
        let mut outputs = Vec::new();
        for config in configs {
            let pin = config.pin();
            let claimed = match config {
                ActionConfig::FaceRecognized(a) => {
                    Pulser::start(pins.clone(), &a.pulse(), stop.clone()).map(|(p, task)| {
                        outputs.push(output(p, Some(a.names.clone()), a.max_age_ms, config));
                        tasks.push(task);
                    })
                }
                ActionConfig::StrangerAlert(c) => {
                    Pulser::start(pins.clone(), c, stop.clone()).map(|(p, task)| {
                        outputs.push(output(p, None, c.max_age_ms, config));
                        tasks.push(task);
                    })
                }
                ActionConfig::Input(c) => pins.input(c.pin, c.pull).map(|levels| {
                    let run = input::run(c.clone(), levels, cameras.clone(), stop.clone());
                    tasks.push(tokio::spawn(run));
                }),
            };
            match &claimed {
                Ok(()) => tracing::info!(pin, on = config.on(), "GPIO action ready"),
                Err(e) => {
                    tracing::error!(pin, on = config.on(), error = %e, "GPIO action left out")
                }
            }
            let label = ActionLabel {
                on: config.on(),
                pin,
            };
            status.claimed(label, claimed.map_err(|e| e.to_string()));
        }
        if outputs.is_empty() {
            let store = outbox.store();
            store.retire_sink(&SinkName::ACTIONS, "no GPIO output could be claimed")?;
        } else {
            let filter = Filter {
                types: Some(TYPES.to_vec()),
                cameras: None,
            };
            let subscription = Subscription::open(outbox, SinkName::ACTIONS, filter)?;
            let follow = follow(subscription, outputs, metrics, stop.clone());
            tasks.push(tokio::spawn(follow));
        }
        Ok(Actions {
            stop,
            tasks: Mutex::new(tasks),
        })
    }

    /// Stops every action; outputs go back to inactive.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Sink for Actions {
    fn name(&self) -> &str {
        "actions"
    }

    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Actions::shutdown(self))
    }
}

fn output(pulser: Pulser, names: Option<Vec<String>>, max_age: u32, c: &ActionConfig) -> Output {
    Output {
        pulser,
        names,
        max_age_ms: max_age.into(),
        label: ActionLabel {
            on: c.on(),
            pin: c.pin(),
        },
    }
}

/// Follows the outbox from the actions' cursor and fires the outputs events ask for. The cursor
/// moves past every batch read, fired or stale: a stale event is never fired later.
async fn follow(
    mut subscription: Subscription,
    outputs: Vec<Output>,
    metrics: Arc<Metrics>,
    stop: Shutdown,
) {
    loop {
        let batch = match subscription.next(READ_BATCH, None, &stop).await {
            Next::Batch(batch) => batch,
            Next::Stopped | Next::Deadline => return,
        };
        for event in &batch.events {
            fire(event, &outputs, &metrics);
        }
        if let Err(e) = subscription.acknowledge(batch.upto, Receipt::Cursor).await {
            tracing::warn!(error = %e, "cannot store the actions' cursor");
        }
    }
}

fn fire(event: &StoredEvent, outputs: &[Output], metrics: &Metrics) {
    let age_ms = now_ms() - event.recorded_ms;
    let mut parsed = None;
    for o in outputs.iter().filter(|o| o.wants(event, &mut parsed)) {
        if age_ms > o.max_age_ms {
            metrics.actions_stale.inc();
            tracing::debug!(event = %event.id, age_ms, pin = o.label.pin, "event too old to fire a GPIO action");
            continue;
        }
        tracing::info!(event = %event.id, pin = o.label.pin, on = o.label.on, "GPIO pulse");
        metrics.actions_fired.get_or_create(&o.label).inc();
        o.pulser.fire();
    }
}
