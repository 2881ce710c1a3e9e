//! The six event types and FaceCV's JSON shapes.
//!
//! FaceCV's receivers parse `{"event_type","timestamp","camera_id","data","metadata"}` objects inside a
//! `{"webhook_id","timestamp","events":[...]}` envelope. We keep those names to the letter and add one
//! field, `id`, so that a receiver can deduplicate what at-least-once delivery may send twice.
//!
//! An event is serialised once, when it is recorded; the outbox stores that text and every sink sends
//! it as it is. The envelope is then assembled from the stored texts without parsing them again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use utoipa::ToSchema;

/// The name of one of the six event kinds, as FaceCV spells it on the wire.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    FaceDetected,
    FaceRecognized,
    StrangerAlert,
    AttendanceRecorded,
    StreamStarted,
    StreamStopped,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::FaceDetected,
        EventType::FaceRecognized,
        EventType::StrangerAlert,
        EventType::AttendanceRecorded,
        EventType::StreamStarted,
        EventType::StreamStopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::FaceDetected => "face_detected",
            EventType::FaceRecognized => "face_recognized",
            EventType::StrangerAlert => "stranger_alert",
            EventType::AttendanceRecorded => "attendance_recorded",
            EventType::StreamStarted => "stream_started",
            EventType::StreamStopped => "stream_stopped",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the six event type names.
#[derive(Debug, thiserror::Error)]
#[error("unknown event type {0:?}; expected one of face_detected, face_recognized, stranger_alert, attendance_recorded, stream_started, stream_stopped")]
pub struct UnknownEventType(pub String);

impl FromStr for EventType {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EventType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

/// A face box in pixels of the frame, `[x1, y1, x2, y2]`, as FaceCV sends it.
pub type BBox = [i32; 4];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DetectedFace {
    #[schema(value_type = [i32], min_items = 4, max_items = 4, example = json!([100, 80, 220, 230]))]
    pub bbox: BBox,
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.93)]
    #[serde(serialize_with = "crate::score::ser_confidence")]
    pub confidence: f32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct RecognizedFace {
    /// The person's name, or `Unknown`.
    #[schema(example = "John Doe")]
    pub name: String,
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.87)]
    #[serde(serialize_with = "crate::score::ser_confidence")]
    pub confidence: f32,
    #[schema(value_type = [i32], min_items = 4, max_items = 4, example = json!([100, 80, 220, 230]))]
    pub bbox: BBox,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub face_id: Option<String>,
    /// The person's enrolment metadata (department, employee_id, ...).
    #[serde(default)]
    pub metadata: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AlertLevel {
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttendanceAction {
    CheckIn,
    CheckOut,
    BreakIn,
    BreakOut,
}

/// Why a stream ended: receivers treat a lost source differently from an operator's stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    Requested,
    SourceLost,
    /// A file source reached its end.
    Ended,
    Error,
    Shutdown,
}

impl StopReason {
    /// The name `stream_stopped` carries under `reason`, and the camera status shows.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Requested => "requested",
            StopReason::SourceLost => "source_lost",
            StopReason::Ended => "ended",
            StopReason::Error => "error",
            StopReason::Shutdown => "shutdown",
        }
    }
}

