//! `/api/v1/events`: read the outbox (in order, or as a timeline), and record sample events
//! through the real path. An event's snapshot and enrolment from it: `snapshots.rs`.

use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::routes::{route, Params, Route};
use super::{ok_json, query, query_param, read_json, text_response, ApiError, ApiResult, State};
use crate::camera::CameraId;
use crate::events::{Event, EventFilter, EventId, EventType, Seq, StoredEvent};
use crate::pipeline::snapshot;
use crate::store::timeline::{Order, TimelineQuery};

/// The most events one trigger call records.
const MAX_TRIGGER: u32 = 1000;
/// The most events one read returns.
const MAX_READ: usize = 1000;

pub(super) fn routes() -> Vec<Route> {
    vec![route!(list_events), route!(trigger_events)]
}

/// Sample events to record.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"event_type": "face_recognized", "count": 1, "camera_id": "test_camera"}))]
#[schema(as = EventsTrigger)]
struct Trigger {
    event_type: EventType,
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 1000, default = 1)]
    count: u32,
    /// The camera the samples claim to come from (need not exist).
    #[serde(default = "default_camera")]
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$", default = "test_camera")]
    camera_id: String,
}

/// What a trigger recorded.
#[derive(Serialize, ToSchema)]
#[schema(as = EventsTriggered)]
struct Triggered {
    event_type: EventType,
    count: usize,
    events: Vec<Recorded>,
}

/// One recorded sample: where it is in the log and its id.
#[derive(Serialize, ToSchema)]
#[schema(as = RecordedEvent)]
struct Recorded {
    #[schema(value_type = i64, minimum = 1)]
    seq: Seq,
    #[schema(value_type = String, pattern = "^evt_[0-9a-f]{32}$")]
    id: EventId,
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

/// Record sample events
///
/// Sample events of one type go through the real path (outbox, webhooks, MQTT, actions), so an
/// installation can be tried end to end without a face in front of a camera.
#[utoipa::path(post, path = "/api/v1/events/trigger", tag = "events",
    request_body = Trigger,
    responses((status = 200, description = "The events recorded, in order", body = Triggered)))]
async fn trigger_events(state: Arc<State>, req: Request<Incoming>, _: Params) -> ApiResult {
    let state: &State = &state;
    if state.stopping.is_cancelled() {
        return Err(ApiError::Unavailable);
    }
    let t: Trigger = read_json(state, req).await?;
    t.check()?;
    let events = (0..t.count)
        .map(|_| crate::samples::sample(t.event_type, &t.camera_id))
        .collect();
    let recorded = state.outbox.append(events).await?;
    let events: Vec<Recorded> = recorded
        .into_iter()
        .map(|r| Recorded {
            seq: r.seq,
            id: r.id,
        })
        .collect();
    ok_json(&Triggered {
        event_type: t.event_type,
        count: events.len(),
        events,
    })
}

/// The query of `GET /api/v1/events`. Without any of the timeline's parameters (`order=desc`,
/// `before_seq`, `person`, `since`, `until`) the read is the outbox's own, as sinks read it.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only events after this sequence number: pass the last answer's `next_after_seq`.
    #[param(minimum = 0, example = 0)]
    after_seq: Option<i64>,
    /// At most this many events.
    #[param(minimum = 1, maximum = 1000, default = 100, example = 50)]
    limit: Option<usize>,
    /// Only these types, comma-separated.
    #[param(
        pattern = "^(face_detected|face_recognized|stranger_alert|attendance_recorded|stream_started|stream_stopped)(,(face_detected|face_recognized|stranger_alert|attendance_recorded|stream_started|stream_stopped))*$",
        example = "stranger_alert,face_recognized"
    )]
    event_type: Option<String>,
    /// Only from these cameras, comma-separated.
    #[param(example = "entrance")]
    camera_id: Option<String>,
    /// `desc`: newest first (page with `before_seq`).
    #[param(pattern = "^(asc|desc)$", example = "desc")]
    order: Option<String>,
    /// With `order=desc`: only events before this sequence number (`next_before_seq`).
    #[param(minimum = 1, example = 1000)]
    before_seq: Option<i64>,
    /// Only events naming this person (recognitions and attendance).
    #[param(min_length = 1, max_length = 128, example = "John Doe")]
    person: Option<String>,
    /// Only events recorded at or after this time (RFC 3339).
    #[param(format = DateTime, example = "2026-11-29T08:00:00Z")]
    since: Option<String>,
    /// Only events recorded before this time (RFC 3339), later than `since`.
    #[param(format = DateTime, example = "2026-11-30T08:00:00Z")]
    until: Option<String>,
}

