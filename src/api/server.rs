//! The accept loop: who gets a connection, how long it may sit idle or half-sent, and what the
//! client hears when it cannot be served.
//!
//! What an appliance on a LAN must survive is not load but a few clients that hold on: a browser
//! tab's idle keep-alive, a script that opens sockets and sends nothing, an upload that stalls.
//! So the rules are:
//! * **Time bounds.** The request head must arrive within [`HEADER_TIMEOUT`] of the connection
//!   waiting for it. In hyper 1.12 that timer starts whenever the connection waits for a head,
//!   the first one and each one after a response (`proto/h1/conn.rs`: `poll_read_head` arms it and
//!   `idle()` makes the next read poll it), so the same bound closes idle keep-alive connections.
//!   Bodies have their own deadlines (`limits::read_body_within`, 408).
//! * **Idle connections go first.** Up to [`MAX_CONNECTIONS`] connections are served at once.
//!   When a new one arrives at the limit, the connection that has been idle longest (no request in
//!   flight) is closed to make room, so a new client never queues behind clients that do nothing.
//!   Closing an idle keep-alive connection is ordinary HTTP/1.1; clients reconnect.
//! * **Busy, said plainly.** When every connection has a request in flight, up to
//!   [`BUSY_CONNECTIONS`] more are accepted only to answer 503 `too_many_connections` with
//!   `Retry-After`; past that, new clients wait in the kernel's backlog until a place frees.
//! * **Errors in JSON.** hyper answers a request it cannot parse (bad request line or header, head
//!   too large, URI too long) itself, with an empty body; [`Wire`] turns that answer into the API's
//!   JSON error.
//!
//! * **HTTPS counts the same.** The HTTPS listener shares the table and the busy slots: a
//!   connection takes its place before its TLS handshake, which must finish within
//!   [`tls::HANDSHAKE_TIMEOUT`], and a connection still in its handshake is idle, so it is the
//!   first to make room.
//!
//! The numbers, for a 1-4 GB Raspberry Pi: an idle connection costs a task, hyper's read buffer
//! (8 KiB, at most [`MAX_BUF`]) and a socket: ~20 KiB, so 512 connections are
//! ~10 MB at worst and 512 + 32 descriptors fit the unit's `LimitNOFILE=4096` with room for the
//! store, cameras, webhooks and MQTT. 512 is far above what an appliance's real clients (an
//! integration, an installer's laptop, a few live views) need, and high enough that idle clients
//! are shed before anyone waits.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Request;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::wire::Wire;
use super::{tls, ApiError, State};
use crate::metrics::ApiMetrics;
use crate::shutdown::Shutdown;

/// Connections served at once; see the module comment for why 512.
pub const MAX_CONNECTIONS: usize = 512;
/// Connections accepted past the limit only to be told 503 and closed.
pub const BUSY_CONNECTIONS: usize = 32;
/// Descriptors kept for everything but API connections: the store, cameras, ffmpeg pipes, webhook
/// and MQTT sockets, the runtime library and models.
const FD_RESERVE: usize = 256;
/// Time for a request head, counted from when the connection starts waiting for it: also how long
/// an idle keep-alive connection stays open.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request head (request line and headers): a larger one gets 431. Browsers send
/// < 2 KiB; 16 KiB leaves room for long tokens and cookies of a reverse proxy.
pub(super) const MAX_HEAD: usize = 16 * 1024;
/// hyper's read buffer limit per connection (its default is ~400 KiB): bounds what a client that
/// sends without pause can make one connection hold while the handler reads the body.
const MAX_BUF: usize = 32 * 1024;
/// How long in-flight requests get to finish after shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// What a client told "busy" is asked to wait.
const BUSY_RETRY_AFTER_S: u32 = 2;

/// The API's sockets: plain HTTP, HTTPS, or both (the config allows no API without either).
pub struct Listeners {
    pub http: Option<TcpListener>,
    pub https: Option<(TcpListener, TlsAcceptor)>,
}

/// What the accept loops of both listeners share: one bound on connections for the process.
struct Shared {
    table: Arc<ConnTable>,
    busy: Arc<Semaphore>,
    graceful: GracefulShutdown,
    state: Arc<State>,
    stop: Shutdown,
}

/// Serves the API on `listeners` until `stop` is cancelled, then lets requests in flight finish.
pub async fn serve(listeners: Listeners, state: Arc<State>, stop: Shutdown) {
    let limit = connection_limit();
    let shared = Shared {
        table: Arc::new(ConnTable::new(limit, state.metrics.api.clone())),
        busy: Arc::new(Semaphore::new(BUSY_CONNECTIONS)),
        graceful: GracefulShutdown::new(),
        state,
        stop,
    };
    let http = async {
        if let Some(l) = listeners.http {
            accept_loop(l, None, &shared).await;
        }
    };
    let https = async {
        if let Some((l, acceptor)) = listeners.https {
            accept_loop(l, Some(acceptor), &shared).await;
        }
    };
    tokio::join!(http, https);
    if tokio::time::timeout(DRAIN_TIMEOUT, shared.graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some API requests did not finish before shutdown");
    }
}

