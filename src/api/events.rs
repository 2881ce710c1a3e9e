//! `/api/v1/events`: read the outbox (in order, or as a timeline), and record sample events
//! through the real path. An event's snapshot and enrolment from it: `snapshots.rs`.

use http::Request;
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::{ok_json, query, query_param, read_json, text_response, ApiError, ApiResult, State};
use crate::camera::CameraId;
use crate::events::{EventFilter, EventType, Seq};
use crate::pipeline::snapshot;
use crate::store::timeline::{Order, TimelineQuery};

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

/// `GET /api/v1/events?after_seq=&limit=&event_type=&camera_id=`: the log, oldest first, each
/// event with its sequence number and whether a snapshot of it is kept (`snapshot`, for
/// `GET /api/v1/events/{id}/snapshot.jpg`). Page by passing the answer's `next_after_seq` back as
/// `after_seq`. The timeline's parameters (`order=desc` with `before_seq`, `person`, `since`,
/// `until`) are read by `store::timeline`; without them the read is the outbox's own, as sinks
/// read it.
pub fn list(state: &State, req: &Request<Incoming>) -> ApiResult {
    let q = query(req);
    let after = query_param::<i64>(&q, "after_seq")?;
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
    let timeline = Timeline::read(&q)?;
    let (events, next_before) = match timeline {
        None => {
            let events = state
                .store
                .events_after(Seq(after.unwrap_or(0)), limit, filter)?;
            let first = events.first().map(|e| e.seq);
            (events, first)
        }
        Some(t) => {
            let page = state.store.timeline(&TimelineQuery {
                order: t.order,
                after: after.map(Seq),
                before: t.before,
                filter,
                person: t.person.as_deref(),
                since_ms: t.since_ms,
                until_ms: t.until_ms,
                limit,
            })?;
            let next_before = match t.order {
                Order::Desc => page.next,
                Order::Asc => page.events.first().map(|e| e.seq),
            };
            (page.events, next_before)
        }
    };
    let newest = events.iter().map(|e| e.seq.0).max();
    let next_after = newest.unwrap_or(after.unwrap_or(0));
    let snapshots = state.cameras.snapshots().0;
    // The stored texts go out as they are, without a parse and re-serialise.
    let mut body =
        String::with_capacity(events.iter().map(|e| e.json.len() + 32).sum::<usize>() + 96);
    body.push_str("{\"events\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        // Whether a snapshot is kept (cameras' strangers and recognitions, until pruned), so a
        // page asks only for snapshots that exist.
        let kept = matches!(
            e.event_type,
            EventType::StrangerAlert | EventType::FaceRecognized
        ) && snapshot::find(snapshots, &e.camera_id, &e.id.0).is_some();
        body.push_str(&format!(
            "{{\"seq\":{},\"snapshot\":{kept},\"event\":{}}}",
            e.seq, e.json
        ));
    }
    let next_before = next_before.map_or("null".to_owned(), |s| s.to_string());
    body.push_str(&format!(
        "],\"next_after_seq\":{next_after},\"next_before_seq\":{next_before}}}"
    ));
    Ok(text_response(
        http::StatusCode::OK,
        "application/json",
        body,
    ))
}

/// The timeline's parameters, each checked; `None` when none is given (the outbox's own read).
struct Timeline {
    order: Order,
    before: Option<Seq>,
    person: Option<String>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
}

impl Timeline {
    fn read(q: &[(String, String)]) -> Result<Option<Timeline>, ApiError> {
        let order = match q
            .iter()
            .find(|(k, _)| k == "order")
            .map(|(_, v)| v.as_str())
        {
            None | Some("asc") => Order::Asc,
            Some("desc") => Order::Desc,
            Some(other) => {
                return Err(ApiError::invalid(
                    "order",
                    format!("must be asc or desc, got {other:?}"),
                ))
            }
        };
        let before = query_param::<i64>(q, "before_seq")?;
        if before.is_some_and(|b| b < 1) {
            return Err(ApiError::invalid("before_seq", "must be 1 or more"));
        }
        let person = match q.iter().find(|(k, _)| k == "person") {
            None => None,
            Some((_, v)) if v.trim().is_empty() || v.len() > 128 => {
                return Err(ApiError::invalid("person", "must be 1 to 128 characters"))
            }
            Some((_, v)) => Some(v.trim().to_owned()),
        };
        let since_ms = time_param(q, "since")?;
        let until_ms = time_param(q, "until")?;
        if let (Some(s), Some(u)) = (since_ms, until_ms) {
            if s >= u {
                return Err(ApiError::invalid("until", "must be later than since"));
            }
        }
        let given = order == Order::Desc
            || before.is_some()
            || person.is_some()
            || since_ms.is_some()
            || until_ms.is_some();
        Ok(given.then_some(Timeline {
            order,
            before: before.map(Seq),
            person,
            since_ms,
            until_ms,
        }))
    }
}

/// An RFC 3339 time as unix milliseconds.
fn time_param(q: &[(String, String)], name: &str) -> Result<Option<i64>, ApiError> {
    let Some((_, v)) = q.iter().find(|(k, _)| k == name) else {
        return Ok(None);
    };
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            ApiError::invalid(
                name,
                format!("{v:?} is not an RFC 3339 time such as 2026-11-29T08:00:00Z"),
            )
        })?;
    Ok(Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
}
