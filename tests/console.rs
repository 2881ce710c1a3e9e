//! The web console as the real binary serves it: the shell page on every page path, the assets
//! with their types, validators and the security headers, 404 for what is not there, and the
//! API behind it still closed to whoever lacks the token.

mod common;

use bytes::Bytes;
use common::{free_port, write_config, Binary};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

const PAGES: [&str; 8] = [
    "/",
    "/signin",
    "/cameras",
    "/people",
    "/events",
    "/webhooks",
    "/mqtt",
    "/system",
];

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header"))
            .to_str()
            .unwrap()
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.to_vec()).unwrap()
    }

    /// The headers every console answer carries.
    fn assert_secured(&self, what: &str) {
        assert_eq!(self.header("content-security-policy"), CSP, "{what}");
        assert_eq!(self.header("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(self.header("referrer-policy"), "no-referrer", "{what}");
        assert_eq!(self.header("x-frame-options"), "DENY", "{what}");
    }
}

async fn request(port: u16, method: Method, path: &str, headers: &[(&str, &str)]) -> Answer {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .expect("the appliance answers");
    let (parts, body) = resp.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

async fn get(port: u16, path: &str) -> Answer {
    request(port, Method::GET, path, &[]).await
}

async fn start(rest: &str) -> (tempfile::TempDir, Binary) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, rest);
    let binary = Binary::start(&config, port).await;
    (dir, binary)
}

