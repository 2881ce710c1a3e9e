//! Enrolment from a running camera ("take five good shots now"): while a person stands in front
//! of it, the camera's own analysis hands each analysed frame to a [`ShotCollector`], which keeps
//! the frames that would make good enrolment photos, judged and ranked as a video's frames are
//! (`rank.rs`). No second engine analyses the frames: the camera has already done the work.
//!
//! Bounded: at most `shots * 4` candidates are kept (the collection is complete then), and the
//! pixels of only the `shots` best of them, so a 1080p camera asked for ten shots holds ten frames,
//! not forty. Each candidate keeps its embedding (a few KiB), which the same-person check needs.

use serde::Serialize;

use super::rank::{judge, others, Pick, Verdict};
use super::video::VideoReport;
use crate::camera::Frame;
use crate::vision::quality::{QualityGate, QualityMeter};
use crate::vision::Face;

/// Candidates kept per shot asked for: enough to choose sharp frontal views from a few seconds of
/// a person turning their head, few enough to finish in seconds at a camera's analysis rate.
pub const CANDIDATES_PER_SHOT: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum ShotsError {
    #[error(
        "{usable} of the {seen} frames analysed showed one clear face wide enough to enrol and \
         {needed} are needed ({no_face} without a face, {multiple_faces} with several faces, \
         {too_small} with a face too small, {poor_quality} turned away or blurred: come closer, \
         alone, facing the camera, and hold still)"
    )]
    NoGoodShots {
        needed: usize,
        seen: usize,
        usable: usize,
        no_face: usize,
        multiple_faces: usize,
        too_small: usize,
        poor_quality: usize,
    },
    #[error("{others} of the {single} good shots show someone else than the clearest one; enrol one person at a time")]
    MultiplePeople { others: usize, single: usize },
}

impl ShotsError {
    /// The API's code for each refusal.
    pub fn code(&self) -> &'static str {
        match self {
            ShotsError::NoGoodShots { .. } => "no_good_shots",
            ShotsError::MultiplePeople { .. } => "multiple_people",
        }
    }
}

/// One chosen frame: where the face is and how good it is, and the frame itself (for the photo
/// an enrolment keeps).
#[derive(Debug, Clone, Serialize)]
pub struct Shot {
    #[serde(flatten)]
    pub pick: Pick,
    #[serde(skip)]
    pub frame: Frame,
    /// The face's keypoints, to align its crop again for the thumbnail kept with it.
    #[serde(skip)]
    pub keypoints: [[f32; 2]; 6],
}

/// Collects the good shots of one camera enrolment; see the module comment.
#[derive(Debug)]
pub struct ShotCollector {
    shots: usize,
    min_confidence: f32,
    gate: QualityGate,
    meter: QualityMeter,
    report: VideoReport,
    candidates: Vec<Pick>,
    /// The best `shots` candidates so far with their frames, in no order.
    best: Vec<Shot>,
}

impl ShotCollector {
    /// A collection of `shots` shots whose faces the detector is at least `min_confidence` sure of
    /// and that pass `gate` (`VisionConfig::enrol_gate`; its size is each frame's `min_px`).
    pub fn new(shots: usize, min_confidence: f32, gate: QualityGate) -> Self {
        ShotCollector {
            shots,
            min_confidence,
            gate,
            meter: QualityMeter::default(),
            report: VideoReport::new(0),
            candidates: Vec::with_capacity(shots * CANDIDATES_PER_SHOT),
            best: Vec::with_capacity(shots),
        }
    }

    /// Whether enough candidates are in to choose from.
    pub fn is_complete(&self) -> bool {
        self.candidates.len() >= self.shots * CANDIDATES_PER_SHOT
    }

    /// Takes one analysed frame: `faces` as the camera's engine found them, `min_px` the width a
    /// face needs to be enrolled (`vision.enrol.min_face_px`).
    pub fn frame(&mut self, frame: &Frame, faces: &[Face], min_px: u32) {
        if self.is_complete() {
            return;
        }
        let index = self.report.frames;
        self.report.frames += 1;
        self.report.sampled += 1;
        let gate = QualityGate {
            min_face_px: min_px,
            ..self.gate
        };
        let (pick, face) = match judge(
            index,
            frame,
            faces,
            self.min_confidence,
            &gate,
            &mut self.meter,
        ) {
            Verdict::NoFace => return self.report.no_face += 1,
            Verdict::MultipleFaces => return self.report.multiple_faces += 1,
            Verdict::TooSmall => return self.report.too_small += 1,
            Verdict::Poor(_) => return self.report.poor_quality += 1,
            Verdict::Candidate { pick, face } => (pick, face),
        };
        self.keep_frame(&pick, frame, faces[face].keypoints);
        self.candidates.push(pick);
    }

    /// Keeps the frame if its candidate is among the best `shots` so far; the frame it displaces
    /// lends its buffer.
    fn keep_frame(&mut self, pick: &Pick, frame: &Frame, keypoints: [[f32; 2]; 6]) {
        let quality = pick.quality;
        if self.best.len() < self.shots {
            self.best.push(Shot {
                pick: pick.clone(),
                frame: frame.clone(),
                keypoints,
            });
            return;
        }
        let worst = self
            .best
            .iter_mut()
            .min_by(|a, b| a.pick.quality.total_cmp(&b.pick.quality))
            .expect("shots is at least 1");
        if quality > worst.pick.quality {
            worst.pick = pick.clone();
            worst.frame.clone_from(frame);
            worst.keypoints = keypoints;
        }
    }

