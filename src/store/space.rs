//! Room on the disk, and the store's condition as `/health` and `/metrics` show it.
//!
//! Guarantees, and the code that keeps them:
//! * The quota counts everything in `storage.dir`: the database's live pages (free pages inside the
//!   file are reused, so they do not count), its WAL and shared-memory files, the reserve, stranger
//!   snapshots, anything else an operator put there ([`Space::other_bytes`]).
//! * Deleting needs room too: SQLite writes a delete to the WAL before the pages come free. A
//!   reserve file ([`RESERVE_FILE`]) holds a few MB of the filesystem; when a write fails with
//!   "disk full" the reserve is given back ([`Space::release_reserve`]), which lets the transactions
//!   that drop the oldest events and move the sinks' cursors commit. It is made again once the
//!   filesystem has one and a half times its size free ([`Space::tend`]), and only then is the store healthy again.
//! * Meanwhile the database may not grow (`max_page_count` is held at its size, see
//!   `Store::make_room`): new events reuse the pages of dropped ones, and the WAL is reused from its
//!   start, so the store lives inside the room it already has instead of filling the reserve again.
//! * While the reserve is given back, or the store is found damaged, the store is degraded and says
//!   why ([`Space::health`]); nothing about it is silent.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::metrics::Metrics;

/// The file in `storage.dir` that keeps room for deletes on a full filesystem.
pub const RESERVE_FILE: &str = "facecv.reserve";
/// How long a walk of the store folder (snapshots can be thousands of files) is reused.
const WALK_EVERY: Duration = Duration::from_secs(5);

/// Why the store is not fully healthy; each a label of `facecv_store_degraded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trouble {
    /// The filesystem ran out of room and the reserve is given back.
    FilesystemFull,
    /// Files other than the events take so much of the quota that dropping events cannot help.
    QuotaTakenByFiles,
    /// Pages of the database cannot be read, or the integrity check failed.
    Damaged,
}

impl Trouble {
    pub fn label(self) -> &'static str {
        match self {
            Trouble::FilesystemFull => "filesystem_full",
            Trouble::QuotaTakenByFiles => "quota_taken_by_files",
            Trouble::Damaged => "damaged",
        }
    }
}

/// The background integrity check's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Integrity {
    /// Started at open; a full check of a large store on an SD card takes a while.
    Checking,
    Ok,
    /// SQLite's own words for the first problems found.
    Damaged(String),
    /// The check itself could not run (the file could not be opened, say).
    Failed(String),
}

/// The store's part of `/health`.
#[derive(Debug, Clone, Serialize)]
pub struct StoreHealth {
    pub ok: bool,
    /// `ok` or `degraded`.
    pub state: &'static str,
    /// Why it is degraded, one sentence per cause; absent when ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub integrity: Integrity,
    /// Bytes counted against the quota at the last check, and the quota.
    pub used_bytes: u64,
    pub quota_bytes: u64,
}

struct State {
    troubles: std::collections::BTreeMap<Trouble, String>,
    integrity: Integrity,
    /// Sequence ranges already reported unreadable, so that each is logged once.
    unreadable: BTreeSet<(i64, i64)>,
    used_bytes: u64,
    walked: Option<(Instant, u64)>,
}

pub struct Space {
    dir: PathBuf,
    db_file: PathBuf,
    reserve_bytes: u64,
    quota_bytes: u64,
    state: Mutex<State>,
}

