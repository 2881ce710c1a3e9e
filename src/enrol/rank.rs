//! How a frame becomes an enrolment candidate and how candidates are ranked: shared by enrolment
//! from a video (`video.rs`) and from a running camera (`camera.rs`), so that "the best shots" mean
//! the same thing whichever way the frames came.
//!
//! A frame is a candidate when it shows exactly one clear face (detector confidence at least the
//! caller's minimum) that is wide enough to enrol (`vision.enrol.min_face_px`) and was embedded.
//! "Best" is the product of the detector's confidence, the face's size (up to [`FULL_SIZE_PX`],
//! past which the embedder sees no more detail) and its sharpness relative to the sharpest
//! candidate (variance of the Laplacian, the usual focus measure): a large, sharp, frontal face
//! makes a better reference than a small or blurred one. Candidates that are not all the same
//! person (by the gallery's own match threshold) are refused as a whole.

use serde::Serialize;

use crate::camera::Frame;
use crate::vision::Face;

/// A face this wide or wider counts as full size in the quality score.
pub const FULL_SIZE_PX: f32 = 160.0;

/// A frame chosen for enrolment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Pick {
    pub frame_index: usize,
    pub bbox: [i32; 4],
    pub detection_confidence: f32,
    pub sharpness: f32,
    pub quality: f32,
    #[serde(skip)]
    pub embedding: Vec<f32>,
    /// The aligned face as the embedder saw it, JPEG (~5 KB), when the caller keeps it: video
    /// enrolment fills it in the first pass so the picked frames need not be held.
    #[serde(skip)]
    pub crop: Vec<u8>,
}

impl Pick {
    /// The quality score up to the factor common to every candidate of one set (the sharpest
    /// one's sharpness): candidates ordered by it are ordered as [`rank`] orders them, so a
    /// bounded set can keep its best members before the set is complete.
    pub fn provisional_quality(&self) -> f32 {
        let width = (self.bbox[2] - self.bbox[0]) as f32;
        self.detection_confidence * (width / FULL_SIZE_PX).min(1.0) * self.sharpness.sqrt()
    }
}

/// What one analysed frame is for enrolment.
#[derive(Debug)]
pub enum Verdict {
    NoFace,
    MultipleFaces,
    /// One clear face, too narrow to enrol (or not embedded).
    TooSmall,
    /// A candidate, and where its face is in the `faces` judged (for its keypoints and crop).
    Candidate {
        pick: Pick,
        face: usize,
    },
}

/// Judges one analysed frame; `faces` are what the engine found in it.
pub fn judge(
    index: usize,
    frame: &Frame,
    faces: &[Face],
    min_confidence: f32,
    min_px: u32,
) -> Verdict {
    let mut clear = faces
        .iter()
        .enumerate()
        .filter(|(_, f)| f.score >= min_confidence);
    match (clear.next(), clear.next()) {
        (None, _) => Verdict::NoFace,
        (Some(_), Some(_)) => Verdict::MultipleFaces,
        (Some((at, face)), None) => match &face.embedding {
            Some(e) if face.bbox[2] - face.bbox[0] >= min_px as f32 => Verdict::Candidate {
                pick: Pick {
                    frame_index: index,
                    bbox: face.bbox.map(|v| v.round() as i32),
                    detection_confidence: face.score,
                    sharpness: sharpness(frame, face.bbox),
                    quality: 0.0,
                    embedding: e.as_slice().to_vec(),
                    crop: Vec::new(),
                },
                face: at,
            },
            _ => Verdict::TooSmall,
        },
    }
}

/// How many candidates show someone else than the clearest one (the most confident detection):
/// 0 when they are all one person by the gallery's threshold `same_person`.
pub fn others(candidates: &[Pick], same_person: f32) -> usize {
    let Some(anchor) = candidates
        .iter()
        .max_by(|a, b| a.detection_confidence.total_cmp(&b.detection_confidence))
    else {
        return 0;
    };
    candidates
        .iter()
        .filter(|c| cosine(&c.embedding, &anchor.embedding) < same_person)
        .count()
}

