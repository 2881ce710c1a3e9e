//! Faces followed across frames, so that one person walking past is one sighting, not thirty.
//!
//! Each frame's faces are matched to existing tracks greedily by IoU (faces move little between
//! frames at camera rates). A track's identity is a vote over its last few frames: one frame with a
//! bad angle neither names a stranger nor turns a known face into one.

use std::collections::VecDeque;
use std::time::Instant;

use serde_json::{Map, Value};

/// What the gallery said of one face in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// Who: the votes of a track count by it.
    pub person_id: String,
    pub name: String,
    /// Which enrolled photo matched (`faces.id`), so that a wrong recognition can be traced to
    /// the photo that caused it.
    pub face_id: String,
    pub similarity: f32,
    pub metadata: Map<String, Value>,
}

/// One face in one frame, after detection and matching.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// `[x1, y1, x2, y2]` in frame pixels.
    pub bbox: [f32; 4],
    pub score: f32,
    /// The best similarity in the gallery, above the threshold or not (0 with an empty gallery
    /// or no embedding): what an Unknown face reports as its confidence, as `/recognize` does.
    pub similarity: f32,
    /// `None` when no enrolled person was above the threshold.
    pub identity: Option<Identity>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// The least IoU for a face to continue a track.
    pub min_iou: f32,
    /// Frames a track survives without a matching face (a blink, a passing occlusion).
    pub max_missed: u32,
    /// Frames of identity history a track votes over.
    pub window: usize,
    /// Votes a name needs in the window before the track takes it.
    pub min_votes: usize,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            min_iou: 0.3,
            max_missed: 5,
            window: 5,
            min_votes: 3,
        }
    }
}

/// The smoothed verdict on a track.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Not enough frames yet to say.
    Undecided,
    Known(Identity),
    /// Unknown in at least `min_votes` of the last `window` frames.
    Unknown,
}

#[derive(Debug, Clone)]
pub struct Track {
    pub bbox: [f32; 4],
    pub score: f32,
    /// The latest frame's best similarity in the gallery (see [`Observation::similarity`]).
    pub similarity: f32,
    pub frames: u32,
    missed: u32,
    /// The identities of the last `window` frames this track was seen in.
    history: VecDeque<Option<Identity>>,
    /// Set by the policy: when this track was last announced, per event kind.
    pub detected_at: Option<Instant>,
    pub recognized_at: Option<Instant>,
    /// Who the track was last announced as: a different verdict on the same track (one person
    /// stepping out of the spot where another stood) is announced at once.
    pub recognized_as: Option<String>,
    pub stranger_alerted: bool,
}

impl Track {
    /// The identity most of the recent frames agree on, with its best similarity among them.
    pub fn verdict(&self, config: &TrackerConfig) -> Verdict {
        let unknown = self.history.iter().filter(|i| i.is_none()).count();
        let mut best: Option<(usize, &Identity)> = None;
        for id in self.history.iter().flatten() {
            let votes = self
                .history
                .iter()
                .flatten()
                .filter(|o| o.person_id == id.person_id)
                .count();
            match best {
                Some((v, b)) if v > votes || (v == votes && b.similarity >= id.similarity) => {}
                _ => best = Some((votes, id)),
            }
        }
        match best {
            Some((votes, id)) if votes >= config.min_votes => Verdict::Known(id.clone()),
            _ if unknown >= config.min_votes => Verdict::Unknown,
            _ => Verdict::Undecided,
        }
    }
}

pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    /// Scratch: which observations found a track this frame (kept to avoid a per-frame allocation).
    taken: Vec<bool>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Tracker {
            config,
            tracks: Vec::with_capacity(16),
            taken: Vec::with_capacity(16),
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// Folds one frame's faces into the tracks and drops tracks missed for too long.
    pub fn update(&mut self, observations: &[Observation]) {
        self.taken.clear();
        self.taken.resize(observations.len(), false);
        for track in &mut self.tracks {
            let best = observations
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.taken[*i])
                .map(|(i, o)| (i, iou(&track.bbox, &o.bbox)))
                .filter(|(_, v)| *v >= self.config.min_iou)
                .max_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((i, _)) => {
                    self.taken[i] = true;
                    let o = &observations[i];
                    track.bbox = o.bbox;
                    track.score = o.score;
                    track.similarity = o.similarity;
                    track.frames += 1;
                    track.missed = 0;
                    if track.history.len() == self.config.window {
                        track.history.pop_front();
                    }
                    track.history.push_back(o.identity.clone());
                }
                None => track.missed += 1,
            }
        }
        let max_missed = self.config.max_missed;
        self.tracks.retain(|t| t.missed <= max_missed);
        for (i, o) in observations.iter().enumerate() {
            if self.taken[i] {
                continue;
            }
            let mut history = VecDeque::with_capacity(self.config.window);
            history.push_back(o.identity.clone());
            self.tracks.push(Track {
                bbox: o.bbox,
                score: o.score,
                similarity: o.similarity,
                frames: 1,
                missed: 0,
                history,
                detected_at: None,
                recognized_at: None,
                recognized_as: None,
                stranger_alerted: false,
            });
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

/// Intersection over union of two `[x1, y1, x2, y2]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 {
        0.0
    } else {
        inter / union
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn person(name: &str, similarity: f32) -> Option<Identity> {
        Some(Identity {
            face_id: format!("face_{name}"),
            person_id: format!("id_{name}"),
            name: name.into(),
            similarity,
            metadata: Map::new(),
        })
    }

    fn obs(x: f32, identity: Option<Identity>) -> Observation {
        Observation {
            bbox: [x, 100.0, x + 100.0, 200.0],
            score: 0.9,
            similarity: identity.as_ref().map_or(0.2, |i| i.similarity),
            identity,
        }
    }

    #[test]
    fn a_face_moving_slowly_stays_one_track_and_a_new_one_starts_another() {
        let mut t = Tracker::new(TrackerConfig::default());
        for step in 0..10 {
            t.update(&[obs(100.0 + step as f32 * 5.0, None)]);
        }
        assert_eq!(t.len(), 1);
        assert_eq!(t.visible().next().unwrap().frames, 10);
        t.update(&[obs(150.0, None), obs(400.0, None)]);
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_track_survives_a_few_missed_frames_then_ends() {
        let mut t = Tracker::new(TrackerConfig::default());
        t.update(&[obs(100.0, None)]);
        for _ in 0..5 {
            t.update(&[]);
        }
        assert_eq!(t.len(), 1, "five missed frames are tolerated");
        t.update(&[obs(102.0, None)]);
        let resumed = t.visible().next().unwrap();
        assert_eq!(resumed.frames, 2, "the same track resumes, not a new one");
        for _ in 0..6 {
            t.update(&[]);
        }
        assert!(t.is_empty());
    }

    #[test]
    fn identity_is_a_vote_over_recent_frames() {
        let config = TrackerConfig::default();
        let mut t = Tracker::new(config);
        t.update(&[obs(100.0, person("Ana", 0.7))]);
        t.update(&[obs(100.0, None)]);
        assert_eq!(
            t.visible().next().unwrap().verdict(&config),
            Verdict::Undecided
        );
        t.update(&[obs(100.0, person("Ana", 0.8))]);
        t.update(&[obs(100.0, person("Bo", 0.9))]);
        t.update(&[obs(100.0, person("Ana", 0.75))]);
        match t.visible().next().unwrap().verdict(&config) {
            Verdict::Known(id) => {
                assert_eq!(id.name, "Ana");
                assert_eq!(id.similarity, 0.8, "the best similarity among the votes");
            }
            v => panic!("{v:?}"),
        }
        let mut u = Tracker::new(config);
        for _ in 0..3 {
            u.update(&[obs(100.0, None)]);
        }
        assert_eq!(
            u.visible().next().unwrap().verdict(&config),
            Verdict::Unknown
        );
    }

    #[test]
    fn iou_of_boxes() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
        assert!((iou(&a, &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
    }
}