/// What happened, with the payload FaceCV put under `data` for each kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "event_type", content = "data", rename_all = "snake_case")]
pub enum EventData {
    FaceDetected {
        faces: Vec<DetectedFace>,
        face_count: usize,
    },
    FaceRecognized {
        recognized_faces: Vec<RecognizedFace>,
        recognized_count: usize,
    },
    StrangerAlert {
        alert_level: AlertLevel,
        /// The face's best similarity in the gallery (under the threshold), as SSE and
        /// `/recognize` give an Unknown face: 0 with an empty gallery.
        #[serde(serialize_with = "crate::score::ser_confidence")]
        #[schema(minimum = 0.0, maximum = 1.0)]
        confidence: f32,
        #[schema(value_type = [i32], min_items = 4, max_items = 4)]
        bbox: BBox,
        appearance_count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_path: Option<String>,
        /// Ours: a signed, expiring link to the snapshot on `api.public_url`, for receivers that
        /// do not hold the API token (only with `api.public_url` set).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        snapshot_url: Option<String>,
    },
    AttendanceRecorded {
        face_id: String,
        name: String,
        action: AttendanceAction,
        #[schema(minimum = 0.0, maximum = 1.0)]
        #[serde(serialize_with = "crate::score::ser_confidence")]
        confidence: f32,
        #[serde(default)]
        metadata: Map<String, Value>,
    },
    StreamStarted {
        source: String,
        #[serde(serialize_with = "crate::score::ser_as_written")]
        fps: f32,
        /// Ours: after a loss, how many times the source came back since the previous recorded
        /// `stream_started`/`stream_stopped`, this return included; more than 1 when a flapping
        /// source's returns were coalesced (`pipeline::flap`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restarts: Option<u64>,
    },
    StreamStopped {
        source: String,
        reason: StopReason,
        frames_processed: u64,
        /// What went wrong, for `source_lost` and `error`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<String>,
        /// Ours: returns of a flapping source not told in a `stream_started` before the stream
        /// ended (`pipeline::flap`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restarts: Option<u64>,
    },
}

impl EventData {
    pub fn event_type(&self) -> EventType {
        match self {
            EventData::FaceDetected { .. } => EventType::FaceDetected,
            EventData::FaceRecognized { .. } => EventType::FaceRecognized,
            EventData::StrangerAlert { .. } => EventType::StrangerAlert,
            EventData::AttendanceRecorded { .. } => EventType::AttendanceRecorded,
            EventData::StreamStarted { .. } => EventType::StreamStarted,
            EventData::StreamStopped { .. } => EventType::StreamStopped,
        }
    }
}

/// What an event says of one face it names: receivers can follow one person from `face_detected`
/// to `face_recognized`, and see how many views decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TrackNote {
    /// The face's track: the same person followed from frame to frame in this camera run
    /// (numbered from 1).
    #[schema(example = 7)]
    pub track_id: u64,
    /// Embedded views that decided who the face is and agreed since (0 for a face only detected).
    #[schema(example = 1)]
    pub views: u32,
    /// Frames the face had been seen in when the event was made (1: the frame it appeared).
    #[schema(example = 1)]
    pub frames: u32,
}

/// FaceCV's event `metadata`: where the event came from and under which threshold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, ToSchema)]
pub struct EventMetadata {
    #[schema(example = "insightface_stream")]
    pub source: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        serialize_with = "crate::score::ser_opt_as_written"
    )]
    #[schema(minimum = 0.0, maximum = 1.0, example = 0.55)]
    pub threshold: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_timestamp: Option<String>,
    /// The frame's number since the camera started (events of a camera's frames only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = 412)]
    pub frame_seq: Option<u64>,
    /// One entry per face of the event, in the event's order (`faces`, `recognized_faces`, or the
    /// one face of a `stranger_alert` or `attendance_recorded`); absent on other events.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tracks: Vec<TrackNote>,
    /// Anything else a producer wants receivers to see; flattened so FaceCV's three keys stay on top.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// An event as producers hand it to the outbox, before it has an id and a sequence number.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The id to record it under, when the producer needed it first (a snapshot is named by
    /// it); `None` lets the outbox make one.
    pub id: Option<EventId>,
    pub timestamp: OffsetDateTime,
    pub camera_id: String,
    pub data: EventData,
    pub metadata: EventMetadata,
}

impl NewEvent {
    pub fn new(camera_id: impl Into<String>, data: EventData, metadata: EventMetadata) -> Self {
        NewEvent {
            id: None,
            timestamp: OffsetDateTime::now_utc(),
            camera_id: camera_id.into(),
            data,
            metadata,
        }
    }

    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    /// Serialises the event as receivers will see it, under the given stable id.
    pub fn to_json(&self, id: &EventId) -> String {
        serde_json::to_string(&Event {
            id: &id.0,
            data: &self.data,
            timestamp: format_timestamp(self.timestamp),
            camera_id: &self.camera_id,
            metadata: &self.metadata,
        })
        .expect("events serialise: all keys are strings and all floats are finite")
    }
}

