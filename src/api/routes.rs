//! The API's route table: the one list that both the routing and the OpenAPI document come from,
//! so that a route cannot exist undescribed.
//!
//! Every handler in the table has one shape: `async fn(Arc<State>, Request<Incoming>, Params) ->
//! ApiResult`, where [`Params`] holds the values of the route's `{name}` segments, and carries a
//! `#[utoipa::path(...)]` attribute. [`route!`] takes the handler's path and method from that
//! attribute, so what is served and what is described cannot drift apart.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use http::{Method, Request};
use hyper::body::Incoming;
use utoipa::openapi::path::{HttpMethod, Operation};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;

use super::{ApiResult, State};

/// What a routed handler returns: a boxed future, so that handlers of every module fit one table.
pub(crate) type Reply = Pin<Box<dyn Future<Output = ApiResult> + Send>>;
/// A routed handler (see the module's doc for the shape it wraps).
pub(crate) type Handler = fn(Arc<State>, Request<Incoming>, Params) -> Reply;
/// Collects the schemas an operation refers to (`#/components/schemas/...`).
pub(crate) type Schemas = fn(&mut Vec<(String, RefOr<Schema>)>);

/// One method on one path.
pub(crate) struct Route {
    pub method: Method,
    /// The path as the document shows it: `/api/v1/webhooks/{webhook_id}`.
    pub path: String,
    pub handler: Handler,
    pub operation: Operation,
    pub schemas: Schemas,
    /// Served without the token: the console's pages, signing in, the OpenAPI document. They hold
    /// no secret; `session::identify` and the document's `security` both read this flag.
    pub public: bool,
    /// The path's last `{name}` takes the rest of the path, slashes and all (`/assets/{path}`
    /// serves `assets/js/app.js`); OpenAPI has no such parameter, so it is described as one string.
    pub rest: bool,
}

impl Route {
    /// The route `P` describes (a `#[utoipa::path]` attribute's struct), served by `handler`.
    /// One attribute names one method here: a route per method keeps the table a flat list.
    pub(crate) fn described<P>(handler: Handler) -> Route
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences + for<'t> utoipa::__dev::Tags<'t>,
    {
        let methods = P::methods();
        assert_eq!(methods.len(), 1, "{}: one method per handler", P::path());
        // utoipa keeps an attribute's `tag` apart from its operation (its `OpenApi` derive
        // joins them); the table is our derive, so it joins them here.
        let mut operation = P::operation();
        let tags: Vec<String> = P::tags().into_iter().map(str::to_owned).collect();
        if !tags.is_empty() {
            operation.tags = Some(tags);
        }
        Route {
            method: to_method(&methods[0]),
            path: P::path(),
            handler,
            operation,
            schemas: P::schemas,
            public: false,
            rest: false,
        }
    }

    /// Marks the route as served without the token (see [`Route::public`]).
    pub(crate) fn public(mut self) -> Route {
        self.public = true;
        self
    }

    /// Lets the path's last `{name}` take the rest of the path (see [`Route::rest`]).
    pub(crate) fn rest(mut self) -> Route {
        assert!(
            self.path.ends_with('}'),
            "{}: only a last {{name}} can take the rest of the path",
            self.path
        );
        self.rest = true;
        self
    }

    /// The same handler under a second path (FaceCV's older prefixes): described there too, with
    /// an operation id of its own, since OpenAPI wants them unique.
    pub(crate) fn alias(&self, path: &str) -> Route {
        let mut operation = self.operation.clone();
        operation.operation_id = operation.operation_id.map(|id| {
            let prefix = path
                .trim_start_matches("/api/v1/")
                .split('/')
                .next()
                .unwrap_or("");
            format!("{prefix}_{id}")
        });
        operation.deprecated = Some(utoipa::openapi::Deprecated::True);
        Route {
            method: self.method.clone(),
            path: path.to_owned(),
            handler: self.handler,
            operation,
            schemas: self.schemas,
            public: self.public,
            rest: self.rest,
        }
    }
}

