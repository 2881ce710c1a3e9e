//! Vision: the TFLite runtime, face detection, alignment, embedding, and the gallery match.
//!
//! [`FaceEngine`] is the one door in: give it an RGB frame and it returns the faces in it, each
//! with a box, keypoints and (when large enough) an [`Embedding`] to look up in a [`Gallery`].
//! Inside, the stages are separate modules, each testable alone:
//!
//! ```text
//! frame ─▶ detector (BlazeFace, letterbox 192², weighted NMS) ─▶ align (similarity to template)
//!       ─▶ embedder (FaceRes or MobileFaceNet, L2-normalised) ─▶ gallery (cosine top-1)
//! ```
//!
//! The engine owns every buffer it needs and reuses them, so `analyze` does not allocate; each
//! camera task owns one engine (the runtime library underneath is shared and loaded once).
//!
//! The files: `engine.rs` ([`FaceEngine`]), `detector.rs`, `align.rs`, `embedder.rs` and
//! `gallery.rs` (the stages), `pad.rs` (the second look at a tight crop), `runtime/` (the TFLite
//! library and the compiled models), `model.rs` (model files and their checks), `decode/`
//! (uploaded images), `config.rs`, `check.rs` (the health report) and `error.rs`.

mod align;
mod check;
mod config;
pub mod decode;
mod detector;
mod embedder;
mod engine;
mod error;
mod gallery;
mod model;
mod pad;
pub mod quality;
mod runtime;

pub use check::{check_models, ModelCheck, VisionHealth, VisionReport};
pub use config::{
    Accelerator, AlignMode, EmbedderKind, ExternalDelegate, RuntimeConfig, VisionConfig,
};
pub use decode::{ImageFormat, ImageHeader, ImageLimits};
pub use detector::{Detection, MAX_FACES};
pub use embedder::Embedding;
pub use engine::{Face, FaceEngine, StageTimings};
pub use error::VisionError;
pub use gallery::{Gallery, Match};

/// Decodes a JPEG or PNG into packed RGB8 within `limits`: the size is read from the header
/// first, a photo past `limits` is refused, and a large one is decoded at a reduced scale (long
/// side 1024 to 2047 px) so that memory stays bounded; see [`decode`].
pub fn decode_image(
    bytes: &[u8],
    limits: &ImageLimits,
) -> Result<(Vec<u8>, u32, u32), VisionError> {
    let d = decode::decode(bytes, limits)?;
    Ok((d.rgb, d.width, d.height))
}
