//! A run's events as the run loop delivers them: one enum over the
//! generated event types, chosen by the frame's `type`, so a caller matches
//! on a variant instead of probing the generated all-optional
//! `RunStreamEvent`.

use serde_json::Value;

use crate::types::{
    RunStreamEventApprovalDecidedEvent, RunStreamEventMessageCompletedEvent, RunStreamEventMessageDeltaEvent,
    RunStreamEventRunCompletedEvent, RunStreamEventRunFailedEvent, RunStreamEventRunPausedEvent,
    RunStreamEventRunRequiresActionEvent, RunStreamEventRunStatusEvent, RunStreamEventToolCallEvent,
    RunStreamEventToolResultEvent,
};

/// One event of a run, as `GET /v1/runs/{id}/events` and the run loop send it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum RunEvent {
    Status(RunStreamEventRunStatusEvent),
    MessageDelta(RunStreamEventMessageDeltaEvent),
    MessageCompleted(RunStreamEventMessageCompletedEvent),
    ToolCall(RunStreamEventToolCallEvent),
    ToolResult(RunStreamEventToolResultEvent),
    RequiresAction(RunStreamEventRunRequiresActionEvent),
    Paused(RunStreamEventRunPausedEvent),
    ApprovalDecided(RunStreamEventApprovalDecidedEvent),
    Completed(RunStreamEventRunCompletedEvent),
    Failed(RunStreamEventRunFailedEvent),
    /// An event of a type this SDK does not know (a newer server), as sent.
    Other {
        kind: String,
        run_id: String,
        seq: i64,
        frame: Value,
    },
}

impl RunEvent {
    /// The event in `frame`, `Ok(None)` when the frame is not a run event
    /// (no `run_id` and `seq`), or the reason a known event does not parse.
    pub(crate) fn parse(frame: &Value) -> Result<Option<Self>, serde_json::Error> {
        let (Some(kind), Some(run_id), Some(seq)) = (
            frame.get("type").and_then(Value::as_str),
            frame.get("run_id").and_then(Value::as_str),
            frame.get("seq").and_then(Value::as_i64),
        ) else {
            return Ok(None);
        };
        let event = match kind {
            "run.status" => Self::Status(typed(frame)?),
            "message.delta" => Self::MessageDelta(typed(frame)?),
            "message.completed" => Self::MessageCompleted(typed(frame)?),
            "tool.call" => Self::ToolCall(typed(frame)?),
            "tool.result" => Self::ToolResult(typed(frame)?),
            "run.requires_action" => Self::RequiresAction(typed(frame)?),
            "run.paused" => Self::Paused(typed(frame)?),
            "approval.decided" => Self::ApprovalDecided(typed(frame)?),
            "run.completed" => Self::Completed(typed(frame)?),
            "run.failed" => Self::Failed(typed(frame)?),
            _ => Self::Other { kind: kind.to_owned(), run_id: run_id.to_owned(), seq, frame: frame.clone() },
        };
        Ok(Some(event))
    }

    /// The event's `type`, as on the wire (`tool.call`, `run.completed`, …).
    pub fn kind(&self) -> &str {
        match self {
            Self::Status(_) => "run.status",
            Self::MessageDelta(_) => "message.delta",
            Self::MessageCompleted(_) => "message.completed",
            Self::ToolCall(_) => "tool.call",
            Self::ToolResult(_) => "tool.result",
            Self::RequiresAction(_) => "run.requires_action",
            Self::Paused(_) => "run.paused",
            Self::ApprovalDecided(_) => "approval.decided",
            Self::Completed(_) => "run.completed",
            Self::Failed(_) => "run.failed",
            Self::Other { kind, .. } => kind,
        }
    }

    pub fn run_id(&self) -> &str {
        match self {
            Self::Status(event) => &event.run_id,
            Self::MessageDelta(event) => &event.run_id,
            Self::MessageCompleted(event) => &event.run_id,
            Self::ToolCall(event) => &event.run_id,
            Self::ToolResult(event) => &event.run_id,
            Self::RequiresAction(event) => &event.run_id,
            Self::Paused(event) => &event.run_id,
            Self::ApprovalDecided(event) => &event.run_id,
            Self::Completed(event) => &event.run_id,
            Self::Failed(event) => &event.run_id,
            Self::Other { run_id, .. } => run_id,
        }
    }

    /// The event's place in the run, from 1 without gaps.
    pub fn seq(&self) -> i64 {
        match self {
            Self::Status(event) => event.seq,
            Self::MessageDelta(event) => event.seq,
            Self::MessageCompleted(event) => event.seq,
            Self::ToolCall(event) => event.seq,
            Self::ToolResult(event) => event.seq,
            Self::RequiresAction(event) => event.seq,
            Self::Paused(event) => event.seq,
            Self::ApprovalDecided(event) => event.seq,
            Self::Completed(event) => event.seq,
            Self::Failed(event) => event.seq,
            Self::Other { seq, .. } => *seq,
        }
    }
}

fn typed<T: serde::de::DeserializeOwned>(frame: &Value) -> Result<T, serde_json::Error> {
    T::deserialize(frame)
}
