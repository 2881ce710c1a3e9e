//! The MQTT bridge: a sink with the webhooks' guarantees, for home-automation and building systems.
//!
//! Guarantees, and the code that keeps them:
//! * **At least once, in order.** The bridge follows the outbox through its subscription (cursor
//!   `mqtt`, see `store/subscription.rs`) and publishes each event, as the JSON object of a
//!   webhook's `events[]`, to its type topic and its camera topic (see [`topics`]). The cursor moves only past events whose
//!   two messages the broker acknowledged ([`inflight`]), so a crash or `kill -9` repeats at most the
//!   events in flight, never skips one.
//! * **The store is the queue.** While the broker is away nothing piles up in memory: the events
//!   wait in the outbox, and each (re)connection starts a fresh MQTT session (clean start) that reads
//!   again from the last acknowledged event. That also means rumqttc never re-sends an old session's
//!   messages out of order after ours.
//! * **Refusals are loud.** MQTT 5 lets a broker refuse a message (a PUBACK reason code such as "not
//!   authorised"); such an event, or one too large to send, is logged with its topic and counted in
//!   `refused` and `facecv_sink_events_refused_total`, then passed over: sending it again would be
//!   refused again, and everything behind it would wait forever.
//! * **Availability.** `<prefix>/<device>/availability` is retained `online` while connected; the
//!   broker publishes the last will, `offline`, if the connection dies, and a clean stop publishes
//!   `offline` itself before disconnecting (a clean disconnect does not fire the will).
//!
//! The bridge speaks MQTT 5 (Mosquitto 2, EMQX, HiveMQ and Home Assistant's broker all do): 3.1.1
//! has no way for a broker to refuse a message other than dropping it silently.

pub(crate) mod config;
pub(crate) mod discovery;
pub(crate) mod inflight;
mod session;
mod tls;
pub(crate) mod topics;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;

use crate::shutdown::Shutdown;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{default_device_id, MqttConfig, MqttTlsConfig};
use topics::Topics;

use super::backoff::Backoff;
use super::{Sink, SinkContext};
use crate::camera::control::CameraControl;
use crate::events::Seq;
use crate::metrics::{Metrics, SinkLabel};
use crate::store::subscription::{Filter, Receipt, SinkCursor, SinkName, Subscription};
use crate::store::{now_text, StoreError};

/// A session that lasted this long resets the back-off: the broker was really back.
const STABLE_SESSION: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error("{0}")]
    Tls(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Counters since the bridge started, for the stats API.
#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    published: AtomicU64,
    acknowledged: AtomicU64,
    refused: AtomicU64,
    in_flight: AtomicU64,
    connects: AtomicU64,
    connection_losses: AtomicU64,
    commands: AtomicU64,
    last_error: Mutex<Option<String>>,
    connected_since: Mutex<Option<String>>,
}

/// `GET /api/v1/mqtt/stats`. Counts are since the appliance started; `backlog`, `dropped` and
/// `cursor` come from the store.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MqttStats {
    pub enabled: bool,
    pub connected: bool,
    pub broker: String,
    pub client_id: String,
    pub base_topic: String,
    pub published: u64,
    pub acknowledged: u64,
    pub refused: u64,
    pub in_flight: u64,
    pub backlog: u64,
    pub dropped: u64,
    #[schema(value_type = i64)]
    pub cursor: Seq,
    pub connects: u64,
    pub connection_losses: u64,
    pub commands: u64,
    pub connected_since: Option<String>,
    pub last_error: Option<String>,
}

/// What the bridge's tasks share.
struct Shared {
    config: MqttConfig,
    topics: Topics,
    /// The bridge's stored cursor: the persister acknowledges through it, the stats read it.
    cursor: SinkCursor,
    metrics: Arc<Metrics>,
    label: SinkLabel,
    cameras: Arc<dyn CameraControl>,
    tls: Option<Arc<rustls::ClientConfig>>,
    counters: Counters,
    /// Everything at or below this is acknowledged (or refused, or filtered out). The cursor in the
    /// store follows it closely; on reconnection the bridge resumes from here.
    settled: watch::Sender<Seq>,
}