fn to_method(m: &HttpMethod) -> Method {
    match m {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// `route!(webhooks::list)`: the [`Route`] of a handler that carries `#[utoipa::path]`.
macro_rules! route {
    ($handler:ident) => {
        pastey::paste! {
            $crate::api::routes::Route::described::<[<__path_ $handler>]>(
                |state, req, params| Box::pin($handler(state, req, params)),
            )
        }
    };
    ($module:ident :: $handler:ident) => {
        pastey::paste! {
            $crate::api::routes::Route::described::<$module::[<__path_ $handler>]>(
                |state, req, params| Box::pin($module::$handler(state, req, params)),
            )
        }
    };
}
pub(crate) use route;

/// One segment of a route's path: a literal, a `{name}` that takes any one segment, or a last
/// `{name}` that takes every segment left, even none or empty ones: the handler judges what it
/// names (the console answers its own 404 for `/assets/` and `/assets//x`).
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Lit(String),
    Param(String),
    Rest(String),
}

/// The routes, split into segments once.
pub(crate) struct Table {
    routes: Vec<(Vec<Seg>, Route)>,
}

/// What a request's method and path find in the table.
pub(crate) enum Lookup<'a> {
    Found(&'a Route, Params),
    /// The path exists, not with this method: 405 with `Allow`.
    WrongMethod(Vec<Method>),
    Missing,
}

impl Table {
    /// Panics on two routes with the same method and path: a programming error the tests catch.
    pub(crate) fn new(routes: Vec<Route>) -> Table {
        let routes: Vec<(Vec<Seg>, Route)> = routes
            .into_iter()
            .map(|r| (split(&r.path, r.rest), r))
            .collect();
        for (i, (_, a)) in routes.iter().enumerate() {
            for (_, b) in &routes[..i] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} is routed twice",
                    a.method,
                    a.path
                );
            }
        }
        Table { routes }
    }

    pub(crate) fn routes(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter().map(|(_, r)| r)
    }

    /// The route for `method` on the decoded `segments`. Where a literal and a `{name}` both
    /// match (`/webhooks/stats` and `/webhooks/{webhook_id}`), the literal wins, position by
    /// position from the left; the path chosen that way answers 405 for a method it lacks, so
    /// `PUT /webhooks/stats` is refused rather than taken for a webhook named "stats". HEAD is
    /// served by a path's GET where it has no HEAD of its own (RFC 9110: what GET serves, HEAD
    /// may ask about), and hyper sends no body with it.
    pub(crate) fn find(&self, method: &Method, segments: &[String]) -> Lookup<'_> {
        let Some(best) = self.best(segments) else {
            return Lookup::Missing;
        };
        let on_path: Vec<&(Vec<Seg>, Route)> =
            self.routes.iter().filter(|(p, _)| p == best).collect();
        let exact = on_path.iter().find(|(_, r)| r.method == *method);
        let head = || {
            (*method == Method::HEAD)
                .then(|| on_path.iter().find(|(_, r)| r.method == Method::GET))
                .flatten()
        };
        if let Some((pattern, route)) = exact.or_else(head) {
            return Lookup::Found(route, Params::new(values(pattern, segments)));
        }
        let mut allowed: Vec<Method> = on_path.iter().map(|(_, r)| r.method.clone()).collect();
        if allowed.contains(&Method::GET) && !allowed.contains(&Method::HEAD) {
            allowed.push(Method::HEAD);
        }
        Lookup::WrongMethod(allowed)
    }

    /// Whether the path `segments` name is served without the token (see [`Route::public`]).
    pub(crate) fn is_public(&self, segments: &[String]) -> bool {
        self.best(segments)
            .is_some_and(|best| self.routes.iter().any(|(p, r)| p == best && r.public))
    }

    /// The most specific pattern that matches `segments`.
    fn best(&self, segments: &[String]) -> Option<&Vec<Seg>> {
        self.routes
            .iter()
            .filter(|(pattern, _)| matches(pattern, segments))
            .map(|(pattern, _)| pattern)
            .max_by(|a, b| specificity(a).cmp(&specificity(b)))
    }
}