/// Orders candidates best first and fills in their `quality`; sharpness counts relative to the
/// sharpest of this set, as absolute values depend on the camera and the light.
pub fn rank(candidates: &mut [Pick]) {
    let sharpest = sharpest(candidates);
    for c in candidates.iter_mut() {
        c.quality = quality(c, sharpest);
    }
    candidates.sort_by(|a, b| b.quality.total_cmp(&a.quality));
}

/// The sharpness the others are measured against.
pub fn sharpest(candidates: &[Pick]) -> f32 {
    candidates
        .iter()
        .map(|c| c.sharpness)
        .fold(f32::EPSILON, f32::max)
}

/// A candidate's quality in a set whose sharpest candidate has `sharpest`.
pub fn quality(c: &Pick, sharpest: f32) -> f32 {
    let width = (c.bbox[2] - c.bbox[0]) as f32;
    c.detection_confidence * (width / FULL_SIZE_PX).min(1.0) * (c.sharpness / sharpest).sqrt()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    // Embeddings are L2-normalised: the dot product is the cosine.
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Variance of the 4-neighbour Laplacian of the luma inside `bbox`: high for a face in focus.
pub fn sharpness(frame: &Frame, bbox: [f32; 4]) -> f32 {
    let (w, h) = (frame.width as i64, frame.height as i64);
    // A video may be 1 or 2 pixels wide or high (y4m allows it): no pixel has four neighbours.
    if w < 3 || h < 3 {
        return 0.0;
    }
    let x1 = (bbox[0] as i64).clamp(1, w - 2);
    let x2 = (bbox[2] as i64).clamp(1, w - 2);
    let y1 = (bbox[1] as i64).clamp(1, h - 2);
    let y2 = (bbox[3] as i64).clamp(1, h - 2);
    let luma = |x: i64, y: i64| {
        let i = ((y * w + x) * 3) as usize;
        let p = &frame.rgb[i..i + 3];
        (77 * p[0] as i32 + 150 * p[1] as i32 + 29 * p[2] as i32) as f32 / 256.0
    };
    let (mut n, mut sum, mut sq) = (0f32, 0f32, 0f32);
    for y in y1..y2 {
        for x in x1..x2 {
            let l = luma(x - 1, y) + luma(x + 1, y) + luma(x, y - 1) + luma(x, y + 1)
                - 4.0 * luma(x, y);
            n += 1.0;
            sum += l;
            sq += l * l;
        }
    }
    if n == 0.0 {
        return 0.0;
    }
    let mean = sum / n;
    sq / n - mean * mean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sharp_edge_scores_higher_than_a_flat_patch() {
        let mut frame = Frame::new();
        let rgb = frame.resize(20, 20);
        for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
            px.fill(if (i % 20) < 10 { 0 } else { 255 });
        }
        let edge = sharpness(&frame, [2.0, 2.0, 18.0, 18.0]);
        frame.rgb.fill(90);
        let flat = sharpness(&frame, [2.0, 2.0, 18.0, 18.0]);
        assert!(edge > 100.0 && flat == 0.0, "{edge} {flat}");
    }

    #[test]
    fn frames_too_small_for_a_laplacian_score_zero() {
        let mut frame = Frame::new();
        for (w, h) in [(1, 1), (2, 40), (40, 2)] {
            frame.resize(w, h).fill(200);
            assert_eq!(sharpness(&frame, [0.0, 0.0, w as f32, h as f32]), 0.0);
        }
    }

    fn pick(confidence: f32, width: i32, sharpness: f32) -> Pick {
        Pick {
            frame_index: 0,
            bbox: [0, 0, width, width],
            detection_confidence: confidence,
            sharpness,
            quality: 0.0,
            embedding: vec![1.0],
            crop: Vec::new(),
        }
    }

    #[test]
    fn the_provisional_order_is_the_final_order() {
        let mut set = vec![
            pick(0.9, 100, 40.0),
            pick(0.8, 200, 90.0),
            pick(0.95, 60, 300.0),
            pick(0.7, 170, 10.0),
        ];
        let mut by_provisional = set.clone();
        by_provisional.sort_by(|a, b| b.provisional_quality().total_cmp(&a.provisional_quality()));
        rank(&mut set);
        let order = |v: &[Pick]| v.iter().map(|p| p.bbox[2]).collect::<Vec<_>>();
        assert_eq!(order(&set), order(&by_provisional));
        assert!(set[0].quality > set[3].quality);
    }
}