/// Accepts on one listener until the API stops; `tls` makes it the HTTPS one.
async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, shared: &Shared) {
    let Shared {
        table,
        busy,
        graceful,
        state,
        stop,
    } = shared;
    loop {
        // Without a free place, an idle connection or a busy slot, leave clients in the backlog
        // rather than accept and drop them.
        while !table.has_room() && busy.available_permits() == 0 {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = table.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = Accepted {
            stream,
            peer,
            tls: tls.clone(),
            stop: stop.clone(),
        };
        if let Some(place) = table.admit() {
            serve_one(graceful.watcher(), conn, state.clone(), place);
        } else if let Ok(permit) = busy.clone().try_acquire_owned() {
            state.metrics.api.connections_busy.inc();
            tokio::spawn(async move {
                serve_busy(conn).await;
                drop(permit);
            });
        }
    }
}

/// A socket hyper can serve: a TCP stream, or a TLS stream over one.
trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// An accepted connection, before its TLS handshake if it came to the HTTPS listener.
struct Accepted {
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    /// The API's stop: a handshake still under way when it comes is abandoned.
    stop: Shutdown,
}

impl Accepted {
    /// The socket to serve HTTP on, after the TLS handshake if there is one; `None` when the
    /// handshake failed, ran out of `handshake_timeout` or the API stopped meanwhile.
    async fn open(self, handshake_timeout: Duration) -> Option<Box<dyn Io>> {
        let Some(acceptor) = self.tls else {
            return Some(Box::new(self.stream));
        };
        tokio::select! {
            tls = tls::handshake(&acceptor, self.stream, self.peer, handshake_timeout) => {
                tls.map(|t| Box::new(t) as Box<dyn Io>)
            }
            _ = self.stop.cancelled() => None,
        }
    }
}

fn http1() -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_header_size(MAX_HEAD)
        .max_buf_size(MAX_BUF)
        // One buffer per write, so that hyper's own error answer reaches `Wire` whole.
        .writev(false);
    b
}

fn serve_one(watcher: Watcher, accepted: Accepted, state: Arc<State>, place: Place) {
    let peer = accepted.peer;
    let over_https = accepted.tls.is_some();
    let conn = place.conn.clone();
    let service = service_fn(move |mut req: Request<Incoming>| {
        if over_https {
            req.extensions_mut().insert(super::session::OverHttps);
        }
        let state = state.clone();
        let in_flight = InFlight::new(conn.clone());
        async move {
            let response = super::handle(state, peer, req).await;
            // The request counts as in flight until its body (a stream, perhaps) is done.
            Ok::<_, Infallible>(response.map(|body| {
                Tracked {
                    body,
                    _in_flight: in_flight,
                }
                .boxed()
            }))
        }
    });
    let wire_conn = place.conn.clone();
    let served = async move {
        let Some(io) = accepted.open(tls::HANDSHAKE_TIMEOUT).await else {
            return;
        };
        let io = TokioIo::new(Wire::new(io, Some(wire_conn)));
        if let Err(e) = watcher.watch(http1().serve_connection(io, service)).await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    };
    tokio::spawn(async move {
        tokio::select! {
            _ = served => {}
            _ = place.conn.shed.cancelled() => {
                tracing::debug!(%peer, "idle connection closed to make room for a new one");
            }
        }
        drop(place);
    });
}

