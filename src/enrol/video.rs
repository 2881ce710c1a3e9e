//! Enrolment from a short video of one person: the frames are sampled evenly, each sample that
//! shows exactly one clear face is a candidate, and the best few are enrolled.
//!
//! The video is read by the camera module's file reader, so what a camera can replay can enrol:
//! y4m (8-bit 4:2:0, 4:2:2, 4:4:4, mono) and MJPEG (JPEGs back to back, as cameras and
//! `ffmpeg -c:v mjpeg -f mjpeg` write them). MP4, MKV, H.264 and the like need a decoder the
//! appliance does not carry; they are refused before anything is read (`ffmpeg -i in.mp4 -f
//! yuv4mpegpipe out.y4m` converts one).
//!
//! Frames are judged and ranked by `rank.rs`, as frames from a running camera are; a video in
//! which the candidates are not all the same person is refused as a whole.

use std::path::Path;

use serde::Serialize;

use super::rank::{judge, others, rank, Pick, Verdict};
use super::shot::{self, Shot};
use crate::camera::{CameraError, FileSource, Frame, Source};
use crate::vision::quality::{QualityMeter, Rejection};
use crate::vision::{Face, FaceEngine, VisionError, MAX_FACES};

/// Frames analysed at most, spread evenly over the video: enough to find good views of a face in
/// a few seconds of video, few enough to answer in seconds on a Raspberry Pi.
pub const MAX_SAMPLES: usize = 40;

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
    /// Every one-face frame failed the enrolment gate; the last one's reason.
    #[error("no frame shows a face good enough to enrol ({0}); face the camera and hold still")]
    PoorFace(Rejection),
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
            VideoError::PoorFace(Rejection::Turned { .. }) => "face_turned",
            VideoError::PoorFace(Rejection::Blurred { .. }) => "face_blurred",
            VideoError::PoorFace(Rejection::TooSmall { .. }) => "face_too_small",
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

/// What the video (or the camera) showed and what was chosen.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct VideoReport {
    pub frames: usize,
    pub sampled: usize,
    pub no_face: usize,
    pub multiple_faces: usize,
    pub too_small: usize,
    /// Frames with one clear face turned away or blurred past `vision.quality`.
    pub poor_quality: usize,
    pub usable: usize,
    pub picked: Vec<Pick>,
}

impl VideoReport {
    /// Nothing seen yet of `frames` frames.
    pub fn new(frames: usize) -> Self {
        VideoReport {
            frames,
            sampled: 0,
            no_face: 0,
            multiple_faces: 0,
            too_small: 0,
            poor_quality: 0,
            usable: 0,
            picked: Vec::new(),
        }
    }
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
    let mut report = VideoReport::new(frames);
    let mut candidates = Vec::new();
    let mut faces = heapless::Vec::<Face, MAX_FACES>::new();
    let gate = engine.config().enrol_gate();
    let mut meter = QualityMeter::default();
    let mut poor = None;
    for_each_frame(path, |i, frame| {
        if i % stride != 0 {
            return Ok(());
        }
        report.sampled += 1;
        engine.analyze(&frame.rgb, frame.width, frame.height, &mut faces)?;
        match judge(i, frame, &faces, opts.min_confidence, &gate, &mut meter) {
            Verdict::NoFace => report.no_face += 1,
            Verdict::MultipleFaces => report.multiple_faces += 1,
            Verdict::TooSmall => report.too_small += 1,
            Verdict::Poor(why) => {
                report.poor_quality += 1;
                poor = Some(why);
            }
            Verdict::Candidate { mut pick, face } => {
                // The face's aligned crop is the thumbnail kept with it.
                let (crop, side) =
                    engine.crop_of(&frame.rgb, frame.width, frame.height, &faces[face]);
                pick.crop = shot::jpeg(crop, side, side)?;
                candidates.push(pick);
            }
        }
        Ok(())
    })?;
    report.usable = candidates.len();
    check(&report, &candidates, opts, min_px, poor)?;
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
    poor: Option<Rejection>,
) -> Result<(), VideoError> {
    if report.multiple_faces > candidates.len() {
        return Err(VideoError::MultipleFaces {
            frames: report.multiple_faces,
            single: candidates.len(),
            sampled: report.sampled,
        });
    }
    if candidates.is_empty() {
        return Err(
            if let Some(why) = poor.filter(|_| report.poor_quality >= report.too_small) {
                VideoError::PoorFace(why)
            } else if report.too_small > 0 {
                VideoError::FaceTooSmall { min_px }
            } else {
                VideoError::NoFace {
                    sampled: report.sampled,
                }
            },
        );
    }
    let others = others(candidates, opts.same_person);
    if others > 0 {
        return Err(VideoError::MultiplePeople {
            others,
            single: candidates.len(),
        });
    }
    Ok(())
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
        match source.next_frame(&mut frame).and_then(|()| frame.decode()) {
            Ok(_) => {}
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
}
