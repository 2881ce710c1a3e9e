//! Signing in from a browser: a session cookie instead of the bearer token, and the CSRF token
//! that every write made with the cookie must carry.
//!
//! A browser cannot be trusted with the API token in JavaScript (any injected script would read
//! it), and cannot add it to `<img>` requests; a cookie it holds for us can be kept from scripts
//! (`HttpOnly`), from other sites (`SameSite=Strict`) and from plain HTTP once it came over HTTPS
//! (`Secure`). The rules:
//! * `POST /api/v1/session {"token"}` with the token in force opens a session: a random 256-bit
//!   id in the cookie `facecv_session`, and a random CSRF token in the answer. A session lasts
//!   `api.session_ttl_minutes` from its start, whatever its use. At most [`MAX_SESSIONS`] are
//!   kept (in memory: a restart signs everyone out); a new one past that ends the oldest.
//! * A request with the cookie and no bearer token is let in as its session. If it changes
//!   something (`guard::changes_state`: every method but GET/HEAD/OPTIONS, and the SSE stream)
//!   it must carry `X-CSRF-Token` equal to its session's, else 403 `csrf_token_invalid`: a page of
//!   another site that gets the browser to send the cookie cannot read the CSRF token. This is on
//!   top of `guard`'s Origin and Sec-Fetch-Site checks, which still apply.
//! * Without `api.token` the API answers loopback peers only, as before. `GET /api/v1/session`
//!   there opens a session (`auth: "loopback"`) so that the console's writes are CSRF-checked
//!   too; a request without the cookie (a script) is let in as before.
//! * Failed sign-ins are bounded (`attempts`); bearer requests are unchanged.
//! * Console pages and `/api/v1/session` need no token: they hold no secret.
//!
//! Sessions are looked up by the SHA-256 of the cookie's value, never by the value, so the time
//! a lookup takes says nothing usable about the ids in the table; CSRF tokens are compared as
//! digests in constant time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::header::{COOKIE, SET_COOKIE};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::attempts::Attempts;
use super::routes::{route, Params, Route};
use super::{guard, ApiError, ApiResult, Body, State};
use crate::events::format_timestamp;

/// The cookie's name (fixed by the console's contract).
pub const COOKIE_NAME: &str = "facecv_session";
/// Sessions kept at once; a new one past this ends the oldest. A handful of people sign in to an
/// appliance; 64 leaves room for many browsers without letting sign-ins grow memory.
pub const MAX_SESSIONS: usize = 64;
const CSRF_HEADER: &str = "x-csrf-token";

/// A request that came in on the HTTPS listener (a request extension set by the server): its
/// cookie is marked `Secure`.
#[derive(Debug, Clone, Copy)]
pub struct OverHttps;

/// The peer's address (a request extension set by `handle`), for the count of failed sign-ins.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer(pub SocketAddr);

/// The SHA-256 of a session id: how the table knows a session.
pub(super) type SessionKey = [u8; 32];

/// Who a request was let in as (a request extension set by `authorize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Caller {
    /// `Authorization: Bearer` with the token in force.
    Bearer,
    /// The session cookie.
    Session(SessionKey),
    /// A loopback peer without a cookie, when no token is set.
    Loopback,
    /// Nobody in particular, on a path that needs no token (console pages, the session route).
    Anonymous,
}

struct Session {
    csrf: String,
    created: Instant,
    expires: Instant,
    expires_at: OffsetDateTime,
}

/// A live session, as a handler needs it.
#[derive(Debug, Clone)]
pub(super) struct Found {
    pub key: SessionKey,
    pub csrf: String,
    pub expires_at: OffsetDateTime,
}

/// The sessions of this run, and the count of failed sign-ins.
pub struct Sessions {
    ttl: Duration,
    table: Mutex<HashMap<SessionKey, Session>>,
    pub(super) attempts: Attempts,
}

