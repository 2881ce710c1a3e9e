//! The events as people read them: newest first, of one person, between two times; and one
//! event by its id. Sinks read the outbox in order through `outbox.rs`; this is the console's
//! and scripts' view, and it stays fast on a store of millions of events:
//!
//! * `since` and `until` become bounds on `seq` by a binary search over `seq` (some twenty
//!   lookups by rowid; no index on the time is written with every event); the times are then
//!   checked on every row, so nothing outside them is returned. This takes commit times to
//!   follow `seq`, which they do except across a step of the clock backwards (a board without a
//!   real-time clock setting its time late): events recorded around such a step may be passed
//!   over by a time filter, never shown outside it;
//! * the other filters (types, cameras, a person) are a scan along `seq`, bounded to
//!   [`MAX_SCAN`] numbers a read: a read that found fewer than it could return hands back a
//!   cursor to go on from. A person is looked for in the text of recognitions and attendance
//!   only. An index of names was tried (a table of (name, seq) filled at commit): it cost some
//!   5 % more bytes per recognition on flash, enough that a store on a full 8 MB filesystem
//!   took longer than its test allows to get its reserve back; a bounded scan costs nothing
//!   until someone reads.

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
            // Clamped to the log, so that no bound a client sends (`after_seq` = i64::MAX) can
            // overflow the arithmetic on windows below.
            let mut lo = q.after.map_or(0, |s| s.0).clamp(0, head);
            let mut hi = q.before.map_or(head + 1, |s| s.0.min(head + 1));
            if let Some(since) = q.since_ms {
                lo = lo.max(first_at_or_after(c, since, head)?.map_or(head, |s| s - 1));
            }
            if let Some(until) = q.until_ms {
                hi = hi.min(first_at_or_after(c, until, head)?.unwrap_or(head + 1));
            }
            scan_page(c, q, lo, hi, &conditions(q))
        })
    }
}

/// The first event committed at or after `t` (unix ms), by a binary search over `seq` that takes
/// commit times to grow with it; `None` when every event is older.
fn first_at_or_after(c: &rusqlite::Connection, t: i64, head: i64) -> Result<Option<i64>> {
    let mut at = c.prepare_cached(
        "SELECT seq, time FROM events WHERE seq >= ?1 AND seq <= ?2 ORDER BY seq LIMIT 1",
    )?;
    let (mut a, mut b) = (1, head);
    let mut best = None;
    while a <= b {
        let mid = a + (b - a) / 2;
        let row: Option<(i64, i64)> = at
            .query_row(params![mid, b], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        match row {
            Some((seq, time)) if time >= t => {
                best = Some(seq);
                b = mid - 1;
            }
            Some((seq, _)) => a = seq + 1,
            // Nothing left in [mid, b] (dropped events leave gaps).
            None => b = mid - 1,
        }
    }
    Ok(best)
}

/// The filter, the person and the times as SQL on `events`, each starting with ` AND`.
fn conditions(q: &TimelineQuery<'_>) -> String {
    let mut sql = q.filter.sql();
    if let Some(name) = q.person {
        // Quoted as the filter quotes camera ids; the text is read only when it is valid JSON
        // (CASE keeps the order), so a damaged event is passed over, not an error. `e.json`:
        // inside json_each, `json` would name its own column.
        let name = format!("'{}'", name.replace('\'', "''"));
        sql.push_str(&format!(
            " AND type IN ('face_recognized', 'attendance_recorded') AND CASE WHEN json_valid(e.json) \
             THEN json_extract(e.json, '$.data.name') IS {name} OR EXISTS (SELECT 1 FROM \
             json_each(e.json, '$.data.recognized_faces') f WHERE json_extract(f.value, '$.name') IS {name}) \
             ELSE 0 END"
        ));
    }
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
    async fn a_damaged_text_is_passed_over_by_a_person_search_and_quotes_stay_quotes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = crate::store::open_with_outbox_for_test(dir.path());
        let batch = vec![recognized("Ana"), recognized("O'Brien"), recognized("Ana")];
        outbox.append(batch).await.unwrap();
        store
            .writer()
            .execute("UPDATE events SET json = '{\"data\": ' WHERE seq = 1", [])
            .unwrap();
        let ana = TimelineQuery {
            person: Some("Ana"),
            limit: 10,
            ..query(Order::Desc)
        };
        assert_eq!(seqs(&store.timeline(&ana).unwrap()), [3]);
        let quoted = TimelineQuery {
            person: Some("O'Brien"),
            ..ana
        };
        assert_eq!(seqs(&store.timeline(&quoted).unwrap()), [2]);
        let injected = TimelineQuery {
            person: Some("x' OR 1=1 --"),
            ..ana
        };
        assert!(store.timeline(&injected).unwrap().events.is_empty());
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
    /// Schemathesis found it: `after_seq=9223372036854775807` overflowed the window arithmetic
    /// (a panic, so a dropped connection instead of an answer).
    #[tokio::test]
    async fn bounds_at_the_ends_of_i64_read_nothing_and_do_not_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let (store, outbox) = crate::store::open_with_outbox_for_test(dir.path());
        outbox.append(vec![started(), started()]).await.unwrap();
        for order in [Order::Asc, Order::Desc] {
            let p = store
                .timeline(&TimelineQuery {
                    after: Some(Seq(i64::MAX)),
                    before: Some(Seq(1000)),
                    ..query(order)
                })
                .unwrap();
            assert!(p.events.is_empty(), "{order:?}");
            let p = store
                .timeline(&TimelineQuery {
                    after: Some(Seq(i64::MIN)),
                    before: Some(Seq(i64::MAX)),
                    ..query(order)
                })
                .unwrap();
            assert_eq!(p.events.len(), 2, "{order:?}");
        }
    }

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
                        'door',
                        json_object('data', json_object('recognized_faces',
                            json_array(json_object('name', 'person ' || (i / 50 % 100))))),
                        1700000000000 + i * 100 FROM n;",
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
