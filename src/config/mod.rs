//! Typed configuration, read from TOML and validated once at start-up.
//!
//! Every value that can be wrong is checked here, with a message that names the key and the allowed
//! range, so that an installer sees the mistake when the service starts rather than at 3 a.m. when the
//! first event fails. Webhooks created over the API go through the same [`WebhookConfig::validate`].
//!
//! This is the root: each section's type lives beside the module it configures (`api::ApiConfig`,
//! `store::StorageConfig`, `store::webhook::WebhookConfig`, `pipeline::CameraConfig`, ...) and
//! checks itself with the shared leaf [`check`]; `Config` only gathers them, prefixes their keys
//! (`api.`, `webhooks[2].`) and checks what spans sections (ids used twice). It imports downward
//! only; nothing but the binary's edges imports it.

pub mod check;
mod redact;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use check::prefixed;
pub use check::ConfigError;

use crate::actions::ActionConfig;
use crate::api::ApiConfig;
use crate::delivery::mqtt::MqttConfig;
use crate::delivery::DeliveryConfig;
use crate::pipeline::CameraConfig;
use crate::store::webhook::WebhookConfig;
use crate::store::StorageConfig;
use crate::vision::VisionConfig;

/// The configuration `facecv serve` runs with when given no file: everything on this machine, the
/// store in a folder beside the working directory.
pub const EMBEDDED_DEFAULT: &str = include_str!("../../config/default.toml");

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The file this was read from (absolute); `None` for the embedded default or a text.
    #[serde(skip)]
    pub file: Option<PathBuf>,
    #[serde(default)]
    pub api: ApiConfig,
    #[serde(default)]
    pub storage: StorageConfig,
    #[serde(default)]
    pub delivery: DeliveryConfig,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    #[serde(default)]
    pub vision: VisionConfig,
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// The MQTT bridge; absent means none (and no `mqtt` cursor holding events back).
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    /// GPIO actions (relay, buzzer, PIR); they run only where there is GPIO.
    #[serde(default)]
    pub actions: Vec<ActionConfig>,
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
        let mut config = Self::from_toml(&text)?;
        config.file = Some(std::path::absolute(path).unwrap_or_else(|_| path.to_owned()));
        Ok(config)
    }

    pub fn embedded_default() -> Self {
        Self::from_toml(EMBEDDED_DEFAULT).expect("the embedded default config is valid")
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.api.validate().map_err(|e| prefixed("api.", e))?;
        self.storage
            .validate()
            .map_err(|e| prefixed("storage.", e))?;
        self.delivery
            .validate()
            .map_err(|e| prefixed("delivery.", e))?;
        self.vision.validate().map_err(|e| match e {
            crate::vision::VisionError::Config { key, message } => {
                ConfigError::invalid(key, message)
            }
            other => ConfigError::invalid("vision", other.to_string()),
        })?;
        let mut cameras = std::collections::BTreeSet::new();
        for (i, c) in self.cameras.iter().enumerate() {
            c.validate()
                .map_err(|e| prefixed(&format!("cameras[{i}]."), e))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_default_is_valid_and_local() {
        let c = Config::embedded_default();
        assert!(c.api.listen.ip().is_loopback());
        assert_eq!(c.api.listen.port(), 7000);
        assert_eq!(c.storage.fsync, crate::store::FsyncPolicy::Always);
    }

    #[test]
    fn the_shipped_board_config_is_valid_and_uses_the_installed_layout() {
        let c = Config::from_toml(include_str!("../../systemd/facecv.toml")).unwrap();
        assert!(
            c.api.listen.ip().is_loopback(),
            "LAN only once a token is set"
        );
        let https = c.api.tls_listen.expect("the board serves HTTPS");
        assert!(
            https.ip().is_loopback(),
            "HTTPS on the LAN only with a token"
        );
        assert_eq!(https.port(), 7443);
        assert!(c.api.http, "port 7000 stays for FaceCV's clients");
        assert!(
            c.api.tls_cert.is_none(),
            "the self-signed certificate by default"
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
            err("[api]\nsession_ttl_minutes = 0\n"),
            "api.session_ttl_minutes: must be between 1 and 43200 minutes, got 0"
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

    #[test]
    fn the_listeners_and_the_certificate_are_checked_together() {
        let err = |toml: &str| Config::from_toml(toml).unwrap_err().to_string();
        assert!(err("[api]\nhttp = false\n").starts_with("api.http: "));
        let https_only = Config::from_toml("[api]\nhttp = false\ntls_listen = \"0.0.0.0:7443\"\n");
        assert!(https_only.is_ok());
        assert!(err("[api]\ntls_listen = \"127.0.0.1:7000\"\n").starts_with("api.tls_listen: "));
        let cert_only =
            "[api]\ntls_listen = \"127.0.0.1:7443\"\ntls_cert = \"/etc/facecv/cert.pem\"\n";
        assert!(err(cert_only).starts_with("api.tls_key: "));
        let key_only =
            "[api]\ntls_listen = \"127.0.0.1:7443\"\ntls_key = \"/etc/facecv/key.pem\"\n";
        assert!(err(key_only).starts_with("api.tls_cert: "));
        let unserved = "[api]\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"\n";
        assert!(err(unserved).contains("tls_listen"));
    }
}