fn random_hex() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn key_of(id: &str) -> SessionKey {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            ttl,
            table: Mutex::new(HashMap::new()),
            attempts: Attempts::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Session>> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session; returns the cookie's value (the id, which only the browser keeps) and it.
    pub(super) fn open(&self, now: Instant) -> (String, Found) {
        let id = random_hex();
        let key = key_of(&id);
        let session = Session {
            csrf: random_hex(),
            created: now,
            expires: now + self.ttl,
            expires_at: OffsetDateTime::now_utc() + self.ttl,
        };
        let found = Found {
            key,
            csrf: session.csrf.clone(),
            expires_at: session.expires_at,
        };
        let mut table = self.lock();
        table.retain(|_, s| s.expires > now);
        while table.len() >= MAX_SESSIONS {
            let oldest = table.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k);
            match oldest {
                Some(k) => table.remove(&k),
                None => break,
            };
        }
        table.insert(key, session);
        (id, found)
    }

    /// The live session of a cookie's value.
    pub(super) fn find(&self, id: &str, now: Instant) -> Option<Found> {
        let key = key_of(id);
        let mut table = self.lock();
        let s = table.get(&key)?;
        if s.expires <= now {
            table.remove(&key);
            return None;
        }
        Some(Found {
            key,
            csrf: s.csrf.clone(),
            expires_at: s.expires_at,
        })
    }

    pub(super) fn end(&self, key: &SessionKey) {
        self.lock().remove(key);
    }

    /// Ends every session but `keep`; returns how many ended.
    pub(super) fn end_all_but(&self, keep: Option<SessionKey>) -> usize {
        let mut table = self.lock();
        let before = table.len();
        table.retain(|k, _| Some(*k) == keep);
        before - table.len()
    }

    /// Seconds a new session lasts: the cookie's `Max-Age`.
    fn max_age(&self) -> u64 {
        self.ttl.as_secs()
    }
}

/// The value of the `facecv_session` cookie, from any `Cookie` header.
fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// What the request's cookie says.
enum Cookie {
    None,
    Live(Found),
    /// A cookie whose session ended (expired, signed out, rotated away, or the appliance
    /// restarted).
    Ended,
}

fn cookie(state: &State, headers: &HeaderMap) -> Cookie {
    match cookie_value(headers) {
        None => Cookie::None,
        Some(id) => match state.sessions.find(id, Instant::now()) {
            Some(f) => Cookie::Live(f),
            None => Cookie::Ended,
        },
    }
}

/// Paths that need no token: the routes the table marks public (the console's pages and files,
/// signing in, the OpenAPI document: they hold no secret).
fn is_public(segments: &[String]) -> bool {
    super::TABLE.is_public(segments)
}

fn is_sign_in<B>(req: &Request<B>) -> bool {
    req.method() == Method::POST && req.uri().path().trim_end_matches('/') == "/api/v1/session"
}

fn csrf_invalid(message: &str) -> ApiError {
    ApiError::Denied {
        code: "csrf_token_invalid",
        message: message.to_owned(),
    }
}

/// A write made with the cookie carries its session's CSRF token (sign-in excepted: it carries the
/// API token itself).
fn check_csrf<B>(req: &Request<B>, session: &Found) -> Result<(), ApiError> {
    if !guard::changes_state(req.method(), req.uri().path()) || is_sign_in(req) {
        return Ok(());
    }
    let given = req
        .headers()
        .get(CSRF_HEADER)
        .map(|v| Sha256::digest(v.as_bytes()))
        .ok_or_else(|| {
            csrf_invalid(
                "a change made with the session cookie needs the X-CSRF-Token header with the \
                 csrf_token of GET /api/v1/session",
            )
        })?;
    let want = Sha256::digest(session.csrf.as_bytes());
    if bool::from(given.ct_eq(&want)) {
        Ok(())
    } else {
        Err(csrf_invalid(
            "X-CSRF-Token is not this session's csrf_token (GET /api/v1/session gives it)",
        ))
    }
}

/// Who may ask: a loopback peer without a token, the token's holder or a live session with one;
/// anyone for the public paths. Writes made with the cookie need the CSRF token.
pub(super) fn identify(
    state: &State,
    peer: SocketAddr,
    req: &Request<Incoming>,
) -> Result<Caller, ApiError> {
    // Decoded as the router decodes it, so that what is public here is what the routes serve; a
    // path that does not decode is no page (the router answers it, once the caller is known).
    let path = req.uri().path().trim_end_matches('/');
    let public = super::path_segments(path).is_ok_and(|decoded| is_public(&decoded));
    if !state.token.is_set() {
        if !super::is_loopback(peer.ip()) {
            return Err(ApiError::Forbidden);
        }
        return match cookie(state, req.headers()) {
            Cookie::None => Ok(Caller::Loopback),
            Cookie::Live(s) => check_csrf(req, &s).map(|()| Caller::Session(s.key)),
            // A browser whose session ended: its writes are refused until it opens another,
            // rather than let through as a script's would be.
            Cookie::Ended if !public && guard::changes_state(req.method(), req.uri().path()) => {
                Err(csrf_invalid(
                    "this browser's session has ended; GET /api/v1/session opens another \
                     (reload the console)",
                ))
            }
            Cookie::Ended => Ok(Caller::Loopback),
        };
    }
    if let Some(given) = guard::bearer(req.headers()) {
        if state.token.matches(given) {
            return Ok(Caller::Bearer);
        }
    }
    match cookie(state, req.headers()) {
        Cookie::Live(s) => check_csrf(req, &s).map(|()| Caller::Session(s.key)),
        _ if public => Ok(Caller::Anonymous),
        _ => Err(ApiError::Unauthorized),
    }
}

