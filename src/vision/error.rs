//! Everything that can go wrong in vision, as one enum whose messages say what to do about it.
//!
//! Most of these happen once, at start-up (a missing runtime, a damaged model); the rest are what an
//! enrolment request can get wrong (not an image, no face, two faces). The API maps them to status
//! codes in one place, so each variant is a distinct, stable kind of failure.

use std::path::PathBuf;

use super::config::Accelerator;
use super::quality::Rejection;

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    /// The TFLite runtime library is not installed where we look.
    #[error(
        "TFLite runtime library (libLiteRt.so or libtensorflowlite_c.so) not found; looked in: {}. \
         Get it with `scripts/fetch-litert.sh [x86_64|aarch64] [DEST]` (downloads PyPI's \
         ai-edge-litert wheel and extracts libLiteRt.so into lib/<arch>/), then put it beside the \
         facecv binary, or point vision.runtime.library or FACECV_LITERT_LIB at it",
        .searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )]
    RuntimeNotFound { searched: Vec<PathBuf> },

    /// The file exists but could not be loaded as a TFLite runtime.
    #[error(
        "cannot load TFLite runtime {path}: {reason} (re-fetch it with scripts/fetch-litert.sh)"
    )]
    RuntimeLoad { path: PathBuf, reason: String },

    /// A runtime call failed (compiling or running a model).
    #[error("TFLite runtime error in {context}: {message}")]
    Runtime {
        context: &'static str,
        message: String,
    },

    /// The config asks for an accelerator this runtime did not register.
    #[error(
        "vision.runtime.accelerator = {requested:?} but the runtime registered only {available:?}; \
         install the accelerator library beside libLiteRt.so and on LD_LIBRARY_PATH \
         (WITH_GPU=1 scripts/fetch-litert.sh) or use \"cpu\""
    )]
    AcceleratorUnavailable {
        requested: Accelerator,
        available: Vec<String>,
    },

    /// An external delegate `.so` could not be loaded, or the model not built with it.
    #[error("vision.runtime.external_delegate.path: cannot use delegate {path}: {reason}")]
    DelegateLoad { path: PathBuf, reason: String },

    /// A combination of settings this runtime cannot do.
    #[error("{key}: {message}")]
    Unsupported { key: String, message: String },

    /// A configuration value is out of range.
    #[error("{key}: {message}")]
    Config { key: String, message: String },

    /// A model file could not be read.
    /// The cause is part of the message and deliberately not a `source`, so that an error chain
    /// printed whole (`{:#}`) says it once. `looked_in` names the folders searched when a relative
    /// path was not found.
    #[error("{key}: cannot read model {path}: {cause}{looked_in}")]
    ModelRead {
        key: String,
        path: PathBuf,
        cause: std::io::Error,
        looked_in: String,
    },

    /// A model file does not have the digest pinned for it (shipped, or in its folder's
    /// `SHA256SUMS`).
    #[error(
        "model {path} is damaged or not the file {pinned_by} names ({len} bytes, sha256 {actual}, \
         expected {expected}); copy it again from models/, or for a file you rebuilt with \
         scripts/make-models.sh, keep the SHA256SUMS it wrote beside it (see models/README.md)"
    )]
    ModelChecksum {
        path: PathBuf,
        expected: String,
        actual: String,
        len: usize,
        /// Where the expected digest came from: the shipped table or a `SHA256SUMS` file.
        pinned_by: String,
    },

    /// A models folder's `SHA256SUMS` cannot be read or has a line that is not `<sha256>  <file>`.
    #[error("{path}: {reason} (expected sha256sum's format, `<64 hex digits>  <file name>`)")]
    ModelSums { path: PathBuf, reason: String },

    /// A model file is not a readable TFLite flatbuffer.
    #[error("model {path} is corrupt or not a TFLite model: {reason}")]
    ModelCorrupt { path: PathBuf, reason: String },

    /// A model's tensors do not fit the role it was configured for.
    #[error("{key}: {path} is not {expected}: it has {found}")]
    ModelShape {
        key: String,
        path: PathBuf,
        expected: String,
        found: String,
    },

    /// A model file passed the checks of `model.rs` but the runtime cannot compile or run it:
    /// damaged where only the runtime looks (a rebuilt file pinned by its own `SHA256SUMS`, an
    /// unpinned file), or made with operations this runtime lacks.
    #[error("{key}: the TFLite runtime cannot use model {path}: {reason}")]
    ModelRejected {
        key: String,
        path: PathBuf,
        reason: String,
    },

    /// The bytes given for enrolment are not a JPEG or PNG image.
    #[error("not a decodable image (JPEG or PNG expected): {0}")]
    ImageDecode(String),

    /// An image in a format the appliance does not decode (GIF, WebP, HEIF...).
    #[error("{0}")]
    ImageFormat(String),

    /// An image larger than the appliance decodes (its header says so; nothing was decoded).
    #[error("image is {width}x{height}: {why}")]
    ImageTooLarge {
        width: u32,
        height: u32,
        why: String,
    },

    /// A frame's buffer does not match its stated size.
    #[error("frame buffer has {got} bytes but {width}x{height} RGB needs {expected}")]
    FrameSize {
        width: u32,
        height: u32,
        expected: usize,
        got: usize,
    },

    /// Enrolment needs exactly one face; there was none.
    #[error("no face found in the image")]
    NoFace,

    /// Enrolment needs exactly one face; there were several.
    #[error("{count} faces found in the image; enrolment needs a photo with exactly one")]
    MultipleFaces { count: usize },

    /// The face is too small to give a reliable embedding.
    #[error("face is {size_px} px wide, smaller than vision.enrol.min_face_px = {min_px}; use a closer or larger photo")]
    FaceTooSmall { size_px: u32, min_px: u32 },

    /// The face is turned away or blurred past `vision.quality` (the size is [`Self::FaceTooSmall`]):
    /// its embedding would sit between people and misname for as long as it is enrolled.
    #[error("{0}; enrolment needs a sharp, frontal photo (vision.quality)")]
    PoorFace(Rejection),

    /// Embeddings of different sizes (different embedders) cannot be compared.
    #[error("embedding has {got} dimensions but the gallery holds {expected}-dimensional ones (was the embedder changed? re-enrol)")]
    EmbeddingDim { expected: usize, got: usize },
}
