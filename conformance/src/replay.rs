//! Sends a case's requests: its `x-setup` steps, capturing `{{var}}` values from their
//! responses, then the request whose response is checked. Placeholders are filled in right
//! before each request is sent, so one-time codes (`{{totp:var}}`) are as fresh as they can be.

use std::collections::BTreeMap;
use std::time::SystemTime;

use reqwest::header::HeaderMap;
use reqwest::{Client, Method};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::outbox;
use crate::spec::{Plan, StepAction};
use crate::totp::{self, STEP_SECONDS, Totp};

/// Values captured by `x-setup` steps, by variable name.
type Vars = BTreeMap<String, Value>;

/// How much of an unexpected body a failure message quotes.
const SNIPPET_CHARS: usize = 300;

/// The functions a placeholder may call as `{{function:var}}`, each giving the TOTP code for
/// the secret in `var` this many 30-second steps ahead of now.
const TOTP_FUNCTIONS: [(&str, u64); 2] = [("totp", 0), ("totp_next", 1)];

/// What placeholders are filled from: the captured values, and the clock for one-time codes.
struct Scope<'a> {
    vars: &'a Vars,
    /// Seconds since the Unix epoch.
    unix_time: u64,
}

impl<'a> Scope<'a> {
    /// The captured values, at the current time.
    fn now(vars: &'a Vars) -> Result<Self, String> {
        let since_epoch = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_err(|e| format!("the system clock is before 1970: {e}"))?;
        Ok(Self { vars, unix_time: since_epoch.as_secs() })
    }
}

/// An example's `x-request`: what to send instead of the defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XRequest {
    #[serde(default)]
    headers: Map<String, Value>,
    #[serde(default)]
    query: Map<String, Value>,
    #[serde(default)]
    path: Map<String, Value>,
    body: Option<Value>,
    body_example: Option<String>,
}

/// One request, with `{{var}}` placeholders still in its strings.
#[derive(Debug, Clone)]
pub struct RequestTemplate {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    query: Vec<(String, String)>,
    body: Option<Value>,
}

/// What the server answered.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// The start of the body, for failure messages.
    pub fn snippet(&self) -> String {
        if self.body.is_empty() {
            return "(empty)".to_owned();
        }
        let mut snippet: String = self.body.chars().take(SNIPPET_CHARS).collect();
        if snippet.len() < self.body.len() {
            snippet.push('…');
        }
        snippet
    }
}

impl RequestTemplate {
    /// The request for the response example `example` of the operation `method path`.
    /// Without an `x-request`, the body is the request example of the same name, else the
    /// first one; with one, the body is only what it names.
    pub fn new(
        method: Method,
        path: &str,
        x_request: Option<&XRequest>,
        body_examples: &Map<String, Value>,
        example: &str,
    ) -> Result<Self, String> {
        let body = match x_request {
            None => body_examples.get(example).or_else(|| body_examples.values().next()).cloned(),
            Some(XRequest { body: Some(_), body_example: Some(_), .. }) => {
                return Err("x-request sets both `body` and `body_example`; keep one".to_owned());
            }
            Some(XRequest { body_example: Some(name), .. }) => {
                Some(body_examples.get(name).cloned().ok_or_else(|| {
                    format!("x-request.body_example: the operation has no request example `{name}`")
                })?)
            }
            Some(XRequest { body, .. }) => body.clone(),
        };
        let given = XRequest::default();
        let x_request = x_request.unwrap_or(&given);
        Ok(Self {
            method,
            path: fill_path(path, &x_request.path)?,
            headers: scalars("x-request.headers", &x_request.headers)?,
            query: scalars("x-request.query", &x_request.query)?,
            body,
        })
    }

    /// The JSON body sent, placeholders and all.
    #[cfg(test)]
    pub fn body(&self) -> Option<&Value> {
        self.body.as_ref()
    }

    /// Sends the request with `vars` substituted. The clock for one-time codes is read here,
    /// as late as it can be: right before the request is built and sent.
    pub async fn send(&self, client: &Client, base_url: &str, vars: &Vars) -> Result<Reply, String> {
        let scope = &Scope::now(vars)?;
        let path = substitute(&self.path, scope)?;
        let target = format!("{} {path}", self.method);
        let mut request = client.request(self.method.clone(), format!("{base_url}{path}"));
        for (name, value) in &self.headers {
            request = request.header(name, substitute(value, scope)?);
        }
        if !self.query.is_empty() {
            let query = self
                .query
                .iter()
                .map(|(name, value)| Ok((name.as_str(), substitute(value, scope)?)))
                .collect::<Result<Vec<_>, String>>()?;
            request = request.query(&query);
        }
        if let Some(body) = &self.body {
            request = request.json(&substitute_value(body, scope)?);
        }
        let response = request.send().await.map_err(|e| format!("{target}: {:#}", anyhow::Error::from(e)))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .text()
            .await
            .map_err(|e| format!("{target}: reading the body: {:#}", anyhow::Error::from(e)))?;
        Ok(Reply { status, headers, body })
    }
}