pub(super) fn routes() -> Vec<Route> {
    vec![
        route!(session_status).public(),
        route!(sign_in).public(),
        route!(sign_out).public(),
    ]
}

/// The session route's answer.
#[derive(Serialize, ToSchema)]
pub(super) struct SessionAnswer {
    /// Whether the caller is signed in (a live session, or the bearer token).
    signed_in: bool,
    /// `token` with `api.token` set; `loopback` without one (the API answers this machine only).
    auth: AuthMode,
    /// The session's CSRF token, for `X-CSRF-Token` on writes; `null` without a session.
    csrf_token: Option<String>,
    /// When the session ends (RFC 3339, UTC); `null` without a session.
    expires_at: Option<String>,
}

#[derive(Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum AuthMode {
    Token,
    Loopback,
}

/// A sign-in: the API token in force.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct SignIn {
    #[schema(example = "0123456789abcdef")]
    token: String,
}

/// What the request's extensions and cookie say of the caller.
struct Asked {
    caller: Option<Caller>,
    peer: SocketAddr,
    secure: bool,
    presented: Cookie,
    auth: AuthMode,
}

fn asked(state: &State, req: &Request<Incoming>) -> Result<Asked, ApiError> {
    let Some(&Peer(peer)) = req.extensions().get::<Peer>() else {
        return Err(ApiError::Internal(
            "the request came without its peer".into(),
        ));
    };
    Ok(Asked {
        caller: req.extensions().get::<Caller>().copied(),
        peer,
        secure: req.extensions().get::<OverHttps>().is_some(),
        presented: cookie(state, req.headers()),
        auth: if state.token.is_set() {
            AuthMode::Token
        } else {
            AuthMode::Loopback
        },
    })
}

/// Who the browser is.
///
/// Public. With a live cookie: its session; with the bearer token: signed in, no session; on
/// this machine without `api.token`: a new session (so that the console's writes are
/// CSRF-checked too); otherwise signed out (and a stale cookie cleared).
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, description = "The caller's session, if any", body = SessionAnswer)))]
pub(super) async fn session_status(
    state: Arc<State>,
    req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    let a = asked(&state, &req)?;
    Ok(match (a.presented, a.caller) {
        (Cookie::Live(s), _) => answer(a.auth, true, Some(&s), None),
        (_, Some(Caller::Bearer)) => answer(a.auth, true, None, None),
        // The console on this machine, without a token: signed in by where it is.
        _ if !state.token.is_set() => open(&state, a.auth, a.secure),
        _ => signed_out(a.auth, false, a.secure),
    })
}

/// Signs in with the API token: a session cookie and its CSRF token.
///
/// Public. Sets `facecv_session` (`HttpOnly; SameSite=Strict; Path=/`, `Secure` over HTTPS).
/// Failed sign-ins are bounded: after 5 a minute from one address, or 30 from all, 429.
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = SignIn,
    responses(
        (status = 200, description = "Signed in; the cookie is set", body = SessionAnswer),
        (status = 401, description = "Not the token in force (`invalid_token`)"),
        (status = 429, description = "Too many failed sign-ins (`too_many_attempts`)")))]
pub(super) async fn sign_in(
    state: Arc<State>,
    req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    let a = asked(&state, &req)?;
    let (state, peer): (&State, SocketAddr) = (&state, a.peer);
    let body: SignIn = super::read_json(state, req).await?;
    let attempts = &state.sessions.attempts;
    if let Err(retry_after) = attempts.check(peer.ip(), Instant::now()) {
        return Err(ApiError::TooMany {
            code: "too_many_attempts",
            message: format!(
                "too many failed sign-ins; try again in {retry_after} s (at most {} a minute \
                 from one address, {} from all)",
                super::attempts::PER_PEER,
                super::attempts::IN_ALL
            ),
            retry_after,
        });
    }
    // Without a token there is nothing to check: the loopback console is signed in by where it is.
    if state.token.is_set() && !state.token.matches(&body.token) {
        attempts.failed(peer.ip(), Instant::now());
        tracing::warn!(%peer, "failed console sign-in");
        return Err(ApiError::InvalidToken);
    }
    if let Cookie::Live(old) = a.presented {
        state.sessions.end(&old.key);
    }
    tracing::info!(%peer, "console sign-in");
    Ok(open(state, a.auth, a.secure))
}

