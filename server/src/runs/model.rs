//! What a run is: the request it was created with, its status, the journal
//! of its steps, what it waits for, and why it failed.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::gateway::Budget;

/// Where a run is in its life. `pending`, `running`, `requires_action` and
/// `paused` can still change; the others are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Created, waiting for a server to drive it.
    Pending,
    /// A server holds its lease and is taking steps.
    Running,
    /// Waiting for the outputs of client tools it called.
    RequiresAction,
    /// Waiting for an approver.
    Paused,
    Completed,
    /// A policy refused it.
    Blocked,
    Cancelled,
    Error,
}

impl RunStatus {
    pub const ALL: [RunStatus; 8] = [
        Self::Pending,
        Self::Running,
        Self::RequiresAction,
        Self::Paused,
        Self::Completed,
        Self::Blocked,
        Self::Cancelled,
        Self::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::RequiresAction => "requires_action",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Blocked => "blocked",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    /// Whether the run can no longer change.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Blocked | Self::Cancelled | Self::Error)
    }
}

/// A message of the conversation a run starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputMessage {
    /// `system`, `developer`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

/// A tool the caller executes itself, declared with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientTool {
    pub name: String,
    pub description: Option<String>,
    /// A JSON Schema for the arguments.
    pub parameters: Value,
}

/// The request a run was created with, kept whole: every step reads it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub instructions: Option<String>,
    pub messages: Vec<InputMessage>,
    /// Names of the server tools the model may call.
    pub server_tools: Vec<String>,
    pub client_tools: Vec<ClientTool>,
    pub max_steps: u32,
    pub max_cost_micros: Option<i64>,
    pub metadata: Option<serde_json::Map<String, Value>>,
    pub background: bool,
    /// Users (ids) who may decide when the run pauses: those it named and
    /// its route's policy's approvers who are members of its org. Empty:
    /// the org's owners and admins decide.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// The new message of a run that continues a session (the rest of
    /// `messages` is the session's history); also kept in the run's
    /// `session_message` column, which the session's history is read from.
    #[serde(default)]
    pub session_message: Option<InputMessage>,
}

/// A tool call the model made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the model wrote them (JSON text, not always valid).
    pub arguments: String,
}

/// Who executes a tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Executor {
    Server,
    Client,
}

/// One model answer, recorded so a replay never samples the model again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelStep {
    pub content: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    pub finish_reason: Option<String>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micros: i64,
}

/// One tool call and its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolStep {
    pub tool_call_id: String,
    pub name: String,
    pub arguments: String,
    /// What the model is given as the result (an error's text when `is_error`).
    pub output: String,
    pub is_error: bool,
    pub executor: Executor,
}

/// Why a run waits for an approver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalReason {
    /// The route's policy (or the tool itself) wants each call approved.
    ToolApprovalRequired,
    /// The route's policy wants the final answer approved.
    OutputApprovalRequired,
    /// A server that called a tool which is not idempotent stopped before
    /// its result was journaled: whether the call took effect is unknown,
    /// so it is repeated only if an approver says so.
    ToolOutcomeUnknown,
}

/// What a paused run waits for an approver to decide.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingApproval {
    pub reason: ApprovalReason,
    /// The tool call to approve, for the tool reasons.
    pub tool_call: Option<ToolCall>,
    /// The final answer to approve, for `output_approval_required`.
    pub output: Option<String>,
}

/// A call of a tool that is not idempotent, started and not yet journaled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInFlight {
    pub tool_call_id: String,
    /// The run's step count when the call started: a `tool_outcome_unknown`
    /// decision journaled before it is about an earlier attempt.
    pub at_step: u32,
}

impl PendingApproval {
    /// A tool call waiting for an approver.
    pub fn call(reason: ApprovalReason, call: &ToolCall) -> Self {
        Self { reason, tool_call: Some(call.clone()), output: None }
    }
}

