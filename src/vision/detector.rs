//! Face detection with MediaPipe's BlazeFace full-range model.
//!
//! The model sees a 192x192 letterboxed copy of the frame, scaled to [-1, 1], and answers for each
//! of 2304 anchors (a 48x48 grid, stride 4) a score logit and 16 regressors: box centre and size,
//! then six keypoints (right eye, left eye, nose tip, mouth centre, right ear, left ear; "right"
//! is the person's right, on the image's left). Overlapping hits of one face are merged by
//! MediaPipe's weighted NMS, which averages them rather than keeping one, so boxes and keypoints
//! jitter less from frame to frame. Results come back in frame pixels.
//!
//! Every buffer is sized once at construction; a frame allocates nothing.

use std::time::{Duration, Instant};

use super::config::VisionConfig;
use super::model::{self, DType, ModelFile};
use super::runtime::{Runtime, Session};
use super::VisionError;

/// Most faces reported per frame. A door camera rarely sees more than a handful; a fixed bound
/// keeps the per-frame result on the stack.
pub const MAX_FACES: usize = 16;

/// Side of the detector's square input.
pub const INPUT_SIZE: usize = 192;
const GRID: usize = 48;
const ANCHORS: usize = GRID * GRID;
const REGRESSORS: usize = 16;

/// Keypoint indices in [`Detection::keypoints`].
pub mod keypoint {
    pub const RIGHT_EYE: usize = 0;
    pub const LEFT_EYE: usize = 1;
    pub const NOSE: usize = 2;
    pub const MOUTH: usize = 3;
    pub const RIGHT_EAR: usize = 4;
    pub const LEFT_EAR: usize = 5;
}

/// One face found in a frame, in frame pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// `[x1, y1, x2, y2]`, clipped to the frame.
    pub bbox: [f32; 4],
    /// Confidence in (0, 1).
    pub score: f32,
    /// See [`keypoint`] for the order.
    pub keypoints: [[f32; 2]; 6],
}

impl Detection {
    /// Width of the box in pixels.
    pub fn width(&self) -> f32 {
        self.bbox[2] - self.bbox[0]
    }
}

/// A scored anchor before NMS, in the 192x192 input's normalised coordinates.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    score: f32,
    bbox: [f32; 4],
    keypoints: [[f32; 2]; 6],
}

/// Where the frame sits inside the square input: `input = frame * scale + pad`.
#[derive(Debug, Clone, Copy, Default)]
struct Letterbox {
    scale: f32,
    pad_x: f32,
    pad_y: f32,
}

/// BlazeFace with its reusable buffers.
#[derive(Debug)]
pub struct Detector {
    session: Session,
    scores_out: usize,
    regressors_out: usize,
    /// Threshold as a logit, so most anchors are rejected without a sigmoid.
    min_logit: f32,
    nms_iou: f32,
    candidates: Vec<Candidate>,
    letterbox: Letterbox,
}

/// Time spent in one [`Detector::detect`] call.
#[derive(Debug, Clone, Copy, Default)]
pub struct DetectTimings {
    /// Letterbox, resize and scale into the input tensor.
    pub convert: Duration,
    /// Inference, decoding and NMS.
    pub detect: Duration,
    /// The part of `detect` spent in the runtime's invoke call alone.
    pub invoke: Duration,
}

impl Detector {
    /// Load and check the detector model named by `config`, and compile it.
    pub fn new(runtime: &'static Runtime, config: &VisionConfig) -> Result<Self, VisionError> {
        let path = config.detector_model();
        let file = model::load(&path, "vision.detector.model")?;
        let (scores_out, regressors_out) = check_shapes(&file, &path)?;
        let session = runtime.session(&file, &config.runtime)?;
        let t = config.detector.threshold;
        Ok(Detector {
            session,
            scores_out,
            regressors_out,
            min_logit: (t / (1.0 - t)).ln(),
            nms_iou: config.detector.nms_iou,
            candidates: Vec::with_capacity(ANCHORS),
            letterbox: Letterbox::default(),
        })
    }

    /// Find faces in a packed RGB8 frame; `out` is cleared first and holds at most [`MAX_FACES`],
    /// the highest scores first.
    pub fn detect(
        &mut self,
        rgb: &[u8],
        width: u32,
        height: u32,
        out: &mut heapless::Vec<Detection, MAX_FACES>,
    ) -> Result<DetectTimings, VisionError> {
        out.clear();
        check_frame(rgb, width, height)?;
        let start = Instant::now();
        self.letterbox = fill_input(self.session.input_mut(), rgb, width, height);
        let convert = start.elapsed();
        self.session.run()?;
        self.decode();
        self.weighted_nms(width as f32, height as f32, out);
        Ok(DetectTimings {
            convert,
            detect: start.elapsed() - convert,
            invoke: self.session.last_invoke(),
        })
    }

