//! `facecv salvage --from <damaged.db> --to <new.db>`: the way back from a damaged store.
//!
//! SQLite's recovery extension is not in rusqlite's bundled build, so the copy is table by table
//! and row by row through each table's rowid B-tree: rows are read in rowid order, and where a page
//! cannot be read the copy seeks past it ([`next_readable`]) and notes the rowid range it lost.
//! Indexes are not read at all (the new file builds its own), so a damaged index costs nothing.
//! The damaged file is opened read-only and kept; the new file gets the current schema, the rows,
//! and an event sequence that never goes back (so no sink's cursor skips a new event).

use std::path::Path;

use rusqlite::{params_from_iter, Connection, OpenFlags};
use serde::Serialize;

use super::damage::next_readable;
use super::{migrations, Result, StoreError};

/// Rows read per query.
const CHUNK: i64 = 500;

/// What the salvage did for one table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TableReport {
    pub table: String,
    pub copied: u64,
    /// Rowid ranges `(after, upto]` that could not be read.
    pub unreadable: Vec<(i64, i64)>,
    /// Why nothing of the table could be copied (its schema is unreadable, say).
    pub error: Option<String>,
}

/// Copies what is readable of `from` into a new store at `to`, which must not exist.
pub fn salvage(from: &Path, to: &Path) -> Result<Vec<TableReport>> {
    if to.exists() {
        return Err(StoreError::Conflict(format!("{}", to.display())));
    }
    let old = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    old.busy_timeout(std::time::Duration::from_secs(5))?;
    let mut new = Connection::open(to)?;
    migrations::migrate(&mut new)?;
    let tables: Vec<String> = {
        let mut stmt = new.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut reports = Vec::new();
    for table in tables {
        let tx = new.transaction()?;
        let mut report = TableReport {
            table: table.clone(),
            ..TableReport::default()
        };
        if let Err(e) = copy_table(&old, &tx, &table, &mut report) {
            report.error = Some(e.to_string());
        }
        tx.commit()?;
        reports.push(report);
    }
    keep_sequence(&old, &new)?;
    new.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
    Ok(reports)
}

/// The columns of `table` in `conn`, and whether one of them is the rowid itself.
fn columns(conn: &Connection, table: &str) -> Result<(Vec<String>, Option<String>)> {
    let mut stmt = conn.prepare(&format!("PRAGMA table_info({table})"))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(5)?,
        ))
    })?;
    let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    let pk: Vec<_> = rows.iter().filter(|r| r.2 > 0).collect();
    let rowid_alias = match pk.as_slice() {
        [(name, ty, _)] if ty.eq_ignore_ascii_case("INTEGER") => Some(name.clone()),
        _ => None,
    };
    Ok((rows.into_iter().map(|r| r.0).collect(), rowid_alias))
}

fn copy_table(
    old: &Connection,
    new: &Connection,
    table: &str,
    report: &mut TableReport,
) -> Result<()> {
    let (new_cols, rowid_alias) = columns(new, table)?;
    let (old_cols, _) = columns(old, table)?;
    if old_cols.is_empty() {
        return Err(StoreError::NotFound(format!(
            "table {table} in the old store"
        )));
    }
    // Columns both know: an older store lacks newer columns, which keep their defaults.
    let cols: Vec<&String> = new_cols.iter().filter(|c| old_cols.contains(c)).collect();
    let list = cols
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let select =
        format!("SELECT rowid, {list} FROM {table} WHERE rowid > ?1 ORDER BY rowid LIMIT {CHUNK}");
    // A table whose INTEGER PRIMARY KEY is the rowid (events.seq) gets it through that column;
    // the others get their rowid kept explicitly.
    let keep_rowid = rowid_alias.is_none();
    let marks = vec!["?"; cols.len() + usize::from(keep_rowid)].join(", ");
    let insert = if keep_rowid {
        format!("INSERT OR IGNORE INTO {table} (rowid, {list}) VALUES ({marks})")
    } else {
        format!("INSERT OR IGNORE INTO {table} ({list}) VALUES ({marks})")
    };
    let mut after = i64::MIN;
    loop {
        let mut rows: Vec<Vec<rusqlite::types::Value>> = Vec::new();
        let read = read_chunk(old, &select, after, cols.len() + 1, &mut rows);
        for row in &rows {
            let values = if keep_rowid { &row[..] } else { &row[1..] };
            new.prepare_cached(&insert)?
                .execute(params_from_iter(values.iter()))?;
            report.copied += 1;
        }
        if let Some(last) = rows.last() {
            if let rusqlite::types::Value::Integer(id) = last[0] {
                after = id;
            }
        }
        match read {
            Ok(()) if (rows.len() as i64) < CHUNK => return Ok(()),
            Ok(()) => {}
            Err(e) if e.is_corrupt() => match next_readable(old, table, after, i64::MAX)? {
                Some(next) => {
                    report.unreadable.push((after, next));
                    after = next;
                }
                None => {
                    report.unreadable.push((after, i64::MAX));
                    return Ok(());
                }
            },
            Err(e) => return Err(e),
        }
    }
}