/// Where a case runs: the server, and its database (for outbox reads).
pub struct Target<'a> {
    pub base_url: &'a str,
    pub database_url: &'a str,
}

/// Runs the plan's setup steps, then sends its request.
pub async fn replay(client: &Client, target: &Target<'_>, plan: &Plan) -> Result<Reply, String> {
    let base_url = target.base_url;
    let mut vars = Vars::new();
    for step in &plan.setup {
        let failed = |reason: String| format!("x-setup step {}: {reason}", step.label);
        let (request, status) = match &step.action {
            StepAction::Request { request, status } => (request, *status),
            StepAction::Outbox { to } => {
                let body = outbox::latest_body(target.database_url, to).await.map_err(failed)?;
                vars.extend(outbox::capture(&body, &step.capture).map_err(failed)?);
                continue;
            }
        };
        let reply = request.send(client, base_url, &vars).await.map_err(failed)?;
        if reply.status != status {
            return Err(failed(format!(
                "status {}, expected {}; body: {}",
                reply.status,
                status,
                reply.snippet()
            )));
        }
        if step.capture.is_empty() {
            continue;
        }
        let body: Value = serde_json::from_str(&reply.body)
            .map_err(|e| failed(format!("the body is not JSON ({e}): {}", reply.snippet())))?;
        for (var, pointer) in &step.capture {
            let value = body
                .pointer(pointer)
                .ok_or_else(|| failed(format!("capture `{var}`: no `{pointer}` in the body")))?;
            vars.insert(var.clone(), value.clone());
        }
    }
    plan.request.send(client, base_url, &vars).await
}

/// Replaces each `{name}` of a path template with `x-request.path.name`.
fn fill_path(template: &str, params: &Map<String, Value>) -> Result<String, String> {
    let mut filled = String::new();
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let end = rest[start..]
            .find('}')
            .map(|end| start + end)
            .ok_or_else(|| format!("unclosed `{{` in {template}"))?;
        let name = &rest[start + 1..end];
        let value = params
            .get(name)
            .ok_or_else(|| format!("path parameter `{name}` of {template} is not given in x-request.path"))?;
        filled.push_str(&rest[..start]);
        filled.push_str(&scalar(value).map_err(|e| format!("x-request.path.{name}: {e}"))?);
        names.push(name);
        rest = &rest[end + 1..];
    }
    filled.push_str(rest);
    match params.keys().find(|given| !names.contains(&given.as_str())) {
        Some(extra) => Err(format!("x-request.path gives `{extra}`, which {template} does not have")),
        None => Ok(filled),
    }
}

fn scalars(section: &str, values: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    values
        .iter()
        .map(|(name, value)| Ok((name.clone(), scalar(value).map_err(|e| format!("{section}.{name}: {e}"))?)))
        .collect()
}

/// The text of a string, number or boolean.
fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text.clone()),
        Value::Number(_) | Value::Bool(_) => Ok(value.to_string()),
        _ => Err(format!("{value} is not a string, number or boolean")),
    }
}

