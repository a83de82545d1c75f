//! Which request fields reach a provider. Fields the wire types name are
//! always sent; of the others, only those known not to change what a request
//! costs or where its data goes, plus what the operator allows per provider
//! (`[providers.<name>] pass_through = ["…"]`). Anything else is refused
//! before the request is admitted, naming the field: a client must not set
//! `service_tier`, `store`, or an aggregator's `models` / `provider` /
//! `plugins` while the request is charged at the route's configured price.

use serde_json::{Map, Value};

use super::Route;

/// Chat fields OpenAI defines beyond the typed ones that leave the price and
/// the provider's data retention as they are (or change it only in what the
/// provider reports as usage).
pub const CHAT_FIELDS: &[&str] = &[
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "parallel_tool_calls",
    "reasoning_effort",
    "verbosity",
    "prompt_cache_key",
    "safety_identifier",
    "functions",
    "function_call",
];

/// Embeddings have no such fields beyond the typed ones.
pub const EMBEDDING_FIELDS: &[&str] = &[];

/// The first field of `extra` that no target of `route` may receive.
pub fn refused<'a>(extra: &'a Map<String, Value>, known: &[&str], route: &Route) -> Option<&'a str> {
    extra.keys().map(String::as_str).find(|field| {
        !known.contains(field) && !route.targets.iter().any(|target| target.provider.passes_through(field))
    })
}

/// `extra` without the fields a provider allowing only `pass_through` may
/// not receive (a route's other targets may allow more).
pub fn allowed(extra: &Map<String, Value>, known: &[&str], pass_through: &[String]) -> Map<String, Value> {
    extra
        .iter()
        .filter(|(field, _)| known.contains(&field.as_str()) || pass_through.iter().any(|p| p == *field))
        .map(|(field, value)| (field.clone(), value.clone()))
        .collect()
}
