//! Operator HTTP tools (`[tools.<name>]`): tools whose work is a request to
//! the operator's own service, sent through the outbound guard. The checked
//! arguments are the JSON body, and `Idempotency-Key: <run_id>:<tool_call_id>`
//! lets the service apply a repeated call once. Header values come from
//! environment variables read at start; they are marked sensitive, so they
//! are never logged and never follow a redirect to another origin. An error
//! status or a refused request is a tool error the model reads, never a
//! failed run.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

use super::{InvalidTool, ServerTool, ToolContext, ToolFuture, compile};
use crate::outbound::{Outbound, OutboundRequest};
use crate::runs::service::MAX_TOOL_DESCRIPTION_CHARS;

/// The largest answer that becomes a tool result; a longer one is a tool error.
pub const MAX_ANSWER_BYTES: u64 = 1024 * 1024;
/// How much of an error answer the model is shown.
const ERROR_EXCERPT_CHARS: usize = 1_000;
/// Headers the server sets on every call itself.
const SET_BY_THE_SERVER: [HeaderName; 4] =
    [header::CONTENT_TYPE, header::CONTENT_LENGTH, header::HOST, HeaderName::from_static("idempotency-key")];

/// `[tools.<name>]`: one operator HTTP tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpToolConfig {
    /// Where each call is sent (https, or http where `[outbound] allow_http`).
    pub url: String,
    #[serde(default)]
    pub method: HttpToolMethod,
    /// What the model is told the tool does.
    pub description: String,
    /// A JSON Schema for the arguments (default: any object).
    #[serde(default = "any_object")]
    pub parameters: Value,
    /// The service applies a repeated call (same `Idempotency-Key`) once, so
    /// a run resumed after a crash may send it again.
    #[serde(default)]
    pub idempotent: bool,
    /// Instead of `[outbound] timeout_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Each call waits for a person's approval.
    #[serde(default)]
    pub requires_approval: bool,
    /// Header name to the environment variable holding its value
    /// (`{ Authorization = "ORDERS_TOKEN" }`); values never go in the file.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers_env: BTreeMap<String, String>,
}

fn any_object() -> Value {
    json!({"type": "object"})
}

impl HttpToolConfig {
    /// A tool sending to `url`, with the defaults a `[tools.<name>]` table
    /// without more keys has.
    pub fn new(url: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: HttpToolMethod::default(),
            description: description.into(),
            parameters: any_object(),
            idempotent: false,
            timeout_ms: None,
            requires_approval: false,
            headers_env: BTreeMap::new(),
        }
    }
}

/// The methods a tool may use: each sends the arguments as its body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpToolMethod {
    #[default]
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpToolMethod {
    fn method(self) -> Method {
        match self {
            Self::Post => Method::POST,
            Self::Put => Method::PUT,
            Self::Patch => Method::PATCH,
            Self::Delete => Method::DELETE,
        }
    }
}

pub struct HttpTool {
    name: String,
    description: String,
    parameters: Value,
    method: Method,
    url: Url,
    /// The configured headers, their values marked sensitive.
    headers: HeaderMap,
    timeout: Option<Duration>,
    idempotent: bool,
    requires_approval: bool,
    outbound: Outbound,
}

