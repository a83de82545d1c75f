//! The runs API's wire types, named as in the spec, and their conversions
//! from and to the area's model.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{Enum, Object, Union};
use serde_json::{Value, json};
use switchyard_providers::price::format_usd_micros;

use crate::http::error::{ApiError, ErrorCode, ErrorType};
use crate::http::page::page_type;
use crate::http::wire::timestamp;
use crate::runs::model::{self, Executor, RunStatus, Step};
use crate::runs::{NewRun, RunTool, ToolOutput};

/// Where a run is: `pending`, `running`, `requires_action` (waiting for
/// client tool outputs) and `paused` (waiting for an approver) can change;
/// `completed`, `blocked`, `cancelled` and `error` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RunStatusName {
    Pending,
    Running,
    RequiresAction,
    Paused,
    Completed,
    Blocked,
    Cancelled,
    Error,
}

impl From<RunStatus> for RunStatusName {
    fn from(status: RunStatus) -> Self {
        match status {
            RunStatus::Pending => Self::Pending,
            RunStatus::Running => Self::Running,
            RunStatus::RequiresAction => Self::RequiresAction,
            RunStatus::Paused => Self::Paused,
            RunStatus::Completed => Self::Completed,
            RunStatus::Blocked => Self::Blocked,
            RunStatus::Cancelled => Self::Cancelled,
            RunStatus::Error => Self::Error,
        }
    }
}

impl From<RunStatusName> for RunStatus {
    fn from(status: RunStatusName) -> Self {
        match status {
            RunStatusName::Pending => Self::Pending,
            RunStatusName::Running => Self::Running,
            RunStatusName::RequiresAction => Self::RequiresAction,
            RunStatusName::Paused => Self::Paused,
            RunStatusName::Completed => Self::Completed,
            RunStatusName::Blocked => Self::Blocked,
            RunStatusName::Cancelled => Self::Cancelled,
            RunStatusName::Error => Self::Error,
        }
    }
}

/// Who may write a message a run starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum RunMessageRole {
    System,
    Developer,
    User,
    Assistant,
}

/// A message of the conversation a run starts from.
#[derive(Debug, Clone, Object)]
pub struct RunInputMessage {
    pub role: RunMessageRole,
    /// At most 100,000 characters.
    pub content: String,
}

impl From<RunInputMessage> for model::InputMessage {
    fn from(message: RunInputMessage) -> Self {
        let role = match message.role {
            RunMessageRole::System => "system",
            RunMessageRole::Developer => "developer",
            RunMessageRole::User => "user",
            RunMessageRole::Assistant => "assistant",
        };
        Self { role: role.to_owned(), content: message.content }
    }
}

/// A tool the caller executes itself: the run waits in `requires_action`
/// until its output is sent.
#[derive(Debug, Clone, Object)]
pub struct ClientToolDeclaration {
    /// 1 to 64 of `a-z A-Z 0-9 _ -`; not the name of a server tool.
    pub name: String,
    /// What the tool does, for the model; at most 4,096 characters.
    pub description: Option<String>,
    /// A JSON Schema object for the arguments; the model's arguments are
    /// checked against it before the call reaches you. Default: an object
    /// with any properties.
    pub parameters: Option<BTreeMap<String, Value>>,
}

/// A tool the run offers the model: a server tool by name (`calculate`,
/// `current_time`), or the declaration of a client tool.
///
/// Its `Type` is written out: poem-openapi's untagged `Union` documents a
/// string-or-object union with `type: object`, which refuses the string.
#[derive(Debug, Clone)]
pub enum RunToolParam {
    Server(String),
    Client(ClientToolDeclaration),
}

impl Type for RunToolParam {
    const IS_REQUIRED: bool = true;