/// The values of the `{name}` segments of `pattern` in `segments` (which it matches).
fn values(pattern: &[Seg], segments: &[String]) -> Vec<(String, String)> {
    pattern
        .iter()
        .enumerate()
        .filter_map(|(i, seg)| match seg {
            Seg::Param(name) => Some((name.clone(), segments[i].clone())),
            Seg::Rest(name) => Some((name.clone(), segments[i..].join("/"))),
            Seg::Lit(_) => None,
        })
        .collect()
}

fn split(path: &str, rest: bool) -> Vec<Seg> {
    if path == "/" {
        return Vec::new();
    }
    let mut segs: Vec<Seg> = path
        .split('/')
        .skip(1)
        .map(
            |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(name) => Seg::Param(name.to_owned()),
                None => Seg::Lit(s.to_owned()),
            },
        )
        .collect();
    if rest {
        if let Some(Seg::Param(name)) = segs.pop() {
            segs.push(Seg::Rest(name));
        }
    }
    segs
}

fn matches(pattern: &[Seg], segments: &[String]) -> bool {
    let takes_rest = matches!(pattern.last(), Some(Seg::Rest(_)));
    let fits = if takes_rest {
        segments.len() + 1 >= pattern.len()
    } else {
        segments.len() == pattern.len()
    };
    fits && pattern.iter().enumerate().all(|(i, p)| match p {
        Seg::Lit(lit) => *lit == segments[i],
        // An empty segment (`/webhooks//enable`) names nothing.
        Seg::Param(_) => !segments[i].is_empty(),
        Seg::Rest(_) => true,
    })
}

/// Literals before parameters before a rest, compared from the left.
fn specificity(pattern: &[Seg]) -> Vec<u8> {
    pattern
        .iter()
        .map(|s| match s {
            Seg::Lit(_) => 2,
            Seg::Param(_) => 1,
            Seg::Rest(_) => 0,
        })
        .collect()
}

/// The values of a route's `{name}` segments, percent-decoded, in the order of the path.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params {
    values: Vec<(String, String)>,
}

impl Params {
    pub(crate) fn new(values: Vec<(String, String)>) -> Self {
        Params { values }
    }

    /// The value of segment `{name}`. A name the route's path does not have is a programming
    /// error the route table's tests catch, so it panics.
    pub(crate) fn get(&self, name: &str) -> &str {
        self.values
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("the route has no {{{name}}} segment"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Says hello.
    #[utoipa::path(get, path = "/api/v1/hello/{name}", tag = "greetings", params(("name" = String, Path)),
        responses((status = 200, description = "a greeting")))]
    async fn hello(_state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
        super::super::ok_json(&params.get("name"))
    }

    #[test]
    fn a_route_takes_its_path_and_method_from_its_description() {
        let r = route!(hello);
        assert_eq!(r.method, Method::GET);
        assert_eq!(r.path, "/api/v1/hello/{name}");
        assert_eq!(r.operation.operation_id.as_deref(), Some("hello"));
        assert_eq!(r.operation.tags, Some(vec!["greetings".to_owned()]));
        let old = r.alias("/api/v1/older/hello/{name}");
        assert_eq!(old.operation.operation_id.as_deref(), Some("older_hello"));
    }

    /// Says hello to everyone.
    #[utoipa::path(get, path = "/api/v1/hello/all", responses((status = 200)))]
    async fn hello_all(_state: Arc<State>, _req: Request<Incoming>, _params: Params) -> ApiResult {
        super::super::ok_json(&"all")
    }

