//! An event's snapshot: `GET /api/v1/events/{event_id}/snapshot.jpg`, by the token or by a
//! signed, expiring link (`?expires=&sig=`, see `pipeline::snapshot::SnapshotLinks`) that a
//! webhook receiver can follow without the token; and `POST /api/v1/events/{event_id}/enrol`,
//! which enrols the face in it (a stranger named, a wrong recognition corrected).
//!
//! The file is found from the event's id and its camera only (`pipeline::snapshot::find`): a
//! path stored in an event is never opened.

use std::sync::Arc;

use http::{Method, Request};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::engine::{image_error, with_engine};
use super::faces::{jpeg_response, Jpeg};
use super::people::{check_name, enrolled, store_person, Enrolled};
use super::routes::{route, Params, Route};
use super::{ok_json, query, read_json, ApiError, ApiResult, State};
use crate::enrol::shot;
use crate::events::EventId;
use crate::pipeline::snapshot::{self, SnapshotLinks};

/// Whether `req` reads a snapshot with a valid, unexpired signature: such a request needs no
/// token (`authorize`). Only a `GET` of exactly `/api/v1/events/<id>/snapshot.jpg`.
pub(super) fn signed_snapshot(state: &State, req: &Request<Incoming>) -> bool {
    if *req.method() != Method::GET {
        return false;
    }
    let Some(links) = state.cameras.snapshots().1 else {
        return false;
    };
    let path = req.uri().path();
    let id = path
        .strip_prefix("/api/v1/events/")
        .and_then(|rest| rest.strip_suffix("/snapshot.jpg"))
        .and_then(EventId::parse);
    let Some(id) = id else { return false };
    let q = query(req);
    let one = |key: &str| {
        let mut values = q.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str());
        match (values.next(), values.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    };
    let (Some(expires), Some(sig)) = (one("expires"), one("sig")) else {
        return false;
    };
    let Ok(expires) = expires.parse::<u64>() else {
        return false;
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    links.verify(&SnapshotLinks::path(&id), expires, sig, now)
}

pub(super) fn routes() -> Vec<Route> {
    vec![route!(event_snapshot), route!(enrol_from_event)]
}

/// An event's snapshot
///
/// The picture kept of a stranger or a recognition, for a person to look at. Without the token
/// it is served to a link signed by the appliance (`data.snapshot_url` in `stranger_alert`, with
/// `api.public_url` set), so a webhook receiver can show it without holding the token.
#[utoipa::path(get, path = "/api/v1/events/{event_id}/snapshot.jpg", tag = "events",
    params(
        ("event_id" = String, Path, description = "The event's id",
            pattern = "^evt_[0-9a-f]{32}$", example = "evt_0193a1b2c3d4e5f60718293a4b5c6d7e"),
        ("expires" = Option<u64>, Query, description = "A signed link's expiry (unix seconds); with `sig`, stands for the token"),
        ("sig" = Option<String>, Query, description = "A signed link's signature"),
    ),
    responses((status = 200, description = "The snapshot", content_type = "image/jpeg", body = Jpeg),
        (status = 404, description = "`not_found`: no such event; `no_snapshot`: none is kept of it")))]
async fn event_snapshot(state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
    Ok(jpeg_response(read(&state, params.get("event_id")).await?))
}

/// The snapshot's bytes: 404 `not_found` for an event that is not stored, `no_snapshot` for one
/// without a snapshot (not a stranger or a recognition, snapshots off, or pruned since).
async fn read(state: &State, id: &str) -> Result<Vec<u8>, ApiError> {
    let unknown = || ApiError::NotFound(format!("event {id}"));
    let event = EventId::parse(id).ok_or_else(unknown)?;
    let camera = state.store.event_camera(&event)?.ok_or_else(unknown)?;
    let none = || ApiError::Missing {
        code: "no_snapshot",
        message: format!("event {id} has no snapshot kept"),
    };
    let path = snapshot::find(state.cameras.snapshots().0, &camera, id).ok_or_else(none)?;
    // A read of at most a few hundred KB, off the async threads all the same (an SD card can
    // stall).
    let read = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || std::fs::read(path))
            .await
            .map_err(|e| ApiError::Internal(format!("reading the snapshot: {e}")))?
    };
    match read {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(none()),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read a snapshot");
            Err(ApiError::Internal(format!(
                "cannot read the snapshot: {}",
                e.kind()
            )))
        }
    }
}

/// Who the face in the snapshot is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "John Doe", "metadata": {"department": "Engineering"}}))]
#[schema(as = EventEnrol)]
struct Enrol {
    /// Trimmed, 1 to 128 bytes.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "\\S",
        example = "John Doe"
    )]
    name: String,
    /// Kept with the person (department, employee_id, ...); events carry it.
    #[serde(default)]
    metadata: Map<String, Value>,
}

/// An enrolment body read and checked as [`enrol`] does, for the fuzzer.
pub(super) fn check_enrol(bytes: &[u8]) -> Result<(), ApiError> {
    check_name(&super::parse_json::<Enrol>(bytes)?.name).map(drop)
}

/// Enrol the face of an event's snapshot
///
/// A stranger named, or a wrong recognition corrected, from what the camera saw: the one face of
/// the event's snapshot is enrolled under `name`, answered as `POST /api/v1/faces` answers.
#[utoipa::path(post, path = "/api/v1/events/{event_id}/enrol", tag = "events",
    params(("event_id" = String, Path, description = "The event's id",
        pattern = "^evt_[0-9a-f]{32}$", example = "evt_0193a1b2c3d4e5f60718293a4b5c6d7e")),
    request_body = Enrol,
    responses((status = 200, description = "The person enrolled", body = Enrolled),
        (status = 404, description = "`not_found`: no such event; `no_snapshot`: none is kept of it")))]
async fn enrol_from_event(state: Arc<State>, req: Request<Incoming>, params: Params) -> ApiResult {
    let state: &State = &state;
    let id = params.get("event_id");
    let body: Enrol = read_json(state, req).await?;
    let name = check_name(&body.name)?;
    let jpeg = read(state, id).await?;
    let shot = with_engine(state, move |engine| {
        shot::from_image(engine, &jpeg).map_err(|e| image_error("snapshot", e))
    })
    .await?;
    let faces = store_person(state, &name, &[shot], &body.metadata)?;
    tracing::info!(name, event = id, "person enrolled from an event's snapshot");
    let message = format!("Registered 1 image of {name} from event {id}");
    ok_json(&enrolled(&name, &faces, message))
}