/// An approver's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Approved,
    Rejected,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Rejected => "rejected",
        }
    }
}

/// An approver's decision on what a paused run waited for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalStep {
    pub reason: ApprovalReason,
    /// The tool call decided on; none for the final answer.
    pub tool_call_id: Option<String>,
    pub decision: Decision,
    pub approver_id: String,
    pub approver_email: String,
    /// Why, in the approver's words.
    pub note: Option<String>,
}

impl ApprovalStep {
    /// What the model is told when a tool call was rejected.
    pub fn rejection(&self) -> String {
        match &self.note {
            Some(note) => format!("rejected by {}: {note}", self.approver_email),
            None => format!("rejected by {}", self.approver_email),
        }
    }
}

/// An entry of a run's journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Step {
    Model(ModelStep),
    Tool(ToolStep),
    Approval(ApprovalStep),
}

impl Step {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Model(_) => "model",
            Self::Tool(_) => "tool",
            Self::Approval(_) => "approval",
        }
    }

    /// The call whose result this is, for a tool step.
    pub fn tool_call_id(&self) -> Option<&str> {
        match self {
            Self::Tool(tool) => Some(&tool.tool_call_id),
            Self::Model(_) | Self::Approval(_) => None,
        }
    }

    /// Whether it counts against `max_steps`: model answers and tool
    /// calls do, approvals do not.
    pub fn is_work(&self) -> bool {
        !matches!(self, Self::Approval(_))
    }
}

/// A journal entry with its place and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepRecord {
    pub index: u32,
    pub created_at: i64,
    pub step: Step,
}

/// Why a run ended in `error` or `blocked`; the API layer renders it as the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "failure", rename_all = "snake_case")]
pub enum RunFailure {
    /// A rule of the route's policy refused the run (status `blocked`).
    Blocked {
        /// The rule, as the config names it (`policies.default.blocked_patterns[0]`).
        rule: String,
        reason: String,
    },
    /// Another step would go past `max_steps`.
    MaxStepsExceeded {
        limit: u32,
    },
    /// The next model call could cost more than `max_cost_usd` leaves.
    MaxCostExceeded {
        limit_micros: i64,
        spent_micros: i64,
    },
    /// No client tool output came within `runs.client_tool_timeout_secs`.
    ClientToolTimeout {
        waited_secs: u64,
    },
    /// The API key that created the run was revoked or expired.
    KeyRevoked,
    /// The user who created the run is no longer a member of its org.
    CreatorLeftOrg,
    /// The caller's per-minute gateway limit refused a model call.
    RateLimited {
        kind: String,
        limit: u32,
        retry_after_secs: u64,
    },
    /// A budget or daily cap refused a model call.
    BudgetExceeded {
        what: Budget,
        budget_micros: i64,
        spent_micros: i64,
    },
    /// A provider refused the model call.
    ModelRejected {
        provider: String,
        status: u16,
        message: String,
    },
    /// Every provider of the route failed.
    ModelUnavailable {
        provider: String,
        last: String,
    },
    ModelTimeout,
    ModelUnsupported {
        what: String,
    },
    /// A provider answered something that is not a chat completion.
    ModelUnreadable {
        detail: String,
    },
}

/// A run as stored, with its journal when it was read with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub org_id: String,
    pub user_id: String,
    pub key_id: Option<String>,
    pub project_id: Option<String>,
    /// The session it continues.
    pub session_id: Option<String>,
    pub route: String,
    pub status: RunStatus,
    pub spec: RunSpec,
    pub step_count: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micros: i64,
    /// The final assistant message.
    pub output: Option<String>,
    /// Client tool calls waiting for their outputs.
    pub pending: Vec<ToolCall>,
    /// What the run waits for an approver to decide, when `paused`.
    pub pending_approval: Option<PendingApproval>,
    /// A call of a tool that is not idempotent that was started and has no
    /// journaled result.
    pub tool_in_flight: Option<ToolInFlight>,
    pub failure: Option<RunFailure>,
    pub created_at: i64,
    pub updated_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The journal, in order; empty when the run was read without it.
    pub steps: Vec<StepRecord>,
}