impl Shared {
    fn broker(&self) -> String {
        format!("{}:{}", self.config.host, self.config.port())
    }

    fn set_connected(&self, up: bool) {
        let was = self.counters.connected.swap(up, Ordering::Relaxed);
        self.metrics
            .connected
            .get_or_create(&self.label)
            .set(i64::from(up));
        if up && !was {
            self.counters.connects.fetch_add(1, Ordering::Relaxed);
            *lock(&self.counters.connected_since) = Some(now_text());
            tracing::info!(broker = %self.broker(), "MQTT connected");
        } else if !up && was {
            *lock(&self.counters.connected_since) = None;
        }
    }

    fn lost(&self, error: &str) {
        self.counters
            .connection_losses
            .fetch_add(1, Ordering::Relaxed);
        self.metrics
            .connection_losses
            .get_or_create(&self.label)
            .inc();
        *lock(&self.counters.last_error) = Some(error.to_owned());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The running bridge.
pub struct Bridge {
    shared: Arc<Shared>,
    stop: Shutdown,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Starts the bridge if `[mqtt]` is there and enabled. A disabled bridge keeps its cursor (events
/// wait for it); a removed section retires it, so that nothing waits for a bridge that is gone.
pub fn start(
    config: Option<&MqttConfig>,
    ctx: &SinkContext,
) -> Result<Option<Arc<Bridge>>, MqttError> {
    let filter = |m: &MqttConfig| Filter {
        types: m.event_types.clone(),
        cameras: None,
    };
    match config {
        None => {
            let store = ctx.outbox.store();
            store.retire_sink(&SinkName::MQTT, "[mqtt] is gone from the config")?;
            Ok(None)
        }
        Some(m) if !m.enabled => {
            Subscription::open(&ctx.outbox, SinkName::MQTT, filter(m))?;
            tracing::info!("mqtt.enabled = false: events wait in the store for the bridge");
            Ok(None)
        }
        Some(m) => {
            let subscription = Subscription::open(&ctx.outbox, SinkName::MQTT, filter(m))?;
            let bridge = Bridge::start(
                m.clone(),
                subscription,
                ctx.cameras.clone(),
                ctx.metrics.clone(),
            )?;
            Ok(Some(bridge))
        }
    }
}

impl Bridge {
    /// Starts the bridge from its subscription's position. Fails only on a TLS file that cannot
    /// be read; a broker that cannot be reached is retried.
    fn start(
        config: MqttConfig,
        subscription: Subscription,
        cameras: Arc<dyn CameraControl>,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Bridge>, MqttError> {
        let tls = config.tls.as_ref().map(tls::client_config).transpose()?;
        let cursor = subscription.position();
        let shared = Arc::new(Shared {
            topics: Topics::new(
                &config.topic_prefix,
                &config.device_id,
                &config.discovery_prefix,
            ),
            config,
            cursor: subscription.cursor().clone(),
            label: metrics.sink(SinkName::MQTT.as_str()),
            metrics,
            cameras,
            tls,
            counters: Counters::default(),
            settled: watch::channel(cursor).0,
        });
        shared.set_connected(false);
        let stop = Shutdown::new();
        let task = tokio::spawn(run(shared.clone(), subscription, stop.clone()));
        tracing::info!(broker = %shared.broker(), %cursor, "MQTT bridge started");
        Ok(Arc::new(Bridge {
            shared,
            stop,
            task: Mutex::new(Some(task)),
        }))
    }

    pub fn connected(&self) -> bool {
        self.shared.counters.connected.load(Ordering::Relaxed)
    }

    /// The highest sequence number at or below which every event is settled with the broker: for
    /// tests and the benchmark, which wait on it rather than on the store.
    pub fn settled(&self) -> watch::Receiver<Seq> {
        self.shared.settled.subscribe()
    }

    /// Counts the backlog for `facecv_sink_backlog_events{sink="mqtt"}`, from the settled position
    /// (the stored cursor trails it by a write); returns it with the events the quota took before
    /// the bridge had them.
    pub fn refresh_backlog(&self) -> Result<(u64, u64), StoreError> {
        let s = &self.shared;
        let types = s.config.event_types.as_deref();
        let (_, dropped) = s.cursor.backlog(crate::events::EventFilter {
            types,
            cameras: None,
        })?;
        let settled = *s.settled.borrow();
        let backlog = s.cursor.backlog_after(settled, types)?;
        s.metrics
            .backlog
            .get_or_create(&s.label)
            .set(backlog as i64);
        Ok((backlog, dropped))
    }

    pub fn stats(&self) -> Result<MqttStats, StoreError> {
        let s = &self.shared;
        let c = &s.counters;
        let (backlog, dropped) = self.refresh_backlog()?;
        let cursor = s.cursor.stored()?.unwrap_or_default();
        Ok(MqttStats {
            enabled: true,
            connected: c.connected.load(Ordering::Relaxed),
            broker: s.broker(),
            client_id: s.config.client_id(),
            base_topic: s
                .topics
                .availability()
                .trim_end_matches("/availability")
                .into(),
            published: c.published.load(Ordering::Relaxed),
            acknowledged: c.acknowledged.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            in_flight: c.in_flight.load(Ordering::Relaxed),
            backlog,
            dropped,
            cursor,
            connects: c.connects.load(Ordering::Relaxed),
            connection_losses: c.connection_losses.load(Ordering::Relaxed),
            commands: c.commands.load(Ordering::Relaxed),
            connected_since: lock(&c.connected_since).clone(),
            last_error: lock(&c.last_error).clone(),
        })
    }
}

impl Sink for Bridge {
    fn name(&self) -> &str {
        "mqtt"
    }

    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Bridge::shutdown(self))
    }
}

impl Bridge {
    /// Publishes `offline`, disconnects, and stores the cursor. Events in flight stay unacknowledged
    /// and go again at the next start.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }
}

/// Sessions one after the other, with back-off between failures, until stopped.
async fn run(shared: Arc<Shared>, mut subscription: Subscription, stop: Shutdown) {
    let persisting = Shutdown::new();
    let persister = tokio::spawn(persist(shared.clone(), persisting.clone()));
    let mut changes = Some(shared.cameras.subscribe());
    let mut failures = 0u32;
    let backoff = Backoff::new(
        shared.config.reconnect_delay(),
        shared.config.reconnect_max_delay(),
    );
    loop {
        subscription.seek(*shared.settled.borrow());
        let began = Instant::now();
        let end = session::run(&shared, &mut subscription, &mut changes, &stop).await;
        shared.set_connected(false);
        shared.counters.in_flight.store(0, Ordering::Relaxed);
        let session::End::Lost { error, connected } = end else {
            break;
        };
        if connected && began.elapsed() >= STABLE_SESSION {
            failures = 0;
        }
        failures += 1;
        shared.lost(&error);
        let wait = backoff.wait(failures, None);
        tracing::warn!(
            broker = %shared.broker(),
            "MQTT {}: {error}; events wait in the store; next attempt in {:.1} s",
            if connected { "connection lost" } else { "cannot connect" },
            wait.as_secs_f64()
        );
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    persisting.cancel();
    let _ = persister.await;
    tracing::info!("MQTT bridge stopped");
}

/// Writes the settled position to the store as it moves. Writes coalesce: while one is being made,
/// later acknowledgements only move the value the next one writes. A crash loses at most the last
/// few positions, which means a few events sent twice, never one skipped.
async fn persist(shared: Arc<Shared>, stop: Shutdown) {
    let mut settled = shared.settled.subscribe();
    let mut stored = *settled.borrow_and_update();
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            r = settled.changed() => r.is_err(),
        };
        let seq = *settled.borrow_and_update();
        if seq > stored {
            match shared.cursor.acknowledge(seq, Receipt::Cursor).await {
                Ok(()) => stored = seq,
                Err(e) => tracing::error!(error = %e, "cannot store the MQTT cursor"),
            }
        }
        if stopping {
            return;
        }
    }
}
