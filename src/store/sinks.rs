//! What the store keeps for sinks: webhook configurations, per-sink cursors, delivery statistics, the
//! log of delivery attempts, and the dead letters.
//!
//! A sink's cursor is the sequence number of the last event it has acknowledged (or skipped by its
//! filter). It moves only forward, in the same transaction that records the acknowledgement, so the
//! statistics and the cursor never disagree after a crash.

use rusqlite::{params, OptionalExtension, Row, Transaction};
use serde::Serialize;

use super::outbox::last_seq;
use super::webhook::{SigningKey, WebhookConfig, WebhookId};
use super::{now_text, Durability, Result, Store, StoreError};
use crate::events::{EventFilter, Seq};

/// Where a webhook came from; config-file webhooks are re-applied at every start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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
    fn parse(s: &str) -> Origin {
        match s {
            "config" => Origin::Config,
            "stream" => Origin::Stream,
            _ => Origin::Api,
        }
    }
}

/// FaceCV's `statistics`, counted in events, plus the attempts behind them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
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
    pub fn signing_key(&self) -> SigningKey {
        SigningKey::parse(&self.secret).expect("stored secrets were validated when stored")
    }
}

/// One HTTP request to a webhook, as `GET /api/v1/webhooks/{id}/deliveries` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Attempt {
    pub msg_id: String,
    pub attempt: u32,
    pub first_seq: Seq,
    pub last_seq: Seq,
    pub events: u32,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: f64,
    pub at: String,
}

/// A batch every retry failed for; kept whole so it can be replayed after its events are pruned.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub id: i64,
    pub first_seq: Seq,
    pub last_seq: Seq,
    pub event_count: u32,
    /// The event objects as they were sent.
    pub events: Vec<serde_json::Value>,
    pub error: String,
    pub created_at: String,
    pub replay_pending: bool,
}

/// The cursor name of a webhook sink.
/// The MQTT bridge's cursor.
pub const MQTT_SINK: &str = "mqtt";
/// The GPIO actions' cursor.
pub const ACTIONS_SINK: &str = "actions";

pub fn webhook_sink(id: &WebhookId) -> String {
    format!("webhook:{id}")
}

