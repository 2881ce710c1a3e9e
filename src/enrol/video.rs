//! Enrolment from a short video of one person: the frames are sampled evenly, each sample that
//! shows exactly one clear face is a candidate, and the best few are enrolled.
//!
//! The video is read by the camera module's file reader, so what a camera can replay can enrol:
//! y4m (8-bit 4:2:0, 4:2:2, 4:4:4, mono) and MJPEG (JPEGs back to back, as cameras and
//! `ffmpeg -c:v mjpeg -f mjpeg` write them). MP4, MKV, H.264 and the like need a decoder the
//! appliance does not carry; they are refused before anything is read (`ffmpeg -i in.mp4 -f
//! yuv4mpegpipe out.y4m` converts one).
//!
//! "Best" is the product of the detector's confidence, the face's size (up to [`FULL_SIZE_PX`],
//! past which the embedder sees no more detail) and its sharpness relative to the sharpest
//! candidate (variance of the Laplacian, the usual focus measure): a large, sharp, frontal face
//! makes a better reference than a small or blurred one. A video in which the candidates are not
//! all the same person (by the gallery's own match threshold) is refused as a whole.

use std::path::Path;

use serde::Serialize;

use super::shot::{self, Shot};
use crate::camera::{CameraError, FileSource, Frame, Source};
use crate::vision::{Face, FaceEngine, VisionError, MAX_FACES};

/// Frames analysed at most, spread evenly over the video: enough to find good views of a face in
/// a few seconds of video, few enough to answer in seconds on a Raspberry Pi.
pub const MAX_SAMPLES: usize = 40;
/// A face this wide or wider counts as full size in the quality score.
pub const FULL_SIZE_PX: f32 = 160.0;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("not a video the appliance can read: {0}")]
    Unsupported(String),
    #[error("the video cannot be decoded: {0}")]
    Decode(String),
    #[error("no face in any of the {sampled} frames looked at")]
    NoFace { sampled: usize },
    #[error("{frames} of the {sampled} frames looked at show several faces and only {single} one alone; enrol from a video of one person")]
    MultipleFaces {
        frames: usize,
        single: usize,
        sampled: usize,
    },
    #[error("{others} of the {single} frames with one face show someone else than the clearest one; enrol from a video of one person")]
    MultiplePeople { others: usize, single: usize },
    #[error("the faces in the video are narrower than {min_px} pixels; come closer to the camera")]
    FaceTooSmall { min_px: u32 },
    #[error(transparent)]
    Vision(#[from] VisionError),
}

impl VideoError {
    /// The API's code for each refusal.
    pub fn code(&self) -> &'static str {
        match self {
            VideoError::Unsupported(_) => "unsupported_video",
            VideoError::Decode(_) => "bad_video",
            VideoError::NoFace { .. } => "no_face",
            VideoError::MultipleFaces { .. } => "multiple_faces",
            VideoError::MultiplePeople { .. } => "multiple_people",
            VideoError::FaceTooSmall { .. } => "face_too_small",
            VideoError::Vision(_) => "vision_unavailable",
        }
    }
}

/// The file extension the camera module reads `bytes` as, from their first bytes; other formats
/// are refused here, with what would work.
pub fn sniff_video(bytes: &[u8]) -> Result<&'static str, VideoError> {
    if bytes.starts_with(b"YUV4MPEG2") {
        return Ok("y4m");
    }
    if bytes.starts_with(&[0xFF, 0xD8]) {
        return Ok("mjpeg");
    }
    let what = match bytes.get(4..8) {
        Some(b"ftyp") => "an MP4/MOV file",
        _ if bytes.starts_with(&[0x1A, 0x45, 0xDF, 0xA3]) => "a Matroska/WebM file",
        _ if bytes.starts_with(b"RIFF") => "an AVI file",
        _ => "this file",
    };
    Err(VideoError::Unsupported(format!(
        "{what} is not y4m or MJPEG, the formats the appliance decodes; convert it, e.g. `ffmpeg -i in.mp4 -f yuv4mpegpipe out.y4m`"
    )))
}

