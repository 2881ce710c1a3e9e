//! `GET /api/v1/cameras/{id}/live.mjpg` and `.../snapshot.jpg`: what a running camera analyses,
//! with its face boxes and names drawn in, for the console's live view.
//!
//! The pictures are made by the camera's own thread, only while someone looks and once for every
//! viewer (see `pipeline::live`); this file only hands them out. A live view holds one of
//! `api.max_streams` for as long as it is open (429 `too_many_streams` past it), and ends, with the
//! multipart closing line, when the camera stops, when the API stops, or when the client goes. A
//! snapshot holds no place: it waits at most a few seconds for one picture.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};

use super::faces::Jpeg;
use super::limits::StreamPermit;
use super::routes::Params;
use super::{query, query_param, ApiError, ApiResult, State};
use crate::pipeline::live::{LiveTap, Viewer, MAX_FPS};
use crate::shutdown::Shutdown;

/// The rate a live view gets unless it asks (`?fps=`).
const DEFAULT_FPS: u32 = 5;
/// The multipart boundary; the content type names it.
const BOUNDARY: &str = "frame";
/// A picture this recent is a snapshot's answer at once; an older one (left from a viewer who has
/// gone) is not what the camera sees now.
const FRESH: Duration = Duration::from_secs(1);
/// How long a snapshot waits for the camera's next analysed frame: a debug build on a Raspberry
/// Pi analyses one in well under this.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(5);
/// While a camera delivers nothing (its source lost), the last picture is sent again this often:
/// a client that left is noticed only when something is written to it, and until then it holds
/// its place under `api.max_streams`.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The camera's tap, if the camera exists (404) and runs (409 `camera_not_running`).
pub(super) fn running_tap(state: &State, id: &str) -> Result<Arc<LiveTap>, ApiError> {
    let tap = state.cameras.live_tap(id)?;
    if !state.cameras.status(id)?.running {
        return Err(not_running(id));
    }
    Ok(tap)
}

pub(super) fn not_running(id: &str) -> ApiError {
    ApiError::Refused {
        code: "camera_not_running",
        message: format!("camera {id} is not running; start it first"),
    }
}

/// `?fps=1..10`, a whole number.
fn fps(req: &Request<Incoming>) -> Result<u32, ApiError> {
    let fps = query_param::<u32>(&query(req), "fps")?.unwrap_or(DEFAULT_FPS);
    if !(1..=MAX_FPS).contains(&fps) {
        return Err(ApiError::invalid(
            "fps",
            format!("must be a whole number from 1 to {MAX_FPS}, got {fps}"),
        ));
    }
    Ok(fps)
}

/// Drops a picture left from an earlier viewer, so that the first one sent is of now.
fn skip_stale(viewer: &mut Viewer) {
    let stale = viewer
        .pictures
        .borrow()
        .as_ref()
        .is_none_or(|p| p.at.elapsed() > FRESH);
    if stale {
        viewer.pictures.borrow_and_update();
    }
}

/// A camera's live view
///
/// What a running camera analyses, with its face boxes and names drawn in (the console's live
/// view), as a `multipart/x-mixed-replace` stream of JPEG parts (boundary `frame`, each part with
/// `Content-Type: image/jpeg` and `Content-Length`) that browsers show in an `<img>`. The pictures
/// are made only while someone looks. A view holds one of `api.max_streams` while open (429
/// `too_many_streams` past it) and ends with the closing boundary when the camera or the API
/// stops; while the source is lost the last picture is sent again every 15 s.
#[utoipa::path(get, path = "/api/v1/cameras/{camera_id}/live.mjpg", tag = "cameras",
    params(super::cameras::CameraPath,
        ("fps" = Option<u32>, Query, description = "Pictures a second", minimum = 1, maximum = 10, example = 5)),
    responses((status = 200, description = "The live view, until the camera stops",
            content_type = "multipart/x-mixed-replace", body = String),
        (status = 409, description = "`camera_not_running`: start the camera first")))]
