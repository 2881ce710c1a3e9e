//! The quota: what the outbox drops, and in which order, when the store is over its size or the
//! disk is full. Recording never stops for it; delivered events go first, then the oldest
//! undelivered ones, each counted against the sinks that had not had them yet.

use rusqlite::Transaction;

use super::{Durability, Result, Store};

/// After the quota is hit, events are dropped until the store is this share of it (hysteresis, so
/// that dropping does not run at every commit).
const QUOTA_LOW_WATER: f64 = 0.9;

/// The periodic look at the store's size: the reserve tended, the WAL cut back when a reader kept
/// the automatic checkpoint from finishing, and the oldest events dropped over the quota.
pub(super) fn check_quota(store: &Store) {
    store.tend_space();
    let wal_limit = super::wal_pages(store.inner.quota_bytes) as u64 * 4096;
    let wal = std::fs::metadata(super::space::wal_files(store.path())[0].as_path())
        .map(|m| m.len())
        .unwrap_or(0);
    if wal > 2 * wal_limit {
        store.checkpoint(true);
    }
    if let Ok(used) = store.used_bytes() {
        store.metrics().store_bytes.set(used as i64);
        if used > store.inner.quota_bytes {
            let low = (store.inner.quota_bytes as f64 * QUOTA_LOW_WATER) as u64;
            if let Err(e) = enforce_quota(store, low) {
                tracing::error!(error = %e, "could not enforce the storage quota");
            }
        }
    }
}

/// Drops the oldest events until everything the quota counts fits in `target` bytes. Files other
/// than the events (snapshots, the WAL, the reserve) are counted but cannot be dropped here; when
/// they take most of the quota the store says so rather than deleting every event.
pub(super) fn enforce_quota(store: &Store, target: u64) -> Result<u64> {
    store.checkpoint(false);
    let other = store.space().other_bytes();
    let floor = store.inner.quota_bytes / 4;
    let live_target = target.saturating_sub(other);
    let trouble = (live_target < floor).then(|| {
        format!(
            "files other than the events (WAL, reserve, snapshots) take {other} of the {} bytes              of storage.quota_mb; events are kept down to a quarter of the quota",
            store.inner.quota_bytes
        )
    });
    store.space().set(
        super::space::Trouble::QuotaTakenByFiles,
        trouble,
        store.metrics(),
    );
    drop_until(store, live_target.max(floor))
}

/// Deletes the oldest events until the store's live pages fit in `target` bytes: delivered events
/// first (every sink's cursor is past them), then undelivered ones, which are counted as dropped for
/// each sink that had not had them yet. Each step is its own transaction, written without the
/// full-disk retry of [`Store::write`]: this is what that retry calls.
pub(super) fn drop_until(store: &Store, target: u64) -> Result<u64> {
    let mut dropped_total = 0;
    for _ in 0..64 {
        let used = store.live_bytes()?;
        if used <= target {
            break;
        }
        let dropped = store.write_once(Durability::Bookkeeping, &drop_oldest_tenth)?;
        match dropped {
            None => break,
            Some(n) => {
                // Counted step by step, so the metric never lags the store's own count by more
                // than the step in progress.
                store.metrics().events_dropped.inc_by(n);
                dropped_total += n;
            }
        }
    }
    if dropped_total > 0 {
        tracing::warn!(
            dropped = dropped_total,
            quota_bytes = store.inner.quota_bytes,
            "storage quota reached or disk full: dropped the oldest undelivered events"
        );
    }
    Ok(dropped_total)
}

/// One step of [`drop_until`]: `None` when there is nothing left to delete.
fn drop_oldest_tenth(tx: &Transaction<'_>) -> Result<Option<u64>> {
    let (count, first): (i64, Option<i64>) =
        tx.query_row("SELECT COUNT(*), MIN(seq) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let Some(first) = first else {
        return Ok(None);
    };
    let n = (count / 10).max(64).min(count);
    let mut cut: i64 = tx.query_row(
        "SELECT seq FROM events ORDER BY seq LIMIT 1 OFFSET ?1",
        [n - 1],
        |r| r.get(0),
    )?;
    let min_cursor: Option<i64> =
        tx.query_row("SELECT MIN(seq) FROM sink_cursors", [], |r| r.get(0))?;
    let delivered_upto = min_cursor.unwrap_or(i64::MAX);
    if delivered_upto >= first {
        // Delivered events exist: remove only those in this step.
        cut = cut.min(delivered_upto);
    }
    // Charge each sink for the undelivered events it is about to lose.
    tx.execute(
        "UPDATE sink_cursors SET dropped = dropped +
            (SELECT COUNT(*) FROM events WHERE seq > sink_cursors.seq AND seq <= ?1)
         WHERE seq < ?1",
        [cut],
    )?;
    let undelivered: i64 = tx.query_row(
        "SELECT COUNT(*) FROM events WHERE seq > ?1 AND seq <= ?2",
        [delivered_upto.min(cut), cut],
        |r| r.get(0),
    )?;
    tx.execute("DELETE FROM events WHERE seq <= ?1", [cut])?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('dropped_total', ?1)
         ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
        [undelivered],
    )?;
    Ok(Some(undelivered as u64))
}
