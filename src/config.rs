//! Typed configuration, read from TOML and validated once at start-up.
//!
//! Every value that can be wrong is checked here, with a message that names the key and the allowed
//! range, so that an installer sees the mistake when the service starts rather than at 3 a.m. when the
//! first event fails. Webhooks created over the API go through the same [`WebhookConfig::validate`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actions::ActionConfig;
use crate::delivery::mqtt::MqttConfig;
use crate::events::EventType;

/// The configuration `facecv serve` runs with when given no file: everything on this machine, the
/// store in a folder beside the working directory.
pub const EMBEDDED_DEFAULT: &str = include_str!("../config/default.toml");

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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    #[serde(default)]
    pub vision: crate::vision::VisionConfig,
    #[serde(default)]
    pub cameras: Vec<crate::pipeline::CameraConfig>,
    /// The MQTT bridge; absent means none (and no `mqtt` cursor holding events back).
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    /// GPIO actions (relay, buzzer, PIR); they run only where there is GPIO.
    #[serde(default)]
    pub actions: Vec<ActionConfig>,
}

/// Settings shared by every webhook.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// A PEM bundle of extra CA certificates to trust for HTTPS webhooks, for receivers behind a
    /// private CA. Mozilla's roots and the system's store are always trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Without a token the API answers loopback peers only; with one, every request must carry it.
    #[serde(default)]
    pub token: Option<String>,
    /// Largest request body accepted, in KiB; larger bodies get 413 before they are read whole.
    #[serde(default = "default_max_body_kb")]
    pub max_body_kb: u32,
    /// Largest image upload (enrolment, recognition), in MiB.
    #[serde(default = "default_max_upload_mb")]
    pub max_upload_mb: u32,
    /// The one folder `POST /faces/offline` may enrol from (and below it); absent turns that route
    /// off. The API is reachable from the LAN: without this bound, a client could make the
    /// appliance read any file its service account can, and learn from the answers what exists.
    #[serde(default)]
    pub offline_enrol_dir: Option<PathBuf>,
    /// The one folder whose files and folders cameras added over the API (and SSE streams) may
    /// read as video; absent, the API refuses file sources. Cameras of the config file may read
    /// any path: the file is the operator's word, a request is anyone's on the LAN.
    #[serde(default)]
    pub media_dir: Option<PathBuf>,
    /// Live streams (SSE, later the console's live views) served at once; past it a new one gets
    /// 503 with `Retry-After`. A stream on a camera of its own (`source=`) runs a camera with its
    /// own vision engine (~25 MB and a share of the CPU each), so this bounds memory too.
    #[serde(default = "default_max_streams")]
    pub max_streams: u32,
    /// Largest uploaded image accepted, in pixels (width x height from its header, read before
    /// anything is decoded). Images above ~2 Mpx are decoded at a reduced scale, so memory does not
    /// grow with this; what it bounds is decoding time, during which the API's engine is busy.
    /// The default, 64 Mi px, lets 48-64 MP phone photos (8000x6000, 9248x6936) through.
    #[serde(default = "default_max_image_pixels")]
    pub max_image_pixels: u64,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:7000".parse().expect("a literal address")
}
fn default_max_body_kb() -> u32 {
    1024
}
fn default_max_upload_mb() -> u32 {
    16
}
/// Four: a Raspberry Pi 4 analyses about four 10 fps cameras before its CPU is full, and four ad-hoc
/// engines (~100 MB) fit beside the rest on a 1 GB board.
fn default_max_streams() -> u32 {
    4
}
fn default_max_image_pixels() -> u64 {
    crate::vision::ImageLimits::DEFAULT_MAX_PIXELS
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_listen(),
            token: None,
            max_body_kb: default_max_body_kb(),
            max_upload_mb: default_max_upload_mb(),
            offline_enrol_dir: None,
            media_dir: None,
            max_streams: default_max_streams(),
            max_image_pixels: default_max_image_pixels(),
        }
    }
}

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

/// A webhook's name: used in URLs, logs and metric labels, so kept to a safe alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookId(pub String);

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

/// A camera's id: the same safe alphabet as a webhook's, checked wherever an id comes in (the
/// cameras routes, a trigger's `camera_id`), since it ends up in paths, topics and metric labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CameraId(String);

