//! The API's route table: the one list that both the routing and the OpenAPI document come from,
//! so that a route cannot exist undescribed.
//!
//! Every handler in the table has one shape: `async fn(Arc<State>, Request<Incoming>, Params) ->
//! ApiResult`, where [`Params`] holds the values of the route's `{name}` segments, and carries a
//! `#[utoipa::path(...)]` attribute. [`route!`] takes the handler's path and method from that
//! attribute, so what is served and what is described cannot drift apart.

#![allow(dead_code)] // Until the table serves every route (issue 12, in progress).

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
}

impl Route {
    /// The route `P` describes (a `#[utoipa::path]` attribute's struct), served by `handler`.
    /// One attribute names one method here: a route per method keeps the table a flat list.
    pub(crate) fn described<P>(handler: Handler) -> Route
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences,
    {
        let methods = P::methods();
        assert_eq!(methods.len(), 1, "{}: one method per handler", P::path());
        Route {
            method: to_method(&methods[0]),
            path: P::path(),
            handler,
            operation: P::operation(),
            schemas: P::schemas,
        }
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
#[allow(unused_macros)] // Until the table serves every route.
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
#[allow(unused_imports)]
pub(crate) use route;

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
    #[utoipa::path(get, path = "/api/v1/hello/{name}", params(("name" = String, Path)),
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
        let old = r.alias("/api/v1/older/hello/{name}");
        assert_eq!(old.operation.operation_id.as_deref(), Some("older_hello"));
    }
}
