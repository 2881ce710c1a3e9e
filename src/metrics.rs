//! Prometheus metrics, named `facecv_<stage>_<what>` everywhere so one dashboard fits every stage.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::events::EventType;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub event_type: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    pub sink: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CameraLabel {
    pub camera: String,
}

/// Why the store is degraded (`filesystem_full`, `quota_taken_by_files`, `damaged`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// One GPIO action: what it reacts to and the pin it drives.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub on: &'static str,
    pub pin: u8,
}

type HistogramFamily = Family<SinkLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    events_recorded: Family<TypeLabel, Counter>,
    pub events_dropped: Counter,
    pub store_bytes: Gauge,
    /// 1 while the store is degraded for that reason, 0 otherwise.
    pub store_degraded: Family<ReasonLabel, Gauge>,
    /// The background integrity check: 1 passed, 0 found damage, -1 running or could not run.
    pub store_integrity_ok: Gauge,
    /// Sequence numbers skipped because their pages could not be read.
    pub store_unreadable_events: Counter,
    pub delivered: Family<SinkLabel, Counter>,
    pub dead_lettered: Family<SinkLabel, Counter>,
    pub requests: Family<RequestLabel, Counter>,
    pub backlog: Family<SinkLabel, Gauge>,
    /// Events handed to a connected receiver and awaiting its acknowledgement (MQTT: PUBACK).
    pub published: Family<SinkLabel, Counter>,
    /// Events a receiver refused for good (MQTT: a PUBACK reason code, or too large to send).
    pub refused: Family<SinkLabel, Counter>,
    /// 1 while a sink holds a connection to its receiver (MQTT), 0 otherwise.
    pub connected: Family<SinkLabel, Gauge>,
    pub connection_losses: Family<SinkLabel, Counter>,
    /// GPIO pulses started, per action.
    pub actions_fired: Family<ActionLabel, Counter>,
    /// Events too old to fire a GPIO action when they were read (see `actions`).
    pub actions_stale: Counter,
    pub request_seconds: HistogramFamily,
    /// From an event's commit to the receiver's acknowledgement.
    pub event_latency_seconds: HistogramFamily,
    /// 1 when the models pass their checks and the last engine could be made (see `/health`).
    pub vision_ok: Gauge,
    /// Times a camera's source came back since it last ran healthily, and 1 while it flaps.
    pub camera_restarts: Family<CameraLabel, Gauge>,
    pub camera_flapping: Family<CameraLabel, Gauge>,
    /// Live views open on a camera, and the pictures its live view encoded (what they cost).
    pub live_viewers: Family<CameraLabel, Gauge>,
    pub live_frames_encoded: Family<CameraLabel, Counter>,
    /// The API's connections and live streams against their limits.
    pub api: ApiMetrics,
}