    type RawValueType = Self;

    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        "RunToolParam".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Reference(Self::name().into_owned())
    }

    fn register(registry: &mut Registry) {
        registry.create_schema::<Self, _>(Self::name().into_owned(), |registry| {
            ClientToolDeclaration::register(registry);
            MetaSchema {
                description: Some(
                    "A server tool by name (`calculate`, `current_time`), or the declaration of a client tool.",
                ),
                one_of: vec![String::schema_ref(), ClientToolDeclaration::schema_ref()],
                ..MetaSchema::ANY
            }
        });
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ParseFromJSON for RunToolParam {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value {
            Some(Value::String(name)) => Ok(Self::Server(name)),
            Some(declared @ Value::Object(_)) => ClientToolDeclaration::parse_from_json(Some(declared))
                .map(Self::Client)
                .map_err(ParseError::propagate),
            other => Err(ParseError::expected_type(other.unwrap_or_default())),
        }
    }
}

impl ToJSON for RunToolParam {
    fn to_json(&self) -> Option<Value> {
        match self {
            Self::Server(name) => Some(Value::String(name.clone())),
            Self::Client(declared) => declared.to_json(),
        }
    }
}

/// `POST /v1/runs`.
#[derive(Debug, Clone, Object)]
pub struct CreateRunRequest {
    /// A gateway route, as `GET /v1/models` lists them. Default `default`.
    pub model: Option<String>,
    /// A system message put before the conversation; at most 100,000 characters.
    pub instructions: Option<String>,
    /// The conversation the run starts from: 1 to 100 messages. Leave it
    /// out to continue a session (`session_id` and `message`).
    #[oai(validator(min_items = 1, max_items = 100))]
    pub messages: Option<Vec<RunInputMessage>>,
    /// The session to continue: the run starts from its history and
    /// `message`, and its answer joins the history. A session runs one run
    /// at a time (409 `run.session_busy`).
    pub session_id: Option<String>,
    /// The new message of a run that continues a session.
    pub message: Option<RunInputMessage>,
    /// At most 64 tools, each name once.
    #[oai(default, validator(max_items = 64))]
    pub tools: Vec<RunToolParam>,
    /// The most steps (model answers and tool calls) the run may take: 1 to 100, default 10.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub max_steps: Option<u32>,
    /// The most the run's model calls may cost, in USD (`"0.50"`). Each
    /// call is checked against what is left before it runs.
    pub max_cost_usd: Option<String>,
    /// Your own keys and values, returned with the run; at most 10 KB as JSON.
    pub metadata: Option<BTreeMap<String, Value>>,
    /// Answer at once with the run `pending` (202) instead of when it stops.
    #[oai(default)]
    pub background: bool,
    /// Answer with the run's events as server-sent events, from its first,
    /// as they are written, until it ends (201, `text/event-stream`).
    #[oai(default)]
    pub stream: bool,
    /// Members of the organization (user ids `usr_…` or emails) who decide
    /// when the run pauses for approval; at most 20. The route's policy may
    /// add its own. With none, the organization's owners and admins decide.
    #[oai(default, validator(max_items = 20))]
    pub approvers: Vec<String>,
}

impl From<CreateRunRequest> for NewRun {
    fn from(body: CreateRunRequest) -> Self {
        NewRun {
            model: body.model,
            instructions: body.instructions,
            messages: body.messages.unwrap_or_default().into_iter().map(model::InputMessage::from).collect(),
            session_id: body.session_id,
            message: body.message.map(model::InputMessage::from),
            tools: body
                .tools
                .into_iter()
                .map(|tool| match tool {
                    RunToolParam::Server(name) => RunTool::Server(name),
                    RunToolParam::Client(declared) => RunTool::Client(model::ClientTool {
                        name: declared.name,
                        description: declared.description,
                        parameters: declared.parameters.map_or_else(
                            || json!({"type": "object", "properties": {}}),
                            |schema| Value::Object(schema.into_iter().collect()),
                        ),
                    }),
                })
                .collect(),
            max_steps: body.max_steps,
            max_cost_usd: body.max_cost_usd,
            metadata: body.metadata.map(|metadata| metadata.into_iter().collect()),
            background: body.background,
            approvers: body.approvers,
        }
    }
}

