//! [`FaceEngine`]: the one door into vision, for camera frames and for still photos.
//!
//! It owns a detector and an embedder compiled on the shared runtime, and every buffer a frame
//! needs, so `analyze` does not allocate; each camera task owns one engine. Stills (enrolment
//! photos, uploads) go through the same stages, with one retry on a padded canvas when a tight
//! crop hides the face from the detector (`pad.rs`).

use std::path::Path;
use std::time::{Duration, Instant};

use super::decode::ImageLimits;
use super::detector::{Detection, Detector, MAX_FACES};
use super::embedder::{Embedder, Embedding};
use super::pad::{pad_image, Padded};
use super::quality::{Quality, Rejection};
use super::runtime::Runtime;
use super::{decode_image, Gallery, VisionConfig, VisionError};

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

    /// Size of the embeddings this engine makes.
    pub fn embedding_dim(&self) -> usize {
        self.embedder.dim()
    }

    /// A gallery with this engine's match threshold.
    pub fn new_gallery<K: PartialEq>(&self) -> Gallery<K> {
        Gallery::new(self.config.match_threshold())
    }

    /// The aligned face the embedder saw last (RGB8, `side x side`): after
    /// [`FaceEngine::embed_single_rgb`], the enrolled face; after [`FaceEngine::analyze`], the
    /// last face embedded. Enrolment keeps it as the face's thumbnail.
    pub fn last_crop(&self) -> (&[u8], u32) {
        self.embedder.last_crop()
    }

    /// The aligned crop of `face` (found in this RGB8 frame by [`FaceEngine::analyze`]), as the
    /// embedder saw it: for enrolment from frames with several detections, where the last crop
    /// may be another face's.
    pub fn crop_of(&mut self, rgb: &[u8], width: u32, height: u32, face: &Face) -> (&[u8], u32) {
        let det = Detection {
            bbox: face.bbox,
            score: face.score,
            keypoints: face.keypoints,
        };
        self.embedder.align(rgb, width, height, &det);
        self.embedder.last_crop()
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
        self.align(rgb, width, height, det);
        self.embed_aligned()
    }

    /// Warps `det` (found in this RGB8 frame) onto the embedder's template, ready for
    /// [`FaceEngine::embed_aligned`], and returns the aligned crop (RGB8, `side x side`): so a
    /// caller can judge the face's quality (`vision::quality`) before paying for an embedding,
    /// which costs ten times the alignment. Adds to the align timing of the frame.
    pub fn align(&mut self, rgb: &[u8], width: u32, height: u32, det: &Detection) -> (&[u8], u32) {
        let start = Instant::now();
        self.embedder.align(rgb, width, height, det);
        self.timings.align += start.elapsed();
        self.embedder.last_crop()
    }

    /// Embeds the face [`FaceEngine::align`] aligned last. Adds to the embed timings of the frame.
    pub fn embed_aligned(&mut self) -> Result<Embedding, VisionError> {
        let start = Instant::now();
        let e = self.embedder.embed_aligned()?;
        self.timings.embed += start.elapsed();
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
    /// several, with a face narrower than `vision.enrol.min_face_px`, or with one turned or
    /// blurred past `vision.quality` (the enrolment gate). A tight crop (a face
    /// filling the photo) is found as in [`FaceEngine::detect_still`]; the face is then aligned
    /// from the photo itself, whose surroundings the aligner fills with the same grey as the
    /// padding.
    pub fn embed_single_rgb(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
    ) -> Result<Embedding, VisionError> {
        let mut dets = heapless::Vec::new();
        self.detect_still(rgb, width, height, &mut dets)?;
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
        let gate = self.config.enrol_gate();
        let (crop, side) = self.align(rgb, width, height, det);
        match gate.check(&Quality::measure(det, crop, side)) {
            Ok(()) => self.embed_aligned(),
            Err(Rejection::TooSmall { min_px, .. }) => {
                Err(VisionError::FaceTooSmall { size_px, min_px })
            }
            Err(why) => Err(VisionError::PoorFace(why)),
        }
    }
}

// A camera task owns its engine on its own thread: it must be `Send`.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<FaceEngine>();
};

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
