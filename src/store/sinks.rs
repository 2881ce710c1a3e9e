//! What the store keeps for sinks: webhook configurations, per-sink cursors, delivery statistics, the
//! log of delivery attempts, and the dead letters.
//!
//! The cursors themselves, and what they mean, are [`super::subscription`]'s: a webhook's outcome
//! is written here, in the transaction that moves its cursor there ([`write_receipt`]).

use rusqlite::{params, OptionalExtension, Row, Transaction};
use serde::Serialize;

use super::subscription::{self, Receipt, SinkName};
use super::webhook::{SigningKey, WebhookConfig, WebhookId};
use super::{now_text, Durability, Result, Store, StoreError};
use crate::events::Seq;

/// Where a webhook came from; config-file webhooks are re-applied at every start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Config,
    Api,
    Stream,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Config => "config",
            Origin::Api => "api",
            Origin::Stream => "stream",
        }
    }
    /// The stored text back; anything else was not written by this binary and is refused.
    fn parse(s: &str) -> Option<Origin> {
        match s {
            "config" => Some(Origin::Config),
            "api" => Some(Origin::Api),
            "stream" => Some(Origin::Stream),
            _ => None,
        }
    }
}

/// FaceCV's `statistics`, counted in events, plus the attempts behind them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct WebhookStats {
    /// Events that reached an outcome: delivered or dead-lettered.
    pub total_sent: u64,
    /// Events the receiver acknowledged with a 2xx.
    pub success_count: u64,
    /// Events that went to the dead letters after every retry failed.
    pub failed_count: u64,
    /// HTTP requests made, retries included.
    pub attempts: u64,
    pub failed_attempts: u64,
}

#[derive(Debug, Clone)]
pub struct WebhookRecord {
    /// The configuration, with `secret` left out.
    pub config: WebhookConfig,
    pub secret: String,
    pub origin: Origin,
    pub created_at: String,
    pub stats: WebhookStats,
}

impl WebhookRecord {
    pub fn id(&self) -> WebhookId {
        self.config.id()
    }
    /// The key to sign with. Secrets are checked before they are stored, so an error means the
    /// row was changed behind the appliance's back: the webhook is not run until its secret is
    /// rotated, and says why.
    pub fn signing_key(&self) -> Result<SigningKey> {
        SigningKey::parse(&self.secret).map_err(|e| StoreError::BadSecret {
            webhook: self.config.webhook_id.clone(),
            reason: e.to_string(),
        })
    }
}

/// One HTTP request to a webhook, as `GET /api/v1/webhooks/{id}/deliveries` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Attempt {
    pub msg_id: String,
    pub attempt: u32,
    #[schema(value_type = i64)]
    pub first_seq: Seq,
    #[schema(value_type = i64)]
    pub last_seq: Seq,
    pub events: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: f64,
    pub at: String,
}

/// A batch every retry failed for; kept whole so it can be replayed after its events are pruned.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: i64,
    #[schema(value_type = i64)]
    pub first_seq: Seq,
    #[schema(value_type = i64)]
    pub last_seq: Seq,
    pub event_count: u32,
    /// The event objects as they were sent.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<serde_json::Value>,
    pub error: String,
    pub created_at: String,
    pub replay_pending: bool,
}

/// A webhook row as read, before its origin is checked.
type RawRecord = (WebhookRecord, String);

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<RawRecord> {
    let config: String = r.get(0)?;
    let config: WebhookConfig = serde_json::from_str(&config).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let origin: String = r.get(2)?;
    let record = WebhookRecord {
        config,
        secret: r.get(1)?,
        // Replaced by the checked origin in `checked`.
        origin: Origin::Api,
        created_at: r.get(3)?,
        stats: WebhookStats {
            total_sent: r.get::<_, i64>(4)? as u64,
            success_count: r.get::<_, i64>(5)? as u64,
            failed_count: r.get::<_, i64>(6)? as u64,
            attempts: r.get::<_, i64>(7)? as u64,
            failed_attempts: r.get::<_, i64>(8)? as u64,
        },
    };
    Ok((record, origin))
}