pub(super) async fn live_view(
    state: Arc<State>,
    req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    let state: &State = &state;
    let id = params.get("camera_id");
    let fps = fps(&req)?;
    let tap = running_tap(state, id)?;
    let permit = state.streams.try_acquire().map_err(|e| {
        state.metrics.api.streams_refused.inc();
        match e {
            ApiError::Busy {
                code,
                message,
                retry_after,
            } => ApiError::TooMany {
                code,
                message,
                retry_after,
            },
            other => other,
        }
    })?;
    let mut viewer = tap.view(fps).ok_or_else(|| not_running(id))?;
    skip_stale(&mut viewer);
    tracing::debug!(camera = id, fps, "live view opened");
    let watch = Watch {
        viewer,
        _permit: permit,
        stopping: state.stopping.clone(),
        period: Duration::from_secs(1) / fps,
        next_due: tokio::time::Instant::now(),
        pending: None,
        last: None,
        first: true,
        done: false,
    };
    let body = StreamBody::new(futures_util::stream::unfold(watch, next_part));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(
            http::header::CONTENT_TYPE,
            format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
        )
        .header(http::header::CACHE_CONTROL, "no-cache, no-store")
        .body(body.boxed())
        .expect("a valid response"))
}

/// One live view while it lasts; dropping it (the client gone) frees its place and its viewer.
struct Watch {
    viewer: Viewer,
    _permit: StreamPermit,
    stopping: Shutdown,
    period: Duration,
    next_due: tokio::time::Instant,
    /// The JPEG whose part header was just sent.
    pending: Option<Bytes>,
    /// The last picture sent, to send again after [`KEEP_ALIVE`] without a new one.
    last: Option<Bytes>,
    first: bool,
    done: bool,
}

type Part = Result<Frame<Bytes>, Infallible>;

/// The next piece of the multipart body: a part's header, its JPEG, or the closing line once the
/// camera or the API stopped.
async fn next_part(mut w: Watch) -> Option<(Part, Watch)> {
    if let Some(jpeg) = w.pending.take() {
        return Some((Ok(Frame::data(jpeg)), w));
    }
    if w.done {
        return None;
    }
    let picture = tokio::select! {
        biased;
        _ = w.stopping.cancelled() => None,
        p = next_picture(&mut w.viewer, w.next_due) => p,
        _ = tokio::time::sleep(KEEP_ALIVE), if w.last.is_some() => w.last.clone(),
    };
    let Some(jpeg) = picture else {
        w.done = true;
        let close = format!("{}--{BOUNDARY}--\r\n", if w.first { "" } else { "\r\n" });
        return Some((Ok(Frame::data(Bytes::from(close))), w));
    };
    w.next_due = tokio::time::Instant::now() + w.period;
    let head = format!(
        "{}--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
        if w.first { "" } else { "\r\n" },
        jpeg.len()
    );
    w.first = false;
    w.last = Some(jpeg.clone());
    w.pending = Some(jpeg);
    Some((Ok(Frame::data(Bytes::from(head))), w))
}

/// The next picture not before `due` (the viewer's own rate); `None` once the camera's run ended.
async fn next_picture(viewer: &mut Viewer, due: tokio::time::Instant) -> Option<Bytes> {
    tokio::time::sleep_until(due).await;
    viewer.pictures.changed().await.ok()?;
    let jpeg = viewer.pictures.borrow_and_update().as_ref()?.jpeg.clone();
    Some(jpeg)
}

/// A camera's picture now
///
/// The latest annotated picture of a running camera, or the next one within 5 s; it holds no
/// place among the live streams.
#[utoipa::path(get, path = "/api/v1/cameras/{camera_id}/snapshot.jpg", tag = "cameras",
    params(super::cameras::CameraPath),
    responses((status = 200, description = "The picture", content_type = "image/jpeg", body = Jpeg),
        (status = 409, description = "`camera_not_running`: start the camera first"),
        (status = 503, description = "`no_picture`: the camera analysed no frame in time")))]
pub(super) async fn camera_snapshot(
    state: Arc<State>,
    _req: Request<Incoming>,
    params: Params,
) -> ApiResult {
    let id = params.get("camera_id");
    let tap = running_tap(&state, id)?;
    let mut viewer = tap.view(MAX_FPS).ok_or_else(|| not_running(id))?;
    skip_stale(&mut viewer);
    let jpeg = match tokio::time::timeout(
        SNAPSHOT_WAIT,
        next_picture(&mut viewer, tokio::time::Instant::now()),
    )
    .await
    {
        Ok(Some(jpeg)) => jpeg,
        Ok(None) => return Err(not_running(id)),
        Err(_) => {
            return Err(ApiError::Busy {
                code: "no_picture",
                message: format!(
                    "camera {id} analysed no frame within {} s; see its status for why",
                    SNAPSHOT_WAIT.as_secs()
                ),
                retry_after: 2,
            })
        }
    };
    let mut response = super::text_response(StatusCode::OK, "image/jpeg", jpeg);
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}
