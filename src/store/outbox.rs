//! The outbox: the append-only log every sink reads from.
//!
//! Guarantees, and the code that keeps them:
//! * An event is acknowledged to its producer only after the transaction holding it has committed
//!   (under `fsync = "always"`, after the fsync): [`Outbox::append`] returns its sequence number then.
//! * Sinks learn of new events through [`Outbox::subscribe`], which moves only after the commit, so a
//!   sink can never deliver an event that a crash could still take back.
//! * Events that arrive together share one transaction ("group commit"): the committer thread takes
//!   everything queued while the previous commit was being written.
//! * Recording never stops: when the store reaches its quota, or the disk is full, the oldest events
//!   are deleted (delivered ones first), counted per sink, and logged. The quota counts every file
//!   of the store folder, and a reserve lets the deletes commit on a full filesystem (`space`,
//!   `quota`).
//! * A damaged page does not stop the readers: [`Store::events_after`] skips what it cannot read,
//!   reports each unreadable range once, and goes on with the events after it (`damage`).

use std::sync::mpsc;
use std::thread;

use rusqlite::{params, OptionalExtension};
use tokio::sync::{oneshot, watch};

use super::{now_ms, Durability, Result, Store, StoreError};
use crate::events::{EventFilter, EventId, EventType, NewEvent, Seq, StoredEvent};

/// The most events one transaction takes; more wait for the next commit, which starts at once.
/// Bounded so that the writer lock is never held long: sinks write their cursors under it too.
const MAX_GROUP: usize = 1024;
/// How often the store's size is compared with the quota (a few pragmas under the writer lock):
/// after this long, or after a sixteenth of the quota was written, whichever first.
const QUOTA_CHECK_EVERY: std::time::Duration = std::time::Duration::from_millis(250);
/// How many appends may queue for the committer before producers wait.
const QUEUE_DEPTH: usize = 1024;
/// What an append returns for each event, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub seq: Seq,
    pub id: EventId,
}

/// Events waiting to be committed, each with the producer to tell.
type Pending = (Vec<NewEvent>, oneshot::Sender<Result<Vec<Recorded>>>);

enum Request {
    Append {
        events: Vec<NewEvent>,
        reply: oneshot::Sender<Result<Vec<Recorded>>>,
    },
    Stop(oneshot::Sender<()>),
}

/// The producers' handle to the outbox. Cloning it is cheap.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::SyncSender<Request>,
    head: watch::Receiver<Seq>,
    store: Store,
}

impl Outbox {
    /// Starts the committer thread for `store`.
    pub fn start(store: Store) -> Result<Outbox> {
        let head_now = store.read(last_seq)?;
        let (head_tx, head) = watch::channel(head_now);
        let (tx, rx) = mpsc::sync_channel(QUEUE_DEPTH);
        let committer = store.clone();
        thread::Builder::new()
            .name("outbox-commit".into())
            .spawn(move || commit_loop(committer, rx, head_tx))
            .map_err(|source| StoreError::Thread {
                name: "outbox-commit",
                source,
            })?;
        Ok(Outbox { tx, head, store })
    }

    /// Records events durably and returns their sequence numbers and ids, in order.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Vec<Recorded>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        let tx = self.tx.clone();
        // The queue is bounded; a full one means the disk cannot keep up, and the producer waits.
        tokio::task::spawn_blocking(move || tx.send(Request::Append { events, reply }))
            .await
            .map_err(|_| StoreError::Closed)?
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// [`Outbox::append`] for threads outside the async runtime (camera pipelines).
    pub fn append_blocking(&self, events: Vec<NewEvent>) -> Result<Vec<Recorded>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Append { events, reply })
            .map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// The sequence number of the newest committed event, updated after every commit.
    pub fn subscribe(&self) -> watch::Receiver<Seq> {
        self.head.clone()
    }

    pub fn head(&self) -> Seq {
        *self.head.borrow()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Commits everything already queued, then stops the committer. Later appends fail with Closed.
    pub async fn stop(&self) {
        let (ack, done) = oneshot::channel();
        let tx = self.tx.clone();
        let sent = tokio::task::spawn_blocking(move || tx.send(Request::Stop(ack))).await;
        if matches!(sent, Ok(Ok(()))) {
            let _ = done.await;
        }
    }
}

