//! `[[cameras]]`: what each camera is and how its sightings become events.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::PolicyConfig;
use crate::camera::CameraId;
use crate::camera::{parse_source, ApiSources, SourceRefusal, SourceSpec};
use crate::config::check::ConfigError;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"camera_id": "front_door", "source": "synthetic", "fps": 5, "autostart": false}))]
pub struct CameraConfig {
    /// Letters, digits, `_`, `-` and `.`; not `devices`, and no `..` (it names a folder).
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$", example = "front_door")]
    pub camera_id: String,
    /// FaceCV's source string: "0" (the first local camera), "/dev/videoN", an `rtsp://` URL, a
    /// video file or image folder, or "synthetic". `spec` gives every detail instead.
    #[serde(default)]
    #[schema(example = "synthetic")]
    pub source: Option<String>,
    #[serde(default)]
    pub spec: Option<SourceSpec>,
    /// Frames analysed per second at most; the camera may deliver more (they are dropped).
    #[serde(default = "default_fps")]
    #[schema(minimum = 0.1, maximum = 60.0, example = 5)]
    pub fps: f32,
    /// Match threshold for this camera; unset means the gallery's.
    #[serde(default)]
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.55)]
    pub threshold: Option<f32>,
    /// Start with the appliance.
    #[serde(default = "default_true")]
    pub autostart: bool,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Keep a JPEG of each stranger (in the store's folder, `snapshots/<camera>/`).
    #[serde(default = "default_true")]
    pub snapshots: bool,
    /// How a live source that goes away is reopened, and how its flaps are recorded.
    #[serde(default)]
    pub reconnect: ReconnectConfig,
}

/// `[cameras.reconnect]`: the back-off of a live source (cameras, commands) that goes away, and
/// how often a flapping one is told to receivers. Every value in seconds; see `camera::Backoff`
/// and `pipeline::flap` for why these defaults.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconnectConfig {
    /// The first wait before reopening, 0.1 to 60; each loss doubles it (with ±20% jitter).
    #[serde(default = "default_min_delay")]
    #[schema(minimum = 0.1, maximum = 60.0, example = 0.5)]
    pub min_delay: f64,
    /// The longest wait, `min_delay` to 3600.
    #[serde(default = "default_max_delay")]
    #[schema(minimum = 60.0, maximum = 3600.0, example = 60)]
    pub max_delay: f64,
    /// How long a source must deliver without a break before its back-off is reset and a flap is
    /// over, 1 to 3600.
    #[serde(default = "default_healthy_after")]
    #[schema(minimum = 1.0, maximum = 3600.0, example = 60)]
    pub healthy_after: f64,
    /// While a source flaps, at most one `stream_started`/`stream_stopped` pair per this long,
    /// 1 to 86400; the returns in between are counted in the next one's `restarts`.
    #[serde(default = "default_report_every")]
    #[schema(minimum = 1.0, maximum = 86400.0, example = 1200)]
    pub report_every: f64,
}

fn default_min_delay() -> f64 {
    0.5
}
fn default_max_delay() -> f64 {
    60.0
}
fn default_healthy_after() -> f64 {
    60.0
}
fn default_report_every() -> f64 {
    1200.0
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            min_delay: default_min_delay(),
            max_delay: default_max_delay(),
            healthy_after: default_healthy_after(),
            report_every: default_report_every(),
        }
    }
}

impl ReconnectConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        use crate::config::check::check_range;
        check_range("reconnect.min_delay", self.min_delay, 0.1, 60.0, " s")?;
        check_range(
            "reconnect.max_delay",
            self.max_delay,
            self.min_delay,
            3600.0,
            " s",
        )?;
        check_range(
            "reconnect.healthy_after",
            self.healthy_after,
            1.0,
            3600.0,
            " s",
        )?;
        check_range(
            "reconnect.report_every",
            self.report_every,
            1.0,
            86_400.0,
            " s",
        )
    }

    /// Capture's back-off; call on a validated config.
    pub fn backoff(&self) -> crate::camera::Backoff {
        crate::camera::Backoff {
            min: Duration::from_secs_f64(self.min_delay),
            max: Duration::from_secs_f64(self.max_delay),
            healthy_after: Duration::from_secs_f64(self.healthy_after),
        }
    }

    pub fn report_every(&self) -> Duration {
        Duration::from_secs_f64(self.report_every)
    }
}

