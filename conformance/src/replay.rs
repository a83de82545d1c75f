//! Sends a case's requests: its `x-setup` steps, capturing `{{var}}` values from their
//! responses, then the request whose response is checked.

use std::collections::BTreeMap;

use reqwest::header::HeaderMap;
use reqwest::{Client, Method};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::spec::Plan;

/// Values captured by `x-setup` steps, by variable name.
type Vars = BTreeMap<String, Value>;

/// How much of an unexpected body a failure message quotes.
const SNIPPET_CHARS: usize = 300;

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

    /// Sends the request with `vars` substituted.
    pub async fn send(&self, client: &Client, base_url: &str, vars: &Vars) -> Result<Reply, String> {
        let path = substitute(&self.path, vars)?;
        let target = format!("{} {path}", self.method);
        let mut request = client.request(self.method.clone(), format!("{base_url}{path}"));
        for (name, value) in &self.headers {
            request = request.header(name, substitute(value, vars)?);
        }
        if !self.query.is_empty() {
            let query = self
                .query
                .iter()
                .map(|(name, value)| Ok((name.as_str(), substitute(value, vars)?)))
                .collect::<Result<Vec<_>, String>>()?;
            request = request.query(&query);
        }
        if let Some(body) = &self.body {
            request = request.json(&substitute_value(body, vars)?);
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

/// Runs the plan's setup steps, then sends its request.
pub async fn replay(client: &Client, base_url: &str, plan: &Plan) -> Result<Reply, String> {
    let mut vars = Vars::new();
    for step in &plan.setup {
        let failed = |reason: String| format!("x-setup step {}: {reason}", step.label);
        let reply = step.request.send(client, base_url, &vars).await.map_err(failed)?;
        if reply.status != step.status {
            return Err(failed(format!(
                "status {}, expected {}; body: {}",
                reply.status,
                step.status,
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

/// Replaces every `{{var}}` in `text`: strings go in as they are, other values as JSON.
fn substitute(text: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after.find("}}").ok_or_else(|| format!("unclosed `{{{{` in `{text}`"))?;
        out.push_str(&rest[..start]);
        match lookup(&after[..end], vars)? {
            Value::String(captured) => out.push_str(captured),
            captured => out.push_str(&captured.to_string()),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Substitutes in every string of a JSON body; a string that is exactly `{{var}}` becomes
/// the captured value itself, keeping its JSON type.
fn substitute_value(value: &Value, vars: &Vars) -> Result<Value, String> {
    Ok(match value {
        Value::String(text) => match whole_placeholder(text) {
            Some(name) => lookup(name, vars)?.clone(),
            None => Value::String(substitute(text, vars)?),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| substitute_value(item, vars)).collect::<Result<_, _>>()?)
        }
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(name, field)| Ok((name.clone(), substitute_value(field, vars)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn whole_placeholder(text: &str) -> Option<&str> {
    let name = text.strip_prefix("{{")?.strip_suffix("}}")?;
    (!name.contains("{{") && !name.contains("}}")).then_some(name)
}

fn lookup<'a>(name: &str, vars: &'a Vars) -> Result<&'a Value, String> {
    let name = name.trim();
    vars.get(name).ok_or_else(|| format!("`{{{{{name}}}}}` is not captured by any x-setup step"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn vars() -> Vars {
        Vars::from([("id".to_owned(), json!("thg_1")), ("count".to_owned(), json!(3))])
    }

    #[test]
    fn placeholders_are_substituted_in_text_and_bodies() -> Result<(), String> {
        assert_eq!(substitute("/v1/things/{{id}}?n={{ count }}", &vars())?, "/v1/things/thg_1?n=3");
        let body = json!({ "id": "{{id}}", "count": "{{count}}", "note": "of {{id}}", "tags": ["{{id}}"] });
        assert_eq!(
            substitute_value(&body, &vars())?,
            json!({ "id": "thg_1", "count": 3, "note": "of thg_1", "tags": ["thg_1"] })
        );
        let unknown = substitute("{{nope}}", &vars());
        assert!(unknown.is_err_and(|e| e.contains("`{{nope}}` is not captured")));
        Ok(())
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
