//! One worker per webhook: follows the outbox through the webhook's [`Subscription`], batches,
//! signs, sends, retries, and acknowledges a batch (moving the cursor) only once the receiver said
//! 2xx or its retries ran out and it went to the dead letters.
//!
//! The worker owns nothing but its position; everything it knows is re-read from the store when it
//! starts, so restarting it (on a config change, a replay, or a reboot) is always safe. Stopping it
//! mid-request abandons that request without moving the cursor: the batch goes again next time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::shutdown::Shutdown;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};

use super::backoff::{Backoff, MAX_BACKOFF};
use super::http::{Answer, HttpClient, SendError};
use crate::events::{envelope, Seq, StoredEvent};
use crate::metrics::Metrics;
use crate::store::sinks::{Attempt, DeadLetter, WebhookRecord};
use crate::store::subscription::{Filter, Next, Receipt, SinkCursor, SinkName, Subscription};
use crate::store::webhook::{SigningKey, WebhookId};
use crate::store::{now_ms, now_text, Outbox, Store};

/// Pause after a store error before trying again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

pub struct Worker {
    pub record: WebhookRecord,
    /// The record's key, checked before the worker was started.
    pub key: SigningKey,
    pub outbox: Outbox,
    pub client: HttpClient,
    pub metrics: Arc<Metrics>,
    pub stop: Shutdown,
}

/// How one batch ended.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    DeadLettered,
    /// The receiver answered 410 Gone: the webhook is disabled and the worker ends.
    Gone,
    Stopped,
}

/// Where a batch came from, and so what its outcome moves.
#[derive(Clone, Copy)]
enum Source {
    /// The outbox, read up to `upto`: the cursor moves there.
    Outbox { upto: Seq },
    /// A dead letter being replayed: it leaves the table or stays; the cursor does not move.
    DeadLetter(i64),
}

/// The parts of a batch that stay the same across its attempts.
struct Batch {
    source: Source,
    msg_id: String,
    first_seq: Seq,
    last_seq: Seq,
    count: u32,
    body: Bytes,
    /// Commit times of the events, for the latency metric.
    recorded_ms: Vec<i64>,
}

impl Worker {
    pub async fn run(self) {
        let id = self.record.id();
        let Some((mut subscription, cursor)) = self.subscribe().await else {
            return;
        };
        tracing::debug!(webhook = %id, cursor = %subscription.position(), "webhook worker started");
        if self.replay_dead_letters(&cursor).await == Outcome::Stopped {
            return;
        }
        loop {
            let Some((events, upto)) = self.next_batch(&mut subscription).await else {
                return;
            };
            let batch = self.prepare(&events, upto);
            match self.deliver(&batch, &cursor).await {
                Outcome::Delivered | Outcome::DeadLettered => {}
                Outcome::Gone | Outcome::Stopped => return,
            }
        }
    }

    /// The webhook's subscription, from its stored cursor; `None` if it was deleted meanwhile or
    /// the worker was stopped.
    async fn subscribe(&self) -> Option<(Subscription, SinkCursor)> {
        let config = &self.record.config;
        let filter = Filter {
            types: config.event_types.clone(),
            cameras: config.camera_ids.clone(),
        };
        loop {
            let sink = SinkName::webhook(&self.record.id());
            match Subscription::resume(&self.outbox, sink, filter.clone()).await {
                Ok(Some(s)) => {
                    let cursor = s.cursor().clone();
                    return Some((s, cursor));
                }
                Ok(None) => return None, // deleted while starting
                Err(e) => {
                    tracing::error!(webhook = %config.webhook_id, error = %e, "cannot read the webhook's cursor");
                    if self.pause(STORE_ERROR_PAUSE).await {
                        return None;
                    }
                }
            }
        }
    }

