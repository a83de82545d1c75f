//! Judges one reply against its case: status and `X-Request-Id`, then either the media type,
//! schema and values of the documented JSON example, or, for a response without content, an
//! empty body.

use std::sync::Arc;

use jsonschema::Validator;
use reqwest::header::CONTENT_TYPE;
use serde_json::Value;

use crate::replay::Reply;
use crate::spec::{Case, ERROR_REQUEST_ID, Expected, JSON_MEDIA_TYPE, Plan};

const REQUEST_ID_HEADER: &str = "x-request-id";

/// Every way the reply differs from the case; empty when it conforms.
pub fn check(case: &Case, plan: &Plan, reply: &Reply) -> Vec<String> {
    if reply.status != case.status {
        return vec![format!("status {}, expected {}; body: {}", reply.status, case.status, reply.snippet())];
    }
    let mut failures = Vec::new();
    let request_id = reply.headers.get(REQUEST_ID_HEADER).map(|id| id.to_str().unwrap_or_default());
    if request_id.is_none() {
        failures.push("no X-Request-Id header".to_owned());
    }
    match &plan.expected {
        Expected::Empty => failures.extend(check_empty(reply)),
        Expected::Json { validator, value, volatile } => {
            failures.extend(check_json(reply, request_id, validator, value, volatile));
        }
    }
    failures
}

/// A response without content must send no body.
fn check_empty(reply: &Reply) -> Option<String> {
    (!reply.body.is_empty())
        .then(|| format!("expected no body, got {} bytes: {}", reply.body.len(), reply.snippet()))
}

fn check_json(
    reply: &Reply,
    request_id: Option<&str>,
    validator: &Arc<Validator>,
    expected: &Value,
    volatile: &[String],
) -> Vec<String> {
    let mut failures = Vec::new();
    match reply.headers.get(CONTENT_TYPE).map(|value| value.to_str().unwrap_or_default()) {
        None => failures.push(format!("no Content-Type header, expected {JSON_MEDIA_TYPE}")),
        Some(value) if !media_type(value).eq_ignore_ascii_case(JSON_MEDIA_TYPE) => {
            failures.push(format!("Content-Type `{value}`, expected {JSON_MEDIA_TYPE}"));
        }
        Some(_) => {}
    }
    let body: Value = match serde_json::from_str(&reply.body) {
        Ok(body) => body,
        Err(e) => {
            failures.push(format!("the body is not JSON ({e}): {}", reply.snippet()));
            return failures;
        }
    };
    failures.extend(
        validator
            .iter_errors(&body)
            .map(|error| format!("schema: {}: {error}", at(error.instance_path().as_str()))),
    );
    failures.extend(compare(expected, &body, volatile));
    if let (Some(header), Some(Value::String(in_body))) = (request_id, body.pointer(ERROR_REQUEST_ID)) {
        if header != in_body {
            failures.push(format!("{ERROR_REQUEST_ID} is `{in_body}` but X-Request-Id is `{header}`"));
        }
    }
    failures
}

/// `application/json; charset=utf-8` → `application/json`.
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or_default().trim()
}

/// Every value of `expected` must be in `actual` and equal, except at the `volatile`
/// pointers, which need only be present. Arrays match element by element; keys `actual`
/// has beyond the example are the schema's business.
pub fn compare(expected: &Value, actual: &Value, volatile: &[String]) -> Vec<String> {
    let mut failures = Vec::new();
    compare_at("", expected, actual, volatile, &mut failures);
    failures
}

fn compare_at(
    pointer: &str,
    expected: &Value,
    actual: &Value,
    volatile: &[String],
    failures: &mut Vec<String>,
) {
    if volatile.iter().any(|v| v == pointer) {
        return;
    }
    match (expected, actual) {
        (Value::Object(expected), Value::Object(actual)) => {
            for (key, expected) in expected {
                let pointer = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                match actual.get(key) {
                    Some(actual) => compare_at(&pointer, expected, actual, volatile, failures),
                    None => failures.push(format!("{pointer}: missing, expected {expected}")),
                }
            }
        }
        (Value::Array(expected), Value::Array(actual)) if expected.len() != actual.len() => {
            failures.push(format!("{}: {} items, expected {}", at(pointer), actual.len(), expected.len()));
        }
        (Value::Array(expected), Value::Array(actual)) => {
            for (index, (expected, actual)) in expected.iter().zip(actual).enumerate() {
                compare_at(&format!("{pointer}/{index}"), expected, actual, volatile, failures);
            }
        }
        // YAML may write `1.0` where the server sends `1`.
        (Value::Number(e), Value::Number(a)) if e.as_f64() == a.as_f64() => {}
        _ if expected == actual => {}
        _ => failures.push(format!("{}: {actual}, expected {expected}", at(pointer))),
    }
}