fn commit_loop(store: Store, rx: mpsc::Receiver<Request>, head: watch::Sender<Seq>) {
    let mut group: Vec<Pending> = Vec::new();
    let mut quota_checked = std::time::Instant::now();
    let mut written_since_check = 0u64;
    loop {
        let first = match rx.recv_timeout(QUOTA_CHECK_EVERY * 4) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Idle: still notice when the filesystem has room again. The quota itself is
                // measured after commits only: nothing else makes the store grow.
                store.tend_space();
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut stop = None;
        let mut queued = 0;
        let mut next = Some(first);
        while let Some(req) = next.take() {
            match req {
                Request::Append { events, reply } => {
                    queued += events.len();
                    group.push((events, reply));
                }
                Request::Stop(ack) => {
                    stop = Some(ack);
                    break;
                }
            }
            if queued < MAX_GROUP {
                next = rx.try_recv().ok();
            }
        }
        if !group.is_empty() {
            written_since_check += commit_group(&store, &mut group, &head);
            if quota_checked.elapsed() >= QUOTA_CHECK_EVERY
                || written_since_check > store.inner.quota_bytes / 16
            {
                quota_checked = std::time::Instant::now();
                written_since_check = 0;
                super::quota::check_quota(&store);
            }
        }
        if let Some(ack) = stop {
            let _ = ack.send(());
            return;
        }
    }
}

/// Commits the group and answers its producers; returns the bytes of event text written.
fn commit_group(store: &Store, group: &mut Vec<Pending>, head: &watch::Sender<Seq>) -> u64 {
    // A full disk was already answered inside the write (reserve given back, oldest dropped, one
    // more try); if it still fails, nothing more can be dropped and the producers hear it (507).
    let mut result = insert_group(store, group);
    if matches!(&result, Err(e) if e.is_disk_full()) {
        result = Err(StoreError::Full);
    }
    match result {
        Ok((mut per_request, bytes)) => {
            let last = per_request
                .last()
                .and_then(|r| r.last())
                .map(|r| r.seq)
                .unwrap_or_default();
            let total: usize = per_request.iter().map(Vec::len).sum();
            for (events, _) in group.iter() {
                for e in events {
                    store.metrics().recorded(e.event_type());
                }
            }
            head.send_replace(last);
            for ((_, reply), recorded) in group.drain(..).zip(per_request.drain(..)) {
                let _ = reply.send(Ok(recorded));
            }
            tracing::trace!(events = total, head = %last, "group committed");
            bytes
        }
        Err(e) => {
            tracing::error!(error = %e, "recording events failed");
            // Every producer in the group hears the same cause; the error itself is not Clone.
            let full = matches!(e, StoreError::Full);
            let message = e.to_string();
            for (_, reply) in group.drain(..) {
                let err = if full {
                    StoreError::Full
                } else {
                    StoreError::Commit(message.clone())
                };
                let _ = reply.send(Err(err));
            }
            0
        }
    }
}

fn insert_group(store: &Store, group: &[Pending]) -> Result<(Vec<Vec<Recorded>>, u64)> {
    // Ids and texts are made before the writer lock is taken: sinks wait on that lock.
    let prepared: Vec<Vec<(EventId, String)>> = group
        .iter()
        .map(|(events, _)| {
            events
                .iter()
                .map(|e| {
                    let id = e.id.clone().unwrap_or_else(EventId::generate);
                    let json = e.to_json(&id);
                    (id, json)
                })
                .collect()
        })
        .collect();
    let bytes = prepared.iter().flatten().map(|(_, j)| j.len() as u64).sum();
    store.write(Durability::Events, |tx| {
        let now = now_ms();
        let mut stmt = tx.prepare_cached(
            "INSERT INTO events (id, type, camera, json, time) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        let mut out = Vec::with_capacity(group.len());
        for ((events, _), texts) in group.iter().zip(&prepared) {
            let mut recorded = Vec::with_capacity(events.len());
            for (event, (id, json)) in events.iter().zip(texts) {
                stmt.execute(params![
                    id.0,
                    event.event_type().as_str(),
                    event.camera_id,
                    json,
                    now
                ])?;
                recorded.push(Recorded {
                    seq: Seq(tx.last_insert_rowid()),
                    id: id.clone(),
                });
            }
            out.push(recorded);
        }
        Ok((out, bytes))
    })
}

/// The last sequence number ever assigned (not the largest present: the quota may have deleted it).
pub(crate) fn last_seq(conn: &rusqlite::Connection) -> Result<Seq> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(Seq(seq.unwrap_or(0)))
}

