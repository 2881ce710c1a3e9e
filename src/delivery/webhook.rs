//! One worker per webhook: reads the outbox from the webhook's own cursor, batches, signs, sends,
//! retries, and moves the cursor only after the receiver said 2xx.
//!
//! The worker owns nothing but its position; everything it knows is re-read from the store when it
//! starts, so restarting it (on a config change, a replay, or a reboot) is always safe. Stopping it
//! mid-request abandons that request without moving the cursor: the batch goes again next time.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use rand::Rng;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::http::{Answer, HttpClient, SendError};
use crate::events::{envelope, EventFilter, Seq, StoredEvent};
use crate::metrics::Metrics;
use crate::store::sinks::{webhook_sink, Attempt, DeadLetter, WebhookRecord};
use crate::store::webhook::{SigningKey, WebhookId};
use crate::store::{now_ms, now_text, Store};

/// The longest back-off between two attempts, whatever `retry_delay` and the attempt number say.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// Pause after a store error before trying again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

pub struct Worker {
    pub record: WebhookRecord,
    pub store: Store,
    pub head: watch::Receiver<Seq>,
    pub client: HttpClient,
    pub metrics: Arc<Metrics>,
    pub stop: CancellationToken,
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

/// The parts of a batch that stay the same across its attempts.
struct Batch {
    msg_id: String,
    first_seq: Seq,
    last_seq: Seq,
    count: u32,
    body: Bytes,
    /// Commit times of the events, for the latency metric.
    recorded_ms: Vec<i64>,
}

impl Worker {
    pub async fn run(mut self) {
        let id = self.record.id();
        let sink = webhook_sink(&id);
        let mut cursor = loop {
            let s = sink.clone();
            match self.store.run(move |st| st.cursor(&s)).await {
                Ok(Some(c)) => break c,
                Ok(None) => return, // deleted while starting
                Err(e) => {
                    tracing::error!(webhook = %id, error = %e, "cannot read the webhook's cursor");
                    if self.pause(STORE_ERROR_PAUSE).await {
                        return;
                    }
                }
            }
        };
        tracing::debug!(webhook = %id, %cursor, "webhook worker started");
        if self.replay_dead_letters().await == Outcome::Stopped {
            return;
        }
        loop {
            let Some(events) = self.next_batch(&mut cursor).await else {
                return;
            };
            let batch = self.prepare(&events);
            match self.deliver(&batch, None).await {
                Outcome::Delivered | Outcome::DeadLettered => cursor = batch.last_seq,
                Outcome::Gone | Outcome::Stopped => return,
            }
        }
    }

    /// Waits until events after `cursor` that this webhook wants are committed, then collects up to
    /// `batch_size` of them, waiting at most `batch_timeout` for a batch to fill. `None` on stop.
    async fn next_batch(&mut self, cursor: &mut Seq) -> Option<Vec<StoredEvent>> {
        let config = &self.record.config;
        let size = config.batch_size as usize;
        let types = config.event_types.clone();
        let cameras = config.camera_ids.clone();
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let head = *self.head.borrow_and_update();
            if head > *cursor {
                let after = *cursor;
                let (types2, cameras2) = (types.clone(), cameras.clone());
                let events = match self
                    .store
                    .run(move |s| {
                        let filter = EventFilter {
                            types: types2.as_deref(),
                            cameras: cameras2.as_deref(),
                        };
                        s.events_after(after, size, filter)
                    })
                    .await
                {
                    Ok(ev) => ev,
                    Err(e) => {
                        tracing::error!(webhook = %config.webhook_id, error = %e, "cannot read the outbox");
                        if self.pause(STORE_ERROR_PAUSE).await {
                            return None;
                        }
                        continue;
                    }
                };
                if events.len() >= size {
                    return Some(events);
                }
                if events.is_empty() {
                    // Nothing this webhook wants up to head: skip past it so pruning can go on.
                    self.skip_to(cursor, head).await;
                } else {
                    let now = tokio::time::Instant::now();
                    let due = *deadline.get_or_insert(now + config.batch_timeout());
                    if now >= due {
                        return Some(events);
                    }
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => return None,
                changed = self.head.changed() => if changed.is_err() { return None },
                _ = sleep_until(deadline) => {}
            }
        }
    }

    async fn skip_to(&self, cursor: &mut Seq, head: Seq) {
        let sink = webhook_sink(&self.record.id());
        if let Err(e) = self.store.run(move |s| s.advance_cursor(&sink, head)).await {
            tracing::warn!(error = %e, "cannot move the cursor past filtered events");
        }
        *cursor = head;
    }

    fn prepare(&self, events: &[StoredEvent]) -> Batch {
        let texts: Vec<&str> = events.iter().map(|e| e.json.as_str()).collect();
        Batch {
            msg_id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            first_seq: events.first().map(|e| e.seq).unwrap_or_default(),
            last_seq: events.last().map(|e| e.seq).unwrap_or_default(),
            count: events.len() as u32,
            body: Bytes::from(envelope(&self.record.config.webhook_id, &texts)),
            recorded_ms: events.iter().map(|e| e.recorded_ms).collect(),
        }
    }