/// One client tool's result.
#[derive(Debug, Clone, Object)]
pub struct ToolOutputParam {
    /// An id from the run's `pending_tool_calls`.
    pub tool_call_id: String,
    /// What the tool returned, as the model will read it; at most 100,000 characters.
    pub output: String,
}

/// `POST /v1/runs/{id}/tool-outputs`.
#[derive(Debug, Clone, Object)]
pub struct SubmitToolOutputsRequest {
    /// Outputs for some or all of the pending calls.
    #[oai(validator(min_items = 1, max_items = 64))]
    pub tool_outputs: Vec<ToolOutputParam>,
}

impl SubmitToolOutputsRequest {
    pub fn into_outputs(self) -> Vec<ToolOutput> {
        self.tool_outputs
            .into_iter()
            .map(|output| ToolOutput { tool_call_id: output.tool_call_id, output: output.output })
            .collect()
    }
}

/// An approver's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ApprovalDecision {
    Approved,
    Rejected,
}

impl From<ApprovalDecision> for model::Decision {
    fn from(decision: ApprovalDecision) -> Self {
        match decision {
            ApprovalDecision::Approved => Self::Approved,
            ApprovalDecision::Rejected => Self::Rejected,
        }
    }
}

impl From<model::Decision> for ApprovalDecision {
    fn from(decision: model::Decision) -> Self {
        match decision {
            model::Decision::Approved => Self::Approved,
            model::Decision::Rejected => Self::Rejected,
        }
    }
}

/// `POST /v1/runs/{id}/resume`.
#[derive(Debug, Clone, Object)]
pub struct ResumeRunRequest {
    pub decision: ApprovalDecision,
    /// Why, in your words; the model is told it when you reject a tool
    /// call. At most 1,000 characters.
    #[oai(validator(max_length = 1000))]
    pub reason: Option<String>,
}

/// Why a paused run waits: a tool call its route's policy wants approved
/// (`tool_approval_required`), its final answer (`output_approval_required`),
/// or a call of a tool that is not idempotent whose outcome a server's
/// crash left unknown (`tool_outcome_unknown`: approving calls it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ApprovalReasonName {
    ToolApprovalRequired,
    OutputApprovalRequired,
    ToolOutcomeUnknown,
}

impl From<model::ApprovalReason> for ApprovalReasonName {
    fn from(reason: model::ApprovalReason) -> Self {
        match reason {
            model::ApprovalReason::ToolApprovalRequired => Self::ToolApprovalRequired,
            model::ApprovalReason::OutputApprovalRequired => Self::OutputApprovalRequired,
            model::ApprovalReason::ToolOutcomeUnknown => Self::ToolOutcomeUnknown,
        }
    }
}

/// What a paused run waits for an approver to decide.
#[derive(Debug, Clone, Object)]
pub struct RunPendingApproval {
    pub reason: ApprovalReasonName,
    /// The tool call to decide on, for the tool reasons.
    #[oai(nullable)]
    pub tool_call: Option<RunToolCall>,
    /// The final answer to decide on, for `output_approval_required`.
    #[oai(nullable)]
    pub output: Option<String>,
}

impl From<&model::PendingApproval> for RunPendingApproval {
    fn from(pending: &model::PendingApproval) -> Self {
        Self {
            reason: pending.reason.into(),
            tool_call: pending.tool_call.as_ref().map(RunToolCall::from),
            output: pending.output.clone(),
        }
    }
}

/// Tokens a run's model calls used.
#[derive(Debug, Clone, Object)]
pub struct RunUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl RunUsage {
    pub(super) fn of(prompt_tokens: u64, completion_tokens: u64) -> Self {
        Self { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens }
    }
}

/// A tool call the model made.
#[derive(Debug, Clone, Object)]
pub struct RunToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text, as the model wrote them.
    pub arguments: String,
}

impl From<&model::ToolCall> for RunToolCall {
    fn from(call: &model::ToolCall) -> Self {
        Self { id: call.id.clone(), name: call.name.clone(), arguments: call.arguments.clone() }
    }
}

/// The run's final answer.
#[derive(Debug, Clone, Object)]
pub struct RunOutput {
    /// Always `assistant`.
    pub role: String,
    pub content: String,
}

