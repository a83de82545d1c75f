//! Which request fields reach a provider. Fields the wire types name are
//! always sent; of the others, only those known not to change what a request
//! costs or where its data goes, plus what the operator allows per provider
//! (`[providers.<name>] pass_through = ["…"]`). Anything else is refused
//! before the request is admitted, naming the field: a client must not set
//! `service_tier`, `store`, or an aggregator's `models` / `provider` /
//! `plugins` while the request is charged at the route's configured price.

use serde_json::{Map, Value};

/// A field a provider may receive: with any value, or only with one of
/// some values (as JSON text).
pub type KnownField = (&'static str, Option<&'static [&'static str]>);

/// Chat fields OpenAI defines beyond the typed ones that leave the price and
/// the provider's data retention as they are (or change it only in what the
/// provider reports as usage). `store` and `service_tier` are known only
/// with the values that change nothing: SDKs send `store: false` freely.
pub const CHAT_FIELDS: &[KnownField] = &[
    ("frequency_penalty", None),
    ("presence_penalty", None),
    ("logit_bias", None),
    ("logprobs", None),
    ("top_logprobs", None),
    ("parallel_tool_calls", None),
    ("reasoning_effort", None),
    ("verbosity", None),
    ("metadata", None),
    ("prompt_cache_key", None),
    ("safety_identifier", None),
    ("functions", None),
    ("function_call", None),
    ("store", Some(&["false", "null"])),
    ("service_tier", Some(&["\"default\"", "null"])),
];

/// Embeddings have no such fields beyond the typed ones.
pub const EMBEDDING_FIELDS: &[KnownField] = &[];

fn is_known(known: &[KnownField], field: &str, value: &Value) -> bool {
    known.iter().any(|(name, values)| {
        *name == field && values.is_none_or(|values| values.contains(&value.to_string().as_str()))
    })
}

/// The first field of `extra` that is not known and that `passes_through`
/// does not let through (for a route: that none of its targets may receive).
pub fn refused<'a>(
    extra: &'a Map<String, Value>,
    known: &[KnownField],
    passes_through: impl Fn(&str) -> bool,
) -> Option<&'a str> {
    extra
        .iter()
        .find(|(field, value)| !is_known(known, field, value) && !passes_through(field))
        .map(|(field, _)| field.as_str())
}

/// `extra` without the fields a provider allowing only `pass_through` may
/// not receive (a route's other targets may allow more).
pub fn allowed(
    extra: &Map<String, Value>,
    known: &[KnownField],
    pass_through: &[String],
) -> Map<String, Value> {
    extra
        .iter()
        .filter(|(field, value)| is_known(known, field, value) || pass_through.iter().any(|p| p == *field))
        .map(|(field, value)| (field.clone(), value.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn store_and_service_tier_pass_only_with_values_that_change_nothing() {
        let extra = |value: Value| value.as_object().cloned().unwrap_or_default();
        let passes = |value: Value| allowed(&extra(value.clone()), CHAT_FIELDS, &[]) == extra(value);
        assert!(passes(json!({"store": false, "service_tier": "default", "metadata": {"a": "b"}})));
        assert!(passes(json!({"store": null, "logprobs": true})));
        assert!(!passes(json!({"store": true})));
        assert!(!passes(json!({"service_tier": "priority"})));
        assert!(!passes(json!({"plugins": []})));
        let opened = allowed(
            &extra(json!({"service_tier": "flex", "store": true})),
            CHAT_FIELDS,
            &["service_tier".to_owned()],
        );
        assert_eq!(Value::Object(opened), json!({"service_tier": "flex"}));
    }
}