    /// Sends one batch with retries. With `dead_letter`, the batch is a replay of that dead letter.
    async fn deliver(&self, batch: &Batch, dead_letter: Option<i64>) -> Outcome {
        let config = &self.record.config;
        let id = self.record.id();
        let key = self.record.signing_key();
        let attempts = config.retry_count + 1;
        for n in 1..=attempts {
            let started = Instant::now();
            let result = tokio::select! {
                _ = self.stop.cancelled() => return Outcome::Stopped,
                r = self.send(&key, batch) => r,
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
                .get_or_create(&self.metrics.sink(&webhook_sink(&id)))
                .observe(latency.as_secs_f64());
            let retry_after = match result {
                Ok(Answer { status, .. }) if status.is_success() => {
                    attempt.status = Some(status.as_u16());
                    self.succeeded(&id, &attempt, batch, dead_letter).await;
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
                self.failed(&id, &attempt, batch, dead_letter).await;
                return Outcome::DeadLettered;
            }
            self.log_store_error(self.store_failed_attempt(&id, &attempt).await);
            if self
                .pause(backoff(config.retry_delay(), n, retry_after))
                .await
            {
                return Outcome::Stopped;
            }
        }
        unreachable!("the last attempt returns")
    }

    async fn send(&self, key: &SigningKey, batch: &Batch) -> Result<Answer, SendError> {
        let config = &self.record.config;
        let timestamp = time::OffsetDateTime::now_utc().unix_timestamp();
        let signature = key.sign(&batch.msg_id, timestamp, &batch.body);
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
        let h = |s: &str| HeaderValue::try_from(s).map_err(|e| SendError::Invalid(e.to_string()));
        headers.push((HeaderName::from_static("webhook-id"), h(&batch.msg_id)?));
        headers.push((
            HeaderName::from_static("webhook-timestamp"),
            h(&timestamp.to_string())?,
        ));
        headers.push((HeaderName::from_static("webhook-signature"), h(&signature)?));
        self.client
            .post_json(&config.url, &headers, batch.body.clone(), config.timeout())
            .await
    }

    async fn succeeded(
        &self,
        id: &WebhookId,
        attempt: &Attempt,
        batch: &Batch,
        dead_letter: Option<i64>,
    ) {
        self.count_request("success");
        let label = self.metrics.sink(&webhook_sink(id));
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
        let (store, id2, a) = (self.store.clone(), id.clone(), attempt.clone());
        let r = tokio::task::spawn_blocking(move || match dead_letter {
            Some(dl) => store.record_replayed(&id2, dl, &a),
            None => store.record_success(&id2, &a),
        })
        .await;
        self.log_store_error(r.unwrap_or(Err(crate::store::StoreError::Closed)));
        tracing::info!("Successfully delivered {} events to {id}", batch.count);
    }

    async fn failed(
        &self,
        id: &WebhookId,
        attempt: &Attempt,
        batch: &Batch,
        dead_letter: Option<i64>,
    ) {
        let label = self.metrics.sink(&webhook_sink(id));
        let events = events_array(&batch.body);
        let (store, id2, a) = (self.store.clone(), id.clone(), attempt.clone());
        let r = tokio::task::spawn_blocking(move || match dead_letter {
            Some(dl) => store.record_replay_failed(&id2, dl, &a),
            None => store.record_dead_letter(&id2, &a, &events),
        })
        .await;
        self.log_store_error(r.unwrap_or(Err(crate::store::StoreError::Closed)));
        if dead_letter.is_none() {
            self.metrics
                .dead_lettered
                .get_or_create(&label)
                .inc_by(batch.count.into());
        }
        tracing::error!(
            "Failed to deliver events to {id} after {} attempts",
            attempt.attempt
        );
    }

    async fn gone(&self, id: &WebhookId, attempt: &Attempt) {
        let (store, id2, a) = (self.store.clone(), id.clone(), attempt.clone());
        let r = tokio::task::spawn_blocking(move || {
            store.record_failed_attempt(&id2, &a)?;
            store.set_webhook_enabled(&id2, false).map(|_| ())
        })
        .await;
        self.log_store_error(r.unwrap_or(Err(crate::store::StoreError::Closed)));
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
        self.store
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
                sink: webhook_sink(&self.record.id()),
                outcome,
            })
            .inc();
    }

    /// Sends the dead letters marked for replay, oldest first, each with the usual retries.
    async fn replay_dead_letters(&self) -> Outcome {
        let id = self.record.id();
        loop {
            let id2 = id.clone();
            let pending = match self
                .store
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
                if let o @ (Outcome::Stopped | Outcome::Gone) =
                    self.deliver(&batch, Some(dl.id)).await
                {
                    return o;
                }
            }
        }
    }

    fn dead_letter_batch(&self, dl: &DeadLetter) -> Batch {
        let texts: Vec<String> = dl.events.iter().map(|e| e.to_string()).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Batch {
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

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// The `events` array of an envelope, as text, for the dead-letter table.
fn events_array(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    v.get("events")
        .map(|e| e.to_string())
        .unwrap_or_else(|| "[]".into())
}

/// The wait before retry `n` (1-based): `retry_delay * 2^(n-1)` with ±25% jitter so that many
/// appliances behind one receiver do not retry in step, and never less than the receiver's
/// `Retry-After`.
pub fn backoff(retry_delay: Duration, n: u32, retry_after: Option<Duration>) -> Duration {
    let base = retry_delay
        .saturating_mul(1u32 << (n - 1).min(20))
        .min(MAX_BACKOFF);
    let jitter = rand::thread_rng().gen_range(0.75..=1.25);
    let wait = base.mul_f64(jitter).min(MAX_BACKOFF);
    match retry_after {
        Some(ra) => wait.max(ra),
        None => wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_bounded_jitter_and_honours_retry_after() {
        let d = Duration::from_secs(1);
        for n in 1..=5u32 {
            let base = 2f64.powi(n as i32 - 1);
            let w = backoff(d, n, None).as_secs_f64();
            assert!(
                w >= base * 0.75 - 1e-9 && w <= base * 1.25 + 1e-9,
                "n={n} w={w}"
            );
        }
        assert!(backoff(d, 1, Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        assert!(backoff(Duration::from_secs(60), 10, None) <= MAX_BACKOFF);
    }
}
