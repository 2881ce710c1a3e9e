//! `[vision]` configuration: which runtime and accelerator, which models, and the thresholds.
//!
//! Every field has a default that works on a Raspberry Pi with the shipped models, so an empty
//! `[vision]` table is a valid config. [`VisionConfig::validate`] names the key of the first bad
//! value (`vision.detector.threshold`, ...), as the rest of the config does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::VisionError;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct VisionConfig {
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Folder that relative model paths are resolved against.
    #[serde(default = "default_models_dir")]
    pub models_dir: PathBuf,
    #[serde(default)]
    pub detector: DetectorConfig,
    #[serde(default)]
    pub embedder: EmbedderConfig,
    #[serde(default)]
    pub gallery: GalleryConfig,
    #[serde(default)]
    pub enrol: EnrolConfig,
    #[serde(default)]
    pub quality: QualityConfig,
}

impl Default for VisionConfig {
    fn default() -> Self {
        VisionConfig {
            runtime: RuntimeConfig::default(),
            models_dir: default_models_dir(),
            detector: DetectorConfig::default(),
            embedder: EmbedderConfig::default(),
            gallery: GalleryConfig::default(),
            enrol: EnrolConfig::default(),
            quality: QualityConfig::default(),
        }
    }
}

/// Where the shipped models are looked for when the config does not say, in order: `./models`
/// (a checkout's working directory), beside the installed binary (`<bin>/models`,
/// `<bin>/../share/facecv/models`, the tarball's layout), the system's `/usr/share/facecv/models`
/// (the Yocto and Debian layouts), then the `models/` of the checkout the binary was built from, so
/// that `target/*/facecv` finds them from any folder, as it finds `lib/<arch>/` (`runtime/library.rs`).
pub fn models_dir_candidates() -> Vec<PathBuf> {
    let mut candidates = vec![PathBuf::from("models")];
    if let Some(bin) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        candidates.push(bin.join("models"));
        candidates.push(bin.join("../share/facecv/models"));
    }
    candidates.push(PathBuf::from("/usr/share/facecv/models"));
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("models"));
    candidates
}

/// The first of [`models_dir_candidates`] that holds the default embedder; when none does,
/// `./models`, and a model that cannot be read there says where else it was looked for
/// (`model::load`).
fn default_models_dir() -> PathBuf {
    models_dir_candidates()
        .into_iter()
        .find(|d| d.join(EmbedderKind::default().default_model()).is_file())
        .unwrap_or_else(|| PathBuf::from("models"))
}

/// Where the TFLite runtime comes from and what it runs on.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Explicit path of `libLiteRt.so` / `libtensorflowlite_c.so`; unset means search
    /// (`FACECV_LITERT_LIB`, beside the binary, `lib/<arch>/`, system folders, pip).
    #[serde(default)]
    pub library: Option<PathBuf>,
    #[serde(default)]
    pub accelerator: Accelerator,
    /// Threads per model: XNNPACK's on LiteRT (its default would be one), the interpreter's on
    /// the classic API. Each model of each camera gets its own pool, so on a 4-core Pi with two
    /// cameras, 2 leaves room for capture and delivery.
    #[serde(default = "default_threads")]
    pub threads: u8,
    /// An external TFLite delegate (Edge TPU, i.MX8 VX, vendor NPU, Arm NN); needs the classic C
    /// API, so `library` must name a `libtensorflowlite_c.so` (`scripts/fetch-tflite-c.sh`).
    #[serde(default)]
    pub external_delegate: Option<ExternalDelegate>,
}

fn default_threads() -> u8 {
    2
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            library: None,
            accelerator: Accelerator::default(),
            threads: default_threads(),
            external_delegate: None,
        }
    }
}

/// LiteRT's accelerators; anything not on the chosen one falls back to the CPU.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Accelerator {
    #[default]
    Cpu,
    Gpu,
    Npu,
}

