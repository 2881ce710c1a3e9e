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

pub mod align;
mod check;
pub mod config;
pub mod decode;
pub mod detector;
pub mod embedder;
mod error;
pub mod gallery;
pub mod model;
pub mod runtime;

use std::path::Path;
use std::time::{Duration, Instant};

pub use check::{check_models, ModelCheck, VisionHealth, VisionReport};
pub use config::{
    Accelerator, AlignMode, EmbedderKind, ExternalDelegate, RuntimeConfig, VisionConfig,
};
pub use decode::{ImageFormat, ImageHeader, ImageLimits};
pub use detector::{Detection, Detector, MAX_FACES};
pub use embedder::{Embedder, Embedding, MAX_EMBEDDING_DIM};
pub use error::VisionError;
pub use gallery::{Gallery, Match};
pub use runtime::Runtime;

/// A face found in a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    /// `[x1, y1, x2, y2]` in frame pixels.
    pub bbox: [f32; 4],
    /// Detector confidence in (0, 1).
    pub score: f32,
    /// Right eye, left eye, nose tip, mouth centre, right ear, left ear (frame pixels; "right" is
    /// the person's right).
    pub keypoints: [[f32; 2]; 6],
    /// `None` when the face is narrower than `vision.embedder.min_face_px`.
    pub embedding: Option<Embedding>,
}

/// Time spent per stage in the last [`FaceEngine::analyze`] or enrolment call.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    /// Frame to detector input (letterbox, resize, scale).
    pub convert: Duration,
    /// Detector inference, decoding and NMS.
    pub detect: Duration,
    /// Warping every face onto the embedder's template (summed over faces).
    pub align: Duration,
    /// Embedder inference (summed over faces).
    pub embed: Duration,
    /// The part of `detect` spent in the runtime's invoke call alone (no copies, no decoding).
    pub detect_invoke: Duration,
    /// The part of `embed` spent in the runtime's invoke call alone (summed over faces).
    pub embed_invoke: Duration,
    /// Faces found, and faces embedded.
    pub faces: usize,
    pub embedded: usize,
}

/// Detector + embedder, ready to analyse frames and enrol photos.
#[derive(Debug)]
pub struct FaceEngine {
    config: VisionConfig,
    runtime: &'static Runtime,
    detector: Detector,
    embedder: Embedder,
    detections: heapless::Vec<Detection, MAX_FACES>,
    timings: StageTimings,
    image_limits: ImageLimits,
}

impl FaceEngine {
    /// Validate `config`, load the runtime, and load, check and compile both models.
    pub fn new(config: VisionConfig) -> Result<Self, VisionError> {
        config.validate()?;
        let runtime = Runtime::load(&config.runtime)?;
        let detector = Detector::new(runtime, &config)?;
        let embedder = Embedder::new(runtime, &config)?;
        Ok(FaceEngine {
            config,
            runtime,
            detector,
            embedder,
            detections: heapless::Vec::new(),
            timings: StageTimings::default(),
            image_limits: ImageLimits::default(),
        })
    }

    /// What [`FaceEngine::embed_single`] and [`FaceEngine::decode`] may decode (the API's
    /// `api.max_image_pixels`); [`ImageLimits::default`] until set.
    pub fn set_image_limits(&mut self, limits: ImageLimits) {
        self.image_limits = limits;
    }

    /// Decodes an encoded photo within this engine's [`ImageLimits`] (see [`decode_image`]).
    pub fn decode(&self, image: &[u8]) -> Result<(Vec<u8>, u32, u32), VisionError> {
        decode_image(image, &self.image_limits)
    }

    /// The configuration in force.
    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// The runtime library in use.
    pub fn runtime_path(&self) -> &Path {
        self.runtime.path()
    }

    /// The embedding network in use.
    pub fn embedder_kind(&self) -> EmbedderKind {
        self.embedder.kind()
    }

    /// Size of the embeddings this engine makes.
    pub fn embedding_dim(&self) -> usize {
        self.embedder.dim()
    }

    /// A gallery with this engine's match threshold.
    pub fn new_gallery<K: PartialEq>(&self) -> Gallery<K> {
        Gallery::new(self.config.match_threshold())
    }

    /// Per-stage timings of the last call.
    pub fn timings(&self) -> StageTimings {
        self.timings
    }

    /// Detect only (no embeddings): for callers that track faces between recognitions.
    pub fn detect(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        out: &mut heapless::Vec<Detection, MAX_FACES>,
    ) -> Result<(), VisionError> {
        let t = self.detector.detect(rgb, width, height, out)?;
        self.timings = StageTimings {
            convert: t.convert,
            detect: t.detect,
            detect_invoke: t.invoke,
            faces: out.len(),
            ..StageTimings::default()
        };
        Ok(())
    }

