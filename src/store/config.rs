//! Where and how the store keeps its data: the `[storage]` section.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::check::{check_range, ConfigError};

/// When a committed transaction reaches the flash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FsyncPolicy {
    /// fsync at every commit (SQLite `synchronous=FULL`): an event acknowledged as recorded survives a
    /// power cut. Group commit keeps the number of fsyncs to one per batch of arriving events.
    Always,
    /// fsync at WAL checkpoints only (`synchronous=NORMAL`): survives a crash of the process, but a power
    /// cut may lose the last second of events. Fewer writes to wear the flash.
    Normal,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    #[serde(default = "default_dir")]
    pub dir: PathBuf,
    /// The store's size limit. When reached, delivered events go first, then the oldest undelivered.
    #[serde(default = "default_quota_mb")]
    pub quota_mb: u64,
    #[serde(default = "default_fsync")]
    pub fsync: FsyncPolicy,
    /// How long delivered events stay readable (`GET /api/v1/events`, replay from a sequence number).
    #[serde(default = "default_retain_hours")]
    pub retain_delivered_hours: u32,
}

fn default_dir() -> PathBuf {
    PathBuf::from("facecv-data")
}
fn default_quota_mb() -> u64 {
    256
}
fn default_fsync() -> FsyncPolicy {
    FsyncPolicy::Always
}
fn default_retain_hours() -> u32 {
    24
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: default_dir(),
            quota_mb: default_quota_mb(),
            fsync: default_fsync(),
            retain_delivered_hours: default_retain_hours(),
        }
    }
}

impl StorageConfig {
    pub fn quota_bytes(&self) -> u64 {
        self.quota_mb * 1024 * 1024
    }
}

impl StorageConfig {
    /// The checks of `[storage]`, with keys relative to it (`quota_mb`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range("quota_mb", self.quota_mb as f64, 1.0, 1_048_576.0, " MiB")?;
        if self.dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("dir", "must not be empty"));
        }
        Ok(())
    }
}
