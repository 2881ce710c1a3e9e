//! When a sighting becomes an event: the rules installers tune, FaceCV's defaults kept.
//!
//! * `face_detected` and `face_recognized`: once per track, and again only after an interval, so a
//!   person standing at a door is not a flood of events.
//! * `stranger_alert`: a face unknown over several frames (one bad frame is not a stranger), at most
//!   once per cooldown per camera (10 min) and at most `hourly_cap` an hour (20).
//! * `attendance_recorded`: a recognised person above `min_confidence` (0.8), once per duplicate
//!   window (5 min), with the configured action.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::identity::{Identity, Verdict};
use super::tracker::{Track, Tracker};
use crate::config::check::ConfigError;
use crate::events::{
    AlertLevel, AttendanceAction, DetectedFace, EventData, RecognizedFace, TrackNote,
};

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Seconds before a face still in view is announced again.
    #[schema(minimum = 0, maximum = 86400, example = 60)]
    pub detected_interval: f64,
    #[schema(minimum = 0, maximum = 86400, example = 60)]
    pub recognized_interval: f64,
    /// Frames a face must be seen, and judged unknown, before it is a stranger.
    #[schema(minimum = 1, maximum = 1000, example = 5)]
    pub stranger_min_frames: u32,
    #[schema(minimum = 0, maximum = 86400, example = 600)]
    pub stranger_cooldown: f64,
    #[schema(example = 20)]
    pub stranger_hourly_cap: u32,
    pub attendance: bool,
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.8)]
    pub attendance_min_confidence: f32,
    #[schema(minimum = 0, maximum = 86400, example = 300)]
    pub attendance_window: f64,
    pub attendance_action: AttendanceAction,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            detected_interval: 60.0,
            recognized_interval: 60.0,
            stranger_min_frames: 5,
            stranger_cooldown: 600.0,
            stranger_hourly_cap: 20,
            attendance: true,
            attendance_min_confidence: 0.8,
            attendance_window: 300.0,
            attendance_action: AttendanceAction::CheckIn,
        }
    }
}

impl PolicyConfig {
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        let secs = [
            ("detected_interval", self.detected_interval),
            ("recognized_interval", self.recognized_interval),
            ("stranger_cooldown", self.stranger_cooldown),
            ("attendance_window", self.attendance_window),
        ];
        for (key, v) in secs {
            if !(0.0..=86_400.0).contains(&v) {
                return Err(ConfigError::invalid(
                    format!("{prefix}.{key}"),
                    format!("must be between 0 and 86400 s, got {v}"),
                ));
            }
        }
        if !(1..=1000).contains(&self.stranger_min_frames) {
            return Err(ConfigError::invalid(
                format!("{prefix}.stranger_min_frames"),
                "must be between 1 and 1000",
            ));
        }
        if !(0.0..=1.0).contains(&self.attendance_min_confidence) {
            return Err(ConfigError::invalid(
                format!("{prefix}.attendance_min_confidence"),
                "must be between 0 and 1",
            ));
        }
        Ok(())
    }
}

/// An event the policy decided on, with the tracks it speaks of (the event's `metadata.tracks`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sighting {
    pub event: EventData,
    /// One per face of the event, in the event's order.
    pub tracks: Vec<TrackNote>,
}

/// What an event says of `track`.
fn note(track: &Track) -> TrackNote {
    TrackNote {
        track_id: track.id,
        views: track.identity.views(),
        frames: track.frames,
    }
}

/// The policy of one camera: its cooldowns and windows are its own.
pub struct Policy {
    config: PolicyConfig,
    last_stranger: Option<Instant>,
    strangers_this_hour: VecDeque<Instant>,
    last_attendance: HashMap<String, Instant>,
}

fn due(last: Option<Instant>, interval: f64, now: Instant) -> bool {
    last.is_none_or(|t| now.duration_since(t) >= Duration::from_secs_f64(interval))
}