impl Run {
    /// The steps that count against `max_steps`.
    pub fn steps_taken(&self) -> u32 {
        u32::try_from(self.steps.iter().filter(|record| record.step.is_work()).count()).unwrap_or(u32::MAX)
    }

    /// The latest approver's decision for `reason` on the tool call (or,
    /// with none, on the final answer) journaled at or after `from_step`.
    pub fn approval(
        &self,
        reason: ApprovalReason,
        tool_call_id: Option<&str>,
        from_step: u32,
    ) -> Option<&ApprovalStep> {
        self.steps.iter().rev().take_while(|record| record.index >= from_step).find_map(
            |record| match &record.step {
                Step::Approval(approval)
                    if approval.reason == reason && approval.tool_call_id.as_deref() == tool_call_id =>
                {
                    Some(approval)
                }
                _ => None,
            },
        )
    }
}

/// Something that happened in a run, as its event stream tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum RunEvent {
    /// The run's status changed.
    #[serde(rename = "run.status")]
    Status { status: RunStatus },
    /// Text of the model's answer in the step `index`.
    #[serde(rename = "message.delta")]
    MessageDelta { index: u32, content: String },
    /// A model answer was journaled.
    #[serde(rename = "message.completed")]
    MessageCompleted { index: u32, step: ModelStep },
    /// The model called a tool, which `executor` runs.
    #[serde(rename = "tool.call")]
    ToolCalled { index: u32, call: ToolCall, executor: Executor },
    /// A tool call's result was journaled.
    #[serde(rename = "tool.result")]
    ToolResult { index: u32, step: ToolStep },
    /// The run waits for client tool outputs.
    #[serde(rename = "run.requires_action")]
    RequiresAction { pending: Vec<ToolCall> },
    /// The run waits for an approver.
    #[serde(rename = "run.paused")]
    Paused { pending_approval: PendingApproval },
    /// An approver decided.
    #[serde(rename = "approval.decided")]
    ApprovalDecided { index: u32, step: ApprovalStep },
    #[serde(rename = "run.completed")]
    Completed { output: String, prompt_tokens: u64, completion_tokens: u64, cost_micros: i64 },
    #[serde(rename = "run.failed")]
    Failed { failure: RunFailure },
}

impl RunEvent {
    /// The event's type, as the stream names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Status { .. } => "run.status",
            Self::MessageDelta { .. } => "message.delta",
            Self::MessageCompleted { .. } => "message.completed",
            Self::ToolCalled { .. } => "tool.call",
            Self::ToolResult { .. } => "tool.result",
            Self::RequiresAction { .. } => "run.requires_action",
            Self::Paused { .. } => "run.paused",
            Self::ApprovalDecided { .. } => "approval.decided",
            Self::Completed { .. } => "run.completed",
            Self::Failed { .. } => "run.failed",
        }
    }

    /// The events that tell of a journal entry.
    pub fn of_step(record: &StepRecord) -> Vec<Self> {
        match &record.step {
            Step::Model(step) => {
                let mut events = Vec::new();
                if let Some(content) = step.content.as_ref().filter(|text| !text.is_empty()) {
                    events.push(Self::MessageDelta { index: record.index, content: content.clone() });
                }
                events.push(Self::MessageCompleted { index: record.index, step: step.clone() });
                events
            }
            Step::Tool(step) => vec![Self::ToolResult { index: record.index, step: step.clone() }],
            Step::Approval(step) => vec![Self::ApprovalDecided { index: record.index, step: step.clone() }],
        }
    }
}

/// An event with its place in the run's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub run_id: String,
    /// From 1, without gaps.
    pub seq: i64,
    pub created_at: i64,
    pub event: RunEvent,
}
