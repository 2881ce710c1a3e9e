//! Requests a browser was tricked into sending, and the token check.
//!
//! Without a token the API trusts whoever is on this machine; a web browser on the device (a kiosk
//! screen, an installer's laptop with the API tunnelled to `localhost`) is on this machine too,
//! and opens pages from anywhere. Two browser attacks follow, and the defences Jupyter and Home
//! Assistant use against them:
//! * **Cross-site requests** (CSRF): a page on `evil.example` posts a form or an `<img>` to
//!   `http://localhost:7000/...`. Browsers mark such a request with `Origin` (every POST, every
//!   CORS request) and `Sec-Fetch-Site`; a request that changes something is refused when its
//!   `Origin` is not the API's own `Host`, or `Sec-Fetch-Site` is `cross-site` or `same-site`.
//!   `same-site` is refused too: to a browser, `localhost:8888` (another app on the device) is the
//!   same site as `localhost:7000`, and that app's bugs must not become ours. Only `same-origin`
//!   (the console this API will serve) and `none` (typed in the address bar) pass.
//!   "Changes something" is every method but GET, HEAD and OPTIONS, and the SSE stream's GET,
//!   which makes cameras and webhooks.
//! * **DNS rebinding**: `evil.example` resolves to 127.0.0.1 after the page loaded, so the page's
//!   requests are same-origin but carry `Host: evil.example`. Without a token, a `Host` that is
//!   not a loopback name is refused for every request. With a token the `Host` is free (boards
//!   are reached as `raspberrypi.local` or by address), and a browser cannot add the token.
//!
//! JSON bodies must say `Content-Type: application/json` (see `super::read_json`): a form can
//! send `text/plain` across sites without asking; it cannot send JSON without a CORS preflight,
//! which this API never grants.

use http::header::{AUTHORIZATION, HOST, ORIGIN};
use http::{HeaderMap, Method, Request};

use super::ApiError;

/// The checks of the module comment; `has_token` says whether `api.token` is set.
pub(super) fn check<B>(req: &Request<B>, has_token: bool) -> Result<(), ApiError> {
    let headers = req.headers();
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    if !has_token && !host.is_some_and(is_loopback_host) {
        return Err(ApiError::Denied {
            code: "host_not_allowed",
            message: "without api.token the API answers only to a loopback Host (localhost, \
                      127.0.0.1, [::1]); set api.token to use it by another name"
                .into(),
        });
    }
    if !changes_state(req.method(), req.uri().path()) {
        return Ok(());
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.to_str().unwrap_or("").trim().to_ascii_lowercase();
        if !matches!(site.as_str(), "same-origin" | "none") {
            return Err(ApiError::Denied {
                code: "cross_site_request",
                message: format!(
                    "the browser marked this request Sec-Fetch-Site: {site}; only pages of this \
                     API may change it"
                ),
            });
        }
    }
    if let Some(origin) = headers.get(ORIGIN) {
        if !same_origin(origin.to_str().unwrap_or(""), host.unwrap_or("")) {
            return Err(ApiError::Denied {
                code: "foreign_origin",
                message: "the request comes from a page of another origin; only pages of this \
                          API may change it"
                    .into(),
            });
        }
    }
    Ok(())
}

/// Every method that may change something, and the live stream, whose GET adds a camera and
/// webhooks. The path is decoded as the router decodes it, so `strea%6D` is the stream too.
pub(super) fn changes_state(method: &Method, path: &str) -> bool {
    let path = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || path
            .trim_end_matches('/')
            .ends_with("/recognize/webcam/stream")
}

/// `localhost`, `127.x.x.x` or `[::1]`, with or without a port.
fn is_loopback_host(host: &str) -> bool {
    let Some((name, _port)) = split_host(host) else {
        return false;
    };
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost")
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Host and port of a `Host` value (`name`, `name:port`, `[v6]:port`); `None` when malformed.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    let host = host.trim();
    let (name, port) = match host.rfind(':') {
        Some(i) if !host[i..].contains(']') => (&host[..i], Some(&host[i + 1..])),
        _ => (host, None),
    };
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    (!name.is_empty()).then_some((name, port))
}

