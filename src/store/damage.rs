//! A damaged store is seen, never silently run on, never deleted.
//!
//! * At open, `PRAGMA quick_check` runs with a time budget ([`OPEN_CHECK_BUDGET`]), far inside
//!   systemd's `TimeoutStartSec`: a small store is checked whole before the API answers; a large
//!   one on a slow card is left to the background check rather than delaying the start.
//! * After open, a full `PRAGMA integrity_check` runs on its own read-only connection in a thread
//!   of its own; the result is in `/health` (`store.integrity`) and `facecv_store_integrity_ok`.
//! * The appliance starts on a damaged file when SQLite can still open it, and says so: a door
//!   keeps recording what it sees, and every sink still delivers what can be read. Refusing to
//!   start would lose every new event until someone came; a silent start would hide the damage.
//!   So the start is degraded (`/health`: `store.state = "degraded"` with the reason and the
//!   salvage command), and the file is never changed by anything but normal writes.
//! * Readers that meet an unreadable page find the next readable row ([`next_readable`]) and go
//!   on; the range they skipped is logged once, counted in `facecv_store_unreadable_events`, and
//!   named in `/health`.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::space::{Integrity, Trouble};
use super::{Result, Store, StoreError};

/// The longest the check at open may take.
const OPEN_CHECK_BUDGET: Duration = Duration::from_secs(5);
/// How many problems an integrity check reports; SQLite lists one line per damaged page.
const MAX_ERRORS: u32 = 10;

/// `PRAGMA quick_check` (with `budget`) or `integrity_check` (without) on a read-only connection
/// of its own: "ok", the problems found, or an interrupted error when the budget ran out.
/// How often (in SQLite's steps) the check looks at its deadline: cheap, and well under a
/// millisecond between looks.
const PROGRESS_STEPS: i32 = 1000;

pub fn integrity_check(path: &Path, budget: Option<Duration>) -> Result<String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let pragma = match budget {
        Some(_) => format!("PRAGMA quick_check({MAX_ERRORS})"),
        None => format!("PRAGMA integrity_check({MAX_ERRORS})"),
    };
    // The budget is kept by SQLite's progress handler, which its checker calls between pages:
    // past the deadline it answers "stop" and the check ends with SQLITE_INTERRUPT. No thread,
    // and a spent budget interrupts at the first call, so a test of it cannot race.
    if let Some(budget) = budget {
        let deadline = Instant::now() + budget;
        conn.progress_handler(PROGRESS_STEPS, Some(move || Instant::now() >= deadline));
    }
    let lines = (|| {
        let mut stmt = conn.prepare(&pragma)?;
        let lines = stmt.query_map([], |r| r.get::<_, String>(0))?;
        lines.collect::<rusqlite::Result<Vec<_>>>()
    })();
    Ok(lines?.join("; "))
}

fn is_interrupted(e: &StoreError) -> bool {
    matches!(e, StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
        if f.code == rusqlite::ErrorCode::OperationInterrupted)
}

/// The bounded check at open: damage found is logged and marks the store degraded; a check cut
/// short by its budget is left to the background one.
pub(super) fn quick_check_at_open(store: &Store) {
    match integrity_check(store.path(), Some(OPEN_CHECK_BUDGET)) {
        Ok(r) if r == "ok" => {}
        Ok(problems) => found_damage(store, &problems),
        Err(e) if is_interrupted(&e) => tracing::info!(
            budget = ?OPEN_CHECK_BUDGET,
            "the store is too large to check at start; the full check runs in the background"
        ),
        Err(e) if e.is_corrupt() => found_damage(store, &e.to_string()),
        Err(e) => tracing::warn!(error = %e, "cannot check the store at start"),
    }
}

/// What a `quick_check` on demand found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuickCheck {
    Ok,
    /// The problems SQLite listed (at most [`MAX_ERRORS`]).
    Damaged(Vec<String>),
    /// The budget ran out first: nothing is known.
    OutOfTime,
}

/// A `quick_check` within `budget`; damage found is logged and marks the store degraded.
pub(super) fn quick_check(store: &Store, budget: Duration) -> Result<QuickCheck> {
    match integrity_check(store.path(), Some(budget)) {
        Ok(r) if r == "ok" => Ok(QuickCheck::Ok),
        Ok(problems) => {
            found_damage(store, &problems);
            Ok(QuickCheck::Damaged(
                problems.split("; ").map(str::to_owned).collect(),
            ))
        }
        Err(e) if is_interrupted(&e) => Ok(QuickCheck::OutOfTime),
        Err(e) if e.is_corrupt() => {
            found_damage(store, &e.to_string());
            Ok(QuickCheck::Damaged(vec![e.to_string()]))
        }
        Err(e) => Err(e),
    }
}

