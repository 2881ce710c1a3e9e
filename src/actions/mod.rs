//! GPIO actions: a door relay for recognised people, a buzzer for strangers, and inputs (PIR,
//! button) that wake a camera.
//!
//! The outputs read the outbox like a sink, from their own cursor (`actions`), so an event is seen
//! once it is durable and not before. Unlike the other sinks they do not catch up on old events: an
//! event older than the action's `max_age_ms` (5 s by default) when it is read does not fire. A
//! door must not open for a face seen an hour ago, before a restart or a long stall; such events are
//! passed over, counted in `facecv_actions_stale_events_total`, and logged at debug level. The
//! cursor still matters: after a quick restart, events recorded in the last seconds before it do
//! fire.
//!
//! Without GPIO (no `/dev/gpiochip0`, or a build without the `rpi` feature) the appliance says so
//! once and runs without the actions; their cursor is then removed so it holds nothing back.

pub mod config;
mod input;
mod output;
pub mod pins;
#[cfg(feature = "rpi")]
mod rppal;

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::ActionConfig;
use output::Pulser;
use pins::Pins;

use crate::camera::control::CameraControl;
use crate::events::{EventType, Seq, StoredEvent};
use crate::metrics::{ActionLabel, Metrics};
use crate::store::sinks::ACTIONS_SINK;
use crate::store::{now_ms, Outbox, Store, StoreError};

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
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
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
    ) -> Result<Actions, StoreError> {
        let stop = CancellationToken::new();
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
            match claimed {
                Ok(()) => tracing::info!(pin, on = config.on(), "GPIO action ready"),
                Err(e) => {
                    tracing::error!(pin, on = config.on(), error = %e, "GPIO action left out")
                }
            }
        }
        let store = outbox.store();
        if outputs.is_empty() {
            store.delete_cursor(ACTIONS_SINK)?;
        } else {
            let cursor = store.ensure_cursor(ACTIONS_SINK)?;
            let follow = follow(
                store.clone(),
                outbox.subscribe(),
                cursor,
                outputs,
                metrics,
                stop.clone(),
            );
            tasks.push(tokio::spawn(follow));
        }
        Ok(Actions { stop, tasks })
    }

    /// Stops every action; outputs go back to inactive.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for t in self.tasks {
            let _ = t.await;
        }
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

/// Reads the outbox from the actions' cursor and fires the outputs events ask for.
async fn follow(
    store: Store,
    mut head: watch::Receiver<Seq>,
    mut cursor: Seq,
    outputs: Vec<Output>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    loop {
        let head_now = *head.borrow_and_update();
        if head_now > cursor {
            let after = cursor;
            let read = store
                .run(move |s| {
                    s.events_after(
                        after,
                        READ_BATCH,
                        crate::events::EventFilter {
                            types: Some(&TYPES),
                            cameras: None,
                        },
                    )
                })
                .await;
            match read {
                Ok(events) => {
                    for event in &events {
                        fire(event, &outputs, &metrics);
                    }
                    cursor = match events.last() {
                        Some(last) if events.len() == READ_BATCH => last.seq,
                        _ => head_now,
                    };
                    let to = cursor;
                    if let Err(e) = store.run(move |s| s.advance_cursor(ACTIONS_SINK, to)).await {
                        tracing::warn!(error = %e, "cannot store the actions' cursor");
                    }
                    continue;
                }
                Err(e) => {
                    tracing::error!(error = %e, "GPIO actions cannot read the outbox");
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    }
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = head.changed() => if changed.is_err() { return },
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
