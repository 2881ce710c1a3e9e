//! Realistic sample events, for `POST /api/v1/events/trigger` (like Stripe's `trigger`): integrators
//! test their receivers with payloads shaped exactly like the ones cameras will produce. They are
//! marked `metadata.source = "trigger"` so that a receiver can tell them from real sightings.

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::events::{
    AlertLevel, AttendanceAction, DetectedFace, EventData, EventMetadata, EventType, NewEvent,
    RecognizedFace, StopReason,
};

const PEOPLE: &[(&str, &str, &str)] = &[
    ("John Doe", "Engineering", "E1001"),
    ("Maria Garcia", "Operations", "E1002"),
    ("Wei Chen", "Research", "E1003"),
    ("Amara Okafor", "Security", "E1004"),
];

fn person_metadata(department: &str, employee_id: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("department".into(), json!(department));
    m.insert("employee_id".into(), json!(employee_id));
    m
}

fn random_bbox(rng: &mut impl Rng) -> [i32; 4] {
    let x = rng.gen_range(40..440);
    let y = rng.gen_range(30..260);
    let side = rng.gen_range(80..180);
    [x, y, x + side, y + side]
}

fn face_id(employee_id: &str) -> String {
    format!("face_{}", employee_id.to_lowercase())
}

/// One sample event of the given type for `camera_id`.
pub fn sample(event_type: EventType, camera_id: &str) -> NewEvent {
    let mut rng = rand::thread_rng();
    let &(name, department, employee_id) = PEOPLE.choose(&mut rng).expect("PEOPLE is not empty");
    let confidence = (rng.gen_range(0.82f32..0.99) * 1000.0).round() / 1000.0;
    let data = match event_type {
        EventType::FaceDetected => {
            let n = rng.gen_range(1..=3);
            let faces: Vec<DetectedFace> = (0..n)
                .map(|_| DetectedFace {
                    bbox: random_bbox(&mut rng),
                    confidence,
                })
                .collect();
            EventData::FaceDetected {
                face_count: faces.len(),
                faces,
            }
        }
        EventType::FaceRecognized => EventData::FaceRecognized {
            recognized_faces: vec![RecognizedFace {
                name: name.into(),
                confidence,
                bbox: random_bbox(&mut rng),
                face_id: Some(face_id(employee_id)),
                metadata: person_metadata(department, employee_id),
            }],
            recognized_count: 1,
        },
        EventType::StrangerAlert => EventData::StrangerAlert {
            alert_level: AlertLevel::Medium,
            confidence: rng.gen_range(0.2f32..0.4),
            bbox: random_bbox(&mut rng),
            appearance_count: rng.gen_range(3..12),
            image_path: None,
            snapshot_url: None,
        },
        EventType::AttendanceRecorded => EventData::AttendanceRecorded {
            face_id: face_id(employee_id),
            name: name.into(),
            action: AttendanceAction::CheckIn,
            confidence,
            metadata: person_metadata(department, employee_id),
        },
        EventType::StreamStarted => EventData::StreamStarted {
            source: "0".into(),
            fps: 10.0,
            restarts: None,
        },
        EventType::StreamStopped => EventData::StreamStopped {
            source: "0".into(),
            reason: StopReason::Requested,
            frames_processed: rng.gen_range(100..100_000),
            detail: None,
            restarts: None,
        },
    };
    let now = time::OffsetDateTime::now_utc();
    NewEvent {
        id: None,
        timestamp: now,
        camera_id: camera_id.into(),
        data,
        metadata: EventMetadata {
            source: "trigger".into(),
            threshold: Some(0.6),
            frame_timestamp: Some(crate::events::format_timestamp(now)),
            ..Default::default()
        },
    }
}