impl CameraId {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        check_name("camera_id", s)?;
        // Snapshots go to `snapshots/<camera>/`: `.` and `..` would name another folder.
        if s.contains("..") || s == "." {
            return Err(ConfigError::invalid(
                "camera_id",
                format!("must not be . or contain .., got {s:?}"),
            ));
        }
        Ok(CameraId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CameraId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl WebhookId {
    pub fn parse(s: &str) -> Result<Self, ConfigError> {
        check_name("webhook_id", s)?;
        Ok(WebhookId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WebhookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One webhook, with FaceCV's field names, ranges and defaults (`facecv-api-notes.md`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct WebhookConfig {
    pub webhook_id: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Seconds to wait for the receiver's answer, 1 to 300.
    #[serde(default = "default_timeout")]
    pub timeout: f64,
    /// Retries after the first attempt, 0 to 10 (FaceCV counted attempts; 0 meant none at all).
    #[serde(default = "default_retry_count")]
    pub retry_count: u32,
    /// The first back-off in seconds, 1 to 60; each retry doubles it, with jitter.
    #[serde(default = "default_retry_delay")]
    pub retry_delay: f64,
    #[serde(default = "default_batch_size")]
    pub batch_size: u32,
    /// Seconds to wait for a batch to fill, 0.1 to 60.
    #[serde(default = "default_batch_timeout")]
    pub batch_timeout: f64,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Absent means every type.
    #[serde(default)]
    pub event_types: Option<Vec<EventType>>,
    /// Only events of these cameras; absent means every camera.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera_ids: Option<Vec<String>>,
    /// Standard Webhooks signing secret, `whsec_` + base64 key. Generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn default_timeout() -> f64 {
    30.0
}
fn default_retry_count() -> u32 {
    3
}
fn default_retry_delay() -> f64 {
    1.0
}
fn default_batch_size() -> u32 {
    10
}
fn default_batch_timeout() -> f64 {
    1.0
}
fn default_true() -> bool {
    true
}

/// Headers the appliance sets on every delivery; a configured copy would be sent twice.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

/// A number in `lo..=hi` (and not NaN), with the unit the message shows (`" s"`, `" MiB"`): every
/// section reports an out-of-range value in the same words. Integers come in as `f64`, which
/// prints them without a fraction.
pub(crate) fn check_range(
    key: &str,
    v: f64,
    lo: f64,
    hi: f64,
    unit: &str,
) -> Result<(), ConfigError> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::invalid(
            key,
            format!("must be between {lo} and {hi}{unit}, got {v}"),
        ))
    }
}

impl WebhookConfig {
    /// A webhook with FaceCV's defaults for everything but its id and URL.
    pub fn new(webhook_id: &str, url: &str) -> Self {
        WebhookConfig {
            webhook_id: webhook_id.into(),
            url: url.into(),
            headers: BTreeMap::new(),
            timeout: default_timeout(),
            retry_count: default_retry_count(),
            retry_delay: default_retry_delay(),
            batch_size: default_batch_size(),
            batch_timeout: default_batch_timeout(),
            enabled: true,
            event_types: None,
            camera_ids: None,
            secret: None,
        }
    }

    /// Checks every field against FaceCV's ranges; the error names the first field that is out.
    pub fn validate(&self) -> Result<(), ConfigError> {
        WebhookId::parse(&self.webhook_id)?;
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
            _ => {
                return Err(ConfigError::invalid(
                    "url",
                    format!("must be an http or https URL, got {:?}", self.url),
                ))
            }
        }
        for (name, value) in &self.headers {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err(ConfigError::invalid(
                    format!("headers.{name}"),
                    "is set by the appliance itself and cannot be configured",
                ));
            }
            if http::HeaderName::from_bytes(name.as_bytes()).is_err()
                || http::HeaderValue::from_str(value).is_err()
            {
                return Err(ConfigError::invalid(
                    format!("headers.{name}"),
                    "must be a valid HTTP header name and value",
                ));
            }
        }
        for c in self.camera_ids.iter().flatten() {
            check_name("camera_ids", c)?;
        }
        check_range("timeout", self.timeout, 1.0, 300.0, " s")?;
        check_range("retry_count", self.retry_count.into(), 0.0, 10.0, "")?;
        check_range("retry_delay", self.retry_delay, 1.0, 60.0, " s")?;
        check_range("batch_size", self.batch_size.into(), 1.0, 100.0, "")?;
        check_range("batch_timeout", self.batch_timeout, 0.1, 60.0, " s")?;
        if let Some(secret) = &self.secret {
            crate::delivery::sign::SigningKey::parse(secret)
                .map_err(|e| ConfigError::invalid("secret", e.to_string()))?;
        }
        Ok(())
    }

    pub fn id(&self) -> WebhookId {
        WebhookId(self.webhook_id.clone())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }
    pub fn retry_delay(&self) -> Duration {
        Duration::from_secs_f64(self.retry_delay)
    }
    pub fn batch_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.batch_timeout)
    }

    /// The events this webhook receives.
    pub fn filter(&self) -> crate::events::EventFilter<'_> {
        crate::events::EventFilter {
            types: self.event_types.as_deref(),
            cameras: self.camera_ids.as_deref(),
        }
    }
}