/// Reads rows until the chunk ends or a page fails; rows read before the failure are kept.
fn read_chunk(
    old: &Connection,
    select: &str,
    after: i64,
    width: usize,
    out: &mut Vec<Vec<rusqlite::types::Value>>,
) -> Result<()> {
    let mut stmt = old.prepare(select)?;
    let mut rows = stmt.query([after])?;
    while let Some(row) = rows.next()? {
        let mut values = Vec::with_capacity(width);
        for i in 0..width {
            values.push(row.get::<_, rusqlite::types::Value>(i)?);
        }
        out.push(values);
    }
    Ok(())
}

/// The new store's event sequence starts past every number the old one gave out or a cursor
/// holds: a reused number would be skipped by a sink whose cursor is already past it.
fn keep_sequence(old: &Connection, new: &Connection) -> Result<()> {
    let old_seq: i64 = old
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'events'",
            [],
            |r| r.get(0),
        )
        .unwrap_or(0);
    let cursors: i64 = new
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM sink_cursors", [], |r| {
            r.get(0)
        })
        .unwrap_or(0);
    let seq = old_seq.max(cursors);
    new.execute(
        "UPDATE sqlite_sequence SET seq = MAX(seq, ?1) WHERE name = 'events'",
        [seq],
    )?;
    new.execute(
        "INSERT INTO sqlite_sequence (name, seq) SELECT 'events', ?1
         WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'events')",
        [seq],
    )?;
    Ok(())
}

/// The damage the abuse suite writes, shared by path so both test the same thing.
#[cfg(test)]
#[path = "../../tests/common/damage.rs"]
mod damage_for_tests;

#[cfg(test)]
mod tests {
    use super::damage_for_tests::garbage_into_event_pages;
    use std::sync::Arc;

    use super::*;
    use crate::events::{EventFilter, EventType, Seq};
    use crate::store::StorageConfig;
    use crate::store::{Outbox, Store};

    /// Fills a store with events, closes it, and overwrites two leaf pages of the events table in
    /// the middle of the file with garbage. Returns the store's folder and the events recorded.
    pub(crate) fn damaged_store(dir: &Path) -> (StorageConfig, u64) {
        let config = StorageConfig {
            dir: dir.to_owned(),
            ..StorageConfig::default()
        };
        let store = Store::open(&config, Arc::default()).unwrap();
        let outbox = Outbox::start(store.clone()).unwrap();
        let total = 3000u64;
        for _ in 0..30 {
            let events = (0..100)
                .map(|_| crate::samples::sample(EventType::FaceRecognized, "cam"))
                .collect();
            outbox.append_blocking(events).unwrap();
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(outbox.stop());
        store.close().unwrap();
        drop(outbox);
        drop(store);
        let db = dir.join(crate::store::DB_FILE);
        let hit = garbage_into_event_pages(&db, 2);
        assert!(hit >= 1, "found event leaf pages to damage");
        (config, total)
    }

    #[test]
    fn readers_skip_damaged_pages_and_salvage_copies_every_readable_event() {
        let dir = tempfile::tempdir().unwrap();
        let (config, total) = damaged_store(dir.path());
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let store = Store::open(&config, metrics.clone()).unwrap();
        assert!(!store.health().ok, "the check at open saw the damage");
        // A reader goes past the damage instead of failing on it, and says so once.
        let mut seen = 0u64;
        let mut after = Seq(0);
        loop {
            let batch = store.events_after(after, 100, EventFilter::ALL).unwrap();
            let Some(last) = batch.last() else { break };
            after = last.seq;
            seen += batch.len() as u64;
        }
        assert!(seen < total && seen > total / 2, "read {seen} of {total}");
        assert!(metrics.store_unreadable_events.get() > 0);
        assert!(store.health().reason.unwrap().contains("facecv salvage"));
        drop(store);

        let from = dir.path().join(crate::store::DB_FILE);
        let to = dir.path().join("salvaged").join(crate::store::DB_FILE);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let report = salvage(&from, &to).unwrap();
        let events = report.iter().find(|r| r.table == "events").unwrap();
        assert_eq!(events.copied, seen, "{report:?}");
        assert!(!events.unreadable.is_empty());
        assert!(from.exists(), "the damaged file is kept");
        let salvaged = StorageConfig {
            dir: to.parent().unwrap().to_owned(),
            ..config
        };
        let store = Store::open(&salvaged, Arc::default()).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
        assert!(store.health().ok, "{:?}", store.health());
        assert_eq!(store.event_count().unwrap(), seen);
        let outbox = Outbox::start(store.clone()).unwrap();
        let next = outbox
            .append_blocking(vec![crate::samples::sample(EventType::FaceRecognized, "c")])
            .unwrap();
        assert_eq!(next[0].seq, Seq(total as i64 + 1), "sequence numbers go on");
    }
}