/// One recorded event as every reader gets it (webhooks, MQTT, `GET /api/v1/events`): FaceCV's
/// five fields and our `id`. Written once, when the event is recorded; its type is also the
/// OpenAPI document's description of that text.
#[derive(Serialize, ToSchema)]
pub struct Event<'a> {
    /// The receiver's deduplication key (`evt_` and 32 hex digits).
    #[schema(
        pattern = "^evt_[0-9a-f]{32}$",
        example = "evt_0193a1b2c3d4e5f60718293a4b5c6d7e"
    )]
    id: &'a str,
    #[serde(flatten)]
    data: &'a EventData,
    /// ISO 8601, UTC, with milliseconds.
    #[schema(example = "2025-05-26T10:30:45.123Z")]
    timestamp: String,
    #[schema(example = "entrance_camera")]
    camera_id: &'a str,
    metadata: &'a EventMetadata,
}

/// The stable id of a recorded event (`evt_` + a time-ordered UUIDv7), the receiver's deduplication key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub String);

impl EventId {
    pub fn generate() -> Self {
        EventId(format!("evt_{}", uuid::Uuid::now_v7().simple()))
    }

    /// An id as [`EventId::generate`] makes them (`evt_` and 32 lowercase hex digits), or
    /// `None`: an id from a request names files, so nothing else passes.
    pub fn parse(s: &str) -> Option<EventId> {
        let hex = s.strip_prefix("evt_")?;
        (hex.len() == 32 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then(|| EventId(s.to_owned()))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The outbox's sequence number: the total order in which events were recorded.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default,
)]
#[serde(transparent)]
pub struct Seq(pub i64);

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An event as the outbox holds it: committed, numbered, and already serialised.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: Seq,
    pub id: EventId,
    pub event_type: EventType,
    pub camera_id: String,
    pub json: String,
    /// Unix milliseconds of the commit, for the commit-to-acknowledgement latency.
    pub recorded_ms: i64,
}

/// Which events a reader wants: some types, some cameras, or (`None`) all.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EventFilter<'a> {
    pub types: Option<&'a [EventType]>,
    pub cameras: Option<&'a [String]>,
}

impl EventFilter<'_> {
    pub const ALL: EventFilter<'static> = EventFilter {
        types: None,
        cameras: None,
    };

    /// The filter as SQL conditions on the `events` table, each starting with ` AND`. Type names
    /// are our own constants; camera ids are quoted, so the text is safe to splice.
    pub fn sql(&self) -> String {
        let mut sql = String::new();
        if let Some(types) = self.types {
            let names: Vec<String> = types.iter().map(|t| format!("'{t}'")).collect();
            sql.push_str(&format!(" AND type IN ({})", names.join(",")));
        }
        if let Some(cameras) = self.cameras {
            let ids: Vec<String> = cameras
                .iter()
                .map(|c| format!("'{}'", c.replace('\'', "''")))
                .collect();
            sql.push_str(&format!(" AND camera IN ({})", ids.join(",")));
        }
        sql
    }
}