/// Whether `origin` (`scheme://host[:port]`) names the same host and port as `host` (the request's
/// `Host`). A missing port is the scheme's default on both sides; `null` (sandboxed frames,
/// `file:` pages) is never the same.
fn same_origin(origin: &str, host: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    let (Some(o_host), Some(o_port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    let Some((h_name, h_port)) = split_host(host) else {
        return false;
    };
    o_host.eq_ignore_ascii_case(h_name) && o_port == h_port.unwrap_or(o_port)
}

/// The token of `Authorization: Bearer <token>`, the scheme in any case (RFC 7235). The caller
/// compares it in constant time (`token::ApiToken::matches` hashes both sides first, so the time
/// taken says nothing of the guess, its length included).
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim_start_matches(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
        let mut r = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap()
    }

    fn code(r: Result<(), ApiError>) -> Option<&'static str> {
        match r {
            Ok(()) => None,
            Err(ApiError::Denied { code, .. }) => Some(code),
            Err(e) => panic!("unexpected {e}"),
        }
    }

    #[test]
    fn loopback_names_only_without_a_token() {
        for ok in [
            "localhost",
            "localhost:7000",
            "LOCALHOST.:7000",
            "127.0.0.1",
            "127.1.2.3:7000",
            "[::1]",
            "[::1]:7000",
        ] {
            let r = req(Method::GET, "/health", &[("host", ok)]);
            assert_eq!(code(check(&r, false)), None, "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7000",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "192.168.1.20:7000",
            "",
            "localhost:x",
        ] {
            let r = req(Method::GET, "/health", &[("host", bad)]);
            assert_eq!(code(check(&r, false)), Some("host_not_allowed"), "{bad}");
            assert_eq!(code(check(&r, true)), None, "{bad} with a token");
        }
        let no_host = req(Method::GET, "/health", &[]);
        assert_eq!(code(check(&no_host, false)), Some("host_not_allowed"));
    }

    #[test]
    fn changes_come_from_the_same_origin_or_no_browser() {
        let host = ("host", "localhost:7000");
        let post = |extra: &[(&str, &str)]| {
            let mut h = vec![host];
            h.extend_from_slice(extra);
            code(check(&req(Method::POST, "/api/v1/cameras", &h), false))
        };
        assert_eq!(post(&[]), None);
        assert_eq!(post(&[("origin", "http://localhost:7000")]), None);
        assert_eq!(post(&[("sec-fetch-site", "same-origin")]), None);
        assert_eq!(post(&[("sec-fetch-site", "none")]), None);
        assert_eq!(
            post(&[("origin", "http://evil.example")]),
            Some("foreign_origin")
        );
        assert_eq!(
            post(&[("origin", "http://localhost:8888")]),
            Some("foreign_origin")
        );
        assert_eq!(post(&[("origin", "null")]), Some("foreign_origin"));
        assert_eq!(
            post(&[("sec-fetch-site", "cross-site")]),
            Some("cross_site_request")
        );
        assert_eq!(
            post(&[("sec-fetch-site", "same-site")]),
            Some("cross_site_request")
        );
        let default_port = req(
            Method::DELETE,
            "/x",
            &[("host", "localhost"), ("origin", "http://localhost")],
        );
        assert_eq!(code(check(&default_port, false)), None);

        let foreign = [
            host,
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ];
        let read = req(Method::GET, "/api/v1/cameras", &foreign);
        assert_eq!(code(check(&read, false)), None, "reads are not refused");
        let sse = "/api/v1/face_recognition_insightface/recognize/webcam/stream?source=0";
        let stream = req(Method::GET, sse, &foreign);
        assert_eq!(code(check(&stream, false)), Some("cross_site_request"));
        let encoded = "/api/v1/face_recognition_insightface/recognize/webcam/strea%6D/";
        let stream = req(Method::GET, encoded, &foreign);
        assert_eq!(code(check(&stream, false)), Some("cross_site_request"));
    }

    #[test]
    fn bearer_is_case_insensitive_and_exact() {
        let token = "0123456789abcdef";
        let bearer_matches = |h: &HeaderMap, token: &str| bearer(h) == Some(token);
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, v.parse().unwrap());
            bearer_matches(&h, token)
        };
        assert!(with("Bearer 0123456789abcdef"));
        assert!(with("bearer 0123456789abcdef"));
        assert!(with("BEARER  0123456789abcdef"));
        assert!(!with("Bearer 0123456789abcdeF"));
        assert!(!with("Bearer 0123456789abcde"));
        assert!(!with("Bearer 0123456789abcdef0"));
        assert!(!with("Basic 0123456789abcdef"));
        assert!(!with("Bearer0123456789abcdef"));
        assert!(!bearer_matches(&HeaderMap::new(), token));
    }
}