/// Signs out: ends the cookie's session and clears the cookie.
///
/// Public, and 204 whether or not there was a session.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204, description = "Signed out; the cookie is cleared")))]
pub(super) async fn sign_out(
    state: Arc<State>,
    req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    let a = asked(&state, &req)?;
    if let Cookie::Live(s) = a.presented {
        state.sessions.end(&s.key);
    }
    Ok(signed_out(a.auth, true, a.secure))
}

/// A new session: its JSON and the cookie.
fn open(state: &State, auth: AuthMode, secure: bool) -> Response<Body> {
    let (id, found) = state.sessions.open(Instant::now());
    let cookie = set_cookie(&id, state.sessions.max_age(), secure);
    answer(auth, true, Some(&found), Some(cookie))
}

/// Not signed in: 200 with the JSON (GET), or 204 (DELETE); both clear a cookie the browser holds.
fn signed_out(auth: AuthMode, no_content: bool, secure: bool) -> Response<Body> {
    let clear = set_cookie("", 0, secure);
    if no_content {
        let mut r = Response::new(super::empty_body());
        *r.status_mut() = StatusCode::NO_CONTENT;
        r.headers_mut().insert(SET_COOKIE, clear);
        return r;
    }
    answer(auth, false, None, Some(clear))
}

/// The session route's JSON; `signed_in` without a session is a bearer client asking.
fn answer(
    auth: AuthMode,
    signed_in: bool,
    session: Option<&Found>,
    cookie: Option<HeaderValue>,
) -> Response<Body> {
    let mut r = super::json_response(
        StatusCode::OK,
        &SessionAnswer {
            signed_in,
            auth,
            csrf_token: session.map(|s| s.csrf.clone()),
            expires_at: session.map(|s| format_timestamp(s.expires_at)),
        },
    );
    if let Some(c) = cookie {
        r.headers_mut().insert(SET_COOKIE, c);
    }
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    r
}

/// `Set-Cookie` for `value` (empty and `max_age` 0: clear it).
fn set_cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE_NAME}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&text).expect("hex ids and fixed attributes make a valid header")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_the_oldest_goes_past_the_cap() {
        let s = Sessions::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let (id, found) = s.open(t0);
        assert_eq!(id.len(), 64);
        assert_ne!(found.csrf, id);
        assert!(s.find(&id, t0 + Duration::from_secs(59)).is_some());
        assert!(
            s.find(&id, t0 + Duration::from_secs(60)).is_none(),
            "expired"
        );
        assert!(s.find(&id, t0).is_none(), "and gone");

        let ids: Vec<String> = (0..MAX_SESSIONS as u64)
            .map(|i| s.open(t0 + Duration::from_millis(i)).0)
            .collect();
        let now = t0 + Duration::from_secs(1);
        let (newest, _) = s.open(now);
        assert!(s.find(&ids[0], now).is_none(), "the oldest ended");
        assert!(s.find(&ids[1], now).is_some() && s.find(&newest, now).is_some());
        assert_eq!(s.lock().len(), MAX_SESSIONS);
        let keep = key_of(&newest);
        assert_eq!(s.end_all_but(Some(keep)), MAX_SESSIONS - 1);
        assert!(s.find(&newest, now).is_some());
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, "a=1; facecv_session=abc ; b=2".parse().unwrap());
        assert_eq!(cookie_value(&h), Some("abc"));
        let mut h = HeaderMap::new();
        h.append(COOKIE, "x_facecv_session=abc".parse().unwrap());
        h.append(COOKIE, "facecv_session=".parse().unwrap());
        assert_eq!(cookie_value(&h), None);
    }

    #[test]
    fn public_paths_are_the_console_signing_in_and_the_document() {
        let segs = |p: &str| -> Vec<String> {
            p.split('/')
                .skip(1)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        for p in [
            "/",
            "/signin",
            "/system",
            "/assets/app.css",
            "/assets/js/app.js",
        ] {
            assert!(is_public(&segs(p)), "{p}");
        }
        assert!(is_public(&segs("/api/v1/session")));
        assert!(is_public(&segs("/api/v1/openapi.json")));
        for p in ["/health", "/api/v1/system", "/api/v1/session/x", "/nothing"] {
            assert!(!is_public(&segs(p)), "{p}");
        }
    }
}
