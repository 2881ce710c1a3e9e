//! Bounds on what one client can hold: live streams (a counted cap with permits) and how long a
//! request body may take to arrive.
//!
//! A live stream holds a connection, a task and, with a `source` of its own, a camera thread and a
//! vision engine for as long as the client stays; a body that trickles holds a connection and a
//! growing buffer. Both are cheap to ask for and costly to give, so both are bounded here, and a
//! client past a bound gets a JSON error it can act on (503 with `Retry-After`, 408).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_LENGTH;
use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::ApiError;

/// How long a client that asked for a stream past the cap is told to wait before asking again.
const STREAM_RETRY_AFTER_S: u32 = 10;

/// The live streams served at once (`api.max_streams`). Everything that streams to a client (the
/// SSE route today, the console's live views later) takes a [`StreamPermit`] first and holds it
/// until the client is gone, so one cap bounds them all.
#[derive(Debug, Clone)]
pub struct StreamSlots {
    inner: Arc<Slots>,
}

#[derive(Debug)]
struct Slots {
    max: usize,
    in_use: AtomicUsize,
}

/// One stream's place under the cap; dropping it frees the place.
#[derive(Debug)]
pub struct StreamPermit {
    slots: Arc<Slots>,
}

impl StreamSlots {
    pub fn new(max: usize) -> Self {
        StreamSlots {
            inner: Arc::new(Slots {
                max,
                in_use: AtomicUsize::new(0),
            }),
        }
    }

    /// A place for one more stream, or 503 `too_many_streams` with `Retry-After` when all are taken.
    pub fn try_acquire(&self) -> Result<StreamPermit, ApiError> {
        let max = self.inner.max;
        self.inner
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .map(|_| StreamPermit {
                slots: self.inner.clone(),
            })
            .map_err(|_| ApiError::Busy {
                code: "too_many_streams",
                message: format!(
                    "{max} live streams are open, the most api.max_streams allows; \
                     try again when one has ended"
                ),
                retry_after: STREAM_RETRY_AFTER_S,
            })
    }

    /// `n` places at once, or none: for things a stream holds several of (its ad-hoc webhooks).
    pub fn try_take(&self, n: usize) -> Option<Vec<StreamPermit>> {
        let max = self.inner.max;
        self.inner
            .in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used + n <= max).then_some(used + n)
            })
            .ok()?;
        Some(
            (0..n)
                .map(|_| StreamPermit {
                    slots: self.inner.clone(),
                })
                .collect(),
        )
    }

    /// Streams open now.
    pub fn in_use(&self) -> usize {
        self.inner.in_use.load(Ordering::Acquire)
    }
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        self.slots.in_use.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Longest wait for the next piece of a body. A client on a slow link still sends something
/// every few hundred milliseconds; one that sends nothing for this long has stalled or is holding
/// the connection on purpose.
pub(crate) const BODY_IDLE: Duration = Duration::from_secs(10);
/// The whole body's deadline is this plus its size at [`BODY_MIN_RATE`]: a 1 MiB JSON body gets
/// 36 s, a 16 MiB upload 276 s, so a trickle of one byte every few seconds cannot hold a connection
/// and a growing buffer for hours, while a phone on poor Wi-Fi still gets its photo through.
const BODY_BASE: Duration = Duration::from_secs(20);
/// 64 KiB/s: a quarter of the slowest 2.4 GHz Wi-Fi rate an installer would still use.
const BODY_MIN_RATE: u64 = 64 * 1024;

/// The time a body of `len` bytes may take in all.
pub(crate) fn body_deadline(len: usize) -> Duration {
    BODY_BASE + Duration::from_secs(len as u64 / BODY_MIN_RATE)
}

/// Reads a body of at most `limit` bytes within [`BODY_IDLE`] per piece and [`body_deadline`]
/// overall: 413 past the limit (before it is read when `Content-Length` says so), 408 when the
/// client stalls, 400 when the body is malformed (bad chunked encoding) or cut short.
pub(crate) async fn read_body_within(
    req: Request<Incoming>,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge(limit));
    }
    let started = Instant::now();
    let deadline = started + body_deadline(declared.unwrap_or(limit));
    let mut body = req.into_body();
    let mut buf = BytesMut::new();
    loop {
        let wait_until = deadline.min(Instant::now() + BODY_IDLE);
        let frame = match tokio::time::timeout_at(wait_until, body.frame()).await {
            Ok(Some(frame)) => {
                frame.map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?
            }
            Ok(None) => return Ok(buf.freeze()),
            Err(_) if Instant::now() >= deadline => {
                return Err(ApiError::Timeout(format!(
                    "the body did not arrive within {} s ({} bytes came)",
                    (deadline - started).as_secs(),
                    buf.len()
                )))
            }
            Err(_) => {
                return Err(ApiError::Timeout(format!(
                    "the client sent no part of the body for {} s ({} bytes came)",
                    BODY_IDLE.as_secs(),
                    buf.len()
                )))
            }
        };
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(ApiError::TooLarge(limit));
            }
            buf.extend_from_slice(&data);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_counted_and_given_back() {
        let slots = StreamSlots::new(2);
        let a = slots.try_acquire().unwrap();
        let _b = slots.try_acquire().unwrap();
        let refused = slots.try_acquire().unwrap_err();
        assert!(
            matches!(refused, ApiError::Busy { code: "too_many_streams", retry_after, .. } if retry_after > 0)
        );
        assert_eq!(slots.in_use(), 2);
        drop(a);
        assert_eq!(slots.in_use(), 1);
        let _c = slots.try_acquire().expect("a place came free");
        assert!(slots.try_take(1).is_none());
        let more = StreamSlots::new(8);
        let three = more.try_take(3).unwrap();
        assert!(more.try_take(6).is_none(), "all or nothing");
        assert_eq!(more.in_use(), 3);
        drop(three);
        assert_eq!(more.in_use(), 0);
    }

    #[test]
    fn a_larger_body_gets_more_time() {
        assert_eq!(body_deadline(0), BODY_BASE);
        assert_eq!(body_deadline(1 << 20), BODY_BASE + Duration::from_secs(16));
        assert!(body_deadline(16 << 20) < Duration::from_secs(300));
    }
}