/// A delegate plug-in loaded with `tflite_plugin_create_delegate(keys, values)`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalDelegate {
    pub path: PathBuf,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    #[serde(default = "default_detector_model")]
    pub model: PathBuf,
    /// Minimum face score (sigmoid of the model's logit). 0.6 is MediaPipe's own choice.
    #[serde(default = "default_detector_threshold")]
    pub threshold: f32,
    /// Overlap above which two boxes are one face in weighted NMS.
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f32,
}

fn default_detector_model() -> PathBuf {
    PathBuf::from("blazeface_full_int8.tflite")
}
fn default_detector_threshold() -> f32 {
    0.6
}
fn default_nms_iou() -> f32 {
    0.3
}

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            model: default_detector_model(),
            threshold: default_detector_threshold(),
            nms_iou: default_nms_iou(),
        }
    }
}

/// Which embedding network; the default is the one that measured best (see `models/README.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbedderKind {
    /// HSE FaceRes, 224x224 uint8 in, 1024-d int8 out.
    FaceRes,
    /// MobileFaceNet, 112x112 float in, 192-d out.
    #[default]
    MobileFaceNet,
}

impl EmbedderKind {
    /// The name the config file gives it (`faceres`, `mobilefacenet`); it also tags enrolled
    /// embeddings in the store (`app::embedder_id`), so it must never change.
    pub fn as_str(self) -> &'static str {
        match self {
            EmbedderKind::FaceRes => "faceres",
            EmbedderKind::MobileFaceNet => "mobilefacenet",
        }
    }

    /// The shipped model file for this kind. MobileFaceNet's float file is the default: on the
    /// test photos it separates people by a wider margin than the int8 one (0.68 vs 0.41 against
    /// 0.59 vs 0.40) and runs faster under XNNPACK on x86; on ARM boards, where int8 is usually
    /// faster, `vision.embedder.model = "mobilefacenet_expo_int8.tflite"` is the measured option.
    pub fn default_model(self) -> &'static str {
        match self {
            EmbedderKind::FaceRes => "faceres_hse_int8_iou8.tflite",
            EmbedderKind::MobileFaceNet => "mobilefacenet_expo_f32.tflite",
        }
    }

    /// Side of the square input crop, in pixels.
    pub fn input_size(self) -> usize {
        match self {
            EmbedderKind::FaceRes => 224,
            EmbedderKind::MobileFaceNet => 112,
        }
    }

    /// Cosine similarity at which two faces are taken to be the same person, measured on the
    /// test photos (tests/vision.rs prints the figures). MobileFaceNet, aligned: same person at
    /// least 0.68 (int8: 0.59), different people at most 0.41 (int8: 0.40), so 0.55 separates
    /// both files.
    /// FaceRes: 0.63 against 0.64, no margin; 0.63 errs towards refusing.
    pub fn default_threshold(self) -> f32 {
        match self {
            EmbedderKind::FaceRes => 0.63,
            EmbedderKind::MobileFaceNet => 0.55,
        }
    }
}

/// How the face crop handed to the embedder is made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlignMode {
    /// Similarity transform of the eye, nose and mouth keypoints onto the embedder's template.
    #[default]
    Keypoints,
    /// Square box around the detection, scaled 1.2x, no rotation.
    Box,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmbedderConfig {
    #[serde(default)]
    pub kind: EmbedderKind,
    /// Model file; unset means the shipped one for `kind`.
    #[serde(default)]
    pub model: Option<PathBuf>,
    #[serde(default)]
    pub align: AlignMode,
    /// Faces narrower than this (pixels) are reported without an embedding: too few pixels to
    /// recognise anyone, and embedding them costs time every frame.
    #[serde(default = "default_embed_min_px")]
    pub min_face_px: u32,
}

fn default_embed_min_px() -> u32 {
    24
}

