//! How a frame becomes an enrolment candidate and how candidates are ranked: shared by enrolment
//! from a video (`video.rs`) and from a running camera (`camera.rs`), so that "the best shots" mean
//! the same thing whichever way the frames came.
//!
//! A frame is a candidate when it shows exactly one clear face (detector confidence at least the
//! caller's minimum) that was embedded and passes the enrolment gate (`vision::quality`: wide
//! enough, not turned, not blurred), the same gate a photo passes. "Best" is the same measure
//! too: [`Quality::rank`] (confidence, size, how frontal) times the crop's sharpness up to
//! [`FULL_SHARPNESS`]. Both are absolute, so a pick's `sharpness` and `quality` can be compared
//! between enrolments. Candidates that are not all the same person (by the gallery's own match
//! threshold) are refused as a whole.

use serde::Serialize;

use crate::camera::Frame;
use crate::vision::quality::{Quality, QualityGate, QualityMeter, Rejection};
use crate::vision::{Detection, Face};

/// A crop this sharp or sharper counts as fully sharp in the quality score: about the median of
/// the test photos (`tests/quality.rs`), past which more sharpness is mostly noise and texture.
pub const FULL_SHARPNESS: f32 = 250.0;

/// A frame chosen for enrolment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Pick {
    pub frame_index: usize,
    pub bbox: [i32; 4],
    pub detection_confidence: f32,
    /// Variance of the Laplacian of the aligned face (`vision.quality.min_sharpness` is its
    /// least).
    pub sharpness: f32,
    /// Confidence x size (up to 160 px) x frontality x sharpness (up to 250), in [0, 1].
    pub quality: f32,
    #[serde(skip)]
    pub embedding: Vec<f32>,
    /// The aligned face as the embedder saw it, JPEG (~5 KB), when the caller keeps it: video
    /// enrolment fills it in the first pass so the picked frames need not be held.
    #[serde(skip)]
    pub crop: Vec<u8>,
}

/// What one analysed frame is for enrolment.
#[derive(Debug)]
pub enum Verdict {
    NoFace,
    MultipleFaces,
    /// One clear face, too narrow to enrol (or not embedded).
    TooSmall,
    /// One clear face, turned away or blurred past the gate.
    Poor(Rejection),
    /// A candidate, and where its face is in the `faces` judged (for its keypoints and crop).
    Candidate {
        pick: Pick,
        face: usize,
    },
}

/// Judges one analysed frame; `faces` are what the engine found in it, `gate` the enrolment gate.
pub fn judge(
    index: usize,
    frame: &Frame,
    faces: &[Face],
    min_confidence: f32,
    gate: &QualityGate,
    meter: &mut QualityMeter,
) -> Verdict {
    let mut clear = faces
        .iter()
        .enumerate()
        .filter(|(_, f)| f.score >= min_confidence);
    let (at, face) = match (clear.next(), clear.next()) {
        (None, _) => return Verdict::NoFace,
        (Some(_), Some(_)) => return Verdict::MultipleFaces,
        (Some(one), None) => one,
    };
    let Some(e) = &face.embedding else {
        return Verdict::TooSmall;
    };
    let det = Detection {
        bbox: face.bbox,
        score: face.score,
        keypoints: face.keypoints,
    };
    let q = meter.measure(&frame.rgb, frame.width, frame.height, &det);
    match gate.check(&q) {
        Err(Rejection::TooSmall { .. }) => Verdict::TooSmall,
        Err(why) => Verdict::Poor(why),
        Ok(()) => Verdict::Candidate {
            pick: Pick {
                frame_index: index,
                bbox: face.bbox.map(|v| v.round() as i32),
                detection_confidence: face.score,
                sharpness: q.sharpness.unwrap_or(0.0),
                quality: quality(&q),
                embedding: e.as_slice().to_vec(),
                crop: Vec::new(),
            },
            face: at,
        },
    }
}

/// One view's quality score, higher is better.
pub fn quality(q: &Quality) -> f32 {
    let sharp = (q.sharpness.unwrap_or(0.0) / FULL_SHARPNESS).clamp(0.0, 1.0);
    q.rank() * sharp.sqrt()
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

/// Orders candidates best first.
pub fn rank(candidates: &mut [Pick]) {
    candidates.sort_by(|a, b| b.quality.total_cmp(&a.quality));
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    // Embeddings are L2-normalised: the dot product is the cosine.
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(score: f32, size_px: f32, yaw: f32, sharpness: f32) -> Quality {
        Quality {
            size_px,
            yaw,
            pitch: 0.0,
            sharpness: Some(sharpness),
            score,
        }
    }

    #[test]
    fn a_large_sharp_frontal_view_scores_highest_and_the_score_is_absolute() {
        let best = quality(&view(0.9, 200.0, 0.0, 400.0));
        assert!(
            (best - 0.9).abs() < 1e-6,
            "full size and sharpness count fully: {best}"
        );
        for worse in [
            view(0.9, 80.0, 0.0, 400.0),
            view(0.9, 200.0, 0.3, 400.0),
            view(0.9, 200.0, 0.0, 60.0),
            view(0.6, 200.0, 0.0, 400.0),
        ] {
            assert!(quality(&worse) < best, "{worse:?}");
        }
    }
}
