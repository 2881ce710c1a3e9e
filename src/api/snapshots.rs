//! An event's snapshot: `GET /api/v1/events/{event_id}/snapshot.jpg`, by the token or by a
//! signed, expiring link (`?expires=&sig=`, see `pipeline::snapshot::SnapshotLinks`) that a
//! webhook receiver can follow without the token; and `POST /api/v1/events/{event_id}/enrol`,
//! which enrols the face in it (a stranger named, a wrong recognition corrected).
//!
//! The file is found from the event's id and its camera only (`pipeline::snapshot::find`): a
//! path stored in an event is never opened.

use http::{Method, Request};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::engine::{image_error, with_engine};
use super::faces::jpeg_response;
use super::people::{check_name, enrolled, store_person};
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

/// `/api/v1/events/{id}/...` below the event.
pub async fn route(state: &State, req: Request<Incoming>, id: &str, what: &str) -> ApiResult {
    match (what, req.method()) {
        ("snapshot.jpg", &Method::GET) => Ok(jpeg_response(read(state, id).await?)),
        ("enrol", &Method::POST) => enrol(state, req, id).await,
        ("snapshot.jpg" | "enrol", m) => Err(ApiError::MethodNotAllowed(m.clone())),
        _ => Err(ApiError::NotFound(format!("path {}", req.uri().path()))),
    }
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Enrol {
    name: String,
    #[serde(default)]
    metadata: Map<String, Value>,
}

/// An enrolment body read and checked as [`enrol`] does, for the fuzzer.
pub(super) fn check_enrol(bytes: &[u8]) -> Result<(), ApiError> {
    check_name(&super::parse_json::<Enrol>(bytes)?.name).map(drop)
}

/// `POST /api/v1/events/{id}/enrol` `{"name", "metadata"}`: the one face of the event's
/// snapshot enrolled under `name`, answered as `POST /api/v1/faces` answers.
async fn enrol(state: &State, req: Request<Incoming>, id: &str) -> ApiResult {
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