impl Space {
    /// The reserve is a thirty-second of the quota, between 1 and 8 MiB (enough for the WAL frames
    /// of a delete of a tenth of the events and of the cursor updates behind it), and never more
    /// than an eighth of the quota it counts against.
    pub fn new(dir: &Path, db_file: &Path, quota_bytes: u64) -> Space {
        Space {
            dir: dir.to_owned(),
            db_file: db_file.to_owned(),
            reserve_bytes: (quota_bytes / 32)
                .clamp(1 << 20, 8 << 20)
                .min(quota_bytes / 8),
            quota_bytes,
            state: Mutex::new(State {
                troubles: Default::default(),
                integrity: Integrity::Checking,
                unreadable: BTreeSet::new(),
                used_bytes: 0,
                walked: None,
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn reserve_path(&self) -> PathBuf {
        self.dir.join(RESERVE_FILE)
    }

    #[cfg(test)]
    pub fn reserve_bytes(&self) -> u64 {
        self.reserve_bytes
    }

    /// Bytes the filesystem of the store still gives an unprivileged writer.
    pub fn fs_free(&self) -> std::io::Result<u64> {
        let path = std::ffi::CString::new(self.dir.as_os_str().as_encoded_bytes())
            .map_err(std::io::Error::other)?;
        // SAFETY: `path` is a NUL-terminated string that outlives the call, and `st` is a plain
        // C struct that statvfs fills in; it is read only after statvfs reported success.
        let st = unsafe {
            let mut st: libc::statvfs = std::mem::zeroed();
            if libc::statvfs(path.as_ptr(), &mut st) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            st
        };
        Ok(st.f_bavail as u64 * st.f_frsize as u64)
    }

    /// Makes the reserve file if it is missing and the filesystem has room for it and half as much
    /// again (for the WAL and the next writes).
    /// True when the reserve is in place afterwards.
    pub fn ensure_reserve(&self) -> bool {
        let path = self.reserve_path();
        if std::fs::metadata(&path).is_ok_and(|m| m.len() >= self.reserve_bytes) {
            return true;
        }
        if self.fs_free().unwrap_or(0) < self.reserve_bytes * 3 / 2 {
            return false;
        }
        // Zeros really written, not a sparse file: the blocks must be taken now to be given back
        // later.
        let made = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::create(&path)?;
            let chunk = vec![0u8; 64 * 1024];
            let mut left = self.reserve_bytes;
            while left > 0 {
                let n = left.min(chunk.len() as u64) as usize;
                f.write_all(&chunk[..n])?;
                left -= n as u64;
            }
            f.sync_all()
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            tracing::warn!(error = %e, "cannot make the store's reserve file");
            return false;
        }
        true
    }

    /// Gives the reserve back to the filesystem; true if there was one.
    pub fn release_reserve(&self) -> bool {
        std::fs::remove_file(self.reserve_path()).is_ok()
    }

    /// Bytes of every file in the store folder except the database's main file, as allocated on
    /// disk (a sparse or preallocated file counts what it really takes).
    pub fn other_bytes(&self) -> u64 {
        let mut st = self.state();
        if let Some((at, bytes)) = st.walked {
            if at.elapsed() < WALK_EVERY {
                // The walk is cached; the WAL changes size all the time, so it is read fresh.
                return bytes + self.wal_bytes();
            }
        }
        let walked = walk(&self.dir, &self.db_file, &wal_files(&self.db_file));
        st.walked = Some((Instant::now(), walked));
        walked + self.wal_bytes()
    }

    fn wal_bytes(&self) -> u64 {
        wal_files(&self.db_file)
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| allocated(&m))
            .sum()
    }

    /// Called when the filesystem refused a write: the reserve goes, and the store says so.
    pub fn on_disk_full(&self, metrics: &Metrics) -> bool {
        let released = self.release_reserve();
        let free = self.fs_free().unwrap_or(0);
        self.set(
            Trouble::FilesystemFull,
            Some(format!(
                "filesystem full: {free} bytes free on the filesystem of {}; the oldest events are \
                 dropped to make room, and recording goes on",
                self.dir.display()
            )),
            metrics,
        );
        if released {
            tracing::error!(dir = %self.dir.display(), "filesystem full: gave back the store's reserve so that old events can be dropped");
        }
        released
    }

    /// The periodic look at the filesystem: once there is room again the reserve is made anew and
    /// the filesystem trouble is over.
    /// True when the filesystem trouble has just ended.
    pub fn tend(&self, metrics: &Metrics) -> bool {
        if self.ensure_reserve() {
            let was_full = self.state().troubles.contains_key(&Trouble::FilesystemFull);
            if was_full {
                tracing::info!("the filesystem has room again; the store's reserve is back");
            }
            self.set(Trouble::FilesystemFull, None, metrics);
            return was_full;
        } else if !self.state().troubles.contains_key(&Trouble::FilesystemFull) {
            let free = self.fs_free().unwrap_or(0);
            self.set(
                Trouble::FilesystemFull,
                Some(format!(
                    "filesystem nearly full: {free} bytes free on the filesystem of {}, too \
                     little for the store's reserve of {} bytes",
                    self.dir.display(),
                    self.reserve_bytes
                )),
                metrics,
            );
        }
        false
    }

    /// Sets or clears one cause of degradation.
    pub fn set(&self, trouble: Trouble, reason: Option<String>, metrics: &Metrics) {
        let mut st = self.state();
        let gauge = metrics
            .store_degraded
            .get_or_create(&crate::metrics::ReasonLabel {
                reason: trouble.label(),
            });
        match reason {
            Some(r) => {
                gauge.set(1);
                st.troubles.insert(trouble, r);
            }
            None => {
                gauge.set(0);
                st.troubles.remove(&trouble);
            }
        }
    }

    pub fn set_integrity(&self, integrity: Integrity, metrics: &Metrics) {
        let value = match &integrity {
            Integrity::Ok => 1,
            Integrity::Damaged(_) => 0,
            Integrity::Checking | Integrity::Failed(_) => -1,
        };
        metrics.store_integrity_ok.set(value);
        self.state().integrity = integrity;
    }

    pub fn set_used(&self, used: u64) {
        self.state().used_bytes = used;
    }

    /// Notes that events in `(after, upto]` could not be read; true the first time a range is seen
    /// (the caller logs it then), false for a range already reported.
    pub fn note_unreadable(&self, after: i64, upto: i64) -> bool {
        let mut st = self.state();
        let known = st.unreadable.iter().any(|&(a, u)| a <= after && upto <= u);
        if !known {
            st.unreadable.insert((after, upto));
        }
        !known
    }

    /// Sequence ranges found unreadable since start, for `/health`.
    pub fn unreadable(&self) -> Vec<(i64, i64)> {
        self.state().unreadable.iter().copied().collect()
    }

    pub fn health(&self) -> StoreHealth {
        let st = self.state();
        let mut reasons: Vec<&str> = st.troubles.values().map(String::as_str).collect();
        let damaged_integrity;
        if let Integrity::Damaged(d) = &st.integrity {
            if !st.troubles.contains_key(&Trouble::Damaged) {
                damaged_integrity = format!("the integrity check failed: {d}");
                reasons.push(&damaged_integrity);
            }
        }
        let ok = reasons.is_empty();
        StoreHealth {
            ok,
            state: if ok { "ok" } else { "degraded" },
            reason: (!ok).then(|| reasons.join("; ")),
            integrity: st.integrity.clone(),
            used_bytes: st.used_bytes,
            quota_bytes: self.quota_bytes,
        }
    }
}

/// The WAL and shared-memory files SQLite keeps beside `db`.
pub fn wal_files(db: &Path) -> [PathBuf; 2] {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let mut shm = db.as_os_str().to_owned();
    shm.push("-shm");
    [PathBuf::from(wal), PathBuf::from(shm)]
}

fn allocated(m: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    m.blocks() * 512
}

/// Allocated bytes of every file under `dir`, except `db` and `skip`; symlinks are not followed.
fn walk(dir: &Path, db: &Path, skip: &[PathBuf]) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in entries.flatten() {
        let path = e.path();
        let Ok(m) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if m.is_dir() {
            total += walk(&path, db, skip);
        } else if path != db && !skip.contains(&path) {
            total += allocated(&m);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_made_given_back_and_counted_with_every_other_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("facecv.db");
        std::fs::write(&db, vec![1u8; 1 << 20]).unwrap();
        std::fs::create_dir_all(dir.path().join("snapshots/cam")).unwrap();
        std::fs::write(dir.path().join("snapshots/cam/1.jpg"), vec![2u8; 100_000]).unwrap();
        let space = Space::new(dir.path(), &db, 64 << 20);
        assert_eq!(space.reserve_bytes(), 2 << 20);
        let metrics = Metrics::new();
        assert!(space.ensure_reserve());
        let counted = space.other_bytes();
        assert!(
            ((2 << 20) + 100_000..(3 << 20)).contains(&counted),
            "reserve and snapshot counted, the database's main file not: {counted}"
        );
        assert!(space.on_disk_full(&metrics));
        assert!(!space.health().ok);
        assert!(space.health().reason.unwrap().contains("filesystem full"));
        // Room is back (a normal temp folder): the reserve comes back and the trouble is over.
        space.tend(&metrics);
        assert!(dir.path().join(RESERVE_FILE).exists());
        assert!(space.health().ok, "{:?}", space.health());
    }
}
