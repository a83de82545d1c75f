//! Server tools: what a run can call without the client. The registry holds
//! the built-in tools (`calculate`, `current_time`) and the operator's HTTP
//! tools from `[tools.<name>]` (`http`); each built-in is one file, with its
//! JSON Schema, and arguments are checked against the schema before a tool
//! runs.

mod calculate;
mod current_time;
mod http;

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use http::{HttpToolConfig, HttpToolMethod};

use crate::outbound::Outbound;

/// What a tool may read about the call it serves.
#[derive(Debug, Clone)]
pub struct ToolContext {
    pub run_id: String,
    pub tool_call_id: String,
    pub now: DateTime<Utc>,
}

/// A tool's answer: the text the model is given, or why it failed (also
/// given to the model, which may try again).
pub type ToolResult = Result<String, String>;

pub type ToolFuture<'a> = Pin<Box<dyn Future<Output = ToolResult> + Send + 'a>>;

/// A tool the server executes.
pub trait ServerTool: Send + Sync {
    fn name(&self) -> &str;
    fn description(&self) -> &str;
    /// A JSON Schema for the arguments.
    fn parameters(&self) -> Value;
    /// Runs the tool on arguments that passed its schema.
    fn call<'a>(&'a self, arguments: Value, context: &'a ToolContext) -> ToolFuture<'a>;
    /// Whether calling it twice with the same arguments does no more than
    /// calling it once, so a run resumed after a crash may call it again.
    /// The built-in tools are pure.
    fn idempotent(&self) -> bool {
        true
    }
    /// Whether a person must approve each call before it runs.
    fn requires_approval(&self) -> bool {
        false
    }
}

/// A server tool with its schema compiled.
struct Registered {
    tool: Arc<dyn ServerTool>,
    validator: jsonschema::Validator,
}

/// The server tools runs may name, by name.
pub struct ToolRegistry {
    tools: BTreeMap<String, Registered>,
}

impl std::fmt::Debug for ToolRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.tools.keys()).finish()
    }
}

/// A tool that cannot be registered; `key` names the setting at fault
/// (`tools.lookup_order.url`), or the tool.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InvalidTool {
    pub key: String,
    pub reason: String,
}

impl ToolRegistry {
    /// The built-in tools.
    pub fn builtin() -> Result<Self, InvalidTool> {
        let mut registry = Self { tools: BTreeMap::new() };
        registry.register(Arc::new(calculate::Calculate))?;
        registry.register(Arc::new(current_time::CurrentTime))?;
        Ok(registry)
    }

    /// The built-in tools and the operator's HTTP tools (`[tools.<name>]`),
    /// which call out through `outbound`. A configured name may not be a
    /// built-in one.
    pub fn with_http_tools(
        configured: &BTreeMap<String, HttpToolConfig>,
        outbound: &Outbound,
    ) -> Result<Self, InvalidTool> {
        let mut registry = Self::builtin()?;
        for (name, config) in configured {
            if registry.contains(name) {
                return Err(InvalidTool {
                    key: format!("tools.{name}"),
                    reason: format!("{name} is a built-in tool; give yours another name"),
                });
            }
            registry.register(Arc::new(http::HttpTool::from_config(name, config, outbound)?))?;
        }
        Ok(registry)
    }

    pub fn register(&mut self, tool: Arc<dyn ServerTool>) -> Result<(), InvalidTool> {
        let validator = compile(&tool.parameters()).map_err(|reason| InvalidTool {
            key: format!("tool {}", tool.name()),
            reason: format!("the parameters are not a valid JSON Schema: {reason}"),
        })?;
        self.tools.insert(tool.name().to_owned(), Registered { tool, validator });
        Ok(())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tools.contains_key(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.tools.keys().map(String::as_str)
    }

    /// Name, description and schema, as the model is offered the tool.
    pub fn describe(&self, name: &str) -> Option<(&str, &str, Value)> {
        let tool = &self.tools.get(name)?.tool;
        Some((tool.name(), tool.description(), tool.parameters()))
    }

    /// Whether the tool `name` may be called again with the same arguments
    /// (see [`ServerTool::idempotent`]); `None` for no such tool.
    pub fn idempotent(&self, name: &str) -> Option<bool> {
        self.tools.get(name).map(|registered| registered.tool.idempotent())
    }

    /// Whether each call of the tool `name` waits for a person's approval;
    /// `None` for no such tool.
    pub fn requires_approval(&self, name: &str) -> Option<bool> {
        self.tools.get(name).map(|registered| registered.tool.requires_approval())
    }

    /// Runs the tool `name` on the model's `arguments` (JSON text): checked
    /// against its schema first, so a tool only ever sees valid input.
    pub async fn call(&self, name: &str, arguments: &str, context: &ToolContext) -> ToolResult {
        let Some(registered) = self.tools.get(name) else {
            return Err(format!("there is no server tool named {name}"));
        };
        let arguments = checked_arguments(&registered.validator, arguments)?;
        registered.tool.call(arguments, context).await
    }
}

/// Compiles a tool's parameter schema; the error says what is wrong with it.
pub fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    if !schema.is_object() {
        return Err("a schema must be a JSON object".to_owned());
    }
    jsonschema::meta::validate(schema).map_err(|err| err.to_string())?;
    jsonschema::validator_for(schema).map_err(|err| err.to_string())
}

/// The model's arguments parsed and checked against the tool's schema; the
/// error is written for the model to correct its call.
pub fn checked_arguments(validator: &jsonschema::Validator, arguments: &str) -> Result<Value, String> {
    let text = if arguments.trim().is_empty() { "{}" } else { arguments };
    let value: Value =
        serde_json::from_str(text).map_err(|err| format!("the arguments are not valid JSON: {err}"))?;
    let problems: Vec<String> = validator
        .iter_errors(&value)
        .take(5)
        .map(|err| {
            let at = err.instance_path().to_string();
            if at.is_empty() { err.to_string() } else { format!("{at}: {err}") }
        })
        .collect();
    if problems.is_empty() {
        Ok(value)
    } else {
        Err(format!("the arguments do not match the tool's schema: {}", problems.join("; ")))
    }
}
