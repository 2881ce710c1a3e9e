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
//! * The WAL is kept small: it checkpoints every [`wal_pages`] pages and is cut back to that size
//!   afterwards (`journal_size_limit`), so it never holds more than a few MB of a small filesystem.
//! * A write refused for a full disk gives back the reserve, drops the oldest events and is tried
//!   once more ([`Store::write`]), whatever it was: an event, a cursor, a delivery outcome. See
//!   [`space`] for what the quota counts and how the store says it is degraded.
//! * A damaged file is never run on silently nor deleted: a bounded `quick_check` at open, a full
//!   `integrity_check` in the background, readers that skip unreadable pages and report them
//!   ([`damage`]), and `facecv salvage` to copy what is readable into a new file ([`salvage`]).

pub(crate) mod cameras;
mod config;
pub(crate) mod damage;
pub(crate) mod faces;
pub(crate) mod migrations;
pub(crate) mod outbox;
pub(crate) mod private_file;
mod quota;
pub(crate) mod salvage;
pub(crate) mod sinks;
pub(crate) mod space;
pub mod subscription;
pub(crate) mod timeline;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, Transaction};

use crate::events::Seq;
use crate::metrics::Metrics;

pub use config::{FsyncPolicy, StorageConfig};
pub use damage::QuickCheck;
pub use faces::NewFace;
pub use outbox::Outbox;
use space::Space;
pub use space::{Integrity, StoreHealth};

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
    #[error("cannot start the store's {name} thread: {source}")]
    Thread {
        name: &'static str,
        source: std::io::Error,
    },
    #[error("event {seq} is stored with the type {found:?}, which this binary does not know; it is not delivered")]
    UnknownEventType { seq: i64, found: String },
    #[error(
        "webhook {webhook} is stored with the origin {found:?}, which this binary does not know"
    )]
    UnknownOrigin { webhook: String, found: String },
    #[error("webhook {webhook} has a stored secret that cannot be used ({reason}); it is not run until its secret is rotated")]
    BadSecret { webhook: String, reason: String },
    #[error("the gallery's pictures take {used} bytes and these {adding} more would pass their share of storage.quota_mb ({limit} bytes); delete photos of people no longer needed, or raise the quota")]
    ImagesFull { used: u64, adding: u64, limit: u64 },
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("the store {path} is damaged ({detail}); it was left as it is: stop the service and run `facecv salvage --from {path} --to <new file>`, then point storage.dir at the new file's folder")]
    Damaged { path: PathBuf, detail: String },
}

