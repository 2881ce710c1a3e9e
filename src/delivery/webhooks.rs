//! The webhooks sink: [`Webhooks`] keeps one [`webhook::Worker`] running per enabled webhook and
//! restarts it whenever the webhook changes. Workers share one HTTP client; each follows the outbox
//! through its own subscription (`webhook:<id>`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::shutdown::Shutdown;
use tokio::task::JoinHandle;

use super::DeliveryConfig;
use super::{http, webhook, Sink};
use crate::metrics::Metrics;
use crate::store::webhook::WebhookId;
use crate::store::{Outbox, Store};

/// How often delivered events past retention and old delivery attempts are pruned.
const MAINTENANCE_EVERY: Duration = Duration::from_secs(60);
/// Delivery attempts kept per webhook for `GET /webhooks/{id}/deliveries`.
const ATTEMPTS_KEPT: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum WebhooksError {
    #[error(transparent)]
    Tls(#[from] http::TlsError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

struct Running {
    stop: Shutdown,
    task: JoinHandle<()>,
}

/// The running webhooks.
pub struct Webhooks {
    store: Store,
    outbox: Outbox,
    client: http::HttpClient,
    metrics: Arc<Metrics>,
    workers: Mutex<HashMap<WebhookId, Running>>,
    /// Serialises worker restarts, so that two API calls never leave two workers for one webhook.
    changing: tokio::sync::Mutex<()>,
    /// Why a webhook is not running although it is enabled, for its status and the stats page.
    problems: Mutex<HashMap<WebhookId, String>>,
    stop: Shutdown,
}

impl Webhooks {
    /// Starts a worker for every enabled webhook in the store, and the maintenance task.
    pub fn start(
        outbox: Outbox,
        config: &DeliveryConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Webhooks>, WebhooksError> {
        let delivery = Arc::new(Webhooks {
            store: outbox.store().clone(),
            outbox,
            client: http::HttpClient::new(config.ca_file.as_deref())?,
            metrics,
            workers: Mutex::new(HashMap::new()),
            changing: tokio::sync::Mutex::new(()),
            problems: Mutex::new(HashMap::new()),
            stop: Shutdown::new(),
        });
        for record in delivery.store.webhooks()? {
            delivery.spawn_if_enabled(&record.id());
        }
        tokio::spawn(maintain(delivery.store.clone(), delivery.stop.clone()));
        Ok(delivery)
    }

    pub fn client(&self) -> &http::HttpClient {
        &self.client
    }

    /// Brings the worker of one webhook in line with the store: (re)started if the webhook exists
    /// and is enabled, stopped otherwise. Call after every change to a webhook.
    pub async fn sync(&self, id: &WebhookId) {
        self.with_worker_stopped(id, || Ok(()))
            .await
            .expect("a no-op cannot fail");
    }

    /// Stops the webhook's worker and waits until it has made its last write, runs `change`, then
    /// starts the worker again as the store now says. Changes to a sink's cursor (replay) must go
    /// through here: a worker still finishing a batch would otherwise move the cursor back past
    /// the change.
    pub async fn with_worker_stopped<T>(
        &self,
        id: &WebhookId,
        change: impl FnOnce() -> crate::store::Result<T>,
    ) -> crate::store::Result<T> {
        let _one_at_a_time = self.changing.lock().await;
        let old = lock(&self.workers).remove(id);
        if let Some(old) = old {
            old.stop.cancel();
            let _ = old.task.await;
        }
        let result = change();
        self.spawn_if_enabled(id);
        result
    }

    fn spawn_if_enabled(&self, id: &WebhookId) {
        lock(&self.problems).remove(id);
        if self.stop.is_cancelled() {
            return;
        }
        let ready = self
            .store
            .webhook(id)
            .and_then(|r| Ok((r.signing_key()?, r)));
        let (key, record) = match ready {
            Ok((key, r)) if r.config.enabled => (key, r),
            Ok(_) | Err(crate::store::StoreError::NotFound(_)) => return,
            Err(e) => {
                tracing::error!(webhook = %id, error = %e, "cannot start the webhook's worker");
                lock(&self.problems).insert(id.clone(), e.to_string());
                return;
            }
        };
        let stop = self.stop.child_token();
        let worker = webhook::Worker {
            record,
            key,
            outbox: self.outbox.clone(),
            client: self.client.clone(),
            metrics: self.metrics.clone(),
            stop: stop.clone(),
        };
        let task = tokio::spawn(worker.run());
        lock(&self.workers).insert(id.clone(), Running { stop, task });
    }

    /// Why an enabled webhook is not running (a stored row it cannot use), if it is not.
    pub fn problem(&self, id: &WebhookId) -> Option<String> {
        lock(&self.problems).get(id).cloned()
    }

    /// True while the workers run; FaceCV's `manager_running`.
    pub fn running(&self) -> bool {
        !self.stop.is_cancelled()
    }

    /// Stops every worker: requests in flight are abandoned and their cursors stay where they were.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks: Vec<JoinHandle<()>> = lock(&self.workers).drain().map(|(_, r)| r.task).collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Sink for Webhooks {
    fn name(&self) -> &str {
        "webhooks"
    }

    fn shutdown(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(Webhooks::shutdown(self))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

async fn maintain(store: Store, stop: Shutdown) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(MAINTENANCE_EVERY) => {}
        }
        let r = store
            .run(|s| Ok((s.prune_delivered()?, s.trim_attempts(ATTEMPTS_KEPT)?)))
            .await;
        match r {
            Ok((events, attempts)) if events + attempts > 0 => {
                tracing::debug!(events, attempts, "pruned delivered events and old attempts")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "store maintenance failed"),
        }
    }
}
