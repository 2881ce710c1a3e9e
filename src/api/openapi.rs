//! The OpenAPI 3.1 document of the API, made from the route table (`super::TABLE`) and nothing
//! else: every route's path, method and operation come from its handler's `#[utoipa::path]`, its
//! schemas from the types the handler serialises, so a route cannot be served undescribed and
//! the description cannot drift from the code.
//!
//! What the routes do not say each time is added here once: the error answers `ApiError` can give
//! on each kind of route (all in the one `ErrorBody` shape), who may call it (the bearer token, or
//! the console's session cookie with `X-CSRF-Token` on writes; nothing on the public paths), and
//! the tags. The document is built once, on first use, and served with an `ETag`.

use std::sync::{Arc, LazyLock};

use http::{Method, Request};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};
use utoipa::openapi::path::{HttpMethod, Operation, Paths};
use utoipa::openapi::response::Response as Answer;
use utoipa::openapi::schema::Components;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::Tag;
use utoipa::openapi::{
    Content, Header, InfoBuilder, LicenseBuilder, OpenApi, OpenApiBuilder, Ref, RefOr, Server,
};

use super::error::ErrorBody;
use super::routes::{Params, Route};
use super::{guard, ApiResult, State};

/// The shared error answers: status, name in `components/responses`, and what it means here.
const ERRORS: [(u16, &str, &str); 12] = [
    (400, "BadRequest", "The request cannot be read: broken JSON, a path that is not UTF-8, a form that is not multipart."),
    (401, "Unauthorized", "No token, a wrong token, or an ended session (`Authorization: Bearer <token>`)."),
    (403, "Forbidden", "Refused: no `api.token` and the caller is not on this machine, a browser request from another site, a `Host` that is not loopback without a token, or a write with the session cookie and no valid `X-CSRF-Token`."),
    (404, "NotFound", "Nothing by that name or id."),
    (405, "MethodNotAllowed", "The path exists, not with this method; `Allow` lists the ones it has."),
    (408, "RequestTimeout", "The body came too slowly; the connection is closed."),
    (413, "PayloadTooLarge", "The body is over `api.max_body_kb` (or the route's own limit)."),
    (415, "UnsupportedMediaType", "The body is not sent as the route reads it (JSON with `Content-Type: application/json`, or a format it cannot decode)."),
    (422, "UnprocessableEntity", "Well-formed but wrong: a missing or invalid field or parameter (`error.field` names it)."),
    (429, "TooManyRequests", "A limit the caller is held to; `Retry-After` says when to ask again."),
    (503, "ServiceUnavailable", "The appliance is stopping, recognition is unavailable, or a bounded resource is full (`Retry-After` when it may pass)."),
    (507, "InsufficientStorage", "The store is full (the oldest events are being dropped to make room) or a bounded part of it is."),
];

/// What the tags group, in the order the document lists them.
const TAGS: [(&str, &str); 16] = [
    (
        "webhooks",
        "Signed webhooks: FaceCV's routes, delivery state, dead letters and replay.",
    ),
    (
        "events",
        "The recorded events, sample events, and their snapshots.",
    ),
    (
        "cameras",
        "Cameras: add, start, stop, live view, enrolment from a camera.",
    ),
    (
        "faces",
        "The appliance's own face routes: detect, recognise, enrol, the gallery.",
    ),
    ("people", "The gallery by person."),
    (
        "insightface",
        "FaceCV's face routes on FaceCV's paths, in FaceCV's shapes (docs/facecv-compat.md).",
    ),
    (
        "streams",
        "FaceCV's live recognition stream (server-sent events).",
    ),
    ("mqtt", "The MQTT bridge."),
    ("actions", "GPIO actions (door relay, buzzer, PIR)."),
    (
        "session",
        "Signing in from a browser: the console's session cookie and CSRF token.",
    ),
    (
        "system",
        "What runs here, the store's integrity, rotating the token.",
    ),
    ("ops", "Health for supervisors, metrics for Prometheus."),
    ("openapi", "This document."),
    (
        "console",
        "The web console's pages and files (public: they hold no secret).",
    ),
    ("facecv", "FaceCV's face routes."),
    ("other", "Routes without a tag."),
];

