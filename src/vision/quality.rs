//! How good a view of a face is, and whether it is good enough to embed or to enrol.
//!
//! An embedding is only as good as the crop it came from: a blurred, turned or tiny face gives a
//! vector that sits between people, and a gallery built from one misnames for ever. So the camera
//! path embeds a tracked face only when its view passes the gate, prefers a clearly better view
//! when it re-checks, and enrolment refuses a photo that fails it. One measure serves all three,
//! so "good enough" means the same everywhere.
//!
//! Three cheap measures, all on what the detector and the aligner already made:
//! * **size**: the box's width in frame pixels (the aligner upsamples a small face, which adds no
//!   detail);
//! * **pose**: yaw and pitch estimated from the keypoints (the nose's offset from the eyes' line
//!   and midline, in units of the eye distance), so no extra model runs;
//! * **sharpness**: the variance of the Laplacian of the aligned crop's luma, inside the face
//!   (see [`sharpness`]). The crop has the same size for every face,
//!   so sharpness is comparable between faces, cameras and photos.

use super::align::Aligner;
use super::config::{AlignMode, EmbedderKind};
use super::detector::{keypoint, Detection};

/// What one view of a face is worth.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Quality {
    /// Width of the detector's box, frame pixels.
    pub size_px: f32,
    /// The nose's offset along the eyes' line from their midpoint, in eye distances: 0 frontal,
    /// growing as the head turns (sign: towards the image's right).
    pub yaw: f32,
    /// The nose's position between the eyes' line and the mouth, in that distance, less its
    /// frontal value: 0 frontal, negative looking up, positive looking down.
    pub pitch: f32,
    /// Variance of the Laplacian of the aligned crop's luma; `None` until the crop is measured.
    pub sharpness: Option<f32>,
    /// The detector's confidence.
    pub score: f32,
}

/// Where the nose sits between the eyes' line and the mouth in a frontal face.
const FRONTAL_PITCH: f32 = 0.5;
/// A face this wide or wider counts as full size in [`Quality::rank`]: the embedder's input is
/// 112 px, and past about this width a face carries no more detail into it.
pub const FULL_SIZE_PX: f32 = 160.0;

impl Quality {
    /// Size, pose and confidence from the detection alone: no pixels read. Enough to tell a
    /// clearly better view before aligning it.
    pub fn of_detection(det: &Detection) -> Quality {
        let k = &det.keypoints;
        let (re, le) = (k[keypoint::RIGHT_EYE], k[keypoint::LEFT_EYE]);
        let (nose, mouth) = (k[keypoint::NOSE], k[keypoint::MOUTH]);
        let mid = [(re[0] + le[0]) / 2.0, (re[1] + le[1]) / 2.0];
        let axis = [le[0] - re[0], le[1] - re[1]];
        let eye_dist = (axis[0] * axis[0] + axis[1] * axis[1]).sqrt();
        let (yaw, pitch) = if eye_dist < 1e-3 {
            // Both eyes on one point: a full profile or a bad detection; either way, not frontal.
            (f32::INFINITY, f32::INFINITY)
        } else {
            let u = [axis[0] / eye_dist, axis[1] / eye_dist];
            // Perpendicular to the eyes' line, pointing down the face.
            let v = [-u[1], u[0]];
            let to_nose = [nose[0] - mid[0], nose[1] - mid[1]];
            let to_mouth = [mouth[0] - mid[0], mouth[1] - mid[1]];
            let yaw = (to_nose[0] * u[0] + to_nose[1] * u[1]) / eye_dist;
            let down = to_mouth[0] * v[0] + to_mouth[1] * v[1];
            let pitch = if down.abs() < 1e-3 {
                f32::INFINITY
            } else {
                (to_nose[0] * v[0] + to_nose[1] * v[1]) / down - FRONTAL_PITCH
            };
            (yaw, pitch)
        };
        Quality {
            size_px: det.width(),
            yaw,
            pitch,
            sharpness: None,
            score: det.score,
        }
    }

    /// [`Quality::of_detection`] plus the sharpness of `crop`, the face aligned (RGB8,
    /// `side x side`, as [`super::FaceEngine::align`] returns it).
    pub fn measure(det: &Detection, crop: &[u8], side: u32) -> Quality {
        Quality {
            sharpness: Some(sharpness(crop, side)),
            ..Quality::of_detection(det)
        }
    }

    /// One number to prefer one view of a face over another (higher is better): confidence,
    /// size up to [`FULL_SIZE_PX`], and how frontal the head is. Sharpness is left out, so that
    /// views can be ranked before their crops are made.
    pub fn rank(&self) -> f32 {
        let size = (self.size_px / FULL_SIZE_PX).clamp(0.0, 1.0);
        let turn = (self.yaw.abs() + self.pitch.abs()).min(1.0);
        self.score * size * (1.0 - turn)
    }
}

/// Measures faces found in frames where no engine is at hand (enrolment from a running camera,
/// whose engine belongs to the camera's thread): aligns each onto the 112 px template, as the
/// embedder's aligner does, so that its sharpness is the one [`Quality::measure`] gives.
#[derive(Debug)]
pub struct QualityMeter {
    aligner: Aligner,
}

impl Default for QualityMeter {
    fn default() -> Self {
        QualityMeter {
            aligner: Aligner::new(EmbedderKind::MobileFaceNet, AlignMode::Keypoints),
        }
    }
}

impl QualityMeter {
    /// The quality of `det`, found in this RGB8 frame.
    pub fn measure(&mut self, rgb: &[u8], width: u32, height: u32, det: &Detection) -> Quality {
        self.aligner.align(rgb, width, height, det);
        let (crop, side) = self.aligner.last_crop();
        Quality::measure(det, crop, side)
    }
}