/// Replaces every `{{var}}` and `{{function:var}}` in `text`: strings go in as they are,
/// other values as JSON.
fn substitute(text: &str, scope: &Scope) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unclosed `{{{{` in `{text}`"))?;
        out.push_str(&rest[..start]);
        match evaluate(&after[..end], scope)? {
            Value::String(text) => out.push_str(&text),
            value => out.push_str(&value.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Substitutes in every string of a JSON body; a string that is exactly `{{var}}` becomes
/// the captured value itself, keeping its JSON type (a function's result is a string).
fn substitute_value(value: &Value, scope: &Scope) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => match whole_placeholder(text) {
            Some(placeholder) => evaluate(placeholder, scope)?,
            None => Value::String(substitute(text, scope)?),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| substitute_value(item, scope)).collect::<Result<_, _>>()?)
        }
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, field)| Ok((name.clone(), substitute_value(field, scope)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn whole_placeholder(text: &str) -> Option<&str> {
    let name = text.strip_prefix("{{")?.strip_suffix("}}")?;
    (!name.contains("{{") && !name.contains("}}")).then_some(name)
}

/// The value of the inside of one placeholder: `var`, or `function:var`.
fn evaluate(placeholder: &str, scope: &Scope) -> Result<Value, String> {
    let Some((function, var)) = placeholder.split_once(':') else {
        let name = placeholder.trim();
        return scope
            .vars
            .get(name)
            .cloned()
            .ok_or_else(|| format!("`{{{{{name}}}}}` is not captured by any x-setup step"));
    };
    let (function, var) = (function.trim(), var.trim());
    let shown = format!("`{{{{{function}:{var}}}}}`");
    let Some(&(_, steps_ahead)) = TOTP_FUNCTIONS.iter().find(|(name, _)| *name == function) else {
        let known: Vec<_> = TOTP_FUNCTIONS.iter().map(|(name, _)| *name).collect();
        return Err(format!("{shown}: no function `{function}`; there are {}", known.join(", ")));
    };
    let secret = match scope.vars.get(var) {
        None => return Err(format!("{shown}: `{var}` is not captured by any x-setup step")),
        Some(Value::String(secret)) => secret,
        Some(other) => return Err(format!("{shown}: `{var}` is {other}, not a base32 TOTP secret")),
    };
    let totp = Totp::from_base32(secret, totp::DIGITS)
        .map_err(|e| format!("{shown}: `{var}` is not a TOTP secret: {e}"))?;
    Ok(Value::String(totp.at(scope.unix_time + steps_ahead * STEP_SECONDS)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars() -> Vars {
        Vars::from([
            ("id".to_owned(), json!("thg_1")),
            ("count".to_owned(), json!(3)),
            // RFC 6238's SHA-1 secret, "12345678901234567890", in base32.
            ("secret".to_owned(), json!("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ")),
        ])
    }

    /// The captured values at `unix_time`.
    fn at(vars: &Vars, unix_time: u64) -> Scope<'_> {
        Scope { vars, unix_time }
    }

    #[test]
    fn placeholders_are_substituted_in_text_and_bodies() -> Result<(), String> {
        let vars = vars();
        let scope = &at(&vars, 0);
        assert_eq!(substitute("/v1/things/{{id}}?n={{ count }}", scope)?, "/v1/things/thg_1?n=3");
        let body = json!({ "id": "{{id}}", "count": "{{count}}", "note": "of {{id}}", "tags": ["{{id}}"] });
        assert_eq!(
            substitute_value(&body, scope)?,
            json!({ "id": "thg_1", "count": 3, "note": "of thg_1", "tags": ["thg_1"] })
        );
        let unknown = substitute("{{nope}}", scope);
        assert!(unknown.is_err_and(|e| e.contains("`{{nope}}` is not captured")));
        Ok(())
    }

    #[test]
    fn totp_functions_give_the_code_of_this_step_and_the_next() -> Result<(), String> {
        let vars = vars();
        // The RFC 6238 vectors for T = 1111111109 and 1111111111 (a new step starts at
        // 1111111110), cut to six digits.
        let scope = &at(&vars, 1_111_111_109);
        assert_eq!(substitute("{{totp:secret}} then {{ totp_next : secret }}", scope)?, "081804 then 050471");
        // A whole-string placeholder stays a string, leading zero and all.
        let body = json!({ "code": "{{totp:secret}}", "next": "{{totp_next:secret}}" });
        assert_eq!(substitute_value(&body, scope)?, json!({ "code": "081804", "next": "050471" }));
        assert_eq!(substitute("{{totp:secret}}", &at(&vars, 1_111_111_110))?, "050471");
        Ok(())
    }

    #[test]
    fn bad_totp_placeholders_fail_with_the_reason() {
        let vars = vars();
        let scope = &at(&vars, 59);
        let fails = |text: &str, expected: &str| match substitute(text, scope) {
            Ok(filled) => panic!("`{text}` gave `{filled}`, expected an error"),
            Err(e) => assert_eq!(e, expected),
        };
        fails("{{hotp:secret}}", "`{{hotp:secret}}`: no function `hotp`; there are totp, totp_next");
        fails("{{totp:nope}}", "`{{totp:nope}}`: `nope` is not captured by any x-setup step");
        fails("{{totp_next:count}}", "`{{totp_next:count}}`: `count` is 3, not a base32 TOTP secret");
        let not_base32 = substitute("{{totp:id}}", scope);
        assert!(
            not_base32.is_err_and(|e| e.starts_with("`{{totp:id}}`: `id` is not a TOTP secret: not base32"))
        );
        let in_body = substitute_value(&json!({ "code": "{{totp:nope}}" }), scope);
        assert!(in_body.is_err_and(|e| e.contains("`nope` is not captured")));
    }

    #[test]
    fn path_parameters_come_from_x_request() -> Result<(), String> {
        let params = Map::from_iter([("id".to_owned(), json!("{{id}}"))]);
        assert_eq!(fill_path("/v1/things/{id}/parts", &params)?, "/v1/things/{{id}}/parts");
        let missing = fill_path("/v1/things/{id}", &Map::new());
        assert!(missing.is_err_and(|e| e.contains("path parameter `id`")));
        let extra = fill_path("/v1/things", &params);
        assert!(extra.is_err_and(|e| e.contains("gives `id`")));
        Ok(())
    }
}