fn record_from_row(r: &Row<'_>) -> rusqlite::Result<WebhookRecord> {
    let config: String = r.get(0)?;
    let config: WebhookConfig = serde_json::from_str(&config).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })?;
    let origin: String = r.get(2)?;
    Ok(WebhookRecord {
        config,
        secret: r.get(1)?,
        origin: Origin::parse(&origin),
        created_at: r.get(3)?,
        stats: WebhookStats {
            total_sent: r.get::<_, i64>(4)? as u64,
            success_count: r.get::<_, i64>(5)? as u64,
            failed_count: r.get::<_, i64>(6)? as u64,
            attempts: r.get::<_, i64>(7)? as u64,
            failed_attempts: r.get::<_, i64>(8)? as u64,
        },
    })
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
    Ok(tx
        .query_row(
            &format!("{SELECT_WEBHOOK} WHERE id = ?1"),
            [id.as_str()],
            record_from_row,
        )
        .optional()?)
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
    tx.execute(
        "INSERT OR REPLACE INTO sink_cursors (sink, seq, dropped) VALUES (?1, ?2, 0)",
        params![webhook_sink(&id), last_seq(tx)?.0],
    )?;
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
            tx.execute(
                "DELETE FROM sink_cursors WHERE sink = ?1",
                [webhook_sink(id)],
            )?;
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

    pub fn webhooks(&self) -> Result<Vec<WebhookRecord>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached(&format!("{SELECT_WEBHOOK} ORDER BY created_at, id"))?;
            let rows = stmt.query_map([], record_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// A sink's cursor, or `None` if the sink is unknown.
    pub fn cursor(&self, sink: &str) -> Result<Option<Seq>> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT seq FROM sink_cursors WHERE sink = ?1",
                [sink],
                |r| r.get(0).map(Seq),
            )
            .optional()?)
        })
    }

    /// A sink's cursor, created at the newest event if the sink is new: like a new webhook, a new
    /// sink receives what is recorded from now on.
    pub fn ensure_cursor(&self, sink: &str) -> Result<Seq> {
        self.write(Durability::Events, |tx| {
            tx.execute(
                "INSERT OR IGNORE INTO sink_cursors (sink, seq, dropped) VALUES (?1, ?2, 0)",
                params![sink, last_seq(tx)?.0],
            )?;
            Ok(tx.query_row(
                "SELECT seq FROM sink_cursors WHERE sink = ?1",
                [sink],
                |r| r.get(0).map(Seq),
            )?)
        })
    }

    /// Forgets a sink's cursor, so that events it never had no longer wait for it. True if it
    /// existed.
    pub fn delete_cursor(&self, sink: &str) -> Result<bool> {
        self.write(Durability::Events, |tx| {
            Ok(tx.execute("DELETE FROM sink_cursors WHERE sink = ?1", [sink])? > 0)
        })
    }

    /// Moves a sink's cursor forward (never back) past events it has skipped.
    pub fn advance_cursor(&self, sink: &str, seq: Seq) -> Result<()> {
        self.write(Durability::Bookkeeping, |tx| advance(tx, sink, seq))
    }

    /// Makes a webhook deliver again every event still stored from `from` on.
    pub fn rewind_webhook(&self, id: &WebhookId, from: Seq) -> Result<()> {
        self.write(Durability::Events, |tx| {
            let n = tx.execute(
                "UPDATE sink_cursors SET seq = ?2 WHERE sink = ?1",
                params![webhook_sink(id), from.0 - 1],
            )?;
            if n == 0 {
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

    /// Records an acknowledged batch and moves the cursor past it, in one transaction.
    pub fn record_success(&self, id: &WebhookId, attempt: &Attempt) -> Result<()> {
        self.write(Durability::Bookkeeping, |tx| {
            insert_attempt(tx, id, attempt)?;
            tx.execute(
                "UPDATE webhooks SET attempts = attempts + 1, total_sent = total_sent + ?2,
                 success_count = success_count + ?2 WHERE id = ?1",
                params![id.as_str(), attempt.events],
            )?;
            advance(tx, &webhook_sink(id), attempt.last_seq)
        })
    }

    /// Moves a batch whose retries ran out to the dead letters, and the cursor past it.
    pub fn record_dead_letter(
        &self,
        id: &WebhookId,
        attempt: &Attempt,
        events_json: &str,
    ) -> Result<()> {
        self.write(Durability::Events, |tx| {
            insert_attempt(tx, id, attempt)?;
            tx.execute(
                "UPDATE webhooks SET attempts = attempts + 1, failed_attempts = failed_attempts + 1,
                 total_sent = total_sent + ?2, failed_count = failed_count + ?2 WHERE id = ?1",
                params![id.as_str(), attempt.events],
            )?;
            tx.execute(
                "INSERT INTO dead_letters (webhook_id, first_seq, last_seq, event_count, events, error, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id.as_str(),
                    attempt.first_seq.0,
                    attempt.last_seq.0,
                    attempt.events,
                    events_json,
                    attempt.error.as_deref().unwrap_or("failed"),
                    now_text()
                ],
            )?;
            advance(tx, &webhook_sink(id), attempt.last_seq)
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
                let events: String = r.get(4)?;
                Ok(DeadLetter {
                    id: r.get(0)?,
                    first_seq: Seq(r.get(1)?),
                    last_seq: Seq(r.get(2)?),
                    event_count: r.get(3)?,
                    events: serde_json::from_str(&events).unwrap_or_default(),
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

    /// Events after a sink's cursor that it will send (its filter applied), and those it lost to
    /// the quota.
    pub fn sink_backlog(&self, sink: &str, filter: EventFilter<'_>) -> Result<(u64, u64)> {
        self.read(|c| {
            let row: Option<(i64, i64)> = c
                .query_row(
                    "SELECT seq, dropped FROM sink_cursors WHERE sink = ?1",
                    [sink],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((cursor, dropped)) = row else {
                return Ok((0, 0));
            };
            let sql = format!("SELECT COUNT(*) FROM events WHERE seq > ?1{}", filter.sql());
            let backlog: i64 = c.query_row(&sql, [cursor], |r| r.get(0))?;
            Ok((backlog as u64, dropped as u64))
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

fn advance(tx: &Transaction<'_>, sink: &str, seq: Seq) -> Result<()> {
    tx.execute(
        "UPDATE sink_cursors SET seq = MAX(seq, ?2) WHERE sink = ?1",
        params![sink, seq.0],
    )?;
    Ok(())
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