/// The variance of the Laplacian of the crop's luma, over the eyes, nose and mouth of the
/// template (the middle half across, from above the eyes to below the mouth). Only there: a tight
/// photo's crop shows the aligner's grey fill past the photo's edges, and that border, sharp in
/// a blurred photo too, counted as detail when the whole crop was measured.
pub fn sharpness(crop: &[u8], side: u32) -> f32 {
    let s = side as usize;
    if s < 8 || crop.len() < s * s * 3 {
        return 0.0;
    }
    let luma = |x: usize, y: usize| {
        let p = &crop[(y * s + x) * 3..][..3];
        (77 * p[0] as i32 + 150 * p[1] as i32 + 29 * p[2] as i32) as f32 / 256.0
    };
    // Measured on a 112 px grid whatever the embedder's input (FaceRes aligns to 224 px), so
    // that one `min_sharpness` serves every embedder.
    let k = (s / 112).max(1);
    let (x0, x1, y0, y1) = (s / 4, s - s / 4, s * 3 / 8, s - s / 8);
    let (mut n, mut sum, mut sq) = (0f32, 0f32, 0f32);
    for y in (y0.max(k)..y1.min(s - k)).step_by(k) {
        for x in (x0.max(k)..x1.min(s - k)).step_by(k) {
            let l = luma(x - k, y) + luma(x + k, y) + luma(x, y - k) + luma(x, y + k)
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

/// Why a view was not good enough.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("the face is {size_px:.0} px wide; at least {min_px} px is needed")]
    TooSmall { size_px: f32, min_px: u32 },
    #[error("the face is turned away (yaw {yaw:.2}, pitch {pitch:.2}; at most {max:.2})")]
    Turned { yaw: f32, pitch: f32, max: f32 },
    #[error("the face is blurred (sharpness {sharpness:.0}; at least {min:.0})")]
    Blurred { sharpness: f32, min: f32 },
}

/// The least a view must be to be embedded (camera frames) or enrolled (photos).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QualityGate {
    pub min_face_px: u32,
    /// Largest `|yaw|` and `|pitch|` (see [`Quality`]).
    pub max_turn: f32,
    /// Least sharpness (see [`sharpness`]); 0 lets every view through.
    pub min_sharpness: f32,
}

impl QualityGate {
    /// Whether `q` is good enough; sharpness is checked only once measured.
    pub fn check(&self, q: &Quality) -> Result<(), Rejection> {
        if q.size_px < self.min_face_px as f32 {
            return Err(Rejection::TooSmall {
                size_px: q.size_px,
                min_px: self.min_face_px,
            });
        }
        if !(q.yaw.abs() <= self.max_turn && q.pitch.abs() <= self.max_turn) {
            return Err(Rejection::Turned {
                yaw: q.yaw,
                pitch: q.pitch,
                max: self.max_turn,
            });
        }
        match q.sharpness {
            Some(s) if s < self.min_sharpness => Err(Rejection::Blurred {
                sharpness: s,
                min: self.min_sharpness,
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(nose_dx: f32, nose_dy: f32) -> Detection {
        Detection {
            bbox: [100.0, 100.0, 200.0, 220.0],
            score: 0.9,
            // Right eye on the image's left, as a frontal face shows it.
            keypoints: [
                [130.0, 140.0],
                [170.0, 140.0],
                [150.0 + nose_dx, 160.0 + nose_dy],
                [150.0, 180.0],
                [110.0, 145.0],
                [190.0, 145.0],
            ],
        }
    }

    #[test]
    fn a_frontal_face_has_no_turn_and_a_turned_one_does() {
        let q = Quality::of_detection(&det(0.0, 0.0));
        assert!(q.yaw.abs() < 1e-6 && q.pitch.abs() < 1e-6, "{q:?}");
        let turned = Quality::of_detection(&det(16.0, 0.0));
        assert!((turned.yaw - 0.4).abs() < 1e-6, "{turned:?}");
        let down = Quality::of_detection(&det(0.0, 8.0));
        assert!((down.pitch - 0.2).abs() < 1e-6, "{down:?}");
        assert!(q.rank() > turned.rank() && q.rank() > down.rank());
    }

    #[test]
    fn a_flat_crop_has_no_sharpness_and_a_checkered_one_has_much() {
        let side = 112u32;
        let flat = vec![120u8; (side * side * 3) as usize];
        assert_eq!(sharpness(&flat, side), 0.0);
        let checkered: Vec<u8> = (0..side * side)
            .flat_map(|i| {
                let v = if (i % side + i / side).is_multiple_of(2) {
                    40
                } else {
                    200
                };
                [v, v, v]
            })
            .collect();
        assert!(sharpness(&checkered, side) > 1000.0);
    }

    #[test]
    fn the_gate_names_what_failed() {
        let gate = QualityGate {
            min_face_px: 40,
            max_turn: 0.35,
            min_sharpness: 10.0,
        };
        let mut q = Quality::of_detection(&det(0.0, 0.0));
        assert_eq!(gate.check(&q), Ok(()));
        q.sharpness = Some(5.0);
        assert!(matches!(gate.check(&q), Err(Rejection::Blurred { .. })));
        let turned = Quality::of_detection(&det(16.0, 0.0));
        assert!(matches!(gate.check(&turned), Err(Rejection::Turned { .. })));
        let small = Quality {
            size_px: 30.0,
            ..Quality::of_detection(&det(0.0, 0.0))
        };
        assert!(matches!(
            gate.check(&small),
            Err(Rejection::TooSmall { .. })
        ));
    }
}
