//! The checks every section of the configuration shares, and the one error they report.
//!
//! A leaf: every module that owns a piece of configuration (`store`, `api`, `delivery`, `mqtt`,
//! `actions`, `pipeline`) checks it with these and imports nothing else from here, while the root
//! [`Config`](super::Config) imports those pieces. So the messages read the same everywhere
//! ("key: must be between lo and hi unit, got v") without a circle of imports.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config is not valid TOML: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Ids (webhooks, cameras) appear in URLs, topics, logs and metric labels: a safe alphabet only.
pub fn check_name(key: &str, s: &str) -> Result<(), ConfigError> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be 1 to 64 characters of A-Z a-z 0-9 _ - . , got {s:?}"),
        ))
    }
}

/// A number in `lo..=hi` (and not NaN), with the unit the message shows (`" s"`, `" MiB"`): every
/// section reports an out-of-range value in the same words. Integers come in as `f64`, which
/// prints them without a fraction.
pub fn check_range(key: &str, v: f64, lo: f64, hi: f64, unit: &str) -> Result<(), ConfigError> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be between {lo} and {hi}{unit}, got {v}"),
        ))
    }
}

/// `e` with its key under `prefix` (`mqtt.`, `webhooks[2].`).
pub fn prefixed(prefix: &str, e: ConfigError) -> ConfigError {
    match e {
        ConfigError::Invalid { key, message } => {
            ConfigError::invalid(format!("{prefix}{key}"), message)
        }
        other => other,
    }
}