/// The record with its origin, or the error that says which origin was found.
fn checked((mut record, origin): RawRecord) -> Result<WebhookRecord> {
    record.origin = Origin::parse(&origin).ok_or_else(|| StoreError::UnknownOrigin {
        webhook: record.config.webhook_id.clone(),
        found: origin,
    })?;
    Ok(record)
}

const SELECT_WEBHOOK: &str =
    "SELECT config, secret, origin, created_at, total_sent, success_count, \
     failed_count, attempts, failed_attempts FROM webhooks";

fn config_json(config: &WebhookConfig) -> String {
    let mut stored = config.clone();
    stored.secret = None;
    serde_json::to_string(&stored).expect("a webhook config serialises")
}

fn fetch(tx: &rusqlite::Connection, id: &WebhookId) -> Result<Option<WebhookRecord>> {
    tx.query_row(
        &format!("{SELECT_WEBHOOK} WHERE id = ?1"),
        [id.as_str()],
        record_from_row,
    )
    .optional()?
    .map(checked)
    .transpose()
}

fn insert(tx: &Transaction<'_>, config: &WebhookConfig, origin: Origin) -> Result<WebhookRecord> {
    let id = config.id();
    let secret = config
        .secret
        .clone()
        .unwrap_or_else(SigningKey::generate_secret);
    tx.execute(
        "INSERT INTO webhooks (id, config, secret, origin, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            id.as_str(),
            config_json(config),
            secret,
            origin.as_str(),
            now_text()
        ],
    )?;
    // A new webhook receives what is recorded from now on; older events can be sent with replay.
    subscription::create_cursor(tx, &SinkName::webhook(&id))?;
    fetch(tx, &id)?.ok_or_else(|| StoreError::NotFound(format!("webhook {id}")))
}

impl Store {
    /// Stores a new webhook; its cursor starts at the newest event.
    pub fn create_webhook(&self, config: &WebhookConfig, origin: Origin) -> Result<WebhookRecord> {
        let id = config.id();
        self.write(Durability::Events, |tx| {
            if fetch(tx, &id)?.is_some() {
                return Err(StoreError::Conflict(format!("webhook {id}")));
            }
            insert(tx, config, origin)
        })
    }

    /// Applies a webhook from the config file: created the first time, updated (keeping its cursor,
    /// statistics and, unless the file sets one, its secret) at every later start.
    pub fn apply_config_webhook(&self, config: &WebhookConfig) -> Result<WebhookRecord> {
        let id = config.id();
        self.write(Durability::Events, |tx| match fetch(tx, &id)? {
            None => insert(tx, config, Origin::Config),
            Some(_) => {
                update(tx, &id, config)?;
                fetch(tx, &id)?.ok_or_else(|| StoreError::NotFound(format!("webhook {id}")))
            }
        })
    }

    /// Replaces a webhook's configuration; its cursor and statistics stay.
    pub fn replace_webhook(&self, id: &WebhookId, config: &WebhookConfig) -> Result<WebhookRecord> {
        self.write(Durability::Events, |tx| {
            if fetch(tx, id)?.is_none() {
                return Err(StoreError::NotFound(format!("webhook {id}")));
            }
            update(tx, id, config)?;
            fetch(tx, id)?.ok_or_else(|| StoreError::NotFound(format!("webhook {id}")))
        })
    }

    pub fn set_webhook_enabled(&self, id: &WebhookId, enabled: bool) -> Result<WebhookRecord> {
        self.write(Durability::Events, |tx| {
            let mut record =
                fetch(tx, id)?.ok_or_else(|| StoreError::NotFound(format!("webhook {id}")))?;
            record.config.enabled = enabled;
            tx.execute(
                "UPDATE webhooks SET config = ?2 WHERE id = ?1",
                params![id.as_str(), config_json(&record.config)],
            )?;
            Ok(record)
        })
    }

