//! `[[cameras]]`: what each camera is and how its sightings become events.

use serde::Deserialize;

use super::policy::PolicyConfig;
use crate::camera::{parse_source, ApiSources, SourceRefusal, SourceSpec};
use crate::config::{CameraId, ConfigError};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub camera_id: String,
    /// FaceCV's source string: "0" (the first local camera), "/dev/videoN", an `rtsp://` URL, a
    /// video file or image folder, or "synthetic". `spec` gives every detail instead.
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub spec: Option<SourceSpec>,
    /// Frames analysed per second at most; the camera may deliver more (they are dropped).
    #[serde(default = "default_fps")]
    pub fps: f32,
    /// Match threshold for this camera; unset means the gallery's.
    #[serde(default)]
    pub threshold: Option<f32>,
    /// Start with the appliance.
    #[serde(default = "default_true")]
    pub autostart: bool,
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Keep a JPEG of each stranger (in the store's folder, `snapshots/<camera>/`).
    #[serde(default = "default_true")]
    pub snapshots: bool,
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
            (None, Some(spec)) => format!("{spec:?}")
                .split([' ', '{'])
                .next()
                .unwrap_or("")
                .to_lowercase(),
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
        self.policy.validate("policy")
    }
}