impl EventsQuery {
    /// The query's values, each parsed (422 naming the parameter) but not yet checked together.
    fn read(q: &[(String, String)]) -> Result<EventsQuery, ApiError> {
        let text = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.to_owned());
        Ok(EventsQuery {
            after_seq: query_param(q, "after_seq")?,
            limit: query_param(q, "limit")?,
            event_type: text("event_type"),
            camera_id: text("camera_id"),
            order: text("order"),
            before_seq: query_param(q, "before_seq")?,
            person: text("person"),
            since: text("since"),
            until: text("until"),
        })
    }
}

/// A page of the log: the stored events as they were recorded, oldest first (or newest first
/// with `order=desc`).
#[derive(ToSchema)]
#[allow(dead_code)] // `page` writes this shape from the stored texts, without a re-parse.
struct EventPage {
    events: Vec<EventEntry>,
    /// Pass it back as `after_seq` for the next page (the same value when nothing is newer).
    next_after_seq: i64,
    /// Pass it back as `before_seq` with `order=desc` for the next page back; `null` at the start.
    next_before_seq: Option<i64>,
}

#[derive(ToSchema)]
#[allow(dead_code)] // See `EventPage`.
struct EventEntry {
    seq: i64,
    /// Whether `GET /api/v1/events/{event_id}/snapshot.jpg` has a picture for it.
    snapshot: bool,
    event: Event<'static>,
}

/// Read the event log
///
/// The log in order, each event with its sequence number and whether a snapshot of it is kept,
/// so that a page asks only for snapshots that exist. Page forward by passing the answer's
/// `next_after_seq` back as `after_seq`; the timeline's parameters (`order=desc` with
/// `before_seq`, `person`, `since`, `until`) serve the console's history.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, description = "A page of the log", body = EventPage)))]
async fn list_events(state: Arc<State>, req: Request<Incoming>, _: Params) -> ApiResult {
    let state: &State = &state;
    let q = EventsQuery::read(&query(&req))?;
    let after = q.after_seq;
    let limit = q.limit.unwrap_or(100);
    if !(1..=MAX_READ).contains(&limit) {
        return Err(ApiError::invalid(
            "limit",
            format!("must be between 1 and {MAX_READ}"),
        ));
    }
    let types: Option<Vec<EventType>> = match &q.event_type {
        None => None,
        Some(v) => Some(
            v.split(',')
                .map(|s| s.trim().parse::<EventType>())
                .collect::<Result<_, _>>()
                .map_err(|e| ApiError::invalid("event_type", e.to_string()))?,
        ),
    };
    let cameras: Option<Vec<String>> = q
        .camera_id
        .as_ref()
        .map(|v| v.split(',').map(|c| c.trim().to_owned()).collect());
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
    let body = page(state, &events, next_after, next_before);
    Ok(text_response(
        http::StatusCode::OK,
        "application/json",
        body,
    ))
}

/// An [`EventPage`] written from the stored texts, which go out as they are, without a parse and
/// re-serialise.
fn page(
    state: &State,
    events: &[StoredEvent],
    next_after: i64,
    next_before: Option<Seq>,
) -> String {
    let snapshots = state.cameras.snapshots().0;
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
    body
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
    fn read(q: &EventsQuery) -> Result<Option<Timeline>, ApiError> {
        let order = match q.order.as_deref() {
            None | Some("asc") => Order::Asc,
            Some("desc") => Order::Desc,
            Some(other) => {
                return Err(ApiError::invalid(
                    "order",
                    format!("must be asc or desc, got {other:?}"),
                ))
            }
        };
        let before = q.before_seq;
        if before.is_some_and(|b| b < 1) {
            return Err(ApiError::invalid("before_seq", "must be 1 or more"));
        }
        let person = match &q.person {
            None => None,
            Some(v) if v.trim().is_empty() || v.len() > 128 => {
                return Err(ApiError::invalid("person", "must be 1 to 128 characters"))
            }
            Some(v) => Some(v.trim().to_owned()),
        };
        let since_ms = time_param(q.since.as_deref(), "since")?;
        let until_ms = time_param(q.until.as_deref(), "until")?;
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
fn time_param(v: Option<&str>, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(v) = v else {
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