#[derive(Debug, Clone, Copy)]
pub struct VideoOptions {
    /// Frames to enrol at most.
    pub count: usize,
    /// Detections below this confidence are not counted as faces.
    pub min_confidence: f32,
    /// The gallery's match threshold: candidates less similar than this are someone else.
    pub same_person: f32,
}

/// A frame chosen for enrolment.
#[derive(Debug, Clone, Serialize)]
pub struct Pick {
    pub frame_index: usize,
    pub bbox: [i32; 4],
    pub detection_confidence: f32,
    pub sharpness: f32,
    pub quality: f32,
    #[serde(skip)]
    pub embedding: Vec<f32>,
    /// The aligned face as the embedder saw it, JPEG (kept from the first pass, ~5 KB).
    #[serde(skip)]
    crop: Vec<u8>,
}

/// What the video held and what was chosen.
#[derive(Debug, Clone, Serialize)]
pub struct VideoReport {
    pub frames: usize,
    pub sampled: usize,
    pub no_face: usize,
    pub multiple_faces: usize,
    pub too_small: usize,
    pub usable: usize,
    pub picked: Vec<Pick>,
}

/// Reads the video at `path` (named with the extension [`sniff_video`] gave) and picks the best
/// frames of its one person; returns what was seen and the picked faces with their pictures,
/// best first.
pub fn pick_faces(
    engine: &mut FaceEngine,
    path: &Path,
    opts: VideoOptions,
) -> Result<(VideoReport, Vec<Shot>), VideoError> {
    // Two passes: the first counts the frames so that the samples spread over the whole video
    // without holding every decoded frame in memory.
    let frames = for_each_frame(path, |_, _| Ok(()))?;
    let stride = frames.div_ceil(MAX_SAMPLES).max(1);
    let min_px = engine.config().enrol.min_face_px;
    let mut report = VideoReport {
        frames,
        sampled: 0,
        no_face: 0,
        multiple_faces: 0,
        too_small: 0,
        usable: 0,
        picked: Vec::new(),
    };
    let mut candidates = Vec::new();
    let mut faces = heapless::Vec::<Face, MAX_FACES>::new();
    for_each_frame(path, |i, frame| {
        if i % stride != 0 {
            return Ok(());
        }
        report.sampled += 1;
        engine.analyze(&frame.rgb, frame.width, frame.height, &mut faces)?;
        let clear: Vec<&Face> = faces
            .iter()
            .filter(|f| f.score >= opts.min_confidence)
            .collect();
        match clear.as_slice() {
            [] => report.no_face += 1,
            [face] => match &face.embedding {
                Some(e) if face.bbox[2] - face.bbox[0] >= min_px as f32 => {
                    let embedding = e.as_slice().to_vec();
                    let (crop, side) = engine.crop_of(&frame.rgb, frame.width, frame.height, face);
                    let crop = shot::jpeg(crop, side, side)?;
                    candidates.push(candidate(i, frame, face, embedding, crop));
                }
                _ => report.too_small += 1,
            },
            _ => report.multiple_faces += 1,
        }
        Ok(())
    })?;
    report.usable = candidates.len();
    check(&report, &candidates, opts, min_px)?;
    rank(&mut candidates);
    candidates.truncate(opts.count);
    let shots = photos(path, &candidates)?;
    report.picked = candidates;
    Ok((report, shots))
}

/// A third pass: the photos of the picked frames, read again rather than every candidate's frame
/// held in memory through the first (40 frames of 1080p would be 250 MB).
fn photos(path: &Path, picked: &[Pick]) -> Result<Vec<Shot>, VideoError> {
    let mut shots: Vec<Option<Shot>> = vec![None; picked.len()];
    for_each_frame(path, |i, frame| {
        for (slot, pick) in shots.iter_mut().zip(picked) {
            if pick.frame_index == i {
                let photo = shot::photo(&frame.rgb, frame.width, frame.height)?;
                *slot = Some(Shot {
                    embedding: pick.embedding.clone(),
                    images: crate::store::faces::FaceImages {
                        crop: pick.crop.clone(),
                        photo,
                    },
                });
            }
        }
        Ok(())
    })?;
    shots
        .into_iter()
        .map(|s| s.ok_or_else(|| VideoError::Decode("the video changed while it was read".into())))
        .collect()
}