/// ISO-8601 UTC with milliseconds, as in FaceCV's guide: `2025-05-26T10:30:45.123Z`.
pub fn format_timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Builds FaceCV's envelope around already-serialised events, without parsing them again.
pub fn envelope(webhook_id: &str, events: &[&str]) -> String {
    let total: usize = events.iter().map(|e| e.len() + 1).sum();
    let mut body = String::with_capacity(total + webhook_id.len() + 80);
    body.push_str("{\"webhook_id\":");
    body.push_str(&serde_json::to_string(webhook_id).expect("a string serialises"));
    body.push_str(",\"timestamp\":\"");
    body.push_str(&format_timestamp(OffsetDateTime::now_utc()));
    body.push_str("\",\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(e);
    }
    body.push_str("]}");
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stop_reason_is_named_as_events_spell_it() {
        use StopReason::*;
        for reason in [Requested, SourceLost, Ended, Error, Shutdown] {
            assert_eq!(serde_json::to_value(reason).unwrap(), reason.as_str());
        }
    }

    fn recognized() -> NewEvent {
        NewEvent::new(
            "entrance_camera",
            EventData::FaceRecognized {
                recognized_faces: vec![RecognizedFace {
                    name: "John Doe".into(),
                    confidence: 0.95,
                    bbox: [100, 100, 200, 200],
                    face_id: None,
                    metadata: serde_json::from_str(r#"{"department":"Engineering"}"#).unwrap(),
                }],
                recognized_count: 1,
            },
            EventMetadata {
                source: "insightface_stream".into(),
                threshold: Some(0.6),
                ..Default::default()
            },
        )
    }

    #[test]
    fn an_event_has_facecv_fields_and_an_id() {
        let id = EventId::generate();
        let v: Value = serde_json::from_str(&recognized().to_json(&id)).unwrap();
        assert_eq!(v["id"], id.0.as_str());
        assert_eq!(v["event_type"], "face_recognized");
        assert_eq!(v["camera_id"], "entrance_camera");
        assert_eq!(v["data"]["recognized_faces"][0]["name"], "John Doe");
        assert_eq!(
            v["data"]["recognized_faces"][0]["bbox"],
            serde_json::json!([100, 100, 200, 200])
        );
        assert_eq!(
            v["data"]["recognized_faces"][0]["metadata"]["department"],
            "Engineering"
        );
        assert_eq!(v["data"]["recognized_count"], 1);
        assert_eq!(v["metadata"]["source"], "insightface_stream");
        let ts = v["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2025-05-26T10:30:45.123Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
        assert!(id.0.starts_with("evt_"));
    }

    #[test]
    fn the_envelope_wraps_stored_events_verbatim() {
        let a = recognized().to_json(&EventId::generate());
        let b = recognized().to_json(&EventId::generate());
        let body = envelope("main_recognition", &[&a, &b]);
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["webhook_id"], "main_recognition");
        assert_eq!(v["events"].as_array().unwrap().len(), 2);
        assert_eq!(v["events"][1], serde_json::from_str::<Value>(&b).unwrap());
    }

    #[test]
    fn scores_go_out_as_written_and_confidences_never_above_1() {
        let mut e = recognized();
        if let EventData::FaceRecognized {
            recognized_faces, ..
        } = &mut e.data
        {
            // A face matched against its own enrolment photo: rounding in the dot product.
            recognized_faces[0].confidence = 1.000_000_1;
        }
        e.metadata.threshold = Some(0.55);
        let text = e.to_json(&EventId::generate());
        assert!(text.contains(r#""threshold":0.55}"#), "{text}");
        assert!(text.contains(r#""confidence":1.0,"#), "{text}");
        let alert = NewEvent::new(
            "door",
            EventData::StrangerAlert {
                alert_level: AlertLevel::Medium,
                confidence: 0.31,
                bbox: [1, 2, 3, 4],
                appearance_count: 5,
                image_path: None,
                snapshot_url: None,
            },
            EventMetadata::default(),
        );
        let text = alert.to_json(&EventId::generate());
        assert!(text.contains(r#""confidence":0.31,"#), "{text}");
        let started = NewEvent::new(
            "door",
            EventData::StreamStarted {
                source: "0".into(),
                fps: 0.3,
                restarts: None,
            },
            EventMetadata::default(),
        );
        let text = started.to_json(&EventId::generate());
        assert!(text.contains(r#""fps":0.3"#), "{text}");
    }

    #[test]
    fn timestamps_have_milliseconds_and_utc() {
        let t = time::macros::datetime!(2025-05-26 10:30:45.1239 +02:00);
        assert_eq!(format_timestamp(t), "2025-05-26T08:30:45.123Z");
    }

    #[test]
    fn event_type_names_round_trip() {
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>().unwrap(), t);
            assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{t}\""));
        }
        assert!("face_seen".parse::<EventType>().is_err());
    }
}