#[tokio::test]
async fn every_page_path_gets_the_shell_page_with_the_security_headers() {
    let (_dir, app) = start("").await;
    for path in PAGES
        .iter()
        .chain(&["/cameras/", "/events?event_type=stranger_alert"])
    {
        let a = get(app.port, path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(
            a.header("content-type"),
            "text/html; charset=utf-8",
            "{path}"
        );
        assert_eq!(a.header("cache-control"), "no-cache", "{path}");
        a.assert_secured(path);
        let html = a.text();
        assert!(html.contains("<main id=\"main\""), "{path}: {html}");
        assert!(html.contains("src=\"/assets/js/app.js\""), "{path}");
    }
    // HEAD answers as GET does, without the body.
    let head = request(app.port, Method::HEAD, "/cameras", &[]).await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
    head.assert_secured("HEAD /cameras");
    // The shell is read-only.
    let post = request(app.port, Method::POST, "/", &[]).await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn assets_are_served_with_their_types_and_validators() {
    let (_dir, app) = start("").await;
    for (path, ty) in [
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/js/app.js", "text/javascript; charset=utf-8"),
        ("/assets/js/api.js", "text/javascript; charset=utf-8"),
        ("/assets/js/ui.js", "text/javascript; charset=utf-8"),
        (
            "/assets/js/pages/overview.js",
            "text/javascript; charset=utf-8",
        ),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let a = get(app.port, path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(a.header("content-type"), ty, "{path}");
        assert_eq!(a.header("cache-control"), "no-cache", "{path}");
        assert!(!a.body.is_empty(), "{path}");
        a.assert_secured(path);
        // The same file again with its ETag: 304 and no body; a stale tag gets the file.
        let etag = a.header("etag").to_owned();
        assert!(etag.starts_with('"') && etag.len() > 10, "{path}: {etag}");
        let again = request(app.port, Method::GET, path, &[("if-none-match", &etag)]).await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), etag);
        let stale = request(app.port, Method::GET, path, &[("if-none-match", "\"0\"")]).await;
        assert_eq!(stale.status, StatusCode::OK, "{path}");
        assert_eq!(stale.body, a.body);
    }
}

#[tokio::test]
async fn what_is_not_embedded_is_not_found() {
    let (_dir, app) = start("").await;
    for path in [
        "/assets/nope.js",
        "/assets/",
        "/assets/js/../../index.html",
        "/assets/js/%2E%2E/app.css",
        "/assets/.hidden",
        "/assets/js",
    ] {
        let a = get(app.port, path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}: {}", a.text());
        a.assert_secured(path);
        let v: serde_json::Value = serde_json::from_slice(&a.body).unwrap();
        assert_eq!(v["error"]["code"], "not_found", "{path}");
    }
    // Neither the tests of the console nor anything else of the checkout is served.
    assert_eq!(
        get(app.port, "/tests/console.spec.js").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(app.port, "/index.html").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(app.port, "/peoplex").await.status,
        StatusCode::NOT_FOUND
    );
}

/// With a token, the pages hold no secret and load without it; the API behind them does not.
/// `authorize()` lets console paths through; `/api/` keeps needing the token.
#[tokio::test]
async fn pages_need_no_token_but_the_api_does() {
    let (_dir, app) = common::start_with_token(TOKEN).await;
    for path in PAGES.iter().chain(&["/assets/js/app.js"]) {
        let a = get(app.port, path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        a.assert_secured(path);
    }
    let api = get(app.port, "/api/v1/cameras").await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_api_keeps_needing_the_token() {
    let (_dir, app) = common::start_with_token(TOKEN).await;
    for path in ["/api/v1/cameras", "/api/v1/events", "/api/v1/webhooks"] {
        let a = get(app.port, path).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, _) = app
        .api
        .clone()
        .with_token(TOKEN)
        .get("/api/v1/cameras")
        .await;
    assert_eq!(status, StatusCode::OK);
}

const TOKEN: &str = "console-test-token-0123456789";

/// The shell obeys its own CSP: no inline script or style, nothing from another host, and every
/// file it names is embedded; no script writes data into the page as markup.
#[tokio::test]
async fn the_shell_runs_under_its_policy() {
    let (_dir, app) = start("").await;
    let html = get(app.port, "/").await.text();
    assert!(!html.contains("style="), "inline style in index.html");
    assert!(!html.contains("<style"), "a style element in index.html");
    for tag in html.split("<script").skip(1) {
        let open = &tag[..tag.find('>').unwrap()];
        assert!(
            open.contains("src=\"/assets/"),
            "inline or foreign script: {open}"
        );
    }
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = &part[..part.find('"').unwrap()];
            if url.starts_with("/assets/") {
                let a = get(app.port, url).await;
                assert_eq!(a.status, StatusCode::OK, "{url} is named but not embedded");
            } else {
                assert!(
                    url.starts_with('/') || url.starts_with('#'),
                    "{url} is not this appliance's"
                );
            }
        }
    }
    for script in ["app.js", "api.js", "ui.js"] {
        let js = get(app.port, &format!("/assets/js/{script}")).await.text();
        assert!(!js.contains("innerHTML"), "{script} writes markup");
        assert!(
            !js.contains("http://") && !js.contains("https://"),
            "{script} names another host"
        );
    }
}

/// Every module a script imports is embedded: a page whose import is missing would load as a
/// blank page with one line in the browser's console.
#[tokio::test]
async fn every_imported_module_is_embedded() {
    let (_dir, app) = start("").await;
    // The router imports each page by name (`./pages/${name}.js`): these are the pages of the
    // shell's own part; the others come with their own tests.
    let mut queue: Vec<String> = [
        "app",
        "pages/overview",
        "pages/signin",
        "pages/cameras",
        "pages/events",
        "pages/system",
    ]
    .iter()
    .map(|m| format!("/assets/js/{m}.js"))
    .collect();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(path) = queue.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let a = get(app.port, &path).await;
        assert_eq!(
            a.status,
            StatusCode::OK,
            "{path} is imported but not embedded"
        );
        let js = a.text();
        // Static imports, one a line (`import { h } from './ui.js';`), and literal dynamic ones.
        for line in js.lines().map(str::trim_start) {
            let spec = match (
                line.starts_with("import "),
                line.find(" from '"),
                line.find("import('"),
            ) {
                (true, Some(i), _) => &line[i + 7..],
                (_, _, Some(i)) => &line[i + 8..],
                _ => continue,
            };
            queue.push(resolve(&path, &spec[..spec.find('\'').unwrap()]));
        }
    }
    assert!(seen.contains("/assets/js/live.js"), "{seen:?}");
}

/// `spec` (`./ui.js`, `../api.js`) relative to the module at `from`.
fn resolve(from: &str, spec: &str) -> String {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for seg in spec.split('/') {
        match seg {
            "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}
