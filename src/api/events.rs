//! `/api/v1/events`: read the outbox, and record sample events through the real path.

use http::Request;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::{ok_json, query, query_param, read_json, text_response, ApiError, ApiResult, State};
use crate::camera::CameraId;
use crate::events::{EventFilter, EventType, Seq};

/// The most events one trigger call records.
const MAX_TRIGGER: u32 = 1000;
/// The most events one read returns.
const MAX_READ: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Trigger {
    event_type: EventType,
    #[serde(default = "one")]
    count: u32,
    #[serde(default = "default_camera")]
    camera_id: String,
}

impl Trigger {
    fn check(&self) -> Result<(), ApiError> {
        if !(1..=MAX_TRIGGER).contains(&self.count) {
            return Err(ApiError::invalid(
                "count",
                format!("must be between 1 and {MAX_TRIGGER}, got {}", self.count),
            ));
        }
        // The id goes into events, webhook filters, MQTT topics and file names: the cameras' rule.
        CameraId::parse(&self.camera_id)?;
        Ok(())
    }
}

/// A trigger body read and checked as [`trigger`] does, for the fuzzer.
pub(super) fn check_trigger(bytes: &[u8]) -> Result<(), ApiError> {
    super::parse_json::<Trigger>(bytes)?.check()
}

fn one() -> u32 {
    1
}
fn default_camera() -> String {
    "test_camera".into()
}

pub async fn trigger(state: &State, req: Request<Incoming>) -> ApiResult {
    if state.stopping.is_cancelled() {
        return Err(ApiError::Unavailable);
    }
    let t: Trigger = read_json(state, req).await?;
    t.check()?;
    let events = (0..t.count)
        .map(|_| crate::samples::sample(t.event_type, &t.camera_id))
        .collect();
    let recorded = state.outbox.append(events).await?;
    let list: Vec<_> = recorded
        .iter()
        .map(|r| json!({ "seq": r.seq, "id": r.id }))
        .collect();
    ok_json(&json!({ "event_type": t.event_type, "count": list.len(), "events": list }))
}

/// `GET /api/v1/events?after_seq=&limit=&event_type=&camera_id=`: the log, oldest first, each event with its
/// sequence number. Page by passing the answer's `next_after_seq` back as `after_seq`.
pub fn list(state: &State, req: &Request<Incoming>) -> ApiResult {
    let q = query(req);
    let after = query_param::<i64>(&q, "after_seq")?.unwrap_or(0);
    let limit = query_param::<usize>(&q, "limit")?.unwrap_or(100);
    if !(1..=MAX_READ).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_READ}"),
        ));
    }
    let types: Option<Vec<EventType>> = match q.iter().find(|(k, _)| k == "event_type") {
        None => None,
        Some((_, v)) => Some(
            v.split(',')
                .map(|s| s.trim().parse::<EventType>())
                .collect::<Result<_, _>>()
                .map_err(|e| ApiError::invalid("event_type", e.to_string()))?,
        ),
    };
    let cameras: Option<Vec<String>> = q
        .iter()
        .find(|(k, _)| k == "camera_id")
        .map(|(_, v)| v.split(',').map(|c| c.trim().to_owned()).collect());
    let filter = EventFilter {
        types: types.as_deref(),
        cameras: cameras.as_deref(),
    };
    let events = state.store.events_after(Seq(after), limit, filter)?;
    let next = events.last().map_or(after, |e| e.seq.0);
    // The stored texts go out as they are, without a parse and re-serialise.
    let mut body =
        String::with_capacity(events.iter().map(|e| e.json.len() + 32).sum::<usize>() + 64);
    body.push_str("{\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!("{{\"seq\":{},\"event\":{}}}", e.seq, e.json));
    }
    body.push_str(&format!("],\"next_after_seq\":{next}}}"));
    Ok(text_response(
        http::StatusCode::OK,
        "application/json",
        body,
    ))
}
