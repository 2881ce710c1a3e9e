//! The events as people read them: newest first, of one person, between two times; and one
//! event by its id. Sinks read the outbox in order through `outbox.rs`; this is the console's
//! and scripts' view, and it stays fast on a store of millions of events:
//!
//! * a person's events come from `event_people` (name, seq), an index filled when the event is
//!   recorded (migration v5), read as a range;
//! * `since` and `until` become bounds on `seq` through the index on the commit time, two
//!   lookups; the times are then checked on every row, so nothing outside them is returned.
//!   Commit times follow `seq` except across a step of the clock backwards (a board without a
//!   real-time clock setting its time late); events recorded just before such a step may be
//!   passed over by a time filter, never shown outside it;
//! * other filters (types, cameras) are a scan along `seq`, bounded to [`MAX_SCAN`] numbers a
//!   read: a read that found fewer than it could return hands back a cursor to go on from.

use rusqlite::{params, OptionalExtension};

use super::{Result, Store};
use crate::events::{EventFilter, EventId, EventType, Seq, StoredEvent};

/// Sequence numbers one read looks through at most when only a scan can answer it.
pub const MAX_SCAN: i64 = 100_000;
/// The scan goes in windows of this many numbers, so that a full page ends it early.
const WINDOW: i64 = 10_000;

/// Which way a read goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first, after `after`.
    Asc,
    /// Newest first, before `before`.
    Desc,
}

/// What a timeline read asks for.
#[derive(Debug, Clone, Copy)]
pub struct TimelineQuery<'a> {
    pub order: Order,
    /// Only events after this seq (exclusive).
    pub after: Option<Seq>,
    /// Only events before this seq (exclusive).
    pub before: Option<Seq>,
    pub filter: EventFilter<'a>,
    /// Only events naming this person (recognitions and attendance).
    pub person: Option<&'a str>,
    /// Commit times, unix milliseconds: `since` inclusive, `until` exclusive.
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: usize,
}

/// One page of a timeline read.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelinePage {
    /// In the order asked for.
    pub events: Vec<StoredEvent>,
    /// Where to go on from in the same direction (`before` for `Desc`, `after` for `Asc`);
    /// `None` when there is nothing more that way.
    pub next: Option<Seq>,
}

impl Store {
    /// The camera that recorded event `id`, if the event is still stored.
    pub fn event_camera(&self, id: &EventId) -> Result<Option<String>> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT camera FROM events WHERE id = ?1", [&id.0], |r| {
                    r.get(0)
                })
                .optional()?,
            )
        })
    }

    /// A page of the timeline; see the module comment for how each filter is found.
    pub fn timeline(&self, q: &TimelineQuery<'_>) -> Result<TimelinePage> {
        self.read(|c| {
            let head = super::outbox::last_seq(c)?.0;
            // Exclusive bounds on seq.
            let mut lo = q.after.map_or(0, |s| s.0);
            let mut hi = q.before.map_or(head + 1, |s| s.0.min(head + 1));
            if let Some(since) = q.since_ms {
                let first: Option<i64> = c
                    .query_row(
                        "SELECT seq FROM events WHERE time >= ?1 ORDER BY time, seq LIMIT 1",
                        [since],
                        |r| r.get(0),
                    )
                    .optional()?;
                lo = lo.max(first.map_or(hi, |s| s - 1));
            }
            if let Some(until) = q.until_ms {
                let last: Option<i64> = c
                    .query_row(
                        "SELECT seq FROM events WHERE time < ?1 ORDER BY time DESC, seq DESC LIMIT 1",
                        [until],
                        |r| r.get(0),
                    )
                    .optional()?;
                hi = hi.min(last.map_or(lo + 1, |s| s + 1));
            }
            let conditions = conditions(q);
            match q.person {
                Some(name) => person_page(c, q, name, lo, hi, &conditions),
                None => scan_page(c, q, lo, hi, &conditions),
            }
        })
    }
}

/// The filter and the times as SQL on `events`, each starting with ` AND` (`type`, `camera` and
/// `time` are columns of `events` alone, so they need no table name in the person's join).
fn conditions(q: &TimelineQuery<'_>) -> String {
    let mut sql = q.filter.sql();
    if let Some(since) = q.since_ms {
        sql.push_str(&format!(" AND time >= {since}"));
    }
    if let Some(until) = q.until_ms {
        sql.push_str(&format!(" AND time < {until}"));
    }
    sql
}

fn direction(order: Order) -> &'static str {
    match order {
        Order::Asc => "ASC",
        Order::Desc => "DESC",
    }
}

fn person_page(
    c: &rusqlite::Connection,
    q: &TimelineQuery<'_>,
    name: &str,
    lo: i64,
    hi: i64,
    conditions: &str,
) -> Result<TimelinePage> {
    let sql = format!(
        "SELECT e.seq, e.id, e.type, e.camera, e.json, e.time
         FROM event_people p JOIN events e ON e.seq = p.seq
         WHERE p.name = ?1 AND p.seq > ?2 AND p.seq < ?3{conditions}
         ORDER BY p.seq {} LIMIT ?4",
        direction(q.order)
    );
    let events = rows(c, &sql, params![name, lo, hi, q.limit as i64])?;
    let next = (events.len() == q.limit)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(TimelinePage { events, next })
}