/// `api.media_dir` may be created after the service starts (cameras added before then are refused
/// with a clear code), but it must not be a file, nor `/`, which would open every file to the API.
fn check_media_dir(dir: &Path) -> Result<(), ConfigError> {
    let key = "api.media_dir";
    if dir.as_os_str().is_empty() {
        return Err(ConfigError::invalid(key, "must not be empty"));
    }
    if let Ok(real) = dir.canonicalize() {
        if real.parent().is_none() {
            return Err(ConfigError::invalid(
                key,
                "must not be the root folder: the API could read every file",
            ));
        }
        if !real.is_dir() {
            return Err(ConfigError::invalid(
                key,
                format!("{} is not a folder", dir.display()),
            ));
        }
    }
    Ok(())
}

impl Config {
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        // Through serde_path_to_error so that a value of the wrong type or shape is reported
        // against its dotted key: toml alone points at a line, which for a table given where a
        // string belongs is a line inside it that does not name the key at all.
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            if key == "." {
                ConfigError::Parse(inner)
            } else {
                ConfigError::invalid(key, inner.to_string())
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text)
    }

    pub fn embedded_default() -> Self {
        Self::from_toml(EMBEDDED_DEFAULT).expect("the embedded default config is valid")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.api.token {
            if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::invalid(
                    "api.token",
                    "must be at least 16 printable characters without spaces",
                ));
            }
        }
        let max_body_kb = self.api.max_body_kb.into();
        check_range("api.max_body_kb", max_body_kb, 1.0, 65536.0, " KiB")?;
        let max_upload_mb = self.api.max_upload_mb.into();
        check_range("api.max_upload_mb", max_upload_mb, 1.0, 256.0, " MiB")?;
        let max_streams = self.api.max_streams.into();
        check_range("api.max_streams", max_streams, 1.0, 64.0, "")?;
        // Below 1 Mpx ordinary photos are refused; above 256 Mpx one upload keeps the engine for
        // tens of seconds on a Pi.
        let max_image_pixels = self.api.max_image_pixels as f64;
        check_range(
            "api.max_image_pixels",
            max_image_pixels,
            1e6,
            268_435_456.0,
            " pixels",
        )?;
        let quota_mb = self.storage.quota_mb as f64;
        check_range("storage.quota_mb", quota_mb, 1.0, 1_048_576.0, " MiB")?;
        if let Some(ca) = &self.delivery.ca_file {
            if !ca.is_file() {
                return Err(ConfigError::invalid(
                    "delivery.ca_file",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        if let Some(media) = &self.api.media_dir {
            check_media_dir(media)?;
        }
        if self.storage.dir.as_os_str().is_empty() {
            return Err(ConfigError::invalid("storage.dir", "must not be empty"));
        }
        self.vision.validate().map_err(|e| match e {
            crate::vision::VisionError::Config { key, message } => {
                ConfigError::invalid(key, message)
            }
            other => ConfigError::invalid("vision", other.to_string()),
        })?;
        let mut cameras = std::collections::BTreeSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            c.validate().map_err(|e| match e {
                ConfigError::Invalid { key, message } => {
                    ConfigError::invalid(format!("cameras[{i}].{key}"), message)
                }
                other => other,
            })?;
            if !cameras.insert(&c.camera_id) {
                return Err(ConfigError::invalid(
                    format!("cameras[{i}].camera_id"),
                    format!("{:?} is used by two cameras", c.camera_id),
                ));
            }
        }
        if let Some(mqtt) = &self.mqtt {
            mqtt.validate().map_err(|e| prefixed("mqtt.", e))?;
        }
        crate::actions::config::validate_all(&self.actions)?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, w) in self.webhooks.iter().enumerate() {
            w.validate()
                .map_err(|e| prefixed(&format!("webhooks[{i}]."), e))?;
            if !seen.insert(&w.webhook_id) {
                return Err(ConfigError::invalid(
                    format!("webhooks[{i}].webhook_id"),
                    format!("{:?} is used by two webhooks", w.webhook_id),
                ));
            }
        }
        Ok(())
    }
}