impl HttpTool {
    /// The tool `[tools.<name>]` describes, with its header values read from
    /// the environment; the error names the setting at fault.
    pub fn from_config(
        name: &str,
        config: &HttpToolConfig,
        outbound: &Outbound,
    ) -> Result<Self, InvalidTool> {
        let invalid = |field: &str, reason: String| InvalidTool {
            key: if field.is_empty() { format!("tools.{name}") } else { format!("tools.{name}.{field}") },
            reason,
        };
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !name_ok {
            return Err(invalid("", "a tool name is 1 to 64 of a-z, A-Z, 0-9, _ and -".to_owned()));
        }
        let url = Url::parse(&config.url).map_err(|err| invalid("url", format!("not a URL: {err}")))?;
        outbound.check_url_syntax(&url).map_err(|err| invalid("url", err.to_string()))?;
        if config.description.trim().is_empty() {
            return Err(invalid("description", "tell the model what the tool does".to_owned()));
        }
        if config.description.chars().count() > MAX_TOOL_DESCRIPTION_CHARS {
            return Err(invalid(
                "description",
                format!("longer than {MAX_TOOL_DESCRIPTION_CHARS} characters"),
            ));
        }
        compile(&config.parameters)
            .map_err(|reason| invalid("parameters", format!("not a JSON Schema: {reason}")))?;
        if config.timeout_ms == Some(0) {
            return Err(invalid("timeout_ms", "must be positive".to_owned()));
        }
        let mut headers = HeaderMap::new();
        for (header, var) in &config.headers_env {
            let field = format!("headers_env.{header}");
            let header_name = HeaderName::from_bytes(header.as_bytes())
                .map_err(|_| invalid(&field, format!("{header:?} is not a header name")))?;
            if SET_BY_THE_SERVER.contains(&header_name) {
                return Err(invalid(&field, format!("the server sets {header} itself")));
            }
            let text = std::env::var(var)
                .map_err(|_| invalid(&field, format!("the environment variable {var} is not set")))?;
            let mut value = HeaderValue::from_str(&text)
                .map_err(|_| invalid(&field, format!("the value of {var} cannot be sent in a header")))?;
            value.set_sensitive(true);
            headers.insert(header_name, value);
        }
        Ok(Self {
            name: name.to_owned(),
            description: config.description.clone(),
            parameters: config.parameters.clone(),
            method: config.method.method(),
            url,
            headers,
            timeout: config.timeout_ms.map(Duration::from_millis),
            idempotent: config.idempotent,
            requires_approval: config.requires_approval,
            outbound: outbound.clone(),
        })
    }

    async fn send(&self, arguments: Value, context: &ToolContext) -> Result<String, String> {
        let key = format!("{}:{}", context.run_id, context.tool_call_id);
        let key = HeaderValue::from_str(&key).map_err(|_| "the tool call's id cannot be sent in a header")?;
        let mut request = OutboundRequest::new(self.method.clone(), self.url.clone());
        request.headers = self.headers.clone();
        request.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        request.headers.insert(HeaderName::from_static("idempotency-key"), key);
        request.body = Some(arguments.to_string().into());
        request.timeout = self.timeout;
        request.max_response_bytes = Some(MAX_ANSWER_BYTES);
        // Logged by tool, run and cause; never the headers, which may hold secrets.
        let (tool, run_id) = (&self.name, &context.run_id);
        let answer = self.outbound.send(request).await.map_err(|err| {
            tracing::warn!(%tool, %run_id, error = %err, "an HTTP tool's request failed");
            format!("the tool's request failed: {err}")
        })?;
        if !answer.status.is_success() {
            let status = answer.status.as_u16();
            tracing::warn!(%tool, %run_id, status, "an HTTP tool's service answered with an error");
            let excerpt: String =
                String::from_utf8_lossy(&answer.body).chars().take(ERROR_EXCERPT_CHARS).collect();
            return Err(format!("the tool's service answered {}: {excerpt}", answer.status));
        }
        String::from_utf8(answer.body.to_vec())
            .map_err(|_| "the tool's service answered with text that is not UTF-8".to_owned())
    }
}

impl ServerTool for HttpTool {
    fn name(&self) -> &str {
        &self.name
    }

    fn description(&self) -> &str {
        &self.description
    }

    fn parameters(&self) -> Value {
        self.parameters.clone()
    }

    fn call<'a>(&'a self, arguments: Value, context: &'a ToolContext) -> ToolFuture<'a> {
        Box::pin(self.send(arguments, context))
    }

    fn idempotent(&self) -> bool {
        self.idempotent
    }