    fn decode(&mut self) {
        self.candidates.clear();
        let scores = self.session.output(self.scores_out);
        let regs = self.session.output(self.regressors_out);
        let s = INPUT_SIZE as f32;
        for (i, logit) in scores.chunks_exact(4).map(read_f32).enumerate() {
            if logit <= self.min_logit {
                continue;
            }
            let (ax, ay) = (
                ((i % GRID) as f32 + 0.5) / GRID as f32,
                ((i / GRID) as f32 + 0.5) / GRID as f32,
            );
            let r = &regs[i * REGRESSORS * 4..(i + 1) * REGRESSORS * 4];
            let reg = |k: usize| read_f32(&r[4 * k..4 * k + 4]) / s;
            let (cx, cy, w, h) = (reg(0) + ax, reg(1) + ay, reg(2), reg(3));
            let mut keypoints = [[0.0; 2]; 6];
            for (k, kp) in keypoints.iter_mut().enumerate() {
                *kp = [reg(4 + 2 * k) + ax, reg(5 + 2 * k) + ay];
            }
            self.candidates.push(Candidate {
                score: 1.0 / (1.0 + (-logit.clamp(-100.0, 100.0)).exp()),
                bbox: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0],
                keypoints,
            });
        }
    }

    /// MediaPipe's weighted NMS: take the best remaining candidate, average it with every
    /// remaining one that overlaps it by more than `nms_iou` (weighted by score), repeat.
    fn weighted_nms(
        &mut self,
        width: f32,
        height: f32,
        out: &mut heapless::Vec<Detection, MAX_FACES>,
    ) {
        let c = &mut self.candidates;
        c.sort_unstable_by(|a, b| b.score.total_cmp(&a.score));
        for i in 0..c.len() {
            if c[i].score < 0.0 || out.is_full() {
                continue;
            }
            let top = c[i];
            let (mut wsum, mut bbox, mut kps) = (0.0f32, [0.0f32; 4], [[0.0f32; 2]; 6]);
            for cand in c[i..].iter_mut() {
                if cand.score < 0.0 || iou(&top.bbox, &cand.bbox) <= self.nms_iou {
                    continue;
                }
                let w = cand.score;
                wsum += w;
                for (acc, v) in bbox.iter_mut().zip(cand.bbox) {
                    *acc += v * w;
                }
                for (acc, kp) in kps.iter_mut().zip(cand.keypoints) {
                    acc[0] += kp[0] * w;
                    acc[1] += kp[1] * w;
                }
                cand.score = -1.0;
            }
            let lb = self.letterbox;
            let to_px = |v: f32, pad: f32| (v / wsum * INPUT_SIZE as f32 - pad) / lb.scale;
            let keypoints = kps.map(|p| [to_px(p[0], lb.pad_x), to_px(p[1], lb.pad_y)]);
            let bbox = [
                to_px(bbox[0], lb.pad_x).clamp(0.0, width),
                to_px(bbox[1], lb.pad_y).clamp(0.0, height),
                to_px(bbox[2], lb.pad_x).clamp(0.0, width),
                to_px(bbox[3], lb.pad_y).clamp(0.0, height),
            ];
            let _ = out.push(Detection {
                bbox,
                score: top.score,
                keypoints,
            });
        }
    }
}

/// The detector needs one [1,192,192,3] float input and the two outputs; returns the index of the
/// scores output and of the regressors output.
fn check_shapes(file: &ModelFile, path: &std::path::Path) -> Result<(usize, usize), VisionError> {
    let info = &file.info;
    let find = |last: usize| {
        info.outputs
            .iter()
            .position(|t| t.shape == [1, ANCHORS, last] && t.dtype == DType::F32)
    };
    let input_ok = info.inputs.len() == 1
        && info.inputs[0].shape == [1, INPUT_SIZE, INPUT_SIZE, 3]
        && info.inputs[0].dtype == DType::F32;
    match (input_ok, info.outputs.len(), find(1), find(REGRESSORS)) {
        (true, 2, Some(scores), Some(regs)) => Ok((scores, regs)),
        _ => Err(VisionError::ModelShape {
            key: "vision.detector.model".into(),
            path: path.to_path_buf(),
            expected: "a BlazeFace full-range detector (input [1, 192, 192, 3] F32 -> outputs \
                       [1, 2304, 16] and [1, 2304, 1] F32)"
                .into(),
            found: info.describe(),
        }),
    }
}