    /// Find and embed every face in a packed RGB8 frame (`width * height * 3` bytes). `out` is
    /// cleared first; faces come highest score first.
    pub fn analyze(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        out: &mut heapless::Vec<Face, MAX_FACES>,
    ) -> Result<(), VisionError> {
        out.clear();
        let mut dets = std::mem::take(&mut self.detections);
        let result = self.detect(rgb, width, height, &mut dets);
        let result = result.and_then(|()| {
            for det in &dets {
                let embedding = if det.width() >= self.config.embedder.min_face_px as f32 {
                    Some(self.embed_detection(rgb, width, height, det)?)
                } else {
                    None
                };
                let _ = out.push(Face {
                    bbox: det.bbox,
                    score: det.score,
                    keypoints: det.keypoints,
                    embedding,
                });
            }
            Ok(())
        });
        self.detections = dets;
        result
    }

    /// [`FaceEngine::analyze`] for still photos: a tight crop (a face filling the photo, an ID
    /// picture) is padded by `vision.enrol.pad` and analysed again, as for enrolment; boxes and
    /// keypoints are given in the photo's own pixels.
    pub fn analyze_still(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        out: &mut heapless::Vec<Face, MAX_FACES>,
    ) -> Result<(), VisionError> {
        self.still(rgb, width, height, out, Self::analyze)
    }

    /// [`FaceEngine::detect`] for still photos, padded as in [`FaceEngine::analyze_still`].
    pub fn detect_still(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        out: &mut heapless::Vec<Detection, MAX_FACES>,
    ) -> Result<(), VisionError> {
        self.still(rgb, width, height, out, Self::detect)
    }

    /// Runs `find` on the photo and, if it finds nothing, once more on the padded photo.
    fn still<T: OnCanvas>(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        out: &mut heapless::Vec<T, MAX_FACES>,
        find: FindFn<T>,
    ) -> Result<(), VisionError> {
        find(self, rgb, width, height, out)?;
        if !out.is_empty() || self.config.enrol.pad <= 1.0 {
            return Ok(());
        }
        let padded = pad_image(rgb, width, height, self.config.enrol.pad);
        find(self, &padded.rgb, padded.width, padded.height, out)?;
        for found in out.iter_mut() {
            found.to_original(&padded);
        }
        Ok(())
    }

    /// Align and embed one detection, adding to the align and embed timings.
    fn embed_detection(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        det: &Detection,
    ) -> Result<Embedding, VisionError> {
        let start = Instant::now();
        self.embedder.align(rgb, width, height, det);
        let aligned = Instant::now();
        let e = self.embedder.embed_aligned()?;
        self.timings.align += aligned - start;
        self.timings.embed += aligned.elapsed();
        self.timings.embed_invoke += self.embedder.last_invoke();
        self.timings.embedded += 1;
        Ok(e)
    }

    /// The embedding of the one face in an encoded photo (JPEG or PNG), for enrolment.
    pub fn embed_single(&mut self, image: &[u8]) -> Result<Embedding, VisionError> {
        let (rgb, width, height) = self.decode(image)?;
        self.embed_single_rgb(&rgb, width, height)
    }

    /// The embedding of the one face in an RGB8 photo. Refuses a photo with no face, with
    /// several, or with a face narrower than `vision.enrol.min_face_px`. A tight crop (a face
    /// filling the photo) is padded by `vision.enrol.pad` and tried again, as BlazeFace needs
    /// some context around a face to find it.
    pub fn embed_single_rgb(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
    ) -> Result<Embedding, VisionError> {
        let mut dets = heapless::Vec::new();
        self.detect(rgb, width, height, &mut dets)?;
        if dets.is_empty() && self.config.enrol.pad > 1.0 {
            let padded = pad_image(rgb, width, height, self.config.enrol.pad);
            self.detect(&padded.rgb, padded.width, padded.height, &mut dets)?;
            return self.embed_one(&padded.rgb, padded.width, padded.height, &dets);
        }
        self.embed_one(rgb, width, height, &dets)
    }

    fn embed_one(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        dets: &[Detection],
    ) -> Result<Embedding, VisionError> {
        let det = match dets {
            [] => return Err(VisionError::NoFace),
            [one] => one,
            many => return Err(VisionError::MultipleFaces { count: many.len() }),
        };
        let size_px = det.width().round() as u32;
        if size_px < self.config.enrol.min_face_px {
            return Err(VisionError::FaceTooSmall {
                size_px,
                min_px: self.config.enrol.min_face_px,
            });
        }
        self.embed_detection(rgb, width, height, det)
    }
}

// A camera task owns its engine on its own thread: it must be `Send`.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<FaceEngine>();
};

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

/// An image centred on a larger mid-grey canvas.
#[derive(Debug, Clone)]
pub struct Padded {
    pub rgb: Vec<u8>,
    pub width: u32,
    pub height: u32,
    /// Where the original's top-left corner is on the canvas.
    pub offset: (u32, u32),
    /// Original pixels per canvas pixel: above 1 when the image was reduced to keep the canvas
    /// within [`MAX_CANVAS_PIXELS`].
    pub scale: f32,
}