/// `e` with its key under `prefix` (`mqtt.`, `webhooks[2].`).
fn prefixed(prefix: &str, e: ConfigError) -> ConfigError {
    match e {
        ConfigError::Invalid { key, message } => {
            ConfigError::invalid(format!("{prefix}{key}"), message)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_valid_and_local() {
        let c = Config::embedded_default();
        assert!(c.api.listen.ip().is_loopback());
        assert_eq!(c.api.listen.port(), 7000);
        assert_eq!(c.storage.fsync, FsyncPolicy::Always);
    }

    #[test]
    fn the_shipped_board_config_is_valid_and_uses_the_installed_layout() {
        let c = Config::from_toml(include_str!("../systemd/facecv.toml")).unwrap();
        assert!(
            c.api.listen.ip().is_loopback(),
            "LAN only once a token is set"
        );
        assert!(c.api.token.is_none());
        assert_eq!(c.storage.dir, Path::new("/var/lib/facecv"));
        assert_eq!(
            c.vision.models_dir,
            Path::new("/opt/facecv/current/share/facecv/models")
        );
        assert_eq!(
            c.vision.runtime.library.as_deref(),
            Some(Path::new("/opt/facecv/current/lib/libLiteRt.so"))
        );
    }

    #[test]
    fn a_webhook_out_of_range_names_its_key() {
        let err = Config::from_toml(
            r#"
            [[webhooks]]
            webhook_id = "main"
            url = "http://127.0.0.1:8080/hook"
            timeout = 500
            "#,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "webhooks[0].timeout: must be between 1 and 300 s, got 500"
        );
    }

    #[test]
    fn whole_number_limits_read_as_whole_numbers() {
        let err = |toml: &str| Config::from_toml(toml).unwrap_err().to_string();
        assert_eq!(
            err("[api]\nmax_body_kb = 0\n"),
            "api.max_body_kb: must be between 1 and 65536 KiB, got 0"
        );
        assert_eq!(
            err("[api]\nmax_upload_mb = 300\n"),
            "api.max_upload_mb: must be between 1 and 256 MiB, got 300"
        );
        assert_eq!(
            err("[api]\nmax_streams = 0\n"),
            "api.max_streams: must be between 1 and 64, got 0"
        );
        assert_eq!(
            err("[storage]\nquota_mb = 2000000\n"),
            "storage.quota_mb: must be between 1 and 1048576 MiB, got 2000000"
        );
    }

    #[test]
    fn unknown_keys_and_bad_urls_are_refused() {
        let err = Config::from_toml("[storage]\nquota = 5\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `quota`"), "{err}");
        let err =
            Config::from_toml("[[webhooks]]\nwebhook_id = \"a\"\nurl = \"ftp://example.org/\"\n")
                .unwrap_err();
        assert!(err.to_string().starts_with("webhooks[0].url:"), "{err}");
    }

    /// Regression (found by `tests/parsers.rs`): a table where a string belongs was reported at a
    /// line inside the table, which does not name the key.
    #[test]
    fn a_value_of_the_wrong_shape_names_its_key() {
        let err = Config::from_toml("[storage.fsync]\n_ = 0\n").unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == "storage.fsync"),
            "{err}"
        );
        let err = Config::from_toml("[[webhooks]]\nwebhook_id = \"a\"\nurl = 5\n").unwrap_err();
        assert!(err.to_string().starts_with("webhooks[0].url: "), "{err}");
    }

    #[test]
    fn duplicate_webhook_ids_are_refused() {
        let err = Config::from_toml(
            "[[webhooks]]\nwebhook_id = \"a\"\nurl = \"http://h/\"\n[[webhooks]]\nwebhook_id = \"a\"\nurl = \"http://h/\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("used by two webhooks"), "{err}");
    }

    #[test]
    fn webhook_ids_keep_to_a_safe_alphabet() {
        assert!(WebhookId::parse("main_recognition").is_ok());
        assert!(WebhookId::parse("a/b").is_err());
        assert!(WebhookId::parse("").is_err());
    }

    #[test]
    fn camera_ids_name_no_other_folder() {
        assert!(CameraId::parse("gate-2.north_side").is_ok());
        for bad in ["", ".", "..", "a..b", "../x", "a/b", "a\u{0}b", "a b"] {
            assert!(CameraId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_media_folder_is_a_folder_and_not_the_whole_disk() {
        let with = |dir: &str| {
            let text = format!("[api]\nmedia_dir = \"{dir}\"\n");
            Config::from_toml(&text).map_err(|e| e.to_string())
        };
        assert!(with("/").unwrap_err().contains("api.media_dir"));
        let file = tempfile::NamedTempFile::new().unwrap();
        let file = file.path().to_str().unwrap();
        assert!(with(file).unwrap_err().contains("not a folder"));
        assert!(with("/var/lib/facecv/not-made-yet").is_ok());
        assert!(with("").is_err());
    }
}
