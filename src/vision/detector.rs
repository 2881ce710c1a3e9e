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
pub(crate) mod keypoint {
    pub const RIGHT_EYE: usize = 0;
    pub const LEFT_EYE: usize = 1;
    pub const NOSE: usize = 2;
    pub const MOUTH: usize = 3;
    // 4 and 5 are the right and left ear, which no stage uses.
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
        let (file, (scores_out, regressors_out)) = load_checked(config)?;
        let path = config.detector_model();
        let rejected = model::rejected_by_runtime("vision.detector.model", &path);
        let mut session = runtime.session(&file, &config.runtime).map_err(&rejected)?;
        // Once on the blank input: a model the runtime cannot prepare fails here, named.
        session.run().map_err(&rejected)?;
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

/// Reads the detector model `config` names and checks it is one, without compiling it.
fn load_checked(config: &VisionConfig) -> Result<(ModelFile, (usize, usize)), VisionError> {
    let path = config.detector_model();
    let file = model::load(&path, "vision.detector.model")?;
    let outputs = check_shapes(&file, &path)?;
    Ok((file, outputs))
}

/// The checks of [`Detector::new`] that need no runtime (`vision::check`).
pub(crate) fn check_model(config: &VisionConfig) -> Result<(), VisionError> {
    load_checked(config).map(|_| ())
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
    if scale < 1.0 {
        fill_shrunk(input, rgb, w, &lb, w, h);
    } else {
        fill_enlarged(input, rgb, w, h, &lb);
    }
    lb
}

/// The source pixels `[start, end)` that output pixel `i` covers along one axis; empty outside the
/// picture (the letterbox bars).
fn span(i: usize, pad: f32, scale: f32, len: usize) -> (usize, usize) {
    let a = (i as f32 - pad) / scale;
    let b = (i as f32 + 1.0 - pad) / scale;
    if b <= 0.0 || a >= len as f32 {
        return (0, 0);
    }
    let start = a.max(0.0).floor() as usize;
    let end = (b.min(len as f32).ceil() as usize).max(start + 1).min(len);
    (start, end)
}

/// Shrinking (every camera frame): each output pixel is the mean of the source pixels it covers,
/// so every source pixel is read about once. This was a 4x4 grid of bilinear taps per output
/// pixel, 13 ms of a 31 ms frame at 640x480; the area mean is as smooth and a tenth of the cost.
fn fill_shrunk(input: &mut [u8], rgb: &[u8], stride: usize, lb: &Letterbox, w: usize, h: usize) {
    let mut cols = [(0usize, 0usize); INPUT_SIZE];
    for (u, c) in cols.iter_mut().enumerate() {
        *c = span(u, lb.pad_x, lb.scale, w);
    }
    for (v, row) in input.chunks_exact_mut(INPUT_SIZE * 12).enumerate() {
        let (ys, ye) = span(v, lb.pad_y, lb.scale, h);
        for (px, &(xs, xe)) in row.chunks_exact_mut(12).zip(cols.iter()) {
            let mut acc = [0u32; 3];
            let n = ((ye - ys) * (xe - xs)) as f32;
            for y in ys..ye {
                let line = &rgb[(y * stride + xs) * 3..(y * stride + xe) * 3];
                for p in line.chunks_exact(3) {
                    acc[0] += u32::from(p[0]);
                    acc[1] += u32::from(p[1]);
                    acc[2] += u32::from(p[2]);
                }
            }
            for c in 0..3 {
                let value = if n > 0.0 {
                    acc[c] as f32 / (127.5 * n) - 1.0
                } else {
                    0.0
                };
                px[4 * c..4 * c + 4].copy_from_slice(&value.to_ne_bytes());
            }
        }
    }
}

/// Enlarging (small still images): bilinear samples.
fn fill_enlarged(input: &mut [u8], rgb: &[u8], w: usize, h: usize, lb: &Letterbox) {
    let scale = lb.scale;
    for (v, row) in input.chunks_exact_mut(INPUT_SIZE * 12).enumerate() {
        let y0 = (v as f32 - lb.pad_y) / scale;
        for (u, px) in row.chunks_exact_mut(12).enumerate() {
            let x0 = (u as f32 - lb.pad_x) / scale;
            let inside = x0 >= 0.0 && y0 >= 0.0 && x0 < w as f32 && y0 < h as f32;
            let s = if inside {
                bilinear(rgb, w, h, x0 + 0.5 / scale - 0.5, y0 + 0.5 / scale - 0.5)
            } else {
                [127.5; 3]
            };
            for c in 0..3 {
                let value = s[c] / 127.5 - 1.0;
                px[4 * c..4 * c + 4].copy_from_slice(&value.to_ne_bytes());
            }
        }
    }
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