/// Walks `seq` in windows from the end the order starts at, at most [`MAX_SCAN`] numbers.
fn scan_page(
    c: &rusqlite::Connection,
    q: &TimelineQuery<'_>,
    lo: i64,
    hi: i64,
    conditions: &str,
) -> Result<TimelinePage> {
    let sql = format!(
        "SELECT e.seq, e.id, e.type, e.camera, e.json, e.time FROM events e
         WHERE e.seq > ?1 AND e.seq < ?2{conditions} ORDER BY e.seq {} LIMIT ?3",
        direction(q.order)
    );
    let mut events = Vec::new();
    let mut scanned = 0;
    // The part of (lo, hi) not yet looked at.
    let (mut from, mut to) = (lo, hi);
    while from + 1 < to && events.len() < q.limit {
        if scanned >= MAX_SCAN {
            // Out of budget with more to look at: the cursor says where to go on.
            let next = match q.order {
                Order::Desc => Seq(to),
                Order::Asc => Seq(from),
            };
            return Ok(TimelinePage {
                events,
                next: Some(next),
            });
        }
        let (a, b) = match q.order {
            Order::Desc => ((to - 1 - WINDOW).max(from), to),
            Order::Asc => (from, (from + 1 + WINDOW).min(to)),
        };
        let want = (q.limit - events.len()) as i64;
        events.extend(rows(c, &sql, params![a, b, want])?);
        scanned += b - a - 1;
        match q.order {
            Order::Desc => to = a + 1,
            Order::Asc => from = b - 1,
        }
    }
    // A full page may have left events of its last window unread: go on from its last event.
    let more = from + 1 < to;
    let next = match (q.order, events.last()) {
        (_, Some(last)) if more || events.len() == q.limit => Some(last.seq),
        (Order::Desc, None) if more => Some(Seq(to)),
        (Order::Asc, None) if more => Some(Seq(from)),
        _ => None,
    };
    Ok(TimelinePage { events, next })
}