    /// Waits until events this webhook wants are committed, then collects up to `batch_size` of
    /// them, waiting at most `batch_timeout` for a batch to fill. Returns them with how far the
    /// outbox was read for them; `None` on stop.
    async fn next_batch(&self, sub: &mut Subscription) -> Option<(Vec<StoredEvent>, Seq)> {
        let config = &self.record.config;
        let size = config.batch_size as usize;
        let mut events: Vec<StoredEvent> = Vec::new();
        let mut upto = sub.position();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let read = match sub.next(size - events.len(), deadline, &self.stop).await {
                Next::Stopped => return None,
                Next::Deadline => return Some((events, upto)),
                Next::Batch(read) => read,
            };
            upto = read.upto;
            if events.is_empty() && read.events.is_empty() {
                // Nothing this webhook wants up to the head: skip past it so pruning can go on.
                if let Err(e) = sub.acknowledge(upto, Receipt::Cursor).await {
                    tracing::warn!(error = %e, "cannot move the cursor past filtered events");
                }
                continue;
            }
            events.extend(read.events);
            if events.len() >= size {
                return Some((events, upto));
            }
            let now = tokio::time::Instant::now();
            let due = *deadline.get_or_insert(now + config.batch_timeout());
            if now >= due {
                return Some((events, upto));
            }
        }
    }

    fn prepare(&self, events: &[StoredEvent], upto: Seq) -> Batch {
        let texts: Vec<&str> = events.iter().map(|e| e.json.as_str()).collect();
        Batch {
            source: Source::Outbox { upto },
            msg_id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            first_seq: events.first().map(|e| e.seq).unwrap_or_default(),
            last_seq: events.last().map(|e| e.seq).unwrap_or_default(),
            count: events.len() as u32,
            body: Bytes::from(envelope(&self.record.config.webhook_id, &texts)),
            recorded_ms: events.iter().map(|e| e.recorded_ms).collect(),
        }
    }

    /// Sends one batch with retries, and records its outcome (moving the cursor as `cursor`).
    async fn deliver(&self, batch: &Batch, cursor: &SinkCursor) -> Outcome {
        let config = &self.record.config;
        let id = self.record.id();
        let backoff = Backoff::new(config.retry_delay(), MAX_BACKOFF);
        let attempts = config.retry_count + 1;
        for n in 1..=attempts {
            let started = Instant::now();
            let result = tokio::select! {
                _ = self.stop.cancelled() => return Outcome::Stopped,
                r = self.send(batch) => r,
            };
            let latency = started.elapsed();
            let mut attempt = Attempt {
                msg_id: batch.msg_id.clone(),
                attempt: n,
                first_seq: batch.first_seq,
                last_seq: batch.last_seq,
                events: batch.count,
                status: None,
                error: None,
                latency_ms: latency.as_secs_f64() * 1000.0,
                at: now_text(),
            };
            self.metrics
                .request_seconds
                .get_or_create(&self.metrics.sink(SinkName::webhook(&id).as_str()))
                .observe(latency.as_secs_f64());
            let retry_after = match result {
                Ok(Answer { status, .. }) if status.is_success() => {
                    attempt.status = Some(status.as_u16());
                    self.succeeded(attempt, batch, cursor).await;
                    return Outcome::Delivered;
                }
                Ok(Answer { status, .. }) if status == http::StatusCode::GONE => {
                    attempt.status = Some(410);
                    attempt.error = Some("410 Gone: the receiver asked to be disabled".into());
                    self.count_request("gone");
                    self.gone(&id, &attempt).await;
                    return Outcome::Gone;
                }
                Ok(Answer {
                    status,
                    retry_after,
                }) => {
                    tracing::warn!("Webhook {id} returned {}", status.as_u16());
                    attempt.status = Some(status.as_u16());
                    attempt.error = Some(format!("HTTP {status}"));
                    self.count_request("http_error");
                    retry_after
                }
                Err(e) => {
                    tracing::warn!("Webhook {id} request failed: {e}");
                    attempt.error = Some(e.to_string());
                    self.count_request(e.kind());
                    None
                }
            };
            if n == attempts {
                self.failed(attempt, batch, cursor).await;
                return Outcome::DeadLettered;
            }
            self.log_store_error(self.store_failed_attempt(&id, &attempt).await);
            if self.pause(backoff.wait(n, retry_after)).await {
                return Outcome::Stopped;
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn send(&self, batch: &Batch) -> Result<Answer, SendError> {
        let config = &self.record.config;
        let mut headers: Vec<(HeaderName, HeaderValue)> =
            Vec::with_capacity(config.headers.len() + 3);
        for (name, value) in &config.headers {
            // Validated when the webhook was stored.
            if let (Ok(n), Ok(v)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                headers.push((n, v));
            }
        }
        headers.extend(super::sign::headers(&self.key, &batch.msg_id, &batch.body));
        self.client
            .post_json(&config.url, &headers, batch.body.clone(), config.timeout())
            .await
    }

    async fn succeeded(&self, attempt: Attempt, batch: &Batch, cursor: &SinkCursor) {
        let id = self.record.id();
        self.count_request("success");
        let label = self.metrics.sink(cursor.sink().as_str());
        self.metrics
            .delivered
            .get_or_create(&label)
            .inc_by(batch.count.into());
        {
            let now = now_ms();
            let hist = self.metrics.event_latency_seconds.get_or_create(&label);
            for t in &batch.recorded_ms {
                hist.observe((now - t).max(0) as f64 / 1000.0);
            }
        }
        let r = match batch.source {
            Source::DeadLetter(dl) => {
                let id2 = id.clone();
                self.store()
                    .run(move |s| s.record_replayed(&id2, dl, &attempt))
                    .await
            }
            Source::Outbox { upto } => {
                let receipt = Receipt::Delivered {
                    webhook: id.clone(),
                    attempt,
                };
                cursor.acknowledge(upto, receipt).await
            }
        };
        self.log_store_error(r);
        tracing::info!("Successfully delivered {} events to {id}", batch.count);
    }

    async fn failed(&self, attempt: Attempt, batch: &Batch, cursor: &SinkCursor) {
        let id = self.record.id();
        let label = self.metrics.sink(cursor.sink().as_str());
        let tries = attempt.attempt;
        let r = match batch.source {
            Source::DeadLetter(dl) => {
                let id2 = id.clone();
                self.store()
                    .run(move |s| s.record_replay_failed(&id2, dl, &attempt))
                    .await
            }
            Source::Outbox { upto } => {
                let receipt = Receipt::DeadLettered {
                    webhook: id.clone(),
                    attempt,
                    events: events_array(&batch.body),
                };
                let r = cursor.acknowledge(upto, receipt).await;
                self.metrics
                    .dead_lettered
                    .get_or_create(&label)
                    .inc_by(batch.count.into());
                r
            }
        };
        self.log_store_error(r);
        tracing::error!("Failed to deliver events to {id} after {tries} attempts");
    }

    fn store(&self) -> &Store {
        self.outbox.store()
    }

    async fn gone(&self, id: &WebhookId, attempt: &Attempt) {
        let (id2, a) = (id.clone(), attempt.clone());
        let r = self
            .store()
            .run(move |s| {
                s.record_failed_attempt(&id2, &a)?;
                s.set_webhook_enabled(&id2, false).map(|_| ())
            })
            .await;
        self.log_store_error(r);
        tracing::warn!(
            "Webhook {id} returned 410 Gone; it is now disabled and its events wait in the store"
        );
    }

    async fn store_failed_attempt(
        &self,
        id: &WebhookId,
        attempt: &Attempt,
    ) -> crate::store::Result<()> {
        let (id2, a) = (id.clone(), attempt.clone());
        self.store()
            .run(move |s| s.record_failed_attempt(&id2, &a))
            .await
    }

    fn log_store_error(&self, r: crate::store::Result<()>) {
        if let Err(e) = r {
            tracing::error!(webhook = %self.record.config.webhook_id, error = %e, "cannot record a delivery outcome");
        }
    }

    fn count_request(&self, outcome: &'static str) {
        self.metrics
            .requests
            .get_or_create(&crate::metrics::RequestLabel {
                sink: SinkName::webhook(&self.record.id()).to_string(),
                outcome,
            })
            .inc();
    }

    /// Sends the dead letters marked for replay, oldest first, each with the usual retries.
    async fn replay_dead_letters(&self, cursor: &SinkCursor) -> Outcome {
        let id = self.record.id();
        loop {
            let id2 = id.clone();
            let pending = match self
                .store()
                .run(move |s| s.dead_letters(&id2, true, 16))
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(webhook = %id, error = %e, "cannot read dead letters");
                    return Outcome::Delivered;
                }
            };
            if pending.is_empty() {
                return Outcome::Delivered;
            }
            for dl in pending {
                let batch = self.dead_letter_batch(&dl);
                if let o @ (Outcome::Stopped | Outcome::Gone) = self.deliver(&batch, cursor).await {
                    return o;
                }
            }
        }
    }

    fn dead_letter_batch(&self, dl: &DeadLetter) -> Batch {
        let texts: Vec<String> = dl.events.iter().map(|e| e.to_string()).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Batch {
            source: Source::DeadLetter(dl.id),
            msg_id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            first_seq: dl.first_seq,
            last_seq: dl.last_seq,
            count: dl.event_count,
            body: Bytes::from(envelope(&self.record.config.webhook_id, &refs)),
            recorded_ms: Vec::new(),
        }
    }

    /// Sleeps, unless stopped first; true when stopped.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.stop.cancelled() => true,
            _ = tokio::time::sleep(d) => false,
        }
    }
}

/// The `events` array of an envelope, as text, for the dead-letter table.
fn events_array(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v.get("events")
        .map(|e| e.to_string())
        .unwrap_or_else(|| "[]".into())
}