/// Answers every request on a connection past the limit with 503, then closes it.
/// A response body that keeps its connection counted as busy until the body is done or dropped.
/// It forwards the size hint, so a whole JSON answer keeps its `content-length` (a `map_frame`
/// wrapper would hide it and turn every answer chunked, which simple clients do not expect).
struct Tracked {
    body: super::Body,
    _in_flight: InFlight,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

async fn serve_busy(accepted: Accepted) {
    let peer = accepted.peer;
    let Some(io) = accepted.open(Duration::from_secs(2)).await else {
        return;
    };
    let service = service_fn(|_req: Request<Incoming>| async {
        let busy = ApiError::Busy {
            code: "too_many_connections",
            message: format!(
                "the API serves {MAX_CONNECTIONS} connections and each has a request in flight; \
                 try again shortly"
            ),
            retry_after: BUSY_RETRY_AFTER_S,
        };
        Ok::<_, Infallible>(busy.into_response())
    });
    let mut builder = http1();
    builder
        .keep_alive(false)
        .header_read_timeout(Duration::from_secs(2));
    let io = TokioIo::new(Wire::new(io, None));
    if let Err(e) = builder.serve_connection(io, service).await {
        tracing::debug!(%peer, error = %e, "busy connection ended with an error");
    }
}

/// Raises the soft descriptor limit to what the API needs, as far as the hard limit allows, and
/// returns how many connections fit. A unit without `LimitNOFILE` starts with a soft limit of 1024.
fn connection_limit() -> usize {
    let wanted = (MAX_CONNECTIONS + BUSY_CONNECTIONS + FD_RESERVE) as libc::rlim_t;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit through a valid pointer to a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return MAX_CONNECTIONS;
    }
    if lim.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted.min(lim.rlim_max),
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit through a valid pointer to a local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = raised.rlim_cur;
        }
    }
    let fit = (lim.rlim_cur as usize).saturating_sub(BUSY_CONNECTIONS + FD_RESERVE);
    if fit < MAX_CONNECTIONS {
        tracing::warn!(
            descriptors = lim.rlim_cur,
            connections = fit.max(16),
            "the descriptor limit (LimitNOFILE) is too low for {MAX_CONNECTIONS} API connections; \
             serving fewer"
        );
    }
    fit.clamp(16, MAX_CONNECTIONS)
}

/// One served connection, as the table sees it.
#[derive(Debug)]
pub(super) struct Conn {
    /// Requests whose response is not finished yet (a live stream is one for as long as it lasts).
    in_flight: AtomicUsize,
    /// When the client last sent a byte or a response finished, in ms since the table started.
    last_active: AtomicU64,
    /// Cancelled when the connection is closed to make room. A root of its own: the API's stop
    /// drains connections rather than cutting them.
    shed: Shutdown,
    epoch: Instant,
}

impl Conn {
    pub(super) fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_active.store(now, Ordering::Relaxed);
    }
}

/// The connections being served, to find the longest idle one when the limit is reached.
struct ConnTable {
    limit: usize,
    epoch: Instant,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// A connection ended: the accept loop may have room again.
    changed: tokio::sync::Notify,
    metrics: ApiMetrics,
}

/// A connection's place in the table, given back when dropped.
struct Place {
    table: Arc<ConnTable>,
    id: u64,
    conn: Arc<Conn>,
}

impl ConnTable {
    fn new(limit: usize, metrics: ApiMetrics) -> Self {
        ConnTable {
            limit,
            epoch: Instant::now(),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            changed: tokio::sync::Notify::new(),
            metrics,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A free place, or one an idle connection could give up.
    fn has_room(&self) -> bool {
        let conns = self.lock();
        conns.len() < self.limit || conns.values().any(|c| c.in_flight() == 0)
    }

    /// A place for a new connection: a free one, or the one of the connection idle the longest,
    /// which is closed. `None` when every connection has a request in flight.
    fn admit(self: &Arc<Self>) -> Option<Place> {
        let mut conns = self.lock();
        if conns.len() >= self.limit {
            let (&idlest, _) = conns
                .iter()
                .filter(|(_, c)| c.in_flight() == 0)
                .min_by_key(|(_, c)| c.last_active.load(Ordering::Relaxed))?;
            if let Some(c) = conns.remove(&idlest) {
                c.shed.cancel();
                self.metrics.connections_shed.inc();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            in_flight: AtomicUsize::new(0),
            last_active: AtomicU64::new(0),
            shed: Shutdown::new(),
            epoch: self.epoch,
        });
        conn.touch();
        conns.insert(id, conn.clone());
        self.metrics.connections.set(conns.len() as i64);
        Some(Place {
            table: self.clone(),
            id,
            conn,
        })
    }
}

impl Conn {
    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut conns = self.table.lock();
        conns.remove(&self.id);
        self.table.metrics.connections.set(conns.len() as i64);
        drop(conns);
        self.table.changed.notify_one();
    }
}

/// A request in flight on a connection, from the call of the service until its response body is
/// done (dropped by hyper).
struct InFlight(Arc<Conn>);

impl InFlight {
    fn new(conn: Arc<Conn>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::AcqRel);
        conn.touch();
        InFlight(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_idlest_connection_makes_room() {
        let table = Arc::new(ConnTable::new(2, ApiMetrics::default()));
        let a = table.admit().unwrap();
        let b = table.admit().unwrap();
        let _busy = InFlight::new(a.conn.clone());
        a.conn.last_active.store(0, Ordering::Relaxed);
        b.conn.last_active.store(5, Ordering::Relaxed);
        let c = table.admit().expect("b is idle and goes");
        assert!(b.conn.shed.is_cancelled() && !a.conn.shed.is_cancelled());
        let _busy_c = InFlight::new(c.conn.clone());
        assert!(table.admit().is_none(), "every connection is busy");
        drop(b);
        assert_eq!(
            table.lock().len(),
            2,
            "a shed place is not given back twice"
        );
    }
}