impl Default for EmbedderConfig {
    fn default() -> Self {
        EmbedderConfig {
            kind: EmbedderKind::default(),
            model: None,
            align: AlignMode::default(),
            min_face_px: default_embed_min_px(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GalleryConfig {
    /// Cosine similarity needed for a match; unset means the embedder's measured default.
    #[serde(default)]
    pub threshold: Option<f32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolConfig {
    /// An enrolment photo's face must be at least this wide (pixels, before padding).
    #[serde(default = "default_enrol_min_px")]
    pub min_face_px: u32,
    /// Tight face crops are padded to this many times their size when no face is found at first:
    /// BlazeFace was trained on faces that fill less of the picture.
    #[serde(default = "default_enrol_pad")]
    pub pad: f32,
}

fn default_enrol_min_px() -> u32 {
    64
}
fn default_enrol_pad() -> f32 {
    2.0
}

impl Default for EnrolConfig {
    fn default() -> Self {
        EnrolConfig {
            min_face_px: default_enrol_min_px(),
            pad: default_enrol_pad(),
        }
    }
}

/// What a view of a face must be to be embedded from a camera or enrolled (see
/// `vision::quality`); the least size is `embedder.min_face_px` for cameras and
/// `enrol.min_face_px` for enrolment.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// Largest head turn, yaw or pitch, in eye distances (0 frontal).
    #[serde(default = "default_max_turn")]
    pub max_turn: f32,
    /// Least sharpness (variance of the Laplacian of the aligned 112 px crop); 0 admits any.
    #[serde(default = "default_min_sharpness")]
    pub min_sharpness: f32,
}

fn default_max_turn() -> f32 {
    0.35
}
/// Measured by `tests/quality.rs` on the test photos: real photos 69 at least (median 254),
/// sharp faces shrunk to about 70 px 37 at least; copies blurred by 2% of the face's width 25 at
/// most, shrunk-and-enlarged ones 18 at most.
fn default_min_sharpness() -> f32 {
    30.0
}

impl Default for QualityConfig {
    fn default() -> Self {
        QualityConfig {
            max_turn: default_max_turn(),
            min_sharpness: default_min_sharpness(),
        }
    }
}

impl VisionConfig {
    /// The gate a camera's face passes before it is embedded.
    pub fn camera_gate(&self) -> super::quality::QualityGate {
        super::quality::QualityGate {
            min_face_px: self.embedder.min_face_px,
            max_turn: self.quality.max_turn,
            min_sharpness: self.quality.min_sharpness,
        }
    }

    /// The gate an enrolment photo's face passes.
    pub fn enrol_gate(&self) -> super::quality::QualityGate {
        super::quality::QualityGate {
            min_face_px: self.enrol.min_face_px,
            ..self.camera_gate()
        }
    }

    /// The config with every model path resolved against `models_dir`.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.models_dir.join(path)
        }
    }

    /// Path of the detector model.
    pub fn detector_model(&self) -> PathBuf {
        self.resolve(&self.detector.model)
    }

    /// Path of the embedder model.
    pub fn embedder_model(&self) -> PathBuf {
        let default = PathBuf::from(self.embedder.kind.default_model());
        self.resolve(self.embedder.model.as_ref().unwrap_or(&default))
    }

    /// The gallery match threshold in force.
    pub fn match_threshold(&self) -> f32 {
        self.gallery
            .threshold
            .unwrap_or_else(|| self.embedder.kind.default_threshold())
    }

    /// Check every value, reporting the first bad one by its key.
    pub fn validate(&self) -> Result<(), VisionError> {
        let bad = |key: &str, message: String| {
            Err(VisionError::Config {
                key: key.to_string(),
                message,
            })
        };
        let unit = |v: f32| v.is_finite() && v > 0.0 && v < 1.0;
        if !unit(self.detector.threshold) {
            return bad(
                "vision.detector.threshold",
                format!("{} is not in (0, 1)", self.detector.threshold),
            );
        }
        if !unit(self.detector.nms_iou) {
            return bad(
                "vision.detector.nms_iou",
                format!("{} is not in (0, 1)", self.detector.nms_iou),
            );
        }
        if let Some(t) = self.gallery.threshold {
            if !(t.is_finite() && t > -1.0 && t < 1.0) {
                return bad(
                    "vision.gallery.threshold",
                    format!("{t} is not a cosine similarity in (-1, 1)"),
                );
            }
        }
        if !(1..=64).contains(&self.runtime.threads) {
            return bad(
                "vision.runtime.threads",
                format!("{} is not in 1..=64", self.runtime.threads),
            );
        }
        if let Some(d) = &self.runtime.external_delegate {
            if d.path.as_os_str().is_empty() {
                return bad("vision.runtime.external_delegate.path", "is empty".into());
            }
        }
        if !(self.enrol.pad.is_finite() && (1.0..=4.0).contains(&self.enrol.pad)) {
            return bad(
                "vision.enrol.pad",
                format!("{} is not in 1.0..=4.0", self.enrol.pad),
            );
        }
        if self.enrol.min_face_px < 16 {
            return bad(
                "vision.enrol.min_face_px",
                format!("{} is below 16 px", self.enrol.min_face_px),
            );
        }
        if self.embedder.min_face_px == 0 {
            return bad("vision.embedder.min_face_px", "must be at least 1".into());
        }
        let q = &self.quality;
        // Past 1 eye distance the nose is outside the eyes: no face is that turned and still
        // frontal enough to embed, so a larger value can only be a slip.
        if !(q.max_turn.is_finite() && q.max_turn > 0.0 && q.max_turn <= 1.0) {
            return bad(
                "vision.quality.max_turn",
                format!("{} is not in (0, 1] (eye distances)", q.max_turn),
            );
        }
        if !(q.min_sharpness.is_finite() && q.min_sharpness >= 0.0) {
            return bad(
                "vision.quality.min_sharpness",
                format!("{} is not a finite value of at least 0", q.min_sharpness),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_embedder_kind_is_named_as_the_config_file_spells_it() {
        for kind in [EmbedderKind::FaceRes, EmbedderKind::MobileFaceNet] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn an_empty_table_is_a_valid_config() {
        let c: VisionConfig = toml::from_str("").unwrap();
        c.validate().unwrap();
        assert_eq!(c.detector.threshold, 0.6);
        assert_eq!(
            c.embedder_model(),
            Path::new("models/mobilefacenet_expo_f32.tflite")
        );
    }

    #[test]
    fn a_bad_quality_value_is_reported_by_its_key() {
        for (toml, key) in [
            ("max_turn = 0.0", "vision.quality.max_turn"),
            ("max_turn = 1.5", "vision.quality.max_turn"),
            ("max_turn = nan", "vision.quality.max_turn"),
            ("min_sharpness = -1.0", "vision.quality.min_sharpness"),
            ("min_sharpness = inf", "vision.quality.min_sharpness"),
        ] {
            let c: VisionConfig = toml::from_str(&format!("[quality]\n{toml}")).unwrap();
            let msg = c.validate().unwrap_err().to_string();
            assert!(msg.starts_with(&format!("{key}:")), "{toml}: {msg}");
        }
        let c: VisionConfig =
            toml::from_str("[quality]\nmax_turn = 1.0\nmin_sharpness = 0.0").unwrap();
        c.validate().unwrap();
    }

    #[test]
    fn a_bad_value_is_reported_by_its_key() {
        let c: VisionConfig = toml::from_str("[detector]\nthreshold = 1.5").unwrap();
        let msg = c.validate().unwrap_err().to_string();
        assert!(msg.starts_with("vision.detector.threshold:"), "{msg}");
        let c: VisionConfig = toml::from_str("[runtime]\nthreads = 0").unwrap();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("vision.runtime.threads"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<VisionConfig>("[detector]\nthreshhold = 0.5").is_err());
    }
}