/// How near the API is to its bounds (`src/api/server.rs`, `api.max_streams`), so that a client
/// that was shed or refused shows up somewhere other than in its own error.
#[derive(Debug, Clone, Default)]
pub struct ApiMetrics {
    pub connections: Gauge,
    /// Idle connections closed to make room for a new one at the limit.
    pub connections_shed: Counter,
    /// Connections answered 503 because every place had a request in flight.
    pub connections_busy: Counter,
    pub streams: Gauge,
    /// Streams refused with 503 because `api.max_streams` were open.
    pub streams_refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    fn register_vision_and_cameras(&self, registry: &mut Registry) {
        registry.register(
            "vision_ok",
            "1 when the model files pass their checks and the last engine could be made",
            self.vision_ok.clone(),
        );
        registry.register(
            "camera_source_restarts",
            "Times a camera's source came back since it last ran healthily",
            self.camera_restarts.clone(),
        );
        registry.register(
            "camera_source_flapping",
            "1 while a camera's source keeps coming back and going again",
            self.camera_flapping.clone(),
        );
        registry.register(
            "live_viewers",
            "Live views (and snapshots waiting for a picture) open on a camera",
            self.live_viewers.clone(),
        );
        registry.register(
            "live_frames_encoded",
            "Annotated pictures a camera's live view encoded as JPEG, once for all its viewers",
            self.live_frames_encoded.clone(),
        );
    }

    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("facecv");
        let m = Metrics {
            events_recorded: Family::default(),
            events_dropped: Counter::default(),
            store_bytes: Gauge::default(),
            store_degraded: Family::default(),
            store_integrity_ok: Gauge::default(),
            store_unreadable_events: Counter::default(),
            delivered: Family::default(),
            dead_lettered: Family::default(),
            requests: Family::default(),
            backlog: Family::default(),
            published: Family::default(),
            refused: Family::default(),
            connected: Family::default(),
            connection_losses: Family::default(),
            actions_fired: Family::default(),
            actions_stale: Counter::default(),
            request_seconds: HistogramFamily::new_with_constructor(latency_histogram),
            event_latency_seconds: HistogramFamily::new_with_constructor(latency_histogram),
            vision_ok: Gauge::default(),
            camera_restarts: Family::default(),
            camera_flapping: Family::default(),
            live_viewers: Family::default(),
            live_frames_encoded: Family::default(),
            api: ApiMetrics::default(),
            registry: Registry::default(),
        };
        m.register_vision_and_cameras(&mut registry);
        registry.register(
            "events_recorded",
            "Events committed to the outbox",
            m.events_recorded.clone(),
        );
        registry.register(
            "events_dropped",
            "Undelivered events removed because the store reached its quota",
            m.events_dropped.clone(),
        );
        registry.register(
            "store_bytes",
            "Bytes counted against the quota: live pages, WAL, reserve, snapshots",
            m.store_bytes.clone(),
        );
        m.register_store_condition(&mut registry);
        registry.register(
            "sink_events_delivered",
            "Events a sink's receiver acknowledged",
            m.delivered.clone(),
        );
        registry.register(
            "sink_events_dead_lettered",
            "Events moved to the dead letters after every retry failed",
            m.dead_lettered.clone(),
        );
        registry.register(
            "sink_requests",
            "Delivery requests by outcome",
            m.requests.clone(),
        );
        registry.register(
            "sink_backlog_events",
            "Events recorded but not yet acknowledged by a sink",
            m.backlog.clone(),
        );
        m.register_connected_sinks_and_actions(&mut registry);
        m.register_api(&mut registry);
        registry.register(
            "sink_request_duration_seconds",
            "Time from sending a delivery request to its answer",
            m.request_seconds.clone(),
        );
        registry.register(
            "sink_event_latency_seconds",
            "Time from an event's commit to its acknowledgement by a sink",
            m.event_latency_seconds.clone(),
        );
        Metrics { registry, ..m }
    }

    fn register_api(&self, registry: &mut Registry) {
        let api = &self.api;
        registry.register(
            "api_connections",
            "API connections being served",
            api.connections.clone(),
        );
        registry.register(
            "api_connections_shed",
            "Idle API connections closed to make room for new ones",
            api.connections_shed.clone(),
        );
        registry.register(
            "api_connections_busy",
            "API connections answered 503 because every place had a request in flight",
            api.connections_busy.clone(),
        );
        registry.register("api_streams", "Live streams open", api.streams.clone());
        registry.register(
            "api_streams_refused",
            "Live streams refused because api.max_streams were open",
            api.streams_refused.clone(),
        );
    }

    fn register_store_condition(&self, registry: &mut Registry) {
        registry.register(
            "store_degraded",
            "1 while the store is degraded for this reason",
            self.store_degraded.clone(),
        );
        registry.register(
            "store_integrity_ok",
            "Background integrity check: 1 passed, 0 damage found, -1 running or failed to run",
            self.store_integrity_ok.clone(),
        );
        registry.register(
            "store_unreadable_events",
            "Sequence numbers skipped by readers because their pages could not be read",
            self.store_unreadable_events.clone(),
        );
    }

    /// The families that only connected sinks (MQTT) and the GPIO actions use.
    fn register_connected_sinks_and_actions(&self, registry: &mut Registry) {
        registry.register(
            "sink_events_published",
            "Events a sink sent and awaits an acknowledgement for",
            self.published.clone(),
        );
        registry.register(
            "sink_events_refused",
            "Events a sink's receiver refused for good; logged, not retried",
            self.refused.clone(),
        );
        registry.register(
            "sink_connected",
            "1 while a sink is connected to its receiver",
            self.connected.clone(),
        );
        registry.register(
            "sink_connection_losses",
            "Times a sink lost its connection or failed to connect",
            self.connection_losses.clone(),
        );
        registry.register(
            "actions_fired",
            "GPIO output pulses started by an action",
            self.actions_fired.clone(),
        );
        registry.register(
            "actions_stale_events",
            "Events too old to fire a GPIO action when read",
            self.actions_stale.clone(),
        );
    }

    pub fn recorded(&self, t: EventType) {
        self.events_recorded
            .get_or_create(&TypeLabel {
                event_type: t.as_str(),
            })
            .inc();
    }

    /// The text exposition format for `GET /metrics`.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn sink(&self, name: &str) -> SinkLabel {
        SinkLabel {
            sink: name.to_owned(),
        }
    }
}