    /// The best `shots` shots, best first, and what was seen; refused when fewer than `shots`
    /// good frames came, or when they are not all one person by the gallery's threshold
    /// `same_person`.
    pub fn finish(mut self, same_person: f32) -> Result<(VideoReport, Vec<Shot>), ShotsError> {
        self.report.usable = self.candidates.len();
        if self.candidates.len() < self.shots {
            let r = &self.report;
            return Err(ShotsError::NoGoodShots {
                needed: self.shots,
                seen: r.frames,
                usable: r.usable,
                no_face: r.no_face,
                multiple_faces: r.multiple_faces,
                too_small: r.too_small,
                poor_quality: r.poor_quality,
            });
        }
        let others = others(&self.candidates, same_person);
        if others > 0 {
            return Err(ShotsError::MultiplePeople {
                others,
                single: self.candidates.len(),
            });
        }
        // The shots kept are the best by quality, best first, as `rank` orders a video's.
        let mut shots = std::mem::take(&mut self.best);
        shots.sort_by(|a, b| b.pick.quality.total_cmp(&a.pick.quality));
        self.report.picked = shots.iter().map(|s| s.pick.clone()).collect();
        Ok((self.report, shots))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::Embedding;

    /// A frame whose face area holds stripes `period` pixels wide: narrower stripes are sharper.
    /// Faint ones, so that every frame's sharpness stays below `rank::FULL_SHARPNESS`.
    fn frame(period: usize) -> Frame {
        let mut f = Frame::new();
        let rgb = f.resize(64, 64);
        for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
            px.fill(if ((i % 64) / period).is_multiple_of(2) {
                120
            } else {
                130
            });
        }
        f
    }

    /// The enrolment gate with sharpness left to the ranking (the stripes are no face).
    fn gate() -> QualityGate {
        QualityGate {
            min_face_px: 0,
            max_turn: 0.35,
            min_sharpness: 0.0,
        }
    }

    /// A frontal face: eyes level, the nose midway between them and the mouth.
    fn face(score: f32, width: f32, embedding: Option<[f32; 2]>) -> Face {
        let (x, w) = (2.0, width);
        Face {
            bbox: [x, x, x + w, x + w],
            score,
            keypoints: [
                [x + 0.3 * w, x + 0.4 * w],
                [x + 0.7 * w, x + 0.4 * w],
                [x + 0.5 * w, x + 0.55 * w],
                [x + 0.5 * w, x + 0.7 * w],
                [x + 0.1 * w, x + 0.45 * w],
                [x + 0.9 * w, x + 0.45 * w],
            ],
            embedding: embedding.and_then(|e| Embedding::from_raw(&e)),
        }
    }

    #[test]
    fn the_sharpest_shots_are_chosen_and_the_collection_is_bounded() {
        let mut c = ShotCollector::new(2, 0.7, gate());
        let one = |s| [face(s, 50.0, Some([1.0, 0.0]))];
        c.frame(&frame(16), &one(0.9), 40); // blurred
        c.frame(&frame(1), &one(0.9), 40); // sharpest
        c.frame(&frame(8), &[], 40);
        c.frame(&frame(2), &one(0.9), 40); // second sharpest
        c.frame(&frame(1), &[face(0.9, 50.0, None)], 40); // not embedded
        c.frame(&frame(1), &[face(0.9, 20.0, Some([1.0, 0.0]))], 40); // too small
        c.frame(
            &frame(1),
            &[face(0.9, 50.0, None), face(0.8, 50.0, None)],
            40,
        );
        c.frame(&frame(4), &one(0.3), 40); // not clear: no face
        assert!(!c.is_complete());
        for _ in 0..5 {
            c.frame(&frame(32), &one(0.9), 40);
        }
        assert!(c.is_complete());
        let (report, shots) = c.finish(0.5).unwrap();
        assert_eq!(report.frames, 13, "frames after completion are not taken");
        assert_eq!(report.usable, 8);
        assert_eq!(
            (report.no_face, report.too_small, report.multiple_faces),
            (2, 2, 1)
        );
        let chosen: Vec<usize> = shots.iter().map(|s| s.pick.frame_index).collect();
        assert_eq!(chosen, [1, 3]);
        assert_eq!(shots[0].frame.rgb, frame(1).rgb);
        assert_eq!(shots[1].frame.rgb, frame(2).rgb);
        assert!(shots[0].pick.quality > shots[1].pick.quality);
    }

    #[test]
    fn too_few_good_frames_or_two_people_are_refused() {
        let mut c = ShotCollector::new(3, 0.7, gate());
        c.frame(&frame(1), &[face(0.9, 50.0, Some([1.0, 0.0]))], 40);
        c.frame(&frame(1), &[], 40);
        let e = c.finish(0.5).unwrap_err();
        assert_eq!(e.code(), "no_good_shots");
        assert!(e.to_string().starts_with("1 of the 2 frames"), "{e}");

        let mut c = ShotCollector::new(2, 0.7, gate());
        c.frame(&frame(1), &[face(0.95, 50.0, Some([1.0, 0.0]))], 40);
        c.frame(&frame(2), &[face(0.9, 50.0, Some([0.0, 1.0]))], 40);
        let e = c.finish(0.5).unwrap_err();
        assert_eq!(e.code(), "multiple_people", "{e}");
    }
}
