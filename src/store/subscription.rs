//! The one seam every sink follows the outbox through: a [`Subscription`] waits for the head,
//! hands out the next filtered batch after the sink's position, and takes the acknowledgement that
//! moves the sink's cursor. Webhooks, the MQTT bridge and the GPIO actions all use it; so does any
//! sink added later (see `delivery/mod.rs` for what a new sink takes).
//!
//! Guarantees, and the code that keeps them:
//! * **What a cursor means.** A sink's cursor (a row of `sink_cursors`, named by [`SinkName`]) is
//!   the sequence number up to which the sink is done with the outbox: every event at or below it
//!   was acknowledged by the sink's receiver, or passed over on purpose (the sink's filter, an
//!   event the broker refused, a stale GPIO event, a webhook batch sent to the dead letters).
//! * **At least once, in order per sink.** Batches come out oldest first, and only events the
//!   outbox has committed (the head moves after the commit, [`super::outbox`]). The cursor moves
//!   only by [`SinkCursor::acknowledge`], only forward (`MAX(seq, ?)`), and only as far as the sink
//!   says. A crash mid-batch leaves the cursor where the last acknowledgement put it: the batch in
//!   hand, and anything read ahead of the cursor, is delivered again at the next start; nothing
//!   is skipped.
//! * **Bookkeeping with the cursor.** What a sink records about an acknowledgement (a webhook's
//!   statistics, attempt log, dead letter) is written in the cursor's transaction ([`Receipt`]),
//!   so statistics and cursor never disagree after a crash.
//! * **Reading ahead.** A subscription's position ([`Subscription::position`]) may run ahead of
//!   the stored cursor (MQTT keeps a window of events in flight); it starts at the stored cursor.
//! * **Creation and removal.** A cursor is created at the head, so a new sink receives what is
//!   recorded from then on (older events can be replayed for webhooks): with the webhook, in its
//!   transaction, or by [`Subscription::open`]. It is removed with its webhook, or by
//!   [`Store::retire_sink`] when a sink leaves the configuration (no `[mqtt]`, no GPIO actions or
//!   no GPIO), so that events it will never take no longer wait for it. A disabled sink keeps
//!   its cursor: events wait in the store for it, within the quota, which charges each sink for
//!   the undelivered events it drops.

use std::borrow::Cow;
use std::time::Duration;

use crate::shutdown::Shutdown;
use rusqlite::{params, OptionalExtension, Transaction};
use tokio::sync::watch;

use super::outbox::last_seq;
use super::sinks::Attempt;
use super::webhook::WebhookId;
use super::{Durability, Outbox, Result, Store};
use crate::events::{EventFilter, EventType, Seq, StoredEvent};

/// Pause after a store error before reading the outbox again.
const STORE_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// The name a sink's cursor is kept under; also the `sink` label of its metrics.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SinkName(Cow<'static, str>);

impl SinkName {
    /// The MQTT bridge.
    pub const MQTT: SinkName = SinkName::new("mqtt");
    /// The GPIO actions.
    pub const ACTIONS: SinkName = SinkName::new("actions");

    /// A sink that runs once per appliance. Names are for ever: a renamed sink is a new one, which
    /// starts at the head.
    pub const fn new(name: &'static str) -> SinkName {
        SinkName(Cow::Borrowed(name))
    }