pub(super) fn spawn_integrity_check(store: Store) {
    let spawned = std::thread::Builder::new()
        .name("store-check".into())
        .spawn(move || {
            let started = Instant::now();
            let result = integrity_check(store.path(), None);
            let metrics = store.metrics();
            match result {
                Ok(r) if r == "ok" => {
                    tracing::info!(took = ?started.elapsed(), "store integrity check: ok");
                    store.space().set_integrity(Integrity::Ok, metrics);
                }
                Ok(problems) => found_damage(&store, &problems),
                Err(e) if e.is_corrupt() => found_damage(&store, &e.to_string()),
                Err(e) => {
                    tracing::warn!(error = %e, "the store's integrity check could not run");
                    store
                        .space()
                        .set_integrity(Integrity::Failed(e.to_string()), metrics);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start the store's integrity check");
    }
}

fn found_damage(store: &Store, problems: &str) {
    let path = store.path().display();
    tracing::error!(
        problems,
        "the store {path} is damaged; the appliance goes on, skipping what it cannot read. \
         Way back: stop the service, run `facecv salvage --from {path} --to <new file>`"
    );
    store
        .space()
        .set_integrity(Integrity::Damaged(problems.to_owned()), store.metrics());
    store.space().set(
        Trouble::Damaged,
        Some(format!(
            "the store is damaged ({problems}); stop the service and run \
             `facecv salvage --from {path} --to <new file>`"
        )),
        store.metrics(),
    );
}

/// Whether the row after rowid `x` of `table` can be read: a seek down the B-tree to its leaf.
fn probe(conn: &Connection, table: &str, x: i64) -> Result<bool> {
    let sql = format!("SELECT rowid FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT 1");
    match conn.query_row(&sql, [x], |_| Ok(())) {
        Ok(()) | Err(rusqlite::Error::QueryReturnedNoRows) => Ok(true),
        Err(e) => {
            let e = StoreError::from(e);
            if e.is_corrupt() {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// The smallest rowid `x > from` (about: ranges are halved, not walked) after which `table`
/// reads again, or `None` if nothing up to `hi` does. Steps double until a seek succeeds, then
/// the gap is halved back, so a damaged leaf of a million rows costs some forty seeks.
pub fn next_readable(conn: &Connection, table: &str, from: i64, hi: i64) -> Result<Option<i64>> {
    let mut bad = from;
    let mut step: i64 = 1;
    let good = loop {
        let x = from.saturating_add(step);
        if x >= hi {
            if probe(conn, table, hi)? {
                break hi;
            }
            return Ok(None);
        }
        if probe(conn, table, x)? {
            break x;
        }
        bad = x;
        step = step.saturating_mul(2);
    };
    let mut good = good;
    while good - bad > 1 {
        let mid = bad + (good - bad) / 2;
        if probe(conn, table, mid)? {
            good = mid;
        } else {
            bad = mid;
        }
    }
    Ok(Some(good))
}

impl Store {
    /// Events in `(after, upto]` could not be read: said once per range.
    pub(super) fn report_unreadable(&self, after: i64, upto: i64, e: &StoreError) {
        if !self.space().note_unreadable(after, upto) {
            return;
        }
        let path = self.path().display();
        tracing::error!(
            error = %e,
            after, upto,
            "events after {after} up to {upto} cannot be read (a damaged page) and are skipped; \
             run `facecv salvage --from {path} --to <new file>` to copy what is readable"
        );
        self.metrics()
            .store_unreadable_events
            .inc_by(upto.saturating_sub(after).max(0) as u64);
        let ranges: Vec<String> = self
            .space()
            .unreadable()
            .iter()
            .map(|(a, u)| format!("{}..={u}", a + 1))
            .collect();
        self.space().set(
            Trouble::Damaged,
            Some(format!(
                "events {} cannot be read (damaged pages) and were skipped; stop the service and \
                 run `facecv salvage --from {path} --to <new file>`",
                ranges.join(", ")
            )),
            self.metrics(),
        );
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::events::EventType;
    use crate::store::Outbox;

    #[test]
    fn the_check_at_open_keeps_its_budget_and_a_full_check_finds_nothing_on_a_sound_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open_for_test(dir.path());
        let outbox = Outbox::start(store.clone()).unwrap();
        for _ in 0..20 {
            let events = (0..1000)
                .map(|_| crate::samples::sample(EventType::FaceRecognized, "cam"))
                .collect();
            outbox.append_blocking(events).unwrap();
        }
        let err = integrity_check(store.path(), Some(Duration::ZERO)).unwrap_err();
        assert!(
            is_interrupted(&err),
            "a spent budget interrupts the check: {err}"
        );
        assert_eq!(integrity_check(store.path(), None).unwrap(), "ok");
        assert!(store.health().ok);
    }
}