/// Refuse a buffer that does not hold `width x height` RGB pixels.
pub(crate) fn check_frame(rgb: &[u8], width: u32, height: u32) -> Result<(), VisionError> {
    let expected = width as usize * height as usize * 3;
    if rgb.len() != expected || width == 0 || height == 0 {
        return Err(VisionError::FrameSize {
            width,
            height,
            expected,
            got: rgb.len(),
        });
    }
    Ok(())
}

fn read_f32(b: &[u8]) -> f32 {
    f32::from_ne_bytes([b[0], b[1], b[2], b[3]])
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// Letterbox the frame into the float input tensor (native-endian f32 bytes), in [-1, 1], with the
/// border at 0 (mid grey). When shrinking by more than 2x, each input pixel averages a few
/// bilinear taps, so that a 1080p frame does not alias into noise at 192x192.
fn fill_input(input: &mut [u8], rgb: &[u8], width: u32, height: u32) -> Letterbox {
    let (w, h) = (width as usize, height as usize);
    let size = INPUT_SIZE as f32;
    let scale = size / w.max(h) as f32;
    let lb = Letterbox {
        scale,
        pad_x: (size - w as f32 * scale) / 2.0,
        pad_y: (size - h as f32 * scale) / 2.0,
    };
    let taps = (1.0 / scale).ceil().clamp(1.0, 4.0) as usize;
    let step = 1.0 / (scale * taps as f32);
    let norm = 1.0 / (127.5 * (taps * taps) as f32);
    for (v, row) in input.chunks_exact_mut(INPUT_SIZE * 12).enumerate() {
        let y0 = (v as f32 - lb.pad_y) / scale;
        for (u, px) in row.chunks_exact_mut(12).enumerate() {
            let x0 = (u as f32 - lb.pad_x) / scale;
            let inside = x0 >= 0.0 && y0 >= 0.0 && x0 < w as f32 && y0 < h as f32;
            let mut acc = [0.0f32; 3];
            if inside {
                for ty in 0..taps {
                    for tx in 0..taps {
                        let x = x0 + (tx as f32 + 0.5) * step - 0.5;
                        let y = y0 + (ty as f32 + 0.5) * step - 0.5;
                        let s = bilinear(rgb, w, h, x, y);
                        for c in 0..3 {
                            acc[c] += s[c];
                        }
                    }
                }
            }
            for c in 0..3 {
                let value = if inside { acc[c] * norm - 1.0 } else { 0.0 };
                px[4 * c..4 * c + 4].copy_from_slice(&value.to_ne_bytes());
            }
        }
    }
    lb
}

/// Bilinear sample of a packed RGB8 image at `(x, y)` (pixel centres at integers), edges clamped.
pub(crate) fn bilinear(rgb: &[u8], w: usize, h: usize, x: f32, y: f32) -> [f32; 3] {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x as usize, y as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |xx: usize, yy: usize, c: usize| f32::from(rgb[(yy * w + xx) * 3 + c]);
    let mut out = [0.0; 3];
    for (c, o) in out.iter_mut().enumerate() {
        let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
        let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
        *o = top * (1.0 - fy) + bottom * fy;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_and_disjoint_boxes() {
        let a = [0.0, 0.0, 1.0, 1.0];
        assert!((iou(&a, &a) - 1.0).abs() < 1e-6);
        assert_eq!(iou(&a, &[2.0, 2.0, 3.0, 3.0]), 0.0);
    }

    #[test]
    fn letterbox_centres_a_wide_frame() {
        let rgb = vec![255u8; 400 * 200 * 3];
        let mut input = vec![0u8; INPUT_SIZE * INPUT_SIZE * 12];
        let lb = fill_input(&mut input, &rgb, 400, 200);
        assert!((lb.scale - 0.48).abs() < 1e-6);
        assert!((lb.pad_y - 48.0).abs() < 1e-4 && lb.pad_x.abs() < 1e-4);
        let at = |u: usize, v: usize| read_f32(&input[(v * INPUT_SIZE + u) * 12..][..4]);
        assert_eq!(at(96, 10), 0.0, "border is mid grey");
        assert!((at(96, 96) - 1.0).abs() < 1e-5, "white is 1.0");
    }
}