fn bbox(t: &Track) -> [i32; 4] {
    t.bbox().map(|v| v.round() as i32)
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Self {
        Policy {
            config,
            last_stranger: None,
            strangers_this_hour: VecDeque::new(),
            last_attendance: HashMap::new(),
        }
    }

    /// Looks at the tracks visible in the latest frame and appends the events they call for.
    /// Who a face is, is announced only on a frame whose view confirmed it (`confirmed`).
    pub fn on_frame(&mut self, tracker: &mut Tracker, now: Instant, out: &mut Vec<Sighting>) {
        let mut detected = Vec::new();
        let mut detected_tracks = Vec::new();
        let mut recognized = Vec::new();
        let mut recognized_tracks = Vec::new();
        // Said after the recognitions that make them, as a receiver reads them.
        let mut attendance = Vec::new();
        for track in tracker.visible() {
            if due(track.detected_at, self.config.detected_interval, now) {
                track.detected_at = Some(now);
                detected.push(DetectedFace {
                    bbox: bbox(track),
                    confidence: track.detection.score,
                });
                detected_tracks.push(note(track));
            }
            // Who a face is, is said only on a frame whose view of it confirmed it. Tracks are
            // looked at every few seconds (and strangers on each of their first frames), so a
            // repeat waits at most one re-check.
            if !track.identity.confirmed(now) {
                continue;
            }
            match track.identity.verdict().clone() {
                Verdict::Known(id) => {
                    let someone_else =
                        track.recognized_as.as_deref() != Some(id.person_id.as_str());
                    if someone_else
                        || due(track.recognized_at, self.config.recognized_interval, now)
                    {
                        track.recognized_at = Some(now);
                        track.recognized_as = Some(id.person_id.clone());
                        recognized.push(RecognizedFace {
                            name: id.name.clone(),
                            confidence: id.similarity,
                            bbox: bbox(track),
                            face_id: Some(id.face_id.clone()),
                            metadata: id.metadata.clone(),
                        });
                        recognized_tracks.push(note(track));
                    }
                    self.attendance(&id, note(track), now, &mut attendance);
                }
                Verdict::Unknown
                    if track.frames >= self.config.stranger_min_frames
                        && !track.stranger_alerted
                        && self.stranger_allowed(now) =>
                {
                    track.stranger_alerted = true;
                    self.last_stranger = Some(now);
                    self.strangers_this_hour.push_back(now);
                    out.push(Sighting {
                        event: EventData::StrangerAlert {
                            alert_level: if track.frames >= 30 {
                                AlertLevel::High
                            } else {
                                AlertLevel::Medium
                            },
                            confidence: track.identity.similarity(),
                            bbox: bbox(track),
                            appearance_count: track.frames,
                            image_path: None,
                            snapshot_url: None,
                        },
                        tracks: vec![note(track)],
                    });
                }
                _ => {}
            }
        }
        if !detected.is_empty() {
            out.push(Sighting {
                event: EventData::FaceDetected {
                    face_count: detected.len(),
                    faces: detected,
                },
                tracks: detected_tracks,
            });
        }
        if !recognized.is_empty() {
            out.push(Sighting {
                event: EventData::FaceRecognized {
                    recognized_count: recognized.len(),
                    recognized_faces: recognized,
                },
                tracks: recognized_tracks,
            });
        }
        out.append(&mut attendance);
    }

    fn stranger_allowed(&mut self, now: Instant) -> bool {
        let hour = Duration::from_secs(3600);
        while self
            .strangers_this_hour
            .front()
            .is_some_and(|t| now.duration_since(*t) >= hour)
        {
            self.strangers_this_hour.pop_front();
        }
        due(self.last_stranger, self.config.stranger_cooldown, now)
            && (self.strangers_this_hour.len() as u32) < self.config.stranger_hourly_cap
    }

    fn attendance(
        &mut self,
        id: &Identity,
        track: TrackNote,
        now: Instant,
        out: &mut Vec<Sighting>,
    ) {
        if !self.config.attendance || id.similarity < self.config.attendance_min_confidence {
            return;
        }
        let last = self.last_attendance.get(&id.person_id).copied();
        if due(last, self.config.attendance_window, now) {
            self.last_attendance.insert(id.person_id.clone(), now);
            out.push(Sighting {
                event: EventData::AttendanceRecorded {
                    face_id: id.person_id.clone(),
                    name: id.name.clone(),
                    action: self.config.attendance_action,
                    confidence: id.similarity,
                    metadata: id.metadata.clone(),
                },
                tracks: vec![track],
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::identity::tests::person;
    use super::super::identity::View;
    use super::super::tracker::tests::frontal;
    use super::super::tracker::TrackerConfig;
    use super::*;
    use crate::events::EventType;
    use crate::vision::quality::Quality;
    use crate::vision::Detection;

    fn known(name: &str, sim: f32) -> Option<Identity> {
        Some(person(name, sim))
    }

    /// One face at `x`, and what the gallery would say of it if it were embedded (threshold
    /// 0.55, nobody else above 0.3).
    fn frame(x: f32, identity: Option<Identity>) -> Option<(Detection, View)> {
        let similarity = identity.as_ref().map_or(0.31, |i| i.similarity);
        let det = frontal(x, 50.0, 120.0, 0.93);
        Some((det, View::judge(identity, similarity, 0.3, 0.55, 0.1)))
    }

    /// Runs `frames` frames 100 ms apart as the runner does (a track is embedded only when it
    /// needs a look), returning the events emitted.
    fn run(
        policy: &mut Policy,
        tracker: &mut Tracker,
        start: Instant,
        frames: u32,
        obs: &dyn Fn(u32) -> Option<(Detection, View)>,
    ) -> Vec<EventData> {
        let mut out = Vec::new();
        let config = *tracker.config();
        for i in 0..frames {
            let now = start + Duration::from_millis(100 * i as u64);
            let seen = obs(i);
            tracker.update(
                seen.as_ref()
                    .map(|(d, _)| std::slice::from_ref(d))
                    .unwrap_or(&[]),
            );
            for track in tracker.visible() {
                let q = Quality::of_detection(&track.detection);
                if track.needs_look(&q, now, &config).is_some() {
                    let view = seen.as_ref().expect("a visible track was seen").1.clone();
                    track.identity.add(view, q.rank(), now, &config.identity);
                }
            }
            policy.on_frame(tracker, now, &mut out);
        }
        out.into_iter().map(|s| s.event).collect()
    }

    fn types(events: &[EventData]) -> Vec<EventType> {
        events.iter().map(EventData::event_type).collect()
    }

    #[test]
    fn a_known_person_standing_in_view_is_announced_once_per_interval() {
        let mut p = Policy::new(PolicyConfig::default());
        let mut t = Tracker::new(TrackerConfig::default());
        let start = Instant::now();
        let events = run(&mut p, &mut t, start, 50, &|_| {
            frame(100.0, known("Ana", 0.9))
        });
        assert_eq!(
            types(&events),
            [
                EventType::FaceDetected,
                EventType::FaceRecognized,
                EventType::AttendanceRecorded
            ]
        );
        match &events[1] {
            EventData::FaceRecognized {
                recognized_faces,
                recognized_count,
            } => {
                assert_eq!(*recognized_count, 1);
                assert_eq!(recognized_faces[0].name, "Ana");
                assert_eq!(recognized_faces[0].bbox, [100, 50, 220, 170]);
            }
            e => panic!("{e:?}"),
        }
        // After the interval, again; attendance waits for its own window.
        let later = start + Duration::from_secs(61);
        let events = run(&mut p, &mut t, later, 3, &|_| {
            frame(100.0, known("Ana", 0.9))
        });
        assert_eq!(
            types(&events),
            [EventType::FaceDetected, EventType::FaceRecognized]
        );
    }

    #[test]
    fn attendance_needs_its_confidence_and_is_not_repeated_within_the_window() {
        let mut p = Policy::new(PolicyConfig::default());
        let mut t = Tracker::new(TrackerConfig::default());
        let start = Instant::now();
        let low = run(&mut p, &mut t, start, 10, &|_| {
            frame(100.0, known("Bo", 0.7))
        });
        assert!(!types(&low).contains(&EventType::AttendanceRecorded));
        let mut t = Tracker::new(TrackerConfig::default());
        let high = run(&mut p, &mut t, start, 10, &|_| {
            frame(100.0, known("Bo", 0.85))
        });
        assert_eq!(
            types(&high)
                .iter()
                .filter(|e| **e == EventType::AttendanceRecorded)
                .count(),
            1
        );
        // A new track of the same person within 5 minutes: no second attendance.
        let mut t = Tracker::new(TrackerConfig::default());
        let again = run(
            &mut p,
            &mut t,
            start + Duration::from_secs(120),
            10,
            &|_| frame(300.0, known("Bo", 0.9)),
        );
        assert!(!types(&again).contains(&EventType::AttendanceRecorded));
        let mut t = Tracker::new(TrackerConfig::default());
        let after = run(
            &mut p,
            &mut t,
            start + Duration::from_secs(301),
            10,
            &|_| frame(300.0, known("Bo", 0.9)),
        );
        assert!(types(&after).contains(&EventType::AttendanceRecorded));
    }

    #[test]
    fn a_stranger_needs_several_unknown_frames_and_respects_cooldown_and_cap() {
        let mut p = Policy::new(PolicyConfig::default());
        let mut t = Tracker::new(TrackerConfig::default());
        let start = Instant::now();
        let first = run(&mut p, &mut t, start, 4, &|_| frame(100.0, None));
        assert!(
            !types(&first).contains(&EventType::StrangerAlert),
            "four frames are not enough"
        );
        let fifth = run(
            &mut p,
            &mut t,
            start + Duration::from_millis(400),
            1,
            &|_| frame(100.0, None),
        );
        assert_eq!(types(&fifth), [EventType::StrangerAlert]);
        match &fifth[0] {
            // The face's best similarity in the gallery, as SSE and `/recognize` report an
            // Unknown face; not the detector's score (0.93 here).
            EventData::StrangerAlert { confidence, .. } => assert_eq!(*confidence, 0.31),
            e => panic!("{e:?}"),
        }
        // Another stranger two minutes later: within the 10-minute cooldown, no alert.
        let mut t = Tracker::new(TrackerConfig::default());
        let soon = run(
            &mut p,
            &mut t,
            start + Duration::from_secs(120),
            10,
            &|_| frame(400.0, None),
        );
        assert!(!types(&soon).contains(&EventType::StrangerAlert));

        // With no cooldown the hourly cap bounds the alerts.
        let config = PolicyConfig {
            stranger_cooldown: 0.0,
            stranger_hourly_cap: 3,
            ..PolicyConfig::default()
        };
        let mut p = Policy::new(config);
        let mut alerts = 0;
        for k in 0..6u64 {
            let mut t = Tracker::new(TrackerConfig::default());
            let ev = run(
                &mut p,
                &mut t,
                start + Duration::from_secs(60 * k),
                6,
                &|_| frame(100.0, None),
            );
            alerts += types(&ev)
                .iter()
                .filter(|e| **e == EventType::StrangerAlert)
                .count();
        }
        assert_eq!(alerts, 3);
    }

    #[test]
    fn another_person_in_the_same_spot_is_announced_at_once() {
        let mut p = Policy::new(PolicyConfig::default());
        let mut t = Tracker::new(TrackerConfig::default());
        let start = Instant::now();
        // Ana leaves and Bo steps into her place a frame later: the track comes back contested
        // and is looked at again before anything is said.
        let events = run(&mut p, &mut t, start, 20, &|i| match i {
            10 => None,
            _ => frame(100.0, known(if i < 10 { "Ana" } else { "Bo" }, 0.9)),
        });
        let names: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                EventData::FaceRecognized {
                    recognized_faces, ..
                } => Some(recognized_faces[0].name.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(names, ["Ana", "Bo"]);
        let photos: Vec<Option<String>> = events
            .iter()
            .filter_map(|e| match e {
                EventData::FaceRecognized {
                    recognized_faces, ..
                } => Some(recognized_faces[0].face_id.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            photos,
            [Some("face_Ana".to_owned()), Some("face_Bo".to_owned())],
            "a recognition names the enrolled photo that matched, not the person"
        );
    }

    #[test]
    fn a_swap_the_tracker_cannot_see_is_put_right_at_the_recheck_and_never_repeated_wrongly() {
        let config = PolicyConfig {
            recognized_interval: 1.0,
            ..PolicyConfig::default()
        };
        let mut p = Policy::new(config);
        let mut t = Tracker::new(TrackerConfig::default());
        let start = Instant::now();
        // Bo takes Ana's exact place at frame 10, with no frame between: only a look can tell.
        let recheck_frames = TrackerConfig::default().identity.recheck.as_millis() as u32 / 100;
        let events = run(&mut p, &mut t, start, recheck_frames + 2, &|i| {
            frame(100.0, known(if i < 10 { "Ana" } else { "Bo" }, 0.9))
        });
        let names: Vec<(String, usize)> = events
            .iter()
            .enumerate()
            .filter_map(|(n, e)| match e {
                EventData::FaceRecognized {
                    recognized_faces, ..
                } => Some((recognized_faces[0].name.clone(), n)),
                _ => None,
            })
            .collect();
        // Ana once, at the start. Her 1 s repeat comes from the recheck of a track not looked
        // at since: the repeat waits for its look, which finds Bo.
        assert_eq!(
            names.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["Ana", "Bo"],
            "{events:?}"
        );
    }

    #[test]
    fn a_single_unknown_frame_does_not_make_a_known_person_a_stranger() {
        let mut p = Policy::new(PolicyConfig::default());
        let mut t = Tracker::new(TrackerConfig::default());
        let start = Instant::now();
        let events = run(&mut p, &mut t, start, 30, &|i| {
            frame(100.0, if i % 4 == 3 { None } else { known("Ana", 0.9) })
        });
        assert!(!types(&events).contains(&EventType::StrangerAlert));
        assert!(types(&events).contains(&EventType::FaceRecognized));
    }
}
