//! `GET /v1/runs/{id}/events`: a run's events as a JSON page, or with
//! `Accept: text/event-stream` as server-sent events that replay what the
//! client missed (after `Last-Event-ID` or `?after=`) and follow the run
//! until it ends.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::{Stream, StreamExt};
use poem::http::HeaderValue;
use poem::{Body, IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, Union};

use crate::http::error::ApiError;
use crate::http::request_id;
use crate::http::wire::timestamp;
use crate::kernel::error::DomainResult;
use crate::runs::api::wire::{
    RunApprovalStep, RunError, RunModelStep, RunOutput, RunPendingApproval, RunStatusName, RunToolCall,
    RunToolStep, RunUsage, ToolExecutor, approval_step, model_step, tool_step,
};
use crate::runs::model::{EventRecord, RunEvent};
use switchyard_providers::price::format_usd_micros;

/// How long a quiet stream waits before a keep-alive comment.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// The run's status changed.
#[derive(Debug, Clone, Object)]
pub struct RunStatusEvent {
    pub run_id: String,
    /// The event's place in the run's stream, from 1 without gaps; its SSE `id`.
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub status: RunStatusName,
}

/// Text of the model's answer in step `step_index`, as it arrived (today
/// the whole text of the step at once).
#[derive(Debug, Clone, Object)]
pub struct MessageDeltaEvent {
    pub run_id: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub step_index: u32,
    pub content: String,
}

/// A model answer was journaled.
#[derive(Debug, Clone, Object)]
pub struct MessageCompletedEvent {
    pub run_id: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub step: RunModelStep,
}

/// The model called a tool; `executor` says who runs it.
#[derive(Debug, Clone, Object)]
pub struct ToolCallEvent {
    pub run_id: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub step_index: u32,
    pub tool_call: RunToolCall,
    pub executor: ToolExecutor,
}

/// A tool call's result was journaled.
#[derive(Debug, Clone, Object)]
pub struct ToolResultEvent {
    pub run_id: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub step: RunToolStep,
}

/// The run waits for the outputs of these client tool calls.
#[derive(Debug, Clone, Object)]
pub struct RunRequiresActionEvent {
    pub run_id: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub pending_tool_calls: Vec<RunToolCall>,
}

/// The run waits for an approver.
#[derive(Debug, Clone, Object)]
pub struct RunPausedEvent {
    pub run_id: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub pending_approval: RunPendingApproval,
}

/// An approver decided on what the run paused for.
#[derive(Debug, Clone, Object)]
pub struct ApprovalDecidedEvent {
    pub run_id: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub step: RunApprovalStep,
}

/// The run completed.
#[derive(Debug, Clone, Object)]
pub struct RunCompletedEvent {
    pub run_id: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub output: RunOutput,
    pub usage: RunUsage,
    pub cost_usd: String,
}

/// The run failed.
#[derive(Debug, Clone, Object)]
pub struct RunFailedEvent {
    pub run_id: String,
    pub seq: i64,
    pub created_at: DateTime<Utc>,
    pub error: RunError,
}

/// One event of a run, named by `type`.
#[derive(Debug, Clone, Union)]
#[oai(discriminator_name = "type")]
pub enum RunStreamEvent {
    #[oai(mapping = "run.status")]
    Status(RunStatusEvent),
    #[oai(mapping = "message.delta")]
    MessageDelta(MessageDeltaEvent),
    #[oai(mapping = "message.completed")]
    MessageCompleted(MessageCompletedEvent),
    #[oai(mapping = "tool.call")]
    ToolCall(ToolCallEvent),
    #[oai(mapping = "tool.result")]
    ToolResult(ToolResultEvent),
    #[oai(mapping = "run.requires_action")]
    RequiresAction(RunRequiresActionEvent),
    #[oai(mapping = "run.paused")]
    Paused(RunPausedEvent),
    #[oai(mapping = "approval.decided")]
    ApprovalDecided(ApprovalDecidedEvent),
    #[oai(mapping = "run.completed")]
    Completed(RunCompletedEvent),
    #[oai(mapping = "run.failed")]
    Failed(RunFailedEvent),
}

