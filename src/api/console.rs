//! The web console: one shell page and its assets, built into the binary from `console/`, so the
//! appliance serves its own admin pages on a LAN with no internet and no Node at build time.
//!
//! The pages hold no secret (the data comes from `/api/...`, which keeps needing the token or a
//! session), so they are public. Every answer carries a strict Content-Security-Policy: the
//! console runs no inline script or style and loads nothing from another origin, so an event
//! text or a camera name that slipped into the page as markup could not run.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use include_dir::{include_dir, Dir};
use sha2::{Digest, Sha256};

use super::routes::{route, Params, Route};
use super::{ApiError, ApiResult, Body, State};

/// Only `assets/` and the shell page: `console/tests/` (the browser tests) stays out of the binary.
static ASSETS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/console/assets");
static INDEX: &[u8] = include_bytes!("../../console/index.html");

/// The shell page's paths, each a route of its own: the browser's router (`assets/js/app.js`)
/// draws the page, so a reload or a bookmark of any of them gets the same HTML.
macro_rules! pages {
    ($($name:ident = $path:tt),* $(,)?) => {
        $(
            /// The console's shell page (the same HTML on every page path).
            ///
            /// Public: the page holds no secret; the data it shows comes from `/api/...`.
            #[utoipa::path(get, path = $path, tag = "console",
                responses(
                    (status = 200, description = "The shell page", content_type = "text/html",
                        body = String),
                    (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`")))]
            async fn $name(_state: Arc<State>, req: Request<Incoming>, _params: Params) -> ApiResult {
                serve(&req, "index.html")
            }
        )*

        pub(super) fn routes() -> Vec<Route> {
            vec![$(route!($name).public(),)* route!(console_asset).rest().public()]
        }
    };
}

pages! {
    console_home = "/",
    console_signin = "/signin",
    console_cameras = "/cameras",
    console_people = "/people",
    console_events = "/events",
    console_webhooks = "/webhooks",
    console_mqtt = "/mqtt",
    console_system = "/system",
}

const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// Each embedded file with its `ETag` (a strong one: a prefix of its SHA-256), computed once: with
/// `Cache-Control: no-cache` the browser asks again on every load, and an unchanged file costs a
/// 304 rather than its bytes, while a new version of the binary is never hidden behind a cache.
/// Keyed by the path below `console/` (`index.html`, `assets/js/app.js`).
static FILES: LazyLock<HashMap<String, (&'static [u8], String)>> = LazyLock::new(|| {
    let mut files = HashMap::new();
    files.insert("index.html".to_owned(), (INDEX, etag(INDEX)));
    collect(&ASSETS, &mut files);
    files
});

fn collect(dir: &'static Dir<'static>, files: &mut HashMap<String, (&'static [u8], String)>) {
    for file in dir.files() {
        let path = file.path().to_str().expect("console file names are UTF-8");
        let contents = file.contents();
        files.insert(format!("assets/{path}"), (contents, etag(contents)));
    }
    for sub in dir.dirs() {
        collect(sub, files);
    }
}

fn etag(contents: &[u8]) -> String {
    let digest = Sha256::digest(contents);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

/// A file of the console's scripts, styles and pictures.
///
/// Public, like the pages. `{path}` is the rest of the path, slashes and all (`js/app.js`).
#[utoipa::path(get, path = "/assets/{path}", tag = "console",
    params(("path" = String, Path, description = "The file below `console/assets/`, slashes and all",
        example = "js/app.js")),
    responses(
        (status = 200, description = "The file, typed by its extension",
            content((String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"),
                (String = "image/png"), (String = "application/json"), (String = "text/plain"),
                (String = "text/html"))),
        (status = 304, description = "Unchanged since the `ETag` in `If-None-Match`"),
        (status = 404, description = "No such file")))]
async fn console_asset(_state: Arc<State>, req: Request<Incoming>, params: Params) -> ApiResult {
    // Only plain names: `..`, `.` and empty segments never name an embedded file, and refusing
    // them here keeps the lookup a lookup.
    let rest: Vec<&str> = params.get("path").split('/').collect();
    if rest.iter().any(|s| s.is_empty() || s.starts_with('.')) {
        return not_found(&req);
    }
    serve(&req, &format!("assets/{}", rest.join("/")))
}

fn serve(req: &Request<Incoming>, path: &str) -> ApiResult {
    let Some((contents, etag)) = FILES.get(path) else {
        return not_found(req);
    };
    Ok(secured(static_response(
        req,
        etag,
        content_type(path),
        contents,
    )))
}

/// A file built into the binary, with its `ETag`: 304 when the client has it already (the
/// console's files and the OpenAPI document are fetched on every visit, and change only with
/// the binary).
pub(super) fn static_response(
    req: &Request<Incoming>,
    etag: &str,
    content_type: &str,
    contents: &'static [u8],
) -> Response<Body> {
    let fresh = req
        .headers()
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let builder = Response::builder()
        .header(ETAG, etag)
        .header(CACHE_CONTROL, "no-cache");
    let response = if fresh {
        builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Empty::new().boxed())
    } else {
        builder
            .status(StatusCode::OK)
            .header(CONTENT_TYPE, content_type)
            .body(Full::new(bytes::Bytes::from_static(contents)).boxed())
    };
    response.expect("static headers make a valid response")
}

/// A 404 that carries the console's headers too (an error page is a page).
fn not_found(req: &Request<Incoming>) -> ApiResult {
    let error = ApiError::NotFound(format!("console file {}", req.uri().path()));
    Ok(secured(error.into_response()))
}

fn secured(mut response: Response<Body>) -> Response<Body> {
    let h = response.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    response
}

/// By extension: `nosniff` makes the browser trust exactly this, so a wrong type breaks a page.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shell_and_its_scripts_are_embedded() {
        for path in [
            "index.html",
            "assets/app.css",
            "assets/js/app.js",
            "assets/js/api.js",
            "assets/js/ui.js",
        ] {
            assert!(FILES.contains_key(path), "{path} is not embedded");
        }
    }

    #[test]
    fn every_embedded_file_has_a_known_type() {
        for path in FILES.keys() {
            assert_ne!(
                content_type(path),
                "application/octet-stream",
                "{path}: add its extension to content_type()"
            );
        }
    }
}