const DESCRIPTION: &str = "\
The LAN API of a FaceCV Edge appliance (port 7000, and HTTPS on 7443 when `api.tls_listen` is set).

**Token.** With `api.token` set, every `/api/...` route, `/health` and `/metrics` need \
`Authorization: Bearer <token>`. The token is `api.token` in the config file \
(`/etc/facecv/facecv.toml` on a board, where the first install generated it and printed it), or, \
once rotated (`POST /api/v1/system/token`), the state folder's `api-token` file, which then wins; \
`GET /api/v1/system` says which is in force. Without a token the API answers clients on the \
appliance itself only. Browsers sign in instead (`POST /api/v1/session`) and get the \
`facecv_session` cookie; their writes carry `X-CSRF-Token`. The console's pages, signing in and \
this document need nothing.

**Two families of face paths.** `/api/v1/insightface/...` and its older prefix \
`/api/v1/face_recognition_insightface/...` answer in FaceCV's shapes, so FaceCV's clients and \
scripts work unchanged; `/api/v1/faces/...` answer in the appliance's own, richer shapes. \
`docs/facecv-compat.md` in the source tells them apart. FaceCV's webhook routes keep FaceCV's \
bodies.

**Errors** are JSON `{\"error\": {\"code\", \"message\", \"field\"?}, \"detail\"}` (`ErrorBody`), \
with the status codes listed on each operation.";

/// The document and its `ETag`, made on first use.
static DOCUMENT: LazyLock<(Vec<u8>, String)> = LazyLock::new(|| {
    let bytes = serde_json::to_vec(&document()).expect("the OpenAPI document serialises");
    let digest = Sha256::digest(&bytes);
    let hex: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    (bytes, format!("\"{hex}\""))
});

/// This API's OpenAPI document.
///
/// Public, like the console's pages: it holds no secret, and tools (Schemathesis, code
/// generators, Swagger UI) fetch it before they have a token.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "openapi",
    operation_id = "openapi_document",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document, with an `ETag`",
            content_type = "application/json", body = Object),
        (status = 304, description = "Unchanged since the `ETag` given in `If-None-Match`")))]
pub(super) async fn openapi_document(
    _state: Arc<State>,
    req: Request<Incoming>,
    _params: Params,
) -> ApiResult {
    let (bytes, etag) = &*DOCUMENT;
    Ok(super::console::static_response(
        &req,
        etag,
        "application/json",
        bytes,
    ))
}

pub(super) fn routes() -> Vec<Route> {
    vec![crate::api::routes::route!(openapi_document).public()]
}

/// Builds the document from the table.
fn document() -> OpenApi {
    let mut paths = Paths::new();
    let mut schemas = Vec::new();
    for route in super::TABLE.routes() {
        (route.schemas)(&mut schemas);
        paths.add_path_operation(
            &route.path,
            vec![http_method(&route.method)],
            operation(route),
        );
    }
    let mut components = Components::new();
    for (name, schema) in schemas {
        components.schemas.entry(name).or_insert(schema);
    }
    let mut errors = Vec::new();
    <ErrorBody as utoipa::ToSchema>::schemas(&mut errors);
    components.schemas.extend(errors);
    components.schemas.insert(
        "ErrorBody".into(),
        <ErrorBody as utoipa::PartialSchema>::schema(),
    );
    for (status, name, description) in ERRORS {
        components
            .responses
            .insert(name.into(), RefOr::T(error_answer(status, description)));
    }
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("The API token (`api.token`, or the state folder's `api-token` after a rotation)."))
                .build(),
        ),
    );
    components.add_security_scheme(
        "session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            super::session::COOKIE_NAME,
            "The console's session (`POST /api/v1/session`).",
        ))),
    );
    components.add_security_scheme(
        "csrf",
        SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
            "X-CSRF-Token",
            "The session's `csrf_token`, on every write made with the session cookie.",
        ))),
    );
    let info = InfoBuilder::new()
        .title("FaceCV Edge API")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(DESCRIPTION))
        .license(Some(
            LicenseBuilder::new()
                .name("Apache-2.0")
                .identifier(Some("Apache-2.0"))
                .build(),
        ))
        .build();
    OpenApiBuilder::new()
        .info(info)
        .servers(Some([Server::new("/")]))
        .paths(paths)
        .components(Some(components))
        .tags(Some(tags()))
        .build()
}

