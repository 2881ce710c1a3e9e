//! Faces followed across frames, so that one person walking past is one track: announced once,
//! and embedded when its identity needs it (`identity.rs`), not on every frame.
//!
//! Each frame's detections are matched to the tracks by IoU, best pairs first (faces move little
//! between frames at camera rates). A track that comes back after being missed, or that overlaps
//! another (one person passing in front of another), may now follow someone else: it is
//! *contested*, announces nothing, and is looked at again once it stands clear.

use std::time::Instant;

use super::identity::{Identity, IdentityConfig, Look, TrackIdentity, Verdict};
use crate::vision::quality::Quality;
use crate::vision::{Detection, MAX_FACES};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// The least IoU for a face to continue a track.
    pub min_iou: f32,
    /// Frames a track survives without a matching face (a blink, a passing occlusion).
    pub max_missed: u32,
    /// Two tracks whose boxes share this much of the smaller one occlude each other: neither is
    /// embedded (its crop holds part of the other face) and both are contested.
    pub occlusion: f32,
    pub identity: IdentityConfig,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            min_iou: 0.3,
            max_missed: 5,
            occlusion: 0.15,
            identity: IdentityConfig::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Track {
    /// Numbered from 1 in each camera run: events name the tracks they speak of.
    pub id: u64,
    /// The latest detection (box, score, keypoints) in frame pixels.
    pub detection: Detection,
    /// Frames the track has been seen in.
    pub frames: u32,
    missed: u32,
    /// Overlapped by another track in the latest frame.
    occluded: bool,
    pub identity: TrackIdentity,
    /// Set by the policy: when this track was last announced, per event kind.
    pub detected_at: Option<Instant>,
    pub recognized_at: Option<Instant>,
    /// Who the track was last announced as: a different verdict on the same track (one person
    /// stepping out of the spot where another stood) is announced at once.
    pub recognized_as: Option<String>,
    pub stranger_alerted: bool,
}

impl Track {
    pub fn bbox(&self) -> [f32; 4] {
        self.detection.bbox
    }

    /// Whether to embed this track's face on this frame (never while it is occluded), and why.
    pub fn needs_look(
        &self,
        quality: &Quality,
        now: Instant,
        config: &TrackerConfig,
    ) -> Option<Look> {
        if self.occluded {
            return None;
        }
        self.identity
            .needs_look(quality.rank(), now, &config.identity)
    }
}

/// One visible track as the live view and the SSE stream show it on this frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// `[x1, y1, x2, y2]` in frame pixels.
    pub bbox: [f32; 4],
    pub score: f32,
    /// The latest view's best similarity in the gallery (0 before any view): what an Unknown
    /// face reports as its confidence, as `/recognize` does; a known face reports its identity's.
    pub similarity: f32,
    /// `Some` once the track is known to be an enrolled person.
    pub identity: Option<Identity>,
    /// Judged a stranger (as opposed to not judged yet).
    pub unknown: bool,
}

impl Track {
    /// What the live view shows of this track now (allocates: only while someone watches).
    pub fn observation(&self) -> Observation {
        let (identity, unknown) = match self.identity.verdict() {
            Verdict::Known(id) => (Some(id.clone()), false),
            Verdict::Unknown => (None, true),
            Verdict::Undecided => (None, false),
        };
        Observation {
            bbox: self.detection.bbox,
            score: self.detection.score,
            similarity: identity
                .as_ref()
                .map_or(self.identity.similarity(), |i| i.similarity),
            identity,
            unknown,
        }
    }
}

pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
    /// Scratch, kept to avoid per-frame allocations: candidate (IoU, track, detection) pairs, and
    /// which tracks and detections found their match.
    pairs: Vec<(f32, usize, usize)>,
    track_taken: Vec<bool>,
    det_taken: Vec<bool>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Tracker {
            config,
            tracks: Vec::with_capacity(MAX_FACES * 2),
            next_id: 1,
            pairs: Vec::with_capacity(MAX_FACES * MAX_FACES * 2),
            track_taken: Vec::with_capacity(MAX_FACES * 2),
            det_taken: Vec::with_capacity(MAX_FACES),
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Folds one frame's detections into the tracks, drops tracks missed for too long, starts a
    /// track for each new face, and marks which tracks occlude each other.
    pub fn update(&mut self, detections: &[Detection]) {
        self.pairs.clear();
        for (t, track) in self.tracks.iter().enumerate() {
            for (d, det) in detections.iter().enumerate() {
                let v = iou(&track.detection.bbox, &det.bbox);
                if v >= self.config.min_iou {
                    self.pairs.push((v, t, d));
                }
            }
        }
        self.pairs.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
        self.track_taken.clear();
        self.track_taken.resize(self.tracks.len(), false);
        self.det_taken.clear();
        self.det_taken.resize(detections.len(), false);
        for &(_, t, d) in &self.pairs {
            if self.track_taken[t] || self.det_taken[d] {
                continue;
            }
            self.track_taken[t] = true;
            self.det_taken[d] = true;
            let track = &mut self.tracks[t];
            if track.missed > 0 {
                // Back after a gap: maybe the same person, maybe someone in their place.
                track.identity.contest();
            }
            track.detection = detections[d];
            track.frames += 1;
            track.missed = 0;
        }
        for (t, track) in self.tracks.iter_mut().enumerate() {
            if !self.track_taken[t] {
                track.missed += 1;
            }
        }
        let max_missed = self.config.max_missed;
        self.tracks.retain(|t| t.missed <= max_missed);
        for (d, det) in detections.iter().enumerate() {
            if self.det_taken[d] {
                continue;
            }
            self.tracks.push(Track {
                id: self.next_id,
                detection: *det,
                frames: 1,
                missed: 0,
                occluded: false,
                identity: TrackIdentity::new(&self.config.identity),
                detected_at: None,
                recognized_at: None,
                recognized_as: None,
                stranger_alerted: false,
            });
            self.next_id += 1;
        }
        self.mark_occlusions();
    }

    fn mark_occlusions(&mut self) {
        for track in &mut self.tracks {
            track.occluded = false;
        }
        let n = self.tracks.len();
        for a in 0..n {
            for b in a + 1..n {
                let (ta, tb) = (&self.tracks[a], &self.tracks[b]);
                if ta.missed > 0 || tb.missed > 0 {
                    continue;
                }
                if overlap(&ta.detection.bbox, &tb.detection.bbox) >= self.config.occlusion {
                    for i in [a, b] {
                        self.tracks[i].occluded = true;
                        self.tracks[i].identity.contest();
                    }
                }
            }
        }
    }

    /// Every track is to be looked at again before anything more is said of it: the gallery
    /// changed under their verdicts.
    pub fn contest_all(&mut self) {
        for track in &mut self.tracks {
            track.identity.contest();
        }
    }

    /// Tracks seen in the latest frame.
    pub fn visible(&mut self) -> impl Iterator<Item = &mut Track> {
        self.tracks.iter_mut().filter(|t| t.missed == 0)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }
}

