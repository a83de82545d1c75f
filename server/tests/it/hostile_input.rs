//! Hostile input never gets a 5xx: every operation of the committed spec is
//! called with malformed and wrongly typed bodies, oversized and control-
//! character strings, and garbage path and query values, by a signed-in
//! owner. Each answer must be below 500, and every error must be the
//! envelope with a code.

use reqwest::Method;
use serde_json::{Map, Value, json};
use switchyard_server::contract::openapi;

use crate::support::{
    Api, BoxError, Credential, TestEngine, TestResult, http, on_both_engines, start, string_at,
};

on_both_engines!(no_hostile_request_gets_a_server_error);

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// Operations that can end the caller's session are left out, so the rest of
/// the run stays signed in: logging out, and changing the password (a
/// hostile but acceptable new password would succeed).
const SKIPPED: [&str; 2] = ["auth_logout", "auth_password_change"];

/// Values of every JSON type, and strings no field should choke on.
fn hostile_values() -> Vec<Value> {
    vec![
        json!(null),
        json!(true),
        json!(-1),
        json!(1e308),
        json!(18_446_744_073_709_551_615_u64),
        json!([]),
        json!({}),
        json!(""),
        json!("\u{0000}\u{202e}\u{1F600}'\"; DROP TABLE users; --"),
        Value::String("x".repeat(200_000)),
    ]
}

/// Path segments and query values that are no id and no number.
const HOSTILE_SEGMENTS: [&str; 5] = ["%00", "..%2F..%2Fetc", "%FF%FE", "-1", "%E2%80%AE%F0%9F%98%80"];

/// Follows a `$ref` into `components`, once.
fn resolved(schema: &Value) -> &Value {
    schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|reference| reference.strip_prefix("#/"))
        .and_then(|pointer| openapi().ok()?.pointer(&format!("/{pointer}")))
        .unwrap_or(schema)
}

/// An operation's JSON request body: the property names its schema
/// declares, and its first documented example (a valid body) to start from.
fn body_template(operation: &Value) -> Option<(Vec<String>, Map<String, Value>)> {
    let content = operation.pointer("/requestBody/content/application~1json")?;
    let properties = resolved(&content["schema"]).get("properties").and_then(Value::as_object);
    let names = properties.map(|p| p.keys().cloned().collect()).unwrap_or_default();
    let example = content["examples"]
        .as_object()
        .and_then(|examples| examples.values().next())
        .and_then(|example| example["value"].as_object())
        .cloned()
        .unwrap_or_default();
    Some((names, example))
}

/// What one operation is sent: raw bodies that are no valid JSON object,
/// then the valid example with one property at a time set to each hostile
/// value, so the call gets past parsing into validation and the domain.
fn bodies(properties: &[String], example: &Map<String, Value>) -> Vec<String> {
    let mut bodies: Vec<String> =
        ["{", "[]", "null", "\"text\"", "{\"a\":", "\u{0000}", "{}"].into_iter().map(str::to_owned).collect();
    bodies.push(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000)));
    for property in properties {
        for value in hostile_values() {
            let mut object = example.clone();
            object.insert(property.clone(), value);
            bodies.push(Value::Object(object).to_string());
        }
    }
    bodies
}

/// The query parameter names an operation declares.
fn query_parameters(operation: &Value) -> Vec<String> {
    operation["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(resolved)
        .filter(|parameter| parameter["in"] == "query")
        .filter_map(|parameter| parameter["name"].as_str().map(str::to_owned))
        .collect()
}

/// `path` with every `{param}` replaced by `segment`.
fn fill(path: &str, segment: &str) -> String {
    let mut filled = String::new();
    let mut rest = path;
    while let Some(start) = rest.find('{') {
        let end = rest[start..].find('}').map_or(rest.len(), |end| start + end + 1);
        filled.push_str(&rest[..start]);
        filled.push_str(segment);
        rest = &rest[end..];
    }
    filled.push_str(rest);
    filled
}

async fn no_hostile_request_gets_a_server_error(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("ada@example.com").await?;
    let org = api.create_org(&owner, "Analytical Engines").await?;
    let key = api.mint_key(&owner, &org, &["*"]).await?;
    let client = http();
    let mut failures = Vec::new();
    let mut sent = 0;
    for (path, item) in openapi()?["paths"].as_object().ok_or("the spec has no paths")? {
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            let id = string_at(operation, "/operationId")?;
            if SKIPPED.contains(&id.as_str()) {
                continue;
            }
            let mut requests: Vec<(String, Option<String>)> = Vec::new();
            let plain_path = fill(path, "x");
            if let Some((properties, example)) = body_template(operation) {
                let all = bodies(&properties, &example);
                requests.extend(all.into_iter().map(|body| (plain_path.clone(), Some(body))));
            }
            if path.contains('{') {
                let long = "a".repeat(4_000);
                for segment in HOSTILE_SEGMENTS.iter().copied().chain([long.as_str()]) {
                    requests.push((fill(path, segment), None));
                }
            }
            for name in query_parameters(operation) {
                for value in HOSTILE_SEGMENTS {
                    requests.push((format!("{plain_path}?{name}={value}"), None));
                }
            }
            for (target, body) in requests {
                let method = Method::from_bytes(method.to_uppercase().as_bytes())?;
                // Alternate credentials, so both kinds reach the handlers.
                let token = if sent % 2 == 0 { &owner.access } else { &key.key };
                let mut request = client.request(method.clone(), server.url(&target)).bearer_auth(token);
                if let Some(body) = &body {
                    request = request.header("content-type", "application/json").body(body.clone());
                }
                sent += 1;
                let response = request.send().await?;
                let status = response.status().as_u16();
                let text = response.text().await?;
                let shown = |text: &str| text.chars().take(200).collect::<String>();
                let what =
                    format!("{id}: {method} {} {}", shown(&target), shown(body.as_deref().unwrap_or("")));
                if status >= 500 {
                    failures.push(format!("{what} -> {status} {}", shown(&text)));
                } else if status >= 400 && !is_envelope(&text) {
                    failures.push(format!("{what} -> {status} without the envelope: {}", shown(&text)));
                }
            }
        }
    }
    assert!(sent > 500, "only {sent} requests were sent; is the spec read right?");
    // The owner's session and key survived all of it.
    let me = api.get("/v1/auth/me", Credential::Bearer(&owner.access)).await?;
    assert_eq!(me.0, 200, "{}", me.1);
    assert!(
        failures.is_empty(),
        "{} of {sent} hostile requests failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    server.stop().await?;
    Ok(())
}

fn is_envelope(text: &str) -> bool {
    serde_json::from_str::<Value>(text).is_ok_and(|body| body["error"]["code"].is_string())
}

#[test]
fn paths_are_filled_at_every_parameter() -> Result<(), BoxError> {
    assert_eq!(fill("/v1/orgs/{id}/members/{user_id}", "%00"), "/v1/orgs/%00/members/%00");
    assert_eq!(fill("/v1/usage", "x"), "/v1/usage");
    Ok(())
}