/// The largest padding canvas, in pixels (12 MiB of RGB): the padded retry is for tight crops,
/// which the detector sees at 192x192 anyway, so a larger image is reduced before it is padded
/// rather than padded into a canvas of up to 16 times its size.
pub const MAX_CANVAS_PIXELS: u64 = 1 << 22;

/// [`FaceEngine::detect`] or [`FaceEngine::analyze`], for [`FaceEngine::still`].
type FindFn<T> = fn(
    &mut FaceEngine,
    &[u8],
    u32,
    u32,
    &mut heapless::Vec<T, MAX_FACES>,
) -> Result<(), VisionError>;

/// What a search finds on a [`Padded`] canvas and must move back onto the original photo.
trait OnCanvas {
    fn to_original(&mut self, padded: &Padded);
}

impl OnCanvas for Detection {
    fn to_original(&mut self, padded: &Padded) {
        padded.to_original(&mut self.bbox, &mut self.keypoints);
    }
}

impl OnCanvas for Face {
    fn to_original(&mut self, padded: &Padded) {
        padded.to_original(&mut self.bbox, &mut self.keypoints);
    }
}

impl Padded {
    /// Moves a box and its keypoints found on the canvas back onto the original picture.
    pub fn to_original(&self, bbox: &mut [f32; 4], keypoints: &mut [[f32; 2]]) {
        let (dx, dy, s) = (self.offset.0 as f32, self.offset.1 as f32, self.scale);
        *bbox = [
            (bbox[0] - dx) * s,
            (bbox[1] - dy) * s,
            (bbox[2] - dx) * s,
            (bbox[3] - dy) * s,
        ];
        for k in keypoints {
            k[0] = (k[0] - dx) * s;
            k[1] = (k[1] - dy) * s;
        }
    }
}

/// Centre `rgb` on a canvas `factor` times its size: BlazeFace misses faces that fill the whole
/// picture (it was trained on faces with surroundings), so still-image callers with tight crops
/// pad first. The canvas never exceeds [`MAX_CANVAS_PIXELS`]: a larger image is first reduced by
/// a whole factor. Map coordinates found on the canvas back with [`Padded::to_original`].
pub fn pad_image(rgb: &[u8], width: u32, height: u32, factor: f32) -> Padded {
    let factor = if factor.is_finite() {
        factor.clamp(1.0, 4.0)
    } else {
        1.0
    };
    let canvas = |k: u32| {
        let side = |v: u32| ((v.div_ceil(k) as f32 * factor).round() as u64).max(1);
        side(width) * side(height)
    };
    let mut k = 1;
    while canvas(k) > MAX_CANVAS_PIXELS {
        k += 1;
    }
    let reduced;
    let (rgb, width, height) = if k > 1 {
        reduced = decode::reduce_rgb(rgb, width, height, k);
        (&reduced.0[..], reduced.1, reduced.2)
    } else {
        (rgb, width, height)
    };
    let (w, h) = (width as usize, height as usize);
    let pw = ((w as f32 * factor).round() as usize).max(w);
    let ph = ((h as f32 * factor).round() as usize).max(h);
    let (ox, oy) = ((pw - w) / 2, (ph - h) / 2);
    let mut out = vec![128u8; pw * ph * 3];
    for (y, src) in rgb.chunks_exact(w * 3).take(h).enumerate() {
        let dst = ((y + oy) * pw + ox) * 3;
        out[dst..dst + w * 3].copy_from_slice(src);
    }
    Padded {
        rgb: out,
        width: pw as u32,
        height: ph as u32,
        offset: (ox as u32, oy as u32),
        scale: k as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_padding_canvas_is_bounded_whatever_the_shape() {
        for (w, h, f) in [
            (2047, 2047, 4.0),
            (8192, 128, 4.0),
            (1, 8192, 4.0),
            (300, 200, 2.0),
        ] {
            let rgb = vec![7u8; w as usize * h as usize * 3];
            let p = pad_image(&rgb, w, h, f);
            assert!(
                u64::from(p.width) * u64::from(p.height) <= MAX_CANVAS_PIXELS,
                "{w}x{h}"
            );
            assert_eq!(p.rgb.len(), p.width as usize * p.height as usize * 3);
            // The original's corners come back where they were.
            let (ox, oy) = (p.offset.0 as f32, p.offset.1 as f32);
            let mut bbox = [ox, oy, ox + (w as f32 / p.scale), oy + (h as f32 / p.scale)];
            p.to_original(&mut bbox, &mut []);
            assert_eq!(bbox, [0.0, 0.0, w as f32, h as f32], "{w}x{h}");
        }
        let small = pad_image(&[1u8; 300 * 200 * 3], 300, 200, 2.0);
        assert_eq!((small.width, small.height, small.scale), (600, 400, 1.0));
    }
}