fn default_fps() -> f32 {
    10.0
}
fn default_true() -> bool {
    true
}

impl CameraConfig {
    /// A camera on a FaceCV source string with every default.
    pub fn new(camera_id: &str, source: &str) -> Self {
        CameraConfig {
            camera_id: camera_id.into(),
            source: Some(source.into()),
            spec: None,
            fps: default_fps(),
            threshold: None,
            autostart: true,
            policy: PolicyConfig::default(),
            snapshots: true,
            reconnect: ReconnectConfig::default(),
        }
    }

    /// The source to open, from `spec` or parsed from `source`.
    pub fn source_spec(&self) -> Result<SourceSpec, ConfigError> {
        let spec = match (&self.spec, &self.source) {
            (Some(spec), _) => spec.clone(),
            (None, Some(s)) => parse_source(s, self.fps)
                .map_err(|e| ConfigError::invalid("source", e.to_string()))?,
            (None, None) => return Err(ConfigError::invalid("source", "give `source` or `spec`")),
        };
        spec.validate()
            .map_err(|e| ConfigError::invalid("spec", e.to_string()))?;
        Ok(spec)
    }

    /// The source to open for a camera defined over the API: what [`ApiSources`] allows, with a
    /// file's real path in the media folder.
    pub fn api_source_spec(&self, sources: &ApiSources) -> Result<SourceSpec, SourceRefusal> {
        match (&self.spec, &self.source) {
            (Some(spec), _) => sources.spec(spec),
            (None, Some(s)) => sources.source(s, self.fps),
            (None, None) => {
                Err(crate::camera::CameraError::invalid("source", "give `source` or `spec`").into())
            }
        }
    }

    /// A short label of the source for event metadata and listings.
    pub fn source_label(&self) -> String {
        match (&self.source, &self.spec) {
            (Some(s), _) => s.clone(),
            (None, Some(spec)) => spec.kind().to_owned(),
            (None, None) => String::new(),
        }
    }

    /// Every check, the source included, as the config file's cameras get them.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_settings()?;
        self.source_spec()?;
        Ok(())
    }

    /// The checks of everything but the source, which a camera of the API passes through
    /// [`CameraConfig::api_source_spec`] instead.
    pub fn validate_settings(&self) -> Result<(), ConfigError> {
        CameraId::parse(&self.camera_id)?;
        if !(0.1..=60.0).contains(&self.fps) {
            return Err(ConfigError::invalid(
                "fps",
                format!("must be between 0.1 and 60, got {}", self.fps),
            ));
        }
        if let Some(t) = self.threshold {
            if !(0.0..=1.0).contains(&t) {
                return Err(ConfigError::invalid(
                    "threshold",
                    format!("must be between 0 and 1, got {t}"),
                ));
            }
        }
        self.reconnect.validate()?;
        self.policy.validate("policy")
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn camera(reconnect: &str) -> Result<Config, String> {
        Config::from_toml(&format!(
            "[[cameras]]\ncamera_id = \"yard\"\nsource = \"synthetic\"\nreconnect = {{ {reconnect} }}\n"
        ))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn reconnect_settings_are_checked_once_and_name_their_key() {
        let c = camera("min_delay = 0.25, healthy_after = 3").unwrap();
        let backoff = c.cameras[0].reconnect.backoff();
        assert_eq!(backoff.min.as_millis(), 250);
        assert_eq!(backoff.max.as_secs(), 60);
        assert_eq!(backoff.healthy_after.as_secs(), 3);
        let err = camera("min_delay = 2, max_delay = 1").unwrap_err();
        assert!(err.contains("cameras[0].reconnect.max_delay"), "{err}");
        let err = camera("healthy_after = 0").unwrap_err();
        assert!(err.contains("cameras[0].reconnect.healthy_after"), "{err}");
        let err = camera("report_every = -1").unwrap_err();
        assert!(err.contains("cameras[0].reconnect.report_every"), "{err}");
        let err = camera("jitter = 1").unwrap_err();
        assert!(err.contains("jitter"), "an unknown key is refused: {err}");
    }
}