    /// One webhook: `webhook:<id>`.
    pub fn webhook(id: &WebhookId) -> SinkName {
        SinkName(Cow::Owned(format!("webhook:{id}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SinkName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which events a sink wants, owned so that it can travel to the store's threads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `None`: every type.
    pub types: Option<Vec<EventType>>,
    /// `None`: every camera.
    pub cameras: Option<Vec<String>>,
}

impl Filter {
    pub fn as_filter(&self) -> EventFilter<'_> {
        EventFilter {
            types: self.types.as_deref(),
            cameras: self.cameras.as_deref(),
        }
    }
}

/// The events a read handed out, and how far it read.
#[derive(Debug)]
pub struct Batch {
    /// The events the filter let through, oldest first; empty when it let none through.
    pub events: Vec<StoredEvent>,
    /// Everything up to here was read: the last event when the read was full, otherwise the head
    /// seen before reading. Acknowledging `upto` also passes over the events the filter left out.
    pub upto: Seq,
}

/// What [`Subscription::next`] came back with.
#[derive(Debug)]
pub enum Next {
    Batch(Batch),
    /// The deadline passed with nothing new.
    Deadline,
    /// Stopped, or the outbox is gone.
    Stopped,
}

/// What a sink records with an acknowledgement, in the same transaction as its cursor.
#[derive(Debug, Clone)]
pub enum Receipt {
    /// Only the cursor: MQTT, the GPIO actions, events a webhook's filter left out.
    Cursor,
    /// A webhook batch the receiver acknowledged: its attempt and statistics.
    Delivered {
        webhook: WebhookId,
        attempt: Attempt,
    },
    /// A webhook batch whose retries ran out: its attempt, statistics and dead letter.
    DeadLettered {
        webhook: WebhookId,
        attempt: Attempt,
        /// The `events` array as it was sent.
        events: String,
    },
}

/// A sink's stored cursor: the acknowledgements, and what the stats pages read from it. Cheap to
/// clone, so that a sink's acknowledging task and its reading task can each hold one.
#[derive(Clone)]
pub struct SinkCursor {
    store: Store,
    sink: SinkName,
}

impl SinkCursor {
    pub fn sink(&self) -> &SinkName {
        &self.sink
    }

    /// Moves the cursor forward to `upto` (never back), writing `receipt` in the same transaction.
    pub async fn acknowledge(&self, upto: Seq, receipt: Receipt) -> Result<()> {
        let sink = self.sink.clone();
        self.store
            .run(move |s| s.acknowledge(&sink, upto, &receipt))
            .await
    }

    /// The stored cursor, or `None` if the sink's cursor was removed.
    pub fn stored(&self) -> Result<Option<Seq>> {
        self.store.cursor(&self.sink)
    }

    /// Events after the stored cursor that `filter` lets through, and those the quota took from
    /// this sink before it had them.
    pub fn backlog(&self, filter: EventFilter<'_>) -> Result<(u64, u64)> {
        self.store.sink_backlog(&self.sink, filter)
    }

    /// Events after `position` of `types`: the backlog of a sink that reads ahead of its stored
    /// cursor, counted from where it has really got to.
    pub fn backlog_after(&self, position: Seq, types: Option<&[EventType]>) -> Result<u64> {
        self.store.count_after(position, types)
    }
}

/// A sink following the outbox: its name, filter and position. One per running sink.
pub struct Subscription {
    cursor: SinkCursor,
    head: watch::Receiver<Seq>,
    filter: Filter,
    position: Seq,
}

impl Subscription {
    /// Follows `sink` from its stored cursor, created at the head if the sink is new.
    pub fn open(outbox: &Outbox, sink: SinkName, filter: Filter) -> Result<Subscription> {
        let store = outbox.store();
        let position = store.write(Durability::Events, |tx| {
            tx.execute(
                "INSERT OR IGNORE INTO sink_cursors (sink, seq, dropped) VALUES (?1, ?2, 0)",
                params![sink.as_str(), last_seq(tx)?.0],
            )?;
            stored_cursor(tx, &sink)?.ok_or_else(|| super::StoreError::NotFound(sink.to_string()))
        })?;
        Ok(Subscription::at(outbox, sink, filter, position))
    }

    /// Follows a sink whose cursor was made with it (a webhook's); `None` once it has been removed.
    pub async fn resume(
        outbox: &Outbox,
        sink: SinkName,
        filter: Filter,
    ) -> Result<Option<Subscription>> {
        let name = sink.clone();
        let stored = outbox.store().run(move |s| s.cursor(&name)).await?;
        Ok(stored.map(|position| Subscription::at(outbox, sink, filter, position)))
    }

    fn at(outbox: &Outbox, sink: SinkName, filter: Filter, position: Seq) -> Subscription {
        Subscription {
            cursor: SinkCursor {
                store: outbox.store().clone(),
                sink,
            },
            head: outbox.subscribe(),
            filter,
            position,
        }
    }

    pub fn sink(&self) -> &SinkName {
        &self.cursor.sink
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    /// A handle on the stored cursor, for a task that acknowledges apart from the reading one.
    pub fn cursor(&self) -> &SinkCursor {
        &self.cursor
    }

    /// How far this subscription has read; the next batch starts after it.
    pub fn position(&self) -> Seq {
        self.position
    }

    /// Reads on from `position`: MQTT starts each session again from what the broker settled.
    pub fn seek(&mut self, position: Seq) {
        self.position = position;
    }

    /// Moves the cursor: see [`SinkCursor::acknowledge`].
    pub async fn acknowledge(&self, upto: Seq, receipt: Receipt) -> Result<()> {
        self.cursor.acknowledge(upto, receipt).await
    }

    /// Waits until the head moves; false when the outbox is gone. Safe to cancel.
    pub async fn changed(&mut self) -> bool {
        self.head.changed().await.is_ok()
    }

    /// The next events after the position, at most `limit`, without waiting: `None` when the head
    /// is at the position. The position moves to the batch's `upto`.
    pub async fn try_next(&mut self, limit: usize) -> Result<Option<Batch>> {
        let head = *self.head.borrow_and_update();
        if head <= self.position {
            return Ok(None);
        }
        let (after, filter) = (self.position, self.filter.clone());
        let events = self
            .cursor
            .store
            .run(move |s| s.events_after(after, limit, filter.as_filter()))
            .await?;
        let upto = match events.last() {
            Some(last) if events.len() >= limit => last.seq,
            _ => head,
        };
        self.position = upto;
        Ok(Some(Batch { events, upto }))
    }

    /// Waits for the next batch (see [`Subscription::try_next`]) until `deadline`, if any. A store
    /// error is logged and the read tried again a moment later.
    pub async fn next(
        &mut self,
        limit: usize,
        deadline: Option<tokio::time::Instant>,
        stop: &Shutdown,
    ) -> Next {
        loop {
            match self.try_next(limit).await {
                Ok(Some(batch)) => return Next::Batch(batch),
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(sink = %self.sink(), error = %e, "cannot read the outbox");
                    tokio::select! {
                        _ = stop.cancelled() => return Next::Stopped,
                        _ = tokio::time::sleep(STORE_ERROR_PAUSE) => continue,
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return Next::Stopped,
                changed = self.head.changed() => if changed.is_err() { return Next::Stopped },
                _ = sleep_until(deadline) => return Next::Deadline,
            }
        }
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn stored_cursor(c: &rusqlite::Connection, sink: &SinkName) -> Result<Option<Seq>> {
    Ok(c.query_row(
        "SELECT seq FROM sink_cursors WHERE sink = ?1",
        [sink.as_str()],
        |r| r.get(0).map(Seq),
    )
    .optional()?)
}

/// A new sink's cursor, at the head, in the transaction that creates the sink (a webhook's).
pub(super) fn create_cursor(tx: &Transaction<'_>, sink: &SinkName) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO sink_cursors (sink, seq, dropped) VALUES (?1, ?2, 0)",
        params![sink.as_str(), last_seq(tx)?.0],
    )?;
    Ok(())
}

/// Removes a sink's cursor in the transaction that removes the sink; true if it existed.
pub(super) fn delete_cursor(tx: &Transaction<'_>, sink: &SinkName) -> Result<bool> {
    Ok(tx.execute("DELETE FROM sink_cursors WHERE sink = ?1", [sink.as_str()])? > 0)
}

/// Puts a sink's cursor just before `from`, so that it delivers again what is stored from there
/// (webhook replay); false if the sink has no cursor. Only with the sink stopped.
pub(super) fn rewind_cursor(tx: &Transaction<'_>, sink: &SinkName, from: Seq) -> Result<bool> {
    Ok(tx.execute(
        "UPDATE sink_cursors SET seq = ?2 WHERE sink = ?1",
        params![sink.as_str(), from.0 - 1],
    )? > 0)
}

fn advance(tx: &Transaction<'_>, sink: &SinkName, seq: Seq) -> Result<()> {
    tx.execute(
        "UPDATE sink_cursors SET seq = MAX(seq, ?2) WHERE sink = ?1",
        params![sink.as_str(), seq.0],
    )?;
    Ok(())
}

impl Store {
    /// A sink's cursor, or `None` if the sink is unknown.
    pub fn cursor(&self, sink: &SinkName) -> Result<Option<Seq>> {
        self.read(|c| stored_cursor(c, sink))
    }

    /// Removes the cursor of a sink that left the configuration, so that events it never had no
    /// longer wait for it; `why` says so in the log. True if it existed.
    pub fn retire_sink(&self, sink: &SinkName, why: &str) -> Result<bool> {
        let existed = self.write(Durability::Events, |tx| delete_cursor(tx, sink))?;
        if existed {
            tracing::info!(%sink, "{why}; its cursor is dropped");
        }
        Ok(existed)
    }

    /// Writes `receipt` and moves the cursor to `upto`, in one transaction.
    fn acknowledge(&self, sink: &SinkName, upto: Seq, receipt: &Receipt) -> Result<()> {
        let durability = match receipt {
            // A dead letter holds the only copy of its events once they are pruned.
            Receipt::DeadLettered { .. } => Durability::Events,
            Receipt::Cursor | Receipt::Delivered { .. } => Durability::Bookkeeping,
        };
        self.write(durability, |tx| {
            super::sinks::write_receipt(tx, receipt)?;
            advance(tx, sink, upto)
        })
    }

    /// Events after a sink's cursor that it will send (its filter applied), and those it lost to
    /// the quota.
    pub fn sink_backlog(&self, sink: &SinkName, filter: EventFilter<'_>) -> Result<(u64, u64)> {
        self.read(|c| {
            let row: Option<(i64, i64)> = c
                .query_row(
                    "SELECT seq, dropped FROM sink_cursors WHERE sink = ?1",
                    [sink.as_str()],
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
}

#[cfg(test)]
mod tests {

    use super::*;

    use crate::store::open_with_outbox_for_test as open;

    async fn record(outbox: &Outbox, t: EventType, n: usize) {
        let events = (0..n).map(|_| crate::samples::sample(t, "cam")).collect();
        outbox.append(events).await.unwrap();
    }

    #[tokio::test]
    async fn a_new_sink_starts_at_the_head_and_reads_filtered_batches_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = open(dir.path());
        record(&outbox, EventType::FaceRecognized, 3).await;
        let filter = Filter {
            types: Some(vec![EventType::StrangerAlert]),
            cameras: None,
        };
        let mut sub = Subscription::open(&outbox, SinkName::MQTT, filter).unwrap();
        assert_eq!(
            sub.position(),
            Seq(3),
            "older events are not the new sink's"
        );
        record(&outbox, EventType::StrangerAlert, 2).await;
        record(&outbox, EventType::FaceRecognized, 1).await;
        record(&outbox, EventType::StrangerAlert, 1).await;
        let stop = Shutdown::new();
        let Next::Batch(first) = sub.next(2, None, &stop).await else {
            panic!("a batch")
        };
        assert_eq!(
            first.events.iter().map(|e| e.seq.0).collect::<Vec<_>>(),
            [4, 5]
        );
        assert_eq!(first.upto, Seq(5), "a full read ends at its last event");
        let Next::Batch(second) = sub.next(2, None, &stop).await else {
            panic!("a batch")
        };
        assert_eq!(
            second.events.iter().map(|e| e.seq.0).collect::<Vec<_>>(),
            [7]
        );
        assert_eq!(second.upto, Seq(7));
        assert_eq!(store.cursor(&SinkName::MQTT).unwrap(), Some(Seq(3)));
        sub.acknowledge(second.upto, Receipt::Cursor).await.unwrap();
        assert_eq!(store.cursor(&SinkName::MQTT).unwrap(), Some(Seq(7)));
        let soon = tokio::time::Instant::now() + Duration::from_millis(20);
        assert!(matches!(
            sub.next(2, Some(soon), &stop).await,
            Next::Deadline
        ));
        stop.cancel();
        assert!(matches!(sub.next(2, None, &stop).await, Next::Stopped));
    }

    #[tokio::test]
    async fn acknowledgements_never_move_a_cursor_back_and_a_retired_sink_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = open(dir.path());
        record(&outbox, EventType::FaceDetected, 5).await;
        let sub = Subscription::open(&outbox, SinkName::ACTIONS, Filter::default()).unwrap();
        let cursor = sub.cursor().clone();
        store.retire_sink(&SinkName::ACTIONS, "test").unwrap();
        assert!(
            Subscription::resume(&outbox, SinkName::ACTIONS, Filter::default())
                .await
                .unwrap()
                .is_none()
        );
        let sub = Subscription::open(&outbox, SinkName::ACTIONS, Filter::default()).unwrap();
        record(&outbox, EventType::FaceDetected, 5).await;
        sub.acknowledge(Seq(9), Receipt::Cursor).await.unwrap();
        cursor.acknowledge(Seq(7), Receipt::Cursor).await.unwrap();
        assert_eq!(cursor.stored().unwrap(), Some(Seq(9)));
        assert_eq!(cursor.backlog(EventFilter::ALL).unwrap(), (1, 0));
    }
}