    fn requires_approval(&self) -> bool {
        self.requires_approval
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::OutboundConfig;

    fn config(url: &str) -> HttpToolConfig {
        HttpToolConfig::new(url, "Looks up an order")
    }

    fn key_of(name: &str, config: &HttpToolConfig) -> Option<String> {
        let outbound = Outbound::new(&OutboundConfig::default()).unwrap();
        HttpTool::from_config(name, config, &outbound).err().map(|err| err.key)
    }

    #[test]
    fn a_well_formed_tool_is_accepted() {
        assert_eq!(key_of("lookup_order", &config("https://orders.example.com/lookup")), None);
    }

    #[test]
    fn each_bad_setting_is_named() {
        let https = "https://orders.example.com/lookup";
        let cases: Vec<(&str, HttpToolConfig, &str)> = vec![
            ("look up", config(https), "tools.look up"),
            ("t", config("not a url"), "tools.t.url"),
            ("t", config("http://orders.example.com/"), "tools.t.url"),
            ("t", config("https://user:pw@orders.example.com/"), "tools.t.url"),
            ("t", config("https://10.0.0.1/"), "tools.t.url"),
            ("t", HttpToolConfig { description: " ".to_owned(), ..config(https) }, "tools.t.description"),
            (
                "t",
                HttpToolConfig { parameters: json!({"type": "nothing"}), ..config(https) },
                "tools.t.parameters",
            ),
            ("t", HttpToolConfig { timeout_ms: Some(0), ..config(https) }, "tools.t.timeout_ms"),
            (
                "t",
                HttpToolConfig {
                    headers_env: BTreeMap::from([(
                        "X-Token".to_owned(),
                        "SWITCHYARD_UNIT_SURELY_UNSET".to_owned(),
                    )]),
                    ..config(https)
                },
                "tools.t.headers_env.X-Token",
            ),
            (
                "t",
                HttpToolConfig {
                    headers_env: BTreeMap::from([("Idempotency-Key".to_owned(), "PATH".to_owned())]),
                    ..config(https)
                },
                "tools.t.headers_env.Idempotency-Key",
            ),
            (
                "t",
                HttpToolConfig {
                    headers_env: BTreeMap::from([("bad header".to_owned(), "PATH".to_owned())]),
                    ..config(https)
                },
                "tools.t.headers_env.bad header",
            ),
        ];
        for (name, config, key) in cases {
            assert_eq!(key_of(name, &config).as_deref(), Some(key), "{config:?}");
        }
    }

    #[test]
    fn the_toml_form_reads_with_its_defaults_and_prints_back() {
        let text = r#"
            url = "https://orders.example.com/lookup"
            description = "Looks up an order"
            parameters = { type = "object", properties = { id = { type = "string" } }, required = ["id"] }
            headers_env = { Authorization = "ORDERS_TOKEN" }
        "#;
        let read: HttpToolConfig = toml::from_str(text).unwrap();
        let defaults = HttpToolConfig::new("https://orders.example.com/lookup", "Looks up an order");
        let schema = json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]});
        assert_eq!(
            read,
            HttpToolConfig {
                parameters: schema,
                headers_env: BTreeMap::from([("Authorization".to_owned(), "ORDERS_TOKEN".to_owned())]),
                ..defaults
            }
        );
        let printed = toml::to_string(&read).unwrap();
        assert_eq!(toml::from_str::<HttpToolConfig>(&printed).unwrap(), read);
        let unknown = toml::from_str::<HttpToolConfig>(
            "url = \"https://a.example\"\ndescription = \"d\"\nverb = \"GET\"\n",
        );
        assert!(unknown.is_err());
        let get = toml::from_str::<HttpToolConfig>(
            "url = \"https://a.example\"\ndescription = \"d\"\nmethod = \"GET\"\n",
        );
        assert!(get.is_err(), "arguments go in a body, so GET is not a method for tools");
    }
}