/// Who executed a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ToolExecutor {
    Server,
    Client,
}

/// A model answer.
#[derive(Debug, Clone, Object)]
pub struct RunModelStep {
    /// The step's place in the run, from 0.
    pub index: u32,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub content: Option<String>,
    pub tool_calls: Vec<RunToolCall>,
    #[oai(nullable)]
    pub finish_reason: Option<String>,
    pub usage: RunUsage,
    pub cost_usd: String,
}

/// A tool call and its result.
#[derive(Debug, Clone, Object)]
pub struct RunToolStep {
    /// The step's place in the run, from 0.
    pub index: u32,
    pub created_at: DateTime<Utc>,
    pub tool_call_id: String,
    pub name: String,
    pub arguments: String,
    /// The result the model was given (`{"error": …}` when the call failed).
    pub output: String,
    pub is_error: bool,
    pub executor: ToolExecutor,
}

/// An approver's decision on what the run paused for. Not counted
/// against `max_steps`.
#[derive(Debug, Clone, Object)]
pub struct RunApprovalStep {
    /// The step's place in the run, from 0.
    pub index: u32,
    pub created_at: DateTime<Utc>,
    /// The `pending_approval.reason` this decided.
    pub paused_for: ApprovalReasonName,
    /// The tool call decided on; null for the final answer.
    #[oai(nullable)]
    pub tool_call_id: Option<String>,
    pub decision: ApprovalDecision,
    /// The approver (`usr_…`) and their email.
    pub approver_id: String,
    pub approver_email: String,
    /// Why, in the approver's words.
    #[oai(nullable)]
    pub reason: Option<String>,
}

/// One step of a run: a model answer (`type: model`), a tool call
/// (`type: tool`), or an approver's decision (`type: approval`).
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "type")]
pub enum RunStep {
    #[oai(mapping = "model")]
    Model(RunModelStep),
    #[oai(mapping = "tool")]
    Tool(RunToolStep),
    #[oai(mapping = "approval")]
    Approval(RunApprovalStep),
}

impl From<&model::StepRecord> for RunStep {
    fn from(record: &model::StepRecord) -> Self {
        match &record.step {
            Step::Model(step) => Self::Model(model_step(record.index, record.created_at, step)),
            Step::Tool(step) => Self::Tool(tool_step(record.index, record.created_at, step)),
            Step::Approval(step) => Self::Approval(approval_step(record.index, record.created_at, step)),
        }
    }
}

pub(super) fn approval_step(index: u32, created_at: i64, step: &model::ApprovalStep) -> RunApprovalStep {
    RunApprovalStep {
        index,
        created_at: timestamp(created_at),
        paused_for: step.reason.into(),
        tool_call_id: step.tool_call_id.clone(),
        decision: step.decision.into(),
        approver_id: step.approver_id.clone(),
        approver_email: step.approver_email.clone(),
        reason: step.note.clone(),
    }
}

pub(super) fn model_step(index: u32, created_at: i64, step: &model::ModelStep) -> RunModelStep {
    RunModelStep {
        index,
        created_at: timestamp(created_at),
        content: step.content.clone(),
        tool_calls: step.tool_calls.iter().map(RunToolCall::from).collect(),
        finish_reason: step.finish_reason.clone(),
        usage: RunUsage::of(step.prompt_tokens, step.completion_tokens),
        cost_usd: format_usd_micros(step.cost_micros),
    }
}

pub(super) fn tool_step(index: u32, created_at: i64, step: &model::ToolStep) -> RunToolStep {
    RunToolStep {
        index,
        created_at: timestamp(created_at),
        tool_call_id: step.tool_call_id.clone(),
        name: step.name.clone(),
        arguments: step.arguments.clone(),
        output: step.output.clone(),
        is_error: step.is_error,
        executor: step.executor.into(),
    }
}

impl From<Executor> for ToolExecutor {
    fn from(executor: Executor) -> Self {
        match executor {
            Executor::Server => Self::Server,
            Executor::Client => Self::Client,
        }
    }
}