/// The route's operation with the shared error answers it can give and who may call it.
fn operation(route: &Route) -> Operation {
    let mut op = route.operation.clone();
    for status in shared_errors(route, &op) {
        let key = status.to_string();
        let (_, name, _) = ERRORS
            .iter()
            .find(|(s, _, _)| *s == status)
            .expect("shared errors are listed in ERRORS");
        op.responses
            .responses
            .entry(key)
            .or_insert_with(|| RefOr::Ref(Ref::from_response_name(*name)));
    }
    // An error a route names for itself (a 409 on create) without a body gets the shared shape.
    for (status, answer) in op.responses.responses.iter_mut() {
        if let RefOr::T(answer) = answer {
            let is_error = status.starts_with('4') || status.starts_with('5');
            if is_error && answer.content.is_empty() {
                answer
                    .content
                    .insert("application/json".into(), error_content());
            }
        }
    }
    if !route.public {
        let session = if guard::changes_state(&route.method, &route.path) {
            SecurityRequirement::new("session", [""; 0]).add("csrf", [""; 0])
        } else {
            SecurityRequirement::new("session", [""; 0])
        };
        op.security = Some(vec![SecurityRequirement::new("bearer", [""; 0]), session]);
    }
    if op.tags.is_none() {
        op.tags = Some(vec!["other".into()]);
    }
    op
}

/// Which of [`ERRORS`] `route` can answer, from what `ApiError` gives on that kind of route:
/// anything may be malformed (400) or refused by the browser and loopback checks (403); a route
/// behind the token can be 401, and reads the store or the engine (503: stopping, or recognition
/// unavailable), and if it writes, can find the store full (507); a `{name}` can name nothing
/// (404); parameters and bodies can be wrong (422); a body can be too big, too slow or of the
/// wrong type (413, 408, 415). 405 is for the methods a path lacks, so it is on no operation.
fn shared_errors(route: &Route, op: &Operation) -> Vec<u16> {
    let mut codes = vec![400, 403];
    let has_body = op.request_body.is_some();
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    if !route.public {
        codes.push(401);
    }
    if route.path.contains('{') {
        codes.push(404);
    }
    if has_params || has_body {
        codes.push(422);
    }
    if has_body {
        codes.extend([408, 413, 415]);
    }
    let writes = !matches!(route.method, Method::GET | Method::HEAD);
    if !route.public && route.path != "/health" {
        codes.push(503);
        if writes {
            codes.push(507);
        }
    }
    codes.sort_unstable();
    codes
}

fn error_content() -> Content {
    Content::new(Some(Ref::from_schema_name("ErrorBody")))
}

fn error_answer(status: u16, description: &str) -> Answer {
    let mut answer = Answer::new(description);
    answer
        .content
        .insert("application/json".into(), error_content());
    let header = |what: &str| {
        let mut h = Header::new(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::Type::String),
        );
        h.description = Some(what.into());
        h
    };
    match status {
        405 => {
            answer.headers.insert(
                "Allow".into(),
                header("The methods the path has, comma-separated."),
            );
        }
        429 | 503 => {
            answer.headers.insert(
                "Retry-After".into(),
                header("Seconds to wait before asking again (when the cause may pass)."),
            );
        }
        _ => {}
    }
    answer
}

