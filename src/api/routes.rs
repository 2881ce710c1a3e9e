//! The API's route table: the one list that both the routing and the OpenAPI document come from,
//! so that a route cannot exist undescribed.
//!
//! Every handler in the table has one shape: `async fn(Arc<State>, Request<Incoming>, Params) ->
//! ApiResult`, where [`Params`] holds the values of the route's `{name}` segments.

/// The values of a route's `{name}` segments, percent-decoded, in the order of the path.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params {
    values: Vec<(&'static str, String)>,
}

#[allow(dead_code)] // Used by the table, which lands with the OpenAPI document.
impl Params {
    pub(crate) fn new(values: Vec<(&'static str, String)>) -> Self {
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