    pub fn set_webhook_secret(&self, id: &WebhookId, secret: &str) -> Result<()> {
        self.write(Durability::Events, |tx| {
            match tx.execute(
                "UPDATE webhooks SET secret = ?2 WHERE id = ?1",
                params![id.as_str(), secret],
            )? {
                0 => Err(StoreError::NotFound(format!("webhook {id}"))),
                _ => Ok(()),
            }
        })
    }

    /// Deletes a webhook with its cursor, attempts and dead letters.
    pub fn delete_webhook(&self, id: &WebhookId) -> Result<()> {
        self.write(Durability::Events, |tx| {
            let n = tx.execute("DELETE FROM webhooks WHERE id = ?1", [id.as_str()])?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("webhook {id}")));
            }
            subscription::delete_cursor(tx, &SinkName::webhook(id))?;
            tx.execute(
                "DELETE FROM delivery_attempts WHERE webhook_id = ?1",
                [id.as_str()],
            )?;
            tx.execute(
                "DELETE FROM dead_letters WHERE webhook_id = ?1",
                [id.as_str()],
            )?;
            Ok(())
        })
    }

    pub fn webhook(&self, id: &WebhookId) -> Result<WebhookRecord> {
        self.read(|c| fetch(c, id)?.ok_or_else(|| StoreError::NotFound(format!("webhook {id}"))))
    }

    /// Every webhook that can be read. One whose row this binary cannot make sense of is logged
    /// and left out (not run, not listed; `GET /webhooks/{id}` names the problem), so that it
    /// does not keep the appliance or the other webhooks from running.
    pub fn webhooks(&self) -> Result<Vec<WebhookRecord>> {
        let raw = self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("{SELECT_WEBHOOK} ORDER BY created_at, id"))?;
            let rows = stmt.query_map([], record_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })?;
        let mut records = Vec::with_capacity(raw.len());
        for r in raw {
            match checked(r) {
                Ok(record) => records.push(record),
                Err(e) => tracing::error!(error = %e, "a stored webhook is left out"),
            }
        }
        Ok(records)
    }

    /// Makes a webhook deliver again every event still stored from `from` on.
    pub fn rewind_webhook(&self, id: &WebhookId, from: Seq) -> Result<()> {
        self.write(Durability::Events, |tx| {
            if !subscription::rewind_cursor(tx, &SinkName::webhook(id), from)? {
                return Err(StoreError::NotFound(format!("webhook {id}")));
            }
            Ok(())
        })
    }

    /// Records one failed request; the batch stays where it is.
    pub fn record_failed_attempt(&self, id: &WebhookId, attempt: &Attempt) -> Result<()> {
        self.write(Durability::Bookkeeping, |tx| {
            insert_attempt(tx, id, attempt)?;
            tx.execute(
                "UPDATE webhooks SET attempts = attempts + 1, failed_attempts = failed_attempts + 1 WHERE id = ?1",
                [id.as_str()],
            )?;
            Ok(())
        })
    }

    /// A replayed dead letter was delivered: it leaves the table and counts as a success.
    pub fn record_replayed(
        &self,
        id: &WebhookId,
        dead_letter: i64,
        attempt: &Attempt,
    ) -> Result<()> {
        self.write(Durability::Bookkeeping, |tx| {
            insert_attempt(tx, id, attempt)?;
            tx.execute(
                "UPDATE webhooks SET attempts = attempts + 1, success_count = success_count + ?2,
                 failed_count = MAX(failed_count - ?2, 0) WHERE id = ?1",
                params![id.as_str(), attempt.events],
            )?;
            tx.execute("DELETE FROM dead_letters WHERE id = ?1", [dead_letter])?;
            Ok(())
        })
    }

    /// A replayed dead letter failed again: it stays, no longer marked for replay.
    pub fn record_replay_failed(
        &self,
        id: &WebhookId,
        dead_letter: i64,
        attempt: &Attempt,
    ) -> Result<()> {
        self.write(Durability::Bookkeeping, |tx| {
            insert_attempt(tx, id, attempt)?;
            tx.execute(
                "UPDATE webhooks SET attempts = attempts + 1, failed_attempts = failed_attempts + 1 WHERE id = ?1",
                [id.as_str()],
            )?;
            tx.execute(
                "UPDATE dead_letters SET replay = 0, error = ?2 WHERE id = ?1",
                params![dead_letter, attempt.error.as_deref().unwrap_or("failed")],
            )?;
            Ok(())
        })
    }

    /// Marks a webhook's dead letters for replay; returns how many.
    pub fn mark_dead_letters_for_replay(&self, id: &WebhookId) -> Result<usize> {
        self.write(Durability::Events, |tx| {
            if fetch(tx, id)?.is_none() {
                return Err(StoreError::NotFound(format!("webhook {id}")));
            }
            Ok(tx.execute(
                "UPDATE dead_letters SET replay = 1 WHERE webhook_id = ?1",
                [id.as_str()],
            )?)
        })
    }

    /// A webhook's dead letters, oldest first; with `pending_only`, those marked for replay.
    pub fn dead_letters(
        &self,
        id: &WebhookId,
        pending_only: bool,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, first_seq, last_seq, event_count, events, error, created_at, replay
                 FROM dead_letters WHERE webhook_id = ?1 AND (replay = 1 OR ?2 = 0) ORDER BY id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![id.as_str(), pending_only, limit as i64], |r| {
                Ok(DeadLetter {
                    id: r.get(0)?,
                    first_seq: Seq(r.get(1)?),
                    last_seq: Seq(r.get(2)?),
                    event_count: r.get(3)?,
                    events: super::json_column(r, 4)?,
                    error: r.get(5)?,
                    created_at: r.get(6)?,
                    replay_pending: r.get(7)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    pub fn dead_letter_count(&self, id: &WebhookId) -> Result<u64> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT COUNT(*) FROM dead_letters WHERE webhook_id = ?1",
                [id.as_str()],
                |r| r.get::<_, i64>(0),
            )? as u64)
        })
    }

    /// The most recent attempts for a webhook, newest first.
    pub fn attempts(&self, id: &WebhookId, limit: usize) -> Result<Vec<Attempt>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT msg_id, attempt, first_seq, last_seq, events, status, error, latency_ms, at
                 FROM delivery_attempts WHERE webhook_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![id.as_str(), limit as i64], |r| {
                Ok(Attempt {
                    msg_id: r.get(0)?,
                    attempt: r.get(1)?,
                    first_seq: Seq(r.get(2)?),
                    last_seq: Seq(r.get(3)?),
                    events: r.get(4)?,
                    status: r.get(5)?,
                    error: r.get(6)?,
                    latency_ms: r.get(7)?,
                    at: r.get(8)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Keeps the newest `keep` attempts of each webhook: the log is for diagnosis, not an archive.
    pub fn trim_attempts(&self, keep: usize) -> Result<usize> {
        self.write(Durability::Bookkeeping, |tx| {
            Ok(tx.execute(
                "DELETE FROM delivery_attempts WHERE id IN (
                    SELECT id FROM (
                        SELECT id, ROW_NUMBER() OVER (PARTITION BY webhook_id ORDER BY id DESC) AS n
                        FROM delivery_attempts) WHERE n > ?1)",
                [keep as i64],
            )?)
        })
    }
}

fn update(tx: &Transaction<'_>, id: &WebhookId, config: &WebhookConfig) -> Result<()> {
    tx.execute(
        "UPDATE webhooks SET config = ?2 WHERE id = ?1",
        params![id.as_str(), config_json(config)],
    )?;
    if let Some(secret) = &config.secret {
        tx.execute(
            "UPDATE webhooks SET secret = ?2 WHERE id = ?1",
            params![id.as_str(), secret],
        )?;
    }
    Ok(())
}

/// What a webhook's acknowledgement records besides its cursor: the attempt and statistics of a
/// delivered batch, or those of a batch whose retries ran out together with its dead letter.
pub(super) fn write_receipt(tx: &Transaction<'_>, receipt: &Receipt) -> Result<()> {
    match receipt {
        Receipt::Cursor => Ok(()),
        Receipt::Delivered { webhook, attempt } => {
            insert_attempt(tx, webhook, attempt)?;
            tx.execute(
                "UPDATE webhooks SET attempts = attempts + 1, total_sent = total_sent + ?2,
                 success_count = success_count + ?2 WHERE id = ?1",
                params![webhook.as_str(), attempt.events],
            )?;
            Ok(())
        }
        Receipt::DeadLettered {
            webhook,
            attempt,
            events,
        } => {
            insert_attempt(tx, webhook, attempt)?;
            tx.execute(
                "UPDATE webhooks SET attempts = attempts + 1, failed_attempts = failed_attempts + 1,
                 total_sent = total_sent + ?2, failed_count = failed_count + ?2 WHERE id = ?1",
                params![webhook.as_str(), attempt.events],
            )?;
            tx.execute(
                "INSERT INTO dead_letters (webhook_id, first_seq, last_seq, event_count, events, error, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    webhook.as_str(),
                    attempt.first_seq.0,
                    attempt.last_seq.0,
                    attempt.events,
                    events,
                    attempt.error.as_deref().unwrap_or("failed"),
                    now_text()
                ],
            )?;
            Ok(())
        }
    }
}

