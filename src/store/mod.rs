//! The store: one SQLite database in WAL mode, the appliance's single source of truth.
//!
//! * One writer connection, behind a mutex, does every write. SQLite allows one writer at a time
//!   anyway; owning it explicitly turns lock contention into a short queue instead of busy retries.
//! * Readers take connections from a small pool; in WAL mode they never wait for the writer.
//! * Events are appended by the committer thread ([`outbox`]), which groups whatever arrives together
//!   into one transaction: one fsync for many events, which is what keeps flash wear and latency low.
//! * Bookkeeping (cursors, attempts, statistics) is written with `synchronous=NORMAL`: losing the last
//!   cursor update to a power cut only means a batch is delivered again, which at-least-once allows.
//!   Events themselves are written under the configured [`FsyncPolicy`].

pub mod cameras;
pub mod faces;
pub mod migrations;
pub mod outbox;
pub mod sinks;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, Transaction};

use crate::config::{FsyncPolicy, StorageConfig};
use crate::metrics::Metrics;

pub use outbox::Outbox;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("cannot create the storage folder {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the database is at schema version {found}, newer than this binary knows ({known}); run the newer binary or restore a backup")]
    TooNew { found: u32, known: u32 },
    #[error(
        "the store is full: the disk or quota has no room even after dropping the oldest events"
    )]
    Full,
    #[error("recording events failed: {0}")]
    Commit(String),
    #[error("the store is closed")]
    Closed,
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
}

impl StoreError {
    /// SQLite's "database or disk is full": the one write error that dropping old events can cure.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DiskFull)
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The file name of the database inside `storage.dir`.
pub const DB_FILE: &str = "facecv.db";

/// How many read connections are kept open between uses.
const MAX_IDLE_READERS: usize = 8;

pub(crate) struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    fsync: FsyncPolicy,
    quota_bytes: u64,
    retain_delivered_ms: i64,
    metrics: Arc<Metrics>,
}

/// A cheap handle to the store; clone it freely.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// The durability a write transaction asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// Recorded events: as the configured fsync policy says.
    Events,
    /// Cursors, statistics, attempts: a lost write means a repeat delivery, never a lost event.
    Bookkeeping,
}

impl Store {
    /// Opens (creating if needed) the store in `config.dir`, and brings its schema up to date.
    pub fn open(config: &StorageConfig, metrics: Arc<Metrics>) -> Result<Store> {
        std::fs::create_dir_all(&config.dir).map_err(|source| StoreError::Dir {
            path: config.dir.clone(),
            source,
        })?;
        let path = config.dir.join(DB_FILE);
        let mut writer = Connection::open(&path)?;
        configure(&writer)?;
        migrations::migrate(&mut writer)?;
        let store = Store {
            inner: Arc::new(Inner {
                path,
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                fsync: config.fsync,
                quota_bytes: config.quota_bytes(),
                retain_delivered_ms: i64::from(config.retain_delivered_hours) * 3_600_000,
                metrics,
            }),
        };
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (the transaction rolls
        // back when dropped), so a poisoned lock is safe to take over.
        self.inner
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` in one write transaction with the given durability, committing if it returns Ok.
    fn write<T>(
        &self,
        durability: Durability,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.writer();
        let sync = match (durability, self.inner.fsync) {
            (Durability::Events, FsyncPolicy::Always) => "FULL",
            _ => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        let tx = conn.transaction()?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` on a pooled read connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self
            .inner
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.inner.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c
            }
        };
        let value = f(&conn);
        let mut idle = self.inner.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        value
    }

    /// Runs blocking store work from async code without stalling the runtime's threads.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Checks the database file page by page (`facecv check-config` and `/health` use it).
    pub fn integrity_check(&self) -> Result<String> {
        self.read(|c| Ok(c.query_row("PRAGMA quick_check", [], |r| r.get(0))?))
    }

    /// Bytes the database's live pages take: what the quota is measured against.
    pub fn used_bytes(&self) -> Result<u64> {
        let conn = self.writer();
        used_bytes(&conn)
    }

    /// Checkpoints the WAL into the main file so that the next start has nothing to replay.
    pub fn close(&self) -> Result<()> {
        let conn = self.writer();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        self.inner
            .readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        Ok(())
    }
}

fn configure(conn: &Connection) -> Result<()> {
    // WAL: readers never block the writer and a commit is one sequential append, kind to flash.
    // A larger autocheckpoint batches the random writes into the main file.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "the store could not switch to WAL mode");
    }
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = 4000;
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

fn used_bytes(conn: &Connection) -> Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Now as FaceCV's timestamp text.
pub(crate) fn now_text() -> String {
    crate::events::format_timestamp(time::OffsetDateTime::now_utc())
}