impl From<EventRecord> for RunStreamEvent {
    fn from(record: EventRecord) -> Self {
        let EventRecord { run_id, seq, created_at, event } = record;
        let at = timestamp(created_at);
        match event {
            RunEvent::Status { status } => {
                Self::Status(RunStatusEvent { run_id, seq, created_at: at, status: status.into() })
            }
            RunEvent::MessageDelta { index, content } => Self::MessageDelta(MessageDeltaEvent {
                run_id,
                seq,
                created_at: at,
                step_index: index,
                content,
            }),
            RunEvent::MessageCompleted { index, step } => Self::MessageCompleted(MessageCompletedEvent {
                run_id,
                seq,
                created_at: at,
                step: model_step(index, created_at, &step),
            }),
            RunEvent::ToolCalled { index, call, executor } => Self::ToolCall(ToolCallEvent {
                run_id,
                seq,
                created_at: at,
                step_index: index,
                tool_call: RunToolCall::from(&call),
                executor: executor.into(),
            }),
            RunEvent::ToolResult { index, step } => Self::ToolResult(ToolResultEvent {
                run_id,
                seq,
                created_at: at,
                step: tool_step(index, created_at, &step),
            }),
            RunEvent::RequiresAction { pending } => Self::RequiresAction(RunRequiresActionEvent {
                run_id,
                seq,
                created_at: at,
                pending_tool_calls: pending.iter().map(RunToolCall::from).collect(),
            }),
            RunEvent::Paused { pending_approval } => Self::Paused(RunPausedEvent {
                run_id,
                seq,
                created_at: at,
                pending_approval: RunPendingApproval::from(&pending_approval),
            }),
            RunEvent::ApprovalDecided { index, step } => Self::ApprovalDecided(ApprovalDecidedEvent {
                run_id,
                seq,
                created_at: at,
                step: approval_step(index, created_at, &step),
            }),
            RunEvent::Completed { output, prompt_tokens, completion_tokens, cost_micros } => {
                Self::Completed(RunCompletedEvent {
                    run_id,
                    seq,
                    created_at: at,
                    output: RunOutput { role: "assistant".to_owned(), content: output },
                    usage: RunUsage::of(prompt_tokens, completion_tokens),
                    cost_usd: format_usd_micros(cost_micros),
                })
            }
            RunEvent::Failed { failure } => {
                Self::Failed(RunFailedEvent { run_id, seq, created_at: at, error: RunError::from(&failure) })
            }
        }
    }
}

/// A page of a run's events.
#[derive(Debug, Object)]
pub struct RunEventList {
    pub data: Vec<RunStreamEvent>,
    pub has_more: bool,
    /// The `after` of the next page: the last event's `seq`.
    #[oai(nullable)]
    pub next_after: Option<i64>,
}

/// The events as JSON or as an event stream.
pub enum RunEventsReply {
    Page(RunEventList),
    Stream(Body),
}

impl RunEventsReply {
    pub fn page(events: Vec<EventRecord>, has_more: bool) -> Self {
        let next_after = events.last().map(|record| record.seq).filter(|_| has_more);
        let data = events.into_iter().map(RunStreamEvent::from).collect();
        Self::Page(RunEventList { data, has_more, next_after })
    }

    pub fn stream(events: impl Stream<Item = DomainResult<EventRecord>> + Send + 'static) -> Self {
        Self::Stream(Body::from_bytes_stream(sse_frames(events)))
    }
}

/// Each event as `id`, `event` and `data` lines; `: keep-alive` while the
/// run is quiet; a failure ends the stream with an `error` event carrying
/// the envelope.
fn sse_frames(
    events: impl Stream<Item = DomainResult<EventRecord>> + Send + 'static,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    futures::stream::unfold(Some(Box::pin(events)), |events| async move {
        let mut events = events?;
        let Ok(next) = tokio::time::timeout(KEEPALIVE, events.next()).await else {
            return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), Some(events)));
        };
        match next {
            None => None,
            Some(Ok(record)) => {
                let (seq, kind) = (record.seq, record.event.kind());
                let data = RunStreamEvent::from(record)
                    .to_json()
                    .map(|json| json.to_string())
                    .unwrap_or_else(|| "null".to_owned());
                let mut frame = BytesMut::new();
                frame.extend_from_slice(format!("id: {seq}\nevent: {kind}\ndata: {data}\n\n").as_bytes());
                Some((Ok(frame.freeze()), Some(events)))
            }
            Some(Err(err)) => {
                let body = ApiError::from(err).body_json();
                Some((Ok(Bytes::from(format!("event: error\ndata: {body}\n\n"))), None))
            }
        }
    })
}

impl IntoResponse for RunEventsReply {
    fn into_response(self) -> Response {
        match self {
            Self::Page(list) => {
                let body = list.to_json().map(|json| json.to_string()).unwrap_or_else(|| "null".to_owned());
                Response::builder().content_type("application/json; charset=utf-8").body(body)
            }
            Self::Stream(body) => {
                let mut response = Response::builder().content_type("text/event-stream").body(body);
                response.headers_mut().insert("cache-control", HeaderValue::from_static("no-cache"));
                response
            }
        }
    }
}

impl ApiResponse for RunEventsReply {
    fn meta() -> MetaResponses {
        let mut headers = vec![request_id::header_meta()];
        headers.extend(crate::http::error::rate_limit_headers_meta(false));
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The run's events: a JSON page, or with `Accept: text/event-stream` server-sent events (`id` is the event's `seq`, `event` its `type`, `data` the event as JSON) that follow the run until it ends.",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType { content_type: "application/json", schema: RunEventList::schema_ref() },
                    MetaMediaType { content_type: "text/event-stream", schema: RunStreamEvent::schema_ref() },
                ],
                headers,
            }],
        }
    }

    fn register(registry: &mut Registry) {
        RunEventList::register(registry);
        RunStreamEvent::register(registry);
    }
}