/// The tags the operations use, described, in the order of [`TAGS`] (unknown ones last).
fn tags() -> Vec<Tag> {
    let mut used: Vec<String> = Vec::new();
    for route in super::TABLE.routes() {
        let op_tags = route
            .operation
            .tags
            .clone()
            .unwrap_or_else(|| vec!["other".into()]);
        for t in op_tags {
            if !used.contains(&t) {
                used.push(t);
            }
        }
    }
    let position = |t: &String| TAGS.iter().position(|(n, _)| n == t).unwrap_or(TAGS.len());
    used.sort_by_key(position);
    used.into_iter()
        .map(|name| {
            let mut tag = Tag::new(&name);
            tag.description = TAGS
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| (*d).to_owned());
            tag
        })
        .collect()
}

fn http_method(m: &Method) -> HttpMethod {
    match *m {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        _ => HttpMethod::Trace,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;

    fn doc() -> Value {
        serde_json::from_slice(&DOCUMENT.0).expect("the document is JSON")
    }

    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut ops = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("a path item") {
                ops.push((method.to_ascii_uppercase(), path.clone(), op.clone()));
            }
        }
        ops
    }

    #[test]
    fn every_route_is_described_and_nothing_else() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["paths"]["/health"]["get"]["tags"][0], "ops");
        assert_eq!(doc["paths"]["/assets/{path}"]["get"]["tags"][0], "console");
        let described: BTreeSet<(String, String)> = operations(&doc)
            .into_iter()
            .map(|(m, p, _)| (m, p))
            .collect();
        let routed: BTreeSet<(String, String)> = super::super::TABLE
            .routes()
            .map(|r| (r.method.to_string(), r.path.clone()))
            .collect();
        assert_eq!(described, routed);
        assert_eq!(described.len(), super::super::TABLE.routes().count());
    }

    #[test]
    fn public_routes_need_nothing_and_the_others_the_token_or_a_session() {
        let doc = doc();
        for (method, path, op) in operations(&doc) {
            let route = super::super::TABLE
                .routes()
                .find(|r| r.method.as_str() == method && r.path == path)
                .expect("a route");
            let security = &op["security"];
            if route.public {
                assert!(security.is_null(), "{method} {path}: {security}");
                assert!(op["responses"].get("401").is_none() || path == "/api/v1/session");
                continue;
            }
            assert_eq!(
                security[0],
                serde_json::json!({"bearer": []}),
                "{method} {path}"
            );
            let csrf = security[1].get("csrf").is_some();
            // Writes, and the live stream's GET (it makes cameras and webhooks), need the CSRF token.
            let writes = guard::changes_state(&route.method, &path);
            assert_eq!(csrf, writes, "{method} {path}: {security}");
            assert!(op["responses"].get("401").is_some(), "{method} {path}");
        }
    }

    #[test]
    fn errors_are_claimed_where_the_route_can_give_them() {
        let doc = doc();
        let responses = |method: &str, path: &str| -> BTreeSet<String> {
            doc["paths"][path][method]["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}"))
                .keys()
                .cloned()
                .collect()
        };
        let health = responses("get", "/health");
        assert!(!health.iter().any(|s| s.starts_with('5')), "{health:?}");
        assert!(!health.contains("404") && health.contains("401"));
        let asset = responses("get", "/assets/{path}");
        assert!(asset.contains("404") && !asset.contains("401") && !asset.contains("503"));
        let sign_in = responses("post", "/api/v1/session");
        for s in ["401", "413", "415", "422", "429"] {
            assert!(sign_in.contains(s), "{s} in {sign_in:?}");
        }
        let integrity = responses("post", "/api/v1/system/integrity");
        for s in ["409", "503", "507"] {
            assert!(integrity.contains(s), "{s} in {integrity:?}");
        }
        assert_eq!(
            doc["paths"]["/api/v1/system/integrity"]["post"]["responses"]["409"]["content"]
                ["application/json"]["schema"]["$ref"],
            "#/components/schemas/ErrorBody"
        );
        assert!(doc["components"]["responses"]["MethodNotAllowed"]["headers"]["Allow"].is_object());
    }
}