impl StoreError {
    /// SQLite's "database or disk is full": the one write error that dropping old events can cure.
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DiskFull)
    }

    /// SQLite found a page it cannot make sense of: the file is damaged there.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if matches!(e.code, rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase))
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
    space: Space,
    /// SQLite's own page limit, restored when a full filesystem has room again.
    max_pages: i64,
    /// Events of a type this binary does not know, already reported.
    unknown_types: Mutex<std::collections::BTreeSet<i64>>,
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
    ///
    /// A damaged file does not stop the start when SQLite can still open it: recording goes on,
    /// readers skip what they cannot read, and `/health` names the damage and the way back. Only a
    /// file that cannot be opened or upgraded at all is refused, with the salvage command named.
    pub fn open(config: &StorageConfig, metrics: Arc<Metrics>) -> Result<Store> {
        std::fs::create_dir_all(&config.dir).map_err(|source| StoreError::Dir {
            path: config.dir.clone(),
            source,
        })?;
        let path = config.dir.join(DB_FILE);
        let space = Space::new(&config.dir, &path, config.quota_bytes());
        space.set_integrity(space::Integrity::Checking, &metrics);
        let damaged = |e: StoreError| match e {
            e if e.is_corrupt() => StoreError::Damaged {
                path: path.clone(),
                detail: e.to_string(),
            },
            e => e,
        };
        let mut writer = Connection::open(&path)?;
        configure(&writer, config.quota_bytes()).map_err(damaged)?;
        migrations::migrate(&mut writer).map_err(damaged)?;
        let max_pages: i64 = writer.query_row("PRAGMA max_page_count", [], |r| r.get(0))?;
        let store = Store {
            inner: Arc::new(Inner {
                path: path.clone(),
                writer: Mutex::new(writer),
                readers: Mutex::new(Vec::new()),
                fsync: config.fsync,
                quota_bytes: config.quota_bytes(),
                retain_delivered_ms: i64::from(config.retain_delivered_hours) * 3_600_000,
                metrics,
                space,
                max_pages,
                unknown_types: Mutex::default(),
            }),
        };
        store.tend_space();
        damage::quick_check_at_open(&store);
        Ok(store)
    }

    /// Starts the full integrity check on its own connection; its result goes to `/health` and
    /// `facecv_store_integrity_ok`. The appliance calls it once after open.
    pub fn check_integrity_in_background(&self) {
        damage::spawn_integrity_check(self.clone());
    }

    /// The store's condition for `/health`.
    pub fn health(&self) -> StoreHealth {
        self.inner.space.health()
    }

    pub(crate) fn space(&self) -> &Space {
        &self.inner.space
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
    ///
    /// A transaction refused because the disk is full is tried once more after [`Store::make_room`]:
    /// cursors and delivery outcomes must be recorded on a full disk too, or a restart would
    /// deliver everything again.
    fn write<T>(
        &self,
        durability: Durability,
        f: impl Fn(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        match self.write_once(durability, &f) {
            Err(e) if e.is_disk_full() => {
                self.make_room();
                self.write_once(durability, &f)
            }
            r => r,
        }
    }

    fn write_once<T>(
        &self,
        durability: Durability,
        f: &impl Fn(&Transaction<'_>) -> Result<T>,
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

    /// The filesystem is full: give back the reserve, copy the WAL into the main file (the one
    /// write that may still need room: the main file grows to the database's size), hold the
    /// database at its size so that new pages come from dropped events rather than the
    /// filesystem, and drop a fifth of the events (delivered first). The WAL then starts again
    /// from its beginning, inside the file it already has.
    fn make_room(&self) {
        self.inner.space.on_disk_full(self.metrics());
        self.checkpoint(true);
        self.hold_size(true);
        let live = self.live_bytes().unwrap_or(0);
        if let Err(e) = quota::drop_until(self, (live as f64 * 0.8) as u64) {
            tracing::error!(error = %e, "could not drop events to make room on a full disk");
        }
        self.checkpoint(true);
    }

    /// With `hold`, the database may not grow past the pages it has (SQLite then answers "full"
    /// before it writes anything); without, it may grow again up to SQLite's own limit.
    fn hold_size(&self, hold: bool) {
        let conn = self.writer();
        let r = if hold {
            conn.query_row("PRAGMA page_count", [], |r| r.get::<_, i64>(0))
                .and_then(|pages| conn.pragma_update(None, "max_page_count", pages))
        } else {
            conn.pragma_update(None, "max_page_count", self.inner.max_pages)
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, hold, "cannot set the store's page limit");
        }
    }

    /// The periodic look at the filesystem ([`Space::tend`]); once there is room again the
    /// database may grow again.
    pub(crate) fn tend_space(&self) {
        if self.inner.space.tend(self.metrics()) {
            self.hold_size(false);
        }
    }

    /// Copies the WAL into the main file. With `restart`, waits for readers so that the next write
    /// starts the WAL from its beginning and `journal_size_limit` cuts it back.
    pub(crate) fn checkpoint(&self, restart: bool) {
        let mode = if restart { "RESTART" } else { "PASSIVE" };
        let conn = self.writer();
        let r: rusqlite::Result<(i64, i64, i64)> =
            conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            });
        if let Err(e) = r {
            tracing::warn!(error = %e, mode, "WAL checkpoint failed");
        }
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

    /// SQLite's full `integrity_check` ("ok", or the problems found), on its own connection:
    /// `facecv check-config` and the background check use it.
    pub fn integrity_check(&self) -> Result<String> {
        damage::integrity_check(&self.inner.path, None)
    }

    /// SQLite's `quick_check` on its own connection, within `budget`, asked for by a person (the
    /// console's System page); damage found marks the store degraded as the start's checks do.
    pub fn quick_check(&self, budget: std::time::Duration) -> Result<QuickCheck> {
        damage::quick_check(self, budget)
    }

    /// A cheap read that proves the store answers (the systemd watchdog's probe): it touches no
    /// event page, so damage in the events does not make systemd restart the service in a loop.
    pub fn alive(&self) -> Result<Seq> {
        self.read(outbox::last_seq)
    }

    /// Bytes counted against the quota: the database's live pages, and every other file in the
    /// store folder (WAL, reserve, snapshots).
    pub fn used_bytes(&self) -> Result<u64> {
        let used = self.live_bytes()? + self.inner.space.other_bytes();
        self.inner.space.set_used(used);
        Ok(used)
    }

    /// Bytes the database's live pages take.
    pub(crate) fn live_bytes(&self) -> Result<u64> {
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

/// Pages the WAL may hold before it is checkpointed: a sixty-fourth of the quota, between 32
/// pages (128 KiB) and 4000 (16 MiB, what large stores always had). A small store on a small
/// filesystem gets a small WAL; a large one keeps the fewer, larger checkpoints it always had (each
/// an fsync of the main file under `fsync = "always"`), and with them group commit's throughput.
pub(crate) fn wal_pages(quota_bytes: u64) -> i64 {
    (quota_bytes / 64 / 4096).clamp(32, 4000) as i64
}

fn configure(conn: &Connection, quota_bytes: u64) -> Result<()> {
    // WAL: readers never block the writer and a commit is one sequential append, kind to flash.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "the store could not switch to WAL mode");
    }
    let pages = wal_pages(quota_bytes);
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys = ON;
         PRAGMA wal_autocheckpoint = {pages};
         PRAGMA journal_size_limit = {};
         PRAGMA temp_store = MEMORY;",
        pages * 4096
    ))?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

fn used_bytes(conn: &Connection) -> Result<u64> {
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    let size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// A store with the default settings in `dir`, for the unit tests of the store's modules.
#[cfg(test)]
pub(crate) fn open_for_test(dir: &Path) -> Store {
    let config = StorageConfig {
        dir: dir.to_owned(),
        ..StorageConfig::default()
    };
    Store::open(&config, Arc::default()).expect("a store in a temp folder")
}

/// [`open_for_test`] with its outbox started.
#[cfg(test)]
pub(crate) fn open_with_outbox_for_test(dir: &Path) -> (Store, Outbox) {
    let store = open_for_test(dir);
    let outbox = Outbox::start(store.clone()).expect("the outbox of a temp store");
    (store, outbox)
}

/// A JSON column read into `T`. The store writes these only from values that serialised, so a
/// column that does not parse is damage: it is an error naming the column, never an empty value
/// that would, say, replay a dead letter as no events at all.
pub(crate) fn json_column<T: serde::de::DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Now as FaceCV's timestamp text.
pub(crate) fn now_text() -> String {
    crate::events::format_timestamp(time::OffsetDateTime::now_utc())
}