/// Why a run ended in `error` or `blocked`, in the error envelope's shape.
#[derive(Debug, Clone, Object)]
pub struct RunError {
    pub code: ErrorCode,
    #[oai(rename = "type")]
    pub error_type: ErrorType,
    pub message: String,
    #[oai(nullable)]
    pub why: Option<String>,
    #[oai(nullable)]
    pub fix: Option<String>,
    #[oai(nullable)]
    pub param: Option<String>,
}

impl From<&model::RunFailure> for RunError {
    fn from(failure: &model::RunFailure) -> Self {
        let err = ApiError::from(failure);
        Self {
            code: err.code,
            error_type: ErrorType::for_status(err.status()),
            message: err.message,
            why: err.why,
            fix: err.fix,
            param: err.param,
        }
    }
}

/// A governed agent run.
#[derive(Debug, Clone, Object)]
pub struct Run {
    pub id: String,
    pub status: RunStatusName,
    /// The gateway route its model calls use.
    pub model: String,
    pub org_id: String,
    #[oai(nullable)]
    pub project_id: Option<String>,
    /// The session it continues.
    #[oai(nullable)]
    pub session_id: Option<String>,
    /// The user who created it.
    pub user_id: String,
    /// The API key that created it, if one did.
    #[oai(nullable)]
    pub key_id: Option<String>,
    #[oai(nullable)]
    pub instructions: Option<String>,
    /// The final assistant message, once `completed`.
    #[oai(nullable)]
    pub output: Option<RunOutput>,
    /// Every model answer and tool call, in order.
    pub steps: Vec<RunStep>,
    /// Client tool calls waiting for outputs (`requires_action`).
    pub pending_tool_calls: Vec<RunToolCall>,
    /// What the run waits for an approver to decide (`paused`).
    #[oai(nullable)]
    pub pending_approval: Option<RunPendingApproval>,
    /// Who may decide when the run pauses (`usr_…`); empty: the owners and
    /// admins of its organization.
    pub approvers: Vec<String>,
    pub usage: RunUsage,
    /// What the run's model calls cost, in USD.
    pub cost_usd: String,
    pub max_steps: u32,
    #[oai(nullable)]
    pub max_cost_usd: Option<String>,
    pub background: bool,
    #[oai(nullable)]
    pub metadata: Option<BTreeMap<String, Value>>,
    /// Why it failed (`error`) or which rule of its route's policy refused
    /// it (`blocked`, code `run.blocked`).
    #[oai(nullable)]
    pub error: Option<RunError>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<model::Run> for Run {
    fn from(run: model::Run) -> Self {
        let output = (run.status == RunStatus::Completed).then(|| RunOutput {
            role: "assistant".to_owned(),
            content: run.output.clone().unwrap_or_default(),
        });
        Self {
            steps: run.steps.iter().map(RunStep::from).collect(),
            pending_tool_calls: run.pending.iter().map(RunToolCall::from).collect(),
            pending_approval: run.pending_approval.as_ref().map(RunPendingApproval::from),
            approvers: run.spec.approvers.clone(),
            error: run.failure.as_ref().map(RunError::from),
            usage: RunUsage::of(run.prompt_tokens, run.completion_tokens),
            cost_usd: format_usd_micros(run.cost_micros),
            max_steps: run.spec.max_steps,
            max_cost_usd: run.spec.max_cost_micros.map(format_usd_micros),
            background: run.spec.background,
            metadata: run.spec.metadata.map(|metadata| metadata.into_iter().collect()),
            instructions: run.spec.instructions,
            created_at: timestamp(run.created_at),
            started_at: run.started_at.map(timestamp),
            finished_at: run.finished_at.map(timestamp),
            output,
            id: run.id,
            status: run.status.into(),
            model: run.route,
            org_id: run.org_id,
            project_id: run.project_id,
            session_id: run.session_id,
            user_id: run.user_id,
            key_id: run.key_id,
        }
    }
}

page_type! {
    /// A page of runs.
    RunList of Run
}