fn insert_attempt(tx: &Transaction<'_>, id: &WebhookId, a: &Attempt) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO delivery_attempts (webhook_id, msg_id, attempt, first_seq, last_seq, events, status, error, latency_ms, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        id.as_str(),
        a.msg_id,
        a.attempt,
        a.first_seq.0,
        a.last_seq.0,
        a.events,
        a.status,
        a.error,
        a.latency_ms,
        a.at
    ])?;
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::*;

    fn store_with(dir: &std::path::Path, ids: &[&str]) -> Store {
        let store = crate::store::open_for_test(dir);
        for id in ids {
            let hook = WebhookConfig::new(id, "http://127.0.0.1:9/");
            store.create_webhook(&hook, Origin::Api).unwrap();
        }
        store
    }

    fn id(s: &str) -> WebhookId {
        WebhookId::parse(s).unwrap()
    }

    #[test]
    fn an_unknown_origin_is_an_error_naming_it_and_the_other_webhooks_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &["good", "odd"]);
        store
            .writer()
            .execute("UPDATE webhooks SET origin = 'fleet' WHERE id = 'odd'", [])
            .unwrap();
        let err = store.webhook(&id("odd")).unwrap_err();
        assert!(
            matches!(&err, StoreError::UnknownOrigin { webhook, found } if webhook == "odd" && found == "fleet"),
            "{err}"
        );
        assert!(err.to_string().contains("\"fleet\""), "{err}");
        let listed: Vec<String> = store
            .webhooks()
            .unwrap()
            .into_iter()
            .map(|r| r.config.webhook_id)
            .collect();
        assert_eq!(
            listed,
            ["good"],
            "the unreadable one is left out, not made `api`"
        );
        store.delete_webhook(&id("odd")).unwrap();
    }

    #[test]
    fn a_stored_secret_that_cannot_be_used_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with(dir.path(), &["hook"]);
        assert!(store.webhook(&id("hook")).unwrap().signing_key().is_ok());
        store
            .writer()
            .execute(
                "UPDATE webhooks SET secret = 'whsec_AAAA' WHERE id = 'hook'",
                [],
            )
            .unwrap();
        let record = store.webhook(&id("hook")).unwrap();
        let err = record.signing_key().unwrap_err();
        assert!(
            matches!(&err, StoreError::BadSecret { webhook, reason } if webhook == "hook" && reason.contains("got 3")),
            "{err}"
        );
        store
            .set_webhook_secret(&id("hook"), &SigningKey::generate_secret())
            .unwrap();
        assert!(store.webhook(&id("hook")).unwrap().signing_key().is_ok());
    }
}