/// A JSON pointer for messages; the empty pointer is the whole body.
fn at(pointer: &str) -> &str {
    if pointer.is_empty() { "(body)" } else { pointer }
}

#[cfg(test)]
mod tests {
    use reqwest::Method;
    use reqwest::header::{HeaderMap, HeaderValue};
    use serde_json::{Map, json};

    use super::*;
    use crate::replay::RequestTemplate;

    /// A `204` case of `POST /v1/auth/logout`, which answers without a body.
    fn bodyless_case() -> Result<Case, String> {
        let request = RequestTemplate::new(Method::POST, "/v1/auth/logout", None, &Map::new(), "logged_out")?;
        Ok(Case {
            example: "logged_out".to_owned(),
            status: 204,
            server: Map::new(),
            plan: Ok(Plan { expected: Expected::Empty, setup: Vec::new(), request }),
        })
    }

    fn reply(status: u16, request_id: Option<&'static str>, body: &str) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(id) = request_id {
            headers.insert(REQUEST_ID_HEADER, HeaderValue::from_static(id));
        }
        Reply { status, headers, body: body.to_owned() }
    }

    #[test]
    fn a_response_without_content_must_have_an_empty_body() -> Result<(), String> {
        let case = bodyless_case()?;
        let plan = case.plan.as_ref().map_err(String::clone)?;
        assert_eq!(check(&case, plan, &reply(204, Some("req_1"), "")), Vec::<String>::new());
        assert_eq!(
            check(&case, plan, &reply(204, Some("req_1"), r#"{"ok":true}"#)),
            vec![r#"expected no body, got 11 bytes: {"ok":true}"#]
        );
        assert_eq!(check(&case, plan, &reply(204, None, "")), vec!["no X-Request-Id header"]);
        assert_eq!(
            check(&case, plan, &reply(200, Some("req_1"), "")),
            vec!["status 200, expected 204; body: (empty)"]
        );
        Ok(())
    }

    fn volatile(pointers: &[&str]) -> Vec<String> {
        pointers.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn equal_values_match_and_extra_keys_are_left_to_the_schema() {
        let expected = json!({ "status": "ok", "features": ["a", "b"], "ratio": 1.0 });
        let actual = json!({ "status": "ok", "features": ["a", "b"], "ratio": 1, "extra": true });
        assert_eq!(compare(&expected, &actual, &[]), Vec::<String>::new());
    }

    #[test]
    fn volatile_pointers_need_presence_not_equality() {
        let expected = json!({ "error": { "code": "x", "request_id": "req_1" }, "uptime": 42 });
        let actual = json!({ "error": { "code": "x", "request_id": "req_2" }, "uptime": 7 });
        assert!(compare(&expected, &actual, &volatile(&["/error/request_id", "/uptime"])).is_empty());

        let without = json!({ "error": { "code": "x" }, "uptime": 7 });
        assert_eq!(
            compare(&expected, &without, &volatile(&["/error/request_id", "/uptime"])),
            vec![r#"/error/request_id: missing, expected "req_1""#]
        );
    }

    #[test]
    fn differences_are_reported_by_pointer() {
        let expected = json!({ "a/b": { "c": 1 }, "list": [1, 2], "items": [{ "id": "x" }] });
        let actual = json!({ "a/b": { "c": 2 }, "list": [1], "items": [{ "id": "y" }] });
        assert_eq!(
            compare(&expected, &actual, &volatile(&[])),
            vec!["/a~1b/c: 2, expected 1", "/list: 1 items, expected 2", r#"/items/0/id: "y", expected "x""#]
        );
        assert!(compare(&expected, &actual, &volatile(&["/a~1b/c", "/list", "/items/0/id"])).is_empty());
    }

    #[test]
    fn parameters_do_not_change_the_media_type() {
        assert_eq!(media_type("application/json; charset=utf-8"), "application/json");
        assert_eq!(media_type("application/json"), "application/json");
    }
}