/// Refuses a video with no usable face, or with more than one person in it.
fn check(
    report: &VideoReport,
    candidates: &[Pick],
    opts: VideoOptions,
    min_px: u32,
) -> Result<(), VideoError> {
    if report.multiple_faces > candidates.len() {
        return Err(VideoError::MultipleFaces {
            frames: report.multiple_faces,
            single: candidates.len(),
            sampled: report.sampled,
        });
    }
    if candidates.is_empty() {
        return Err(if report.too_small > 0 {
            VideoError::FaceTooSmall { min_px }
        } else {
            VideoError::NoFace {
                sampled: report.sampled,
            }
        });
    }
    let anchor = candidates
        .iter()
        .max_by(|a, b| a.detection_confidence.total_cmp(&b.detection_confidence))
        .expect("not empty");
    let others = candidates
        .iter()
        .filter(|c| cosine(&c.embedding, &anchor.embedding) < opts.same_person)
        .count();
    if others > 0 {
        return Err(VideoError::MultiplePeople {
            others,
            single: candidates.len(),
        });
    }
    Ok(())
}

/// Orders candidates best first; sharpness counts relative to the sharpest of this video, as
/// absolute values depend on the camera and the light.
fn rank(candidates: &mut [Pick]) {
    let sharpest = candidates
        .iter()
        .map(|c| c.sharpness)
        .fold(f32::EPSILON, f32::max);
    for c in candidates.iter_mut() {
        let width = (c.bbox[2] - c.bbox[0]) as f32;
        c.quality = c.detection_confidence
            * (width / FULL_SIZE_PX).min(1.0)
            * (c.sharpness / sharpest).sqrt();
    }
    candidates.sort_by(|a, b| b.quality.total_cmp(&a.quality));
}

fn candidate(index: usize, frame: &Frame, face: &Face, embedding: Vec<f32>, crop: Vec<u8>) -> Pick {
    Pick {
        frame_index: index,
        bbox: face.bbox.map(|v| v.round() as i32),
        detection_confidence: face.score,
        sharpness: sharpness(frame, face.bbox),
        quality: 0.0,
        embedding,
        crop,
    }
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

/// Calls `f` with every frame of the video in order; returns how many there were.
fn for_each_frame(
    path: &Path,
    mut f: impl FnMut(usize, &Frame) -> Result<(), VideoError>,
) -> Result<usize, VideoError> {
    // The file is an upload kept beside the store: its path is nobody's business but ours.
    let decode = |e: CameraError| {
        VideoError::Decode(match e {
            CameraError::Format { message, .. } => message,
            CameraError::Read { source, .. } => source.to_string(),
            e => e.to_string(),
        })
    };
    // Unpaced and read to its end here: nothing needs to stop it from outside.
    let mut source =
        FileSource::open(path, 0.0, false, crate::shutdown::Shutdown::new()).map_err(decode)?;
    let mut frame = Frame::new();
    let mut n = 0;
    loop {
        match source.next_frame(&mut frame) {
            Ok(()) => {}
            Err(CameraError::Ended) => break,
            Err(e) => return Err(decode(e)),
        }
        f(n, &frame)?;
        n += 1;
    }
    if n == 0 {
        return Err(VideoError::Decode("the video holds no frames".into()));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_y4m_and_mjpeg_are_taken_and_others_are_named() {
        assert_eq!(sniff_video(b"YUV4MPEG2 W2 H2").unwrap(), "y4m");
        assert_eq!(sniff_video(&[0xFF, 0xD8, 0xFF, 0xE0]).unwrap(), "mjpeg");
        let mp4 = sniff_video(b"\0\0\0\x20ftypisom").unwrap_err();
        assert!(mp4.to_string().contains("MP4"), "{mp4}");
        assert_eq!(mp4.code(), "unsupported_video");
        assert!(sniff_video(b"").is_err());
    }

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
}