/// Appends to `out` the rows after `after` until `limit` or an error; the rows read before a
/// damaged page, or before a row of a type this binary does not know, are kept.
fn read_events(
    conn: &rusqlite::Connection,
    after: Seq,
    limit: usize,
    filter: EventFilter<'_>,
    out: &mut Vec<StoredEvent>,
) -> Result<()> {
    let sql = format!(
        "SELECT seq, id, type, camera, json, time FROM events WHERE seq > ?{} ORDER BY seq LIMIT ?",
        filter.sql()
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![after.0, limit as i64], |r| {
        let t: String = r.get(2)?;
        let seq = r.get(0)?;
        let Ok(event_type) = t.parse::<EventType>() else {
            return Ok(Err(StoreError::UnknownEventType { seq, found: t }));
        };
        Ok(Ok(StoredEvent {
            seq: Seq(seq),
            id: EventId(r.get(1)?),
            event_type,
            camera_id: r.get(3)?,
            json: r.get(4)?,
            recorded_ms: r.get(5)?,
        }))
    })?;
    for row in rows {
        out.push(row??);
    }
    Ok(())
}

impl Store {
    /// Events after `after`, oldest first, at most `limit`, those `filter` lets through.
    ///
    /// Rows on a damaged page are skipped: the range is reported once (log, metric, `/health`)
    /// and the events after it are returned, so that no reader spins on the same damage. A row
    /// whose type this binary does not know (written by a newer one, or by hand) is skipped too,
    /// and reported once with what was found: no sink delivers it as some other type.
    pub fn events_after(
        &self,
        after: Seq,
        limit: usize,
        filter: EventFilter<'_>,
    ) -> Result<Vec<StoredEvent>> {
        let mut out = Vec::new();
        let mut from = after;
        loop {
            let r = self.read(|conn| read_events(conn, from, limit - out.len(), filter, &mut out));
            match r {
                Ok(()) => return Ok(out),
                Err(StoreError::UnknownEventType { seq, found }) => {
                    self.report_unknown_type(seq, found);
                    if out.len() >= limit {
                        return Ok(out);
                    }
                    from = Seq(seq);
                }
                Err(e) if e.is_corrupt() => {
                    let last_ok = out.last().map_or(from, |e| e.seq).max(from);
                    let head = self.read(last_seq).map_or(i64::MAX, |s| s.0);
                    let next =
                        self.read(|c| super::damage::next_readable(c, "events", last_ok.0, head))?;
                    self.report_unreadable(last_ok.0, next.unwrap_or(head), &e);
                    match next {
                        Some(n) if out.len() < limit => from = Seq(n),
                        _ => return Ok(out),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Says once per event that a row of an unknown type was passed over, and what was found.
    fn report_unknown_type(&self, seq: i64, found: String) {
        let mut seen = self
            .inner
            .unknown_types
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if seen.insert(seq) {
            let e = StoreError::UnknownEventType { seq, found };
            tracing::error!(error = %e, "an event is skipped by every reader");
        }
    }

    /// Deletes events every sink has had and that are older than the retention period.
    pub fn prune_delivered(&self) -> Result<usize> {
        let cutoff = now_ms() - self.inner.retain_delivered_ms;
        self.write(Durability::Bookkeeping, |tx| {
            let head = last_seq(tx)?;
            let min_cursor: Option<i64> =
                tx.query_row("SELECT MIN(seq) FROM sink_cursors", [], |r| r.get(0))?;
            let upto = min_cursor.unwrap_or(head.0);
            Ok(tx.execute(
                "DELETE FROM events WHERE seq <= ?1 AND time < ?2",
                params![upto, cutoff],
            )?)
        })
    }

    /// Undelivered events dropped by the quota since the store was created.
    pub fn dropped_total(&self) -> Result<u64> {
        self.read(|c| {
            let v: Option<i64> = c
                .query_row(
                    "SELECT value FROM meta WHERE key = 'dropped_total'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(v.unwrap_or(0) as u64)
        })
    }

    /// How many events are in the outbox now.
    pub fn event_count(&self) -> Result<u64> {
        self.read(|c| {
            Ok(c.query_row("SELECT COUNT(*) FROM events", [], |r| r.get::<_, i64>(0))? as u64)
        })
    }

    /// How many stored events come after `after`, optionally only of some types: a sink's backlog
    /// counted from a position it holds in memory, ahead of its stored cursor.
    pub fn count_after(&self, after: Seq, types: Option<&[EventType]>) -> Result<u64> {
        self.read(|c| {
            let filter = EventFilter {
                types,
                cameras: None,
            };
            let sql = format!("SELECT COUNT(*) FROM events WHERE seq > ?1{}", filter.sql());
            Ok(c.query_row(&sql, [after.0], |r| r.get::<_, i64>(0))? as u64)
        })
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::events::EventType;
    use crate::store::sinks::Origin;
    use crate::store::webhook::WebhookConfig;

    use crate::store::open_with_outbox_for_test as open;

    fn some(n: usize) -> Vec<NewEvent> {
        (0..n)
            .map(|_| crate::samples::sample(EventType::FaceRecognized, "cam"))
            .collect()
    }

    /// SQLite's `max_page_count` makes it answer SQLITE_FULL exactly as a full disk does.
    fn fill_disk_at(store: &Store, extra_pages: i64) {
        let conn = store.writer();
        let pages: i64 = conn
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        conn.pragma_update(None, "max_page_count", pages + extra_pages)
            .unwrap();
    }

    #[test]
    fn a_full_disk_drops_the_oldest_undelivered_events_and_recording_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = open(dir.path());
        // A webhook that never acknowledges: every event stays undelivered.
        store
            .create_webhook(
                &WebhookConfig::new("never", "http://127.0.0.1:9/"),
                Origin::Api,
            )
            .unwrap();
        outbox.append_blocking(some(500)).unwrap();
        fill_disk_at(&store, 64);
        let mut last = Vec::new();
        for _ in 0..40 {
            last = outbox
                .append_blocking(some(100))
                .expect("recording goes on when the disk is full");
        }
        let dropped = store.dropped_total().unwrap();
        assert!(dropped > 0, "old events were dropped to make room");
        let newest = store
            .events_after(Seq(last[0].seq.0 - 1), 1000, EventFilter::ALL)
            .unwrap();
        assert_eq!(newest.len(), 100, "the newest events are kept");
        let (backlog, lost) = store
            .sink_backlog(
                &crate::store::subscription::SinkName::webhook(
                    &crate::store::webhook::WebhookId::parse("never").unwrap(),
                ),
                EventFilter::ALL,
            )
            .unwrap();
        assert_eq!(lost, dropped);
        assert_eq!(backlog + lost, 4500);
    }

    #[test]
    fn when_nothing_can_be_dropped_the_producer_hears_the_store_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = open(dir.path());
        fill_disk_at(&store, 0);
        let err = outbox.append_blocking(some(200)).unwrap_err();
        assert!(matches!(err, StoreError::Full), "{err}");
        assert_eq!(store.event_count().unwrap(), 0);
    }

    #[test]
    fn events_committed_together_are_numbered_in_order_and_visible_after_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = open(dir.path());
        let mut head = outbox.subscribe();
        let recorded = outbox.append_blocking(some(3)).unwrap();
        assert_eq!(
            recorded.iter().map(|r| r.seq.0).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        assert!(head.has_changed().unwrap());
        assert_eq!(*head.borrow_and_update(), Seq(3));
        let stored = store.events_after(Seq(0), 10, EventFilter::ALL).unwrap();
        assert_eq!(stored.len(), 3);
        assert_eq!(stored[2].id, recorded[2].id);
    }

    #[test]
    fn a_stored_event_of_an_unknown_type_is_an_error_and_readers_pass_over_it() {
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = open(dir.path());
        outbox.append_blocking(some(3)).unwrap();
        store
            .writer()
            .execute(
                "UPDATE events SET type = 'face_teleported' WHERE seq = 2",
                [],
            )
            .unwrap();
        let mut out = Vec::new();
        let err = store
            .read(|c| read_events(c, Seq(0), 10, EventFilter::ALL, &mut out))
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::UnknownEventType { seq: 2, found } if found == "face_teleported"),
            "{err}"
        );
        assert!(err.to_string().contains("\"face_teleported\""), "{err}");
        assert_eq!(out.len(), 1, "the row before it was read");
        let read = store.events_after(Seq(0), 10, EventFilter::ALL).unwrap();
        assert_eq!(
            read.iter()
                .map(|e| (e.seq.0, e.event_type))
                .collect::<Vec<_>>(),
            [
                (1, EventType::FaceRecognized),
                (3, EventType::FaceRecognized)
            ],
            "the unknown row is passed over, not delivered as another type"
        );
        let only_it = store.events_after(Seq(1), 1, EventFilter::ALL).unwrap();
        assert_eq!(only_it.len(), 1);
        assert_eq!(only_it[0].seq, Seq(3), "a limit counts the events returned");
    }
}