fn area(r: &[f32; 4]) -> f32 {
    (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0)
}

fn intersection(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    w * h
}

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let inter = intersection(a, b);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

/// The share of the smaller box that the other covers: 1 when one face hides inside the other's
/// box, whatever their sizes.
fn overlap(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let smaller = area(a).min(area(b));
    if smaller <= 0.0 {
        0.0
    } else {
        intersection(a, b) / smaller
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::pipeline::identity::tests::view;
    use crate::pipeline::identity::Verdict;

    fn det(x: f32) -> Detection {
        frontal(x, 100.0, 100.0, 0.9)
    }

    /// A frontal face `side` px wide with its top-left corner at (x, y).
    pub(crate) fn frontal(x: f32, y: f32, side: f32, score: f32) -> Detection {
        let k = |fx: f32, fy: f32| [x + fx * side, y + fy * side];
        Detection {
            bbox: [x, y, x + side, y + side],
            score,
            keypoints: [
                k(0.3, 0.4),
                k(0.7, 0.4),
                k(0.5, 0.6),
                k(0.5, 0.8),
                k(0.1, 0.45),
                k(0.9, 0.45),
            ],
        }
    }

    #[test]
    fn a_face_moving_slowly_stays_one_track_and_a_new_one_starts_another() {
        let mut t = Tracker::new(TrackerConfig::default());
        for step in 0..10 {
            t.update(&[det(100.0 + step as f32 * 5.0)]);
        }
        assert_eq!(t.len(), 1);
        let first = t.visible().next().unwrap();
        assert_eq!((first.id, first.frames), (1, 10));
        t.update(&[det(150.0), det(400.0)]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.visible().map(|t| t.id).collect::<Vec<_>>(), [1, 2]);
    }

    #[test]
    fn a_track_survives_a_few_missed_frames_comes_back_contested_then_ends() {
        let config = TrackerConfig::default();
        let now = Instant::now();
        let mut t = Tracker::new(config);
        t.update(&[det(100.0)]);
        let q = Quality::of_detection(&det(100.0));
        t.visible().next().unwrap().identity.add(
            view(Some("Ana"), 0.8, 0.2),
            q.rank(),
            now,
            &config.identity,
        );
        for _ in 0..5 {
            t.update(&[]);
        }
        assert_eq!(t.len(), 1, "five missed frames are tolerated");
        t.update(&[det(102.0)]);
        let resumed = t.visible().next().unwrap();
        assert_eq!(resumed.frames, 2, "the same track resumes, not a new one");
        assert!(matches!(resumed.identity.verdict(), Verdict::Known(_)));
        assert!(!resumed.identity.confirmed(now), "not announced unchecked");
        assert_eq!(resumed.needs_look(&q, now, &config), Some(Look::Contested));
        for _ in 0..6 {
            t.update(&[]);
        }
        assert!(t.is_empty());
    }

    #[test]
    fn faces_that_cross_are_not_embedded_while_they_overlap_and_are_contested_after() {
        let config = TrackerConfig::default();
        let now = Instant::now();
        let mut t = Tracker::new(config);
        t.update(&[det(100.0), det(400.0)]);
        for track in t.visible() {
            let q = Quality::of_detection(&track.detection);
            track
                .identity
                .add(view(Some("Ana"), 0.8, 0.2), q.rank(), now, &config.identity);
        }
        t.update(&[det(100.0), det(160.0)]);
        // The second face jumped too far for IoU: a new track, overlapping the first.
        for track in t.visible() {
            let q = Quality::of_detection(&track.detection);
            assert_eq!(
                track.needs_look(&q, now, &config),
                None,
                "track {}",
                track.id
            );
        }
        t.update(&[det(100.0), det(400.0)]);
        let first = t.visible().next().unwrap();
        let q = Quality::of_detection(&first.detection);
        assert_eq!(first.needs_look(&q, now, &config), Some(Look::Contested));
    }

    #[test]
    fn the_best_overlap_wins_when_two_faces_could_continue_a_track() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(&[det(100.0)]);
        // 130 overlaps the track less than 110 does, and comes first.
        t.update(&[det(130.0), det(110.0)]);
        let ids: Vec<(u64, f32)> = t.visible().map(|t| (t.id, t.bbox()[0])).collect();
        assert_eq!(ids, [(1, 110.0), (2, 130.0)]);
    }

    #[test]
    fn iou_and_overlap_of_boxes() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
        assert!((iou(&a, &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(overlap(&a, &[2.0, 2.0, 4.0, 4.0]), 1.0);
    }
}
