//! The frames of `/v1/runs/ws` as Rust types, named as in
//! `openapi/asyncapi.yaml`. Their JSON Schemas (schemars) are what the
//! WebSocket drift test compares with the document; the events of a run are
//! the HTTP spec's `RunStreamEvent`, sent as `GET /v1/runs/{id}/events`
//! sends them, and the document points at those schemas instead.

use schemars::JsonSchema;
use schemars::r#gen::SchemaGenerator;
use schemars::schema::{Schema, SchemaObject};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A frame the client sends, by its `type`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ClientFrame {
    #[serde(rename = "auth")]
    Auth(AuthFrame),
    #[serde(rename = "run.create")]
    RunCreate(RunCreateFrame),
    #[serde(rename = "tool.output")]
    ToolOutput(ToolOutputFrame),
    #[serde(rename = "approval")]
    Approval(ApprovalFrame),
    #[serde(rename = "run.cancel")]
    RunCancel(RunCancelFrame),
    #[serde(rename = "run.attach")]
    RunAttach(RunAttachFrame),
    #[serde(rename = "ping")]
    Ping(PingFrame),
}

/// A frame the server sends besides a run's events, by its `type`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(tag = "type")]
pub enum ServerFrame {
    #[serde(rename = "ready")]
    Ready(ReadyFrame),
    #[serde(rename = "run.created")]
    RunCreated(RunCreatedFrame),
    #[serde(rename = "run.attached")]
    RunAttached(RunAttachedFrame),
    #[serde(rename = "pong")]
    Pong(PongFrame),
    #[serde(rename = "error")]
    Error(ErrorFrame),
}

/// The credential, when the upgrade carried none.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct AuthFrame {
    pub token: String,
    pub org: Option<String>,
}

/// Starts a run and follows it on this connection.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RunCreateFrame {
    #[serde(rename = "ref")]
    #[schemars(length(min = 1, max = 64))]
    pub reference: Option<String>,
    pub org: Option<String>,
    #[schemars(length(min = 1, max = 255))]
    pub idempotency_key: Option<String>,
    // The body of `POST /v1/runs`, read as that operation reads it.
    #[schemars(schema_with = "create_run_request")]
    pub run: Value,
}

/// The output of one client tool call.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ToolOutputFrame {
    #[serde(rename = "ref")]
    #[schemars(length(min = 1, max = 64))]
    pub reference: Option<String>,
    pub run_id: String,
    pub tool_call_id: String,
    pub output: String,
}

/// An approver's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionName {
    Approved,
    Rejected,
}

/// An approver's decision on a paused run.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct ApprovalFrame {
    #[serde(rename = "ref")]
    #[schemars(length(min = 1, max = 64))]
    pub reference: Option<String>,
    pub run_id: String,
    pub decision: DecisionName,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RunCancelFrame {
    #[serde(rename = "ref")]
    #[schemars(length(min = 1, max = 64))]
    pub reference: Option<String>,
    pub run_id: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct RunAttachFrame {
    #[serde(rename = "ref")]
    #[schemars(length(min = 1, max = 64))]
    pub reference: Option<String>,
    pub run_id: String,
    // The `seq` of the last event received.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub after: i64,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
pub struct PingFrame {
    #[serde(rename = "ref")]
    #[schemars(length(min = 1, max = 64))]
    pub reference: Option<String>,
}

/// The connection is authenticated.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ReadyFrame {
    pub user_id: String,
    pub key_id: Option<String>,
    pub heartbeat_secs: u32,
}

/// The run a `run.create` frame started.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunCreatedFrame {
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub replayed: bool,
    // The run, as `POST /v1/runs` renders it.
    #[schemars(schema_with = "run")]
    pub run: Value,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunAttachedFrame {
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub run_id: String,
    pub after: i64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PongFrame {
    #[serde(rename = "ref")]
    pub reference: Option<String>,
}

/// A frame the server could not act on.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorFrame {
    #[serde(rename = "ref")]
    pub reference: Option<String>,
    pub run_id: Option<String>,
    // The HTTP envelope's `error` object.
    #[schemars(schema_with = "error_detail")]
    pub error: Value,
}

/// A schema of the HTTP spec, which the AsyncAPI document references.
fn http_schema(name: &str) -> Schema {
    Schema::Object(SchemaObject::new_ref(format!("switchyard.yaml#/components/schemas/{name}")))
}

fn create_run_request(_: &mut SchemaGenerator) -> Schema {
    http_schema("CreateRunRequest")
}

fn run(_: &mut SchemaGenerator) -> Schema {
    http_schema("Run")
}

fn error_detail(_: &mut SchemaGenerator) -> Schema {
    http_schema("ErrorDetail")
}