fn rows(
    c: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<StoredEvent>> {
    let mut stmt = c.prepare_cached(sql)?;
    let rows = stmt.query_map(params, |r| {
        let t: String = r.get(2)?;
        Ok((t, r.get(0)?, r.get(1)?, r.get(3)?, r.get(4)?, r.get(5)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (t, seq, id, camera_id, json, recorded_ms) = row?;
        // A type this binary does not know is left out here, as every reader leaves it out.
        let Ok(event_type) = t.parse::<EventType>() else {
            continue;
        };
        out.push(StoredEvent {
            seq: Seq(seq),
            id: EventId(id),
            event_type,
            camera_id,
            json,
            recorded_ms,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventData, EventMetadata, NewEvent, RecognizedFace};

    fn recognized(name: &str) -> NewEvent {
        NewEvent::new(
            "door",
            EventData::FaceRecognized {
                recognized_faces: vec![RecognizedFace {
                    name: name.into(),
                    confidence: 0.9,
                    bbox: [0, 0, 10, 10],
                    face_id: None,
                    metadata: Default::default(),
                }],
                recognized_count: 1,
            },
            EventMetadata::default(),
        )
    }

    fn started() -> NewEvent {
        crate::samples::sample(EventType::StreamStarted, "door")
    }

    fn query(order: Order) -> TimelineQuery<'static> {
        TimelineQuery {
            order,
            after: None,
            before: None,
            filter: EventFilter::ALL,
            person: None,
            since_ms: None,
            until_ms: None,
            limit: 2,
        }
    }

    fn seqs(p: &TimelinePage) -> Vec<i64> {
        p.events.iter().map(|e| e.seq.0).collect()
    }

    #[tokio::test]
    async fn the_newest_come_first_and_a_person_is_found_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = crate::store::open_with_outbox_for_test(dir.path());
        let batch = vec![
            recognized("Ana"),
            started(),
            recognized("Bo"),
            recognized("Ana"),
            started(),
        ];
        outbox.append(batch).await.unwrap();
        let p = store.timeline(&query(Order::Desc)).unwrap();
        assert_eq!((seqs(&p), p.next), (vec![5, 4], Some(Seq(4))));
        let p = store
            .timeline(&TimelineQuery {
                before: p.next,
                ..query(Order::Desc)
            })
            .unwrap();
        assert_eq!((seqs(&p), p.next), (vec![3, 2], Some(Seq(2))));
        let p = store
            .timeline(&TimelineQuery {
                before: Some(Seq(2)),
                ..query(Order::Desc)
            })
            .unwrap();
        assert_eq!((seqs(&p), p.next), (vec![1], None));
        let ana = TimelineQuery {
            person: Some("Ana"),
            limit: 10,
            ..query(Order::Desc)
        };
        assert_eq!(seqs(&store.timeline(&ana).unwrap()), [4, 1]);
        let asc = TimelineQuery {
            order: Order::Asc,
            ..ana
        };
        assert_eq!(seqs(&store.timeline(&asc).unwrap()), [1, 4]);
        let id = store.timeline(&ana).unwrap().events[0].id.clone();
        assert_eq!(store.event_camera(&id).unwrap().as_deref(), Some("door"));
    }

    #[tokio::test]
    async fn times_bound_the_read_and_nothing_outside_them_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = crate::store::open_with_outbox_for_test(dir.path());
        outbox
            .append(vec![started(), started(), started(), started()])
            .await
            .unwrap();
        // Commit times 1000, 2000, 3000, 4000 ms.
        store
            .writer()
            .execute("UPDATE events SET time = seq * 1000", [])
            .unwrap();
        let q = TimelineQuery {
            since_ms: Some(2000),
            until_ms: Some(4000),
            limit: 10,
            ..query(Order::Desc)
        };
        assert_eq!(seqs(&store.timeline(&q).unwrap()), [3, 2]);
        let q = TimelineQuery {
            order: Order::Asc,
            ..q
        };
        assert_eq!(seqs(&store.timeline(&q).unwrap()), [2, 3]);
        let none = TimelineQuery {
            since_ms: Some(9000),
            ..q
        };
        assert!(store.timeline(&none).unwrap().events.is_empty());
    }

    #[tokio::test]
    async fn a_rare_type_is_scanned_for_in_bounded_steps_with_a_cursor_to_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = crate::store::open_with_outbox_for_test(dir.path());
        outbox.append(vec![recognized("Ana")]).await.unwrap();
        let n = (MAX_SCAN + WINDOW) as usize;
        for _ in 0..n / 5000 {
            outbox
                .append((0..5000).map(|_| started()).collect())
                .await
                .unwrap();
        }
        let types = [EventType::FaceRecognized];
        let q = TimelineQuery {
            filter: EventFilter {
                types: Some(&types),
                cameras: None,
            },
            ..query(Order::Desc)
        };
        let first = store.timeline(&q).unwrap();
        assert!(first.events.is_empty());
        let next = first.next.expect("more to look at");
        assert!(next.0 > 1, "{next}");
        let rest = store
            .timeline(&TimelineQuery {
                before: Some(next),
                ..q
            })
            .unwrap();
        assert_eq!((seqs(&rest), rest.next), (vec![1], None));
    }

    /// The figures for a timeline on a large store: a million events, one in fifty a recognition
    /// of one of 100 people, one in a thousand a stranger. Run by hand:
    /// `cargo test --lib store::timeline::tests::a_million -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn a_million_events_read_as_a_timeline() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_for_test(dir.path());
        let t = std::time::Instant::now();
        store
            .writer()
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
                 INSERT INTO events (id, type, camera, json, time)
                 SELECT printf('evt_%032x', i),
                        CASE WHEN i % 1000 = 0 THEN 'stranger_alert'
                             WHEN i % 50 = 0 THEN 'face_recognized' ELSE 'face_detected' END,
                        'door', '{}', 1700000000000 + i * 100 FROM n;
                 INSERT INTO event_people (name, seq)
                 SELECT 'person ' || (seq / 50 % 100), seq FROM events WHERE type = 'face_recognized';",
            )
            .unwrap();
        println!("filled in {:?}", t.elapsed());
        let strangers = [EventType::StrangerAlert];
        let cases: [(&str, TimelineQuery<'_>); 5] = [
            (
                "newest 100",
                TimelineQuery {
                    limit: 100,
                    ..query(Order::Desc)
                },
            ),
            (
                "a person's newest 100",
                TimelineQuery {
                    limit: 100,
                    person: Some("person 7"),
                    ..query(Order::Desc)
                },
            ),
            (
                "an hour a week back",
                TimelineQuery {
                    limit: 100,
                    since_ms: Some(1700000000000 + 40_000_000),
                    until_ms: Some(1700000000000 + 43_600_000),
                    ..query(Order::Desc)
                },
            ),
            (
                "strangers, newest 100",
                TimelineQuery {
                    limit: 100,
                    filter: EventFilter {
                        types: Some(&strangers),
                        cameras: None,
                    },
                    ..query(Order::Desc)
                },
            ),
            (
                "a person's oldest 100",
                TimelineQuery {
                    limit: 100,
                    person: Some("person 7"),
                    ..query(Order::Asc)
                },
            ),
        ];
        for (what, q) in cases {
            let t = std::time::Instant::now();
            let page = store.timeline(&q).unwrap();
            println!(
                "{what}: {} events in {:?}, next {:?}",
                page.events.len(),
                t.elapsed(),
                page.next
            );
        }
    }
}
