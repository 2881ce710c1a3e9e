//! What the webhook routes answer, as types: the handlers serialise these and the OpenAPI
//! document is generated from them, so the two cannot drift apart.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;

use crate::store::sinks::{Attempt, DeadLetter, Origin, WebhookRecord, WebhookStats};
use crate::store::webhook::WebhookConfig;

/// A webhook as the API shows it: FaceCV's fields (`event_types` is null for every type), with
/// `created_at`, `origin` and `statistics`; never its secret, except in the answer that made it.
#[derive(Serialize, ToSchema)]
pub(super) struct WebhookView {
    #[serde(flatten)]
    pub config: WebhookConfig,
    /// When it was created (RFC 3339, UTC); stays the same across reads.
    #[schema(example = "2025-05-26T10:30:45.123Z")]
    pub created_at: String,
    pub origin: Origin,
    pub statistics: WebhookStats,
    /// Only in `GET /api/v1/webhooks/{webhook_id}`: what waits and what failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<DeliveryState>,
    /// Only in the answer that created the webhook: the receiver needs it to verify signatures,
    /// and it is not shown again.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: Option<String>,
    /// Fields of the request the appliance does not know and ignored (a typo such as
    /// `event_type` would otherwise widen what the receiver gets without a word).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored_fields: Option<Vec<String>>,
    /// FaceCV's confirmation, on enable and disable (`"Webhook main_recognition enabled"`), and
    /// on a create repeated with the same settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "Webhook main_recognition enabled")]
    pub message: Option<String>,
}

impl WebhookView {
    pub(super) fn of(record: &WebhookRecord) -> WebhookView {
        let mut config = record.config.clone();
        config.secret = None;
        WebhookView {
            config,
            created_at: record.created_at.clone(),
            origin: record.origin,
            statistics: record.stats.clone(),
            delivery: None,
            secret: None,
            ignored_fields: None,
            message: None,
        }
    }
}

/// A webhook's delivery as `GET /api/v1/webhooks/{webhook_id}` tells it.
#[derive(Serialize, ToSchema)]
pub(super) struct DeliveryState {
    /// Events it is to receive that have not been delivered yet.
    pub backlog: u64,
    /// Events it was to receive that the store dropped (full) before they went out.
    pub dropped: u64,
    pub dead_letters: u64,
    /// Why it is enabled but not running (an unusable stored secret, say).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// FaceCV's answer to a delete.
#[derive(Serialize, ToSchema)]
pub(super) struct Deleted {
    #[schema(example = "Webhook main_recognition deleted successfully")]
    pub message: String,
    #[schema(example = "main_recognition")]
    pub webhook_id: String,
}

/// FaceCV's four figures, and ours per webhook.
#[derive(Serialize, ToSchema)]
pub(super) struct Stats {
    pub total_webhooks: usize,
    pub enabled_webhooks: usize,
    /// Events the enabled webhooks have yet to deliver.
    pub queue_size: u64,
    pub manager_running: bool,
    /// The outbox's newest sequence number.
    pub events_recorded: i64,
    /// Events the store dropped when it was full.
    pub events_dropped: u64,
    pub webhooks: BTreeMap<String, WebhookFigures>,
}

/// One webhook's figures in `GET /api/v1/webhooks/stats`, counted in events except `attempts`.
#[derive(Serialize, ToSchema)]
pub(super) struct WebhookFigures {
    pub enabled: bool,
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// HTTP requests made, retries included.
    pub attempts: u64,
    pub failed_attempts: u64,
    pub backlog: u64,
    pub dead_letters: u64,
    pub dropped: u64,
}

#[derive(Serialize, ToSchema)]
pub(super) struct Deliveries {
    pub webhook_id: String,
    /// Newest first.
    pub deliveries: Vec<Attempt>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct DeadLetters {
    pub webhook_id: String,
    /// Newest first.
    pub dead_letters: Vec<DeadLetter>,
}

/// What a replay set going.
#[derive(Serialize, ToSchema)]
pub(super) struct Replay {
    pub webhook_id: String,
    pub replaying: ReplayKind,
    /// With `from_seq`: where the replay starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_seq: Option<i64>,
    /// With `from_seq`: the oldest event still stored (older ones were pruned and cannot be
    /// sent again); null when the store holds none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_stored_seq: Option<Option<i64>>,
    /// With dead letters: how many batches go again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum ReplayKind {
    DeadLetters,
    FromSeq,
}

/// A new signing secret, shown this once.
#[derive(Serialize, ToSchema)]
pub(super) struct NewSecret {
    pub webhook_id: String,
    #[schema(example = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]
    pub secret: String,
}

/// What a webhook's receiver gets: FaceCV's envelope around one batch of events, POSTed as JSON
/// with the Standard Webhooks headers (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
/// Described here for the document; the body itself is assembled from the events' stored texts
/// (`events::envelope`), never from this type.
#[derive(Serialize, ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"webhook_id": "main_recognition",
    "timestamp": "2025-05-26T10:30:45.123Z",
    "events": [{"id": "evt_0192b6c1f0a47c3e9a51c2f0d1e2a3b4", "event_type": "face_recognized",
        "timestamp": "2025-05-26T10:30:45.100Z", "camera_id": "entrance_camera",
        "data": {"recognized_faces": [{"name": "John Doe", "confidence": 0.95,
            "bbox": [100, 100, 200, 200], "face_id": "face_7f3a",
            "metadata": {"department": "Engineering"}}], "recognized_count": 1},
        "metadata": {"source": "insightface_stream", "threshold": 0.6,
            "frame_timestamp": "2025-05-26T10:30:45.100Z"}}]}))]
pub(super) struct WebhookPayload {
    webhook_id: String,
    /// When the batch was sent (RFC 3339, UTC, milliseconds).
    timestamp: String,
    /// In the order they were recorded; each `{id, event_type, timestamp, camera_id, data,
    /// metadata}`, `metadata.source` being `insightface_stream` for a camera's events.
    #[schema(value_type = Vec<Object>)]
    events: Vec<serde_json::Value>,
}