    /// Forgets a name.
    #[utoipa::path(delete, path = "/api/v1/hello/{name}", params(("name" = String, Path)),
        responses((status = 200)))]
    async fn forget(_state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
        super::super::ok_json(&params.get("name"))
    }

    fn segs(path: &str) -> Vec<String> {
        path.split('/').skip(1).map(str::to_owned).collect()
    }

    #[test]
    fn literals_win_and_a_literal_path_refuses_other_methods() {
        let table = Table::new(vec![route!(hello), route!(forget), route!(hello_all)]);
        match table.find(&Method::GET, &segs("/api/v1/hello/all")) {
            Lookup::Found(r, _) => assert_eq!(r.path, "/api/v1/hello/all"),
            _ => panic!("GET /hello/all"),
        }
        match table.find(&Method::DELETE, &segs("/api/v1/hello/ann")) {
            Lookup::Found(r, p) => {
                assert_eq!(r.method, Method::DELETE);
                assert_eq!(p.get("name"), "ann");
            }
            _ => panic!("DELETE /hello/ann"),
        }
        assert!(matches!(
            table.find(&Method::DELETE, &segs("/api/v1/hello/all")),
            Lookup::WrongMethod(m) if m == vec![Method::GET, Method::HEAD]
        ));
        assert!(matches!(
            table.find(&Method::PUT, &segs("/api/v1/hello/ann")),
            Lookup::WrongMethod(m) if m == vec![Method::GET, Method::DELETE, Method::HEAD]
        ));
        assert!(matches!(
            table.find(&Method::GET, &segs("/api/v1/hello")),
            Lookup::Missing
        ));
        assert!(matches!(
            table.find(&Method::GET, &segs("/api/v1/hello/")),
            Lookup::Missing
        ));
    }

    /// Serves a file below a folder.
    #[utoipa::path(get, path = "/files/{path}", params(("path" = String, Path)),
        responses((status = 200)))]
    async fn file(_state: Arc<State>, _req: Request<Incoming>, params: Params) -> ApiResult {
        super::super::ok_json(&params.get("path"))
    }

    /// The root page.
    #[utoipa::path(get, path = "/", responses((status = 200)))]
    async fn root(_state: Arc<State>, _req: Request<Incoming>, _params: Params) -> ApiResult {
        super::super::ok_json(&"root")
    }

    #[test]
    fn a_rest_takes_the_slashes_and_head_is_served_by_get() {
        let table = Table::new(vec![
            route!(file).rest().public(),
            route!(root),
            route!(hello),
        ]);
        match table.find(&Method::GET, &segs("/files/js/app.js")) {
            Lookup::Found(r, p) => {
                assert_eq!(r.path, "/files/{path}");
                assert_eq!(p.get("path"), "js/app.js");
            }
            _ => panic!("GET /files/js/app.js"),
        }
        for (path, rest) in [("/files", ""), ("/files/js//app.js", "js//app.js")] {
            match table.find(&Method::GET, &segs(path)) {
                Lookup::Found(_, p) => assert_eq!(p.get("path"), rest),
                _ => panic!("GET {path}: the handler judges the rest"),
            }
        }
        assert!(matches!(
            table.find(&Method::GET, &segs("/filesx/a")),
            Lookup::Missing
        ));
        match table.find(&Method::HEAD, &[]) {
            Lookup::Found(r, _) => assert_eq!((r.path.as_str(), &r.method), ("/", &Method::GET)),
            _ => panic!("HEAD /"),
        }
        assert!(table.is_public(&segs("/files/a/b")));
        assert!(!table.is_public(&[]));
        assert!(!table.is_public(&segs("/api/v1/hello/ann")));
        assert!(!table.is_public(&segs("/nothing")));
    }

    #[test]
    #[should_panic(expected = "routed twice")]
    fn a_route_cannot_be_routed_twice() {
        Table::new(vec![route!(hello), route!(hello)]);
    }
}
