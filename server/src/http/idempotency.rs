//! The `Idempotency-Key` a request sent ([`sent_key`]), what it is checked
//! against ([`request_hash`]: the SHA-256 of the operation, the request's
//! canonical body and the headers that change what it means), and
//! [`StoredJson`], the body as it was first sent and is replayed.

use std::marker::PhantomData;

use poem::{IntoResponse, Request, Response};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::http::error::{ApiError, ErrorCode};

/// The header's name.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The key the request sent, as its `Header` parameter parsed it. A value
/// that is not visible ASCII is passed over by the parameter as if none had
/// been sent, which would quietly drop the protection the client asked for,
/// so a key present in `request` but not `parsed` (or sent twice) is a 400.
pub fn sent_key(parsed: Option<String>, request: &Request) -> Result<Option<String>, ApiError> {
    match (parsed, request.headers().get_all(IDEMPOTENCY_KEY).iter().count()) {
        (None, 0) => Ok(None),
        (Some(key), 1) => Ok(Some(key)),
        _ => Err(ApiError::new(
            ErrorCode::RequestMalformed,
            "Send one Idempotency-Key of 1 to 255 printable ASCII characters",
        )
        .param(IDEMPOTENCY_KEY)),
    }
}

/// The hash of a request, as hex: its operation, its body as parsed (keys
/// sorted, defaults filled in, so spacing and key order do not count) and
/// each header in `headers` by name, sent or not.
pub fn request_hash(operation: &str, body: &impl ToJSON, headers: &[(&str, Option<&str>)]) -> String {
    let headers: Map<String, Value> =
        headers.iter().map(|(name, value)| (name.to_ascii_lowercase(), json!(value))).collect();
    let request = json!({
        "operation": operation,
        "headers": headers,
        "body": body.to_json().unwrap_or(Value::Null),
    });
    let digest = Sha256::digest(canonical(request).to_string().as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `value` with every object's keys in order.
fn canonical(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(key, value)| (key, canonical(value))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

/// A JSON body of type `T` kept as the text it was first sent as, so a
/// replay is byte for byte the same. Documented as `T`.
pub struct StoredJson<T> {
    text: String,
    of: PhantomData<fn() -> T>,
}

impl<T: ToJSON> StoredJson<T> {
    /// The body `value` is sent as.
    pub fn render(value: &T) -> String {
        value.to_json_string()
    }
}

impl<T> StoredJson<T> {
    /// A body already rendered (by [`StoredJson::render`]).
    pub fn from_text(text: String) -> Self {
        Self { text, of: PhantomData }
    }
}

impl<T> std::fmt::Debug for StoredJson<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("StoredJson").field(&self.text).finish()
    }
}

/// The media type of JSON bodies, as `Json` sends it.
const JSON: &str = "application/json; charset=utf-8";

impl<T: Type> Payload for StoredJson<T> {
    const CONTENT_TYPE: &'static str = JSON;

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T: Send> IntoResponse for StoredJson<T> {
    fn into_response(self) -> Response {
        Response::builder().content_type(JSON).body(self.text)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::request_hash;

    #[test]
    fn spacing_and_key_order_do_not_count_but_values_and_headers_do() {
        let a = request_hash("op", &json!({"a": 1, "b": {"c": 2, "d": 3}}), &[("X-Org", None)]);
        let b = request_hash("op", &json!({"b": {"d": 3, "c": 2}, "a": 1}), &[("X-Org", None)]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(a, request_hash("op", &json!({"a": 2, "b": {"c": 2, "d": 3}}), &[("X-Org", None)]));
        assert_ne!(a, request_hash("op", &json!({"a": 1, "b": {"c": 2, "d": 3}}), &[("X-Org", Some("o"))]));
        assert_ne!(a, request_hash("other", &json!({"a": 1, "b": {"c": 2, "d": 3}}), &[("X-Org", None)]));
    }
}
