//! The metered model call other areas make, such as a run's model step: the
//! same admission, limits, budgets, daily caps, usage row and metrics as a
//! client's `POST /v1/chat/completions`, with the usage row naming the run.

use std::sync::Arc;

use switchyard_providers::wire::{AssistantMessage, ChatCompletion, ChatCompletionRequest, Usage};
use tokio::time::Instant;

use crate::db::Db;
use crate::gateway::metering::{Caller, Estimate};
use crate::gateway::ticket::{Metered, Ticket};
use crate::gateway::{Gateway, GatewayError, Meter, Refusal, Reply, Route};
use crate::kernel::clock::Clock;
use crate::metrics::Metrics;

/// What a metered call needs from the server.
#[derive(Clone, Copy)]
pub struct GatewayDeps<'a> {
    pub gateway: &'a Gateway,
    pub meter: &'a Meter,
    pub db: &'a Db,
    pub metrics: &'a Metrics,
    pub clock: &'a Clock,
}

/// The first choice of a whole chat answer, and what it was charged.
#[derive(Debug, Clone)]
pub struct ChatAnswer {
    pub message: AssistantMessage,
    pub finish_reason: Option<String>,
    pub usage: Usage,
    pub cost_micros: i64,
}

/// Why a metered call gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The caller's limits, budgets or caps refused it before it ran.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The route's providers refused it or failed.
    #[error(transparent)]
    Failed(#[from] GatewayError),
    /// A provider answered something that is not a chat completion.
    #[error("the model's answer could not be read: {0}")]
    Unreadable(String),
}

/// Sends `request` (made whole, not streamed) to `route` for `caller`,
/// metered as one gateway request whose usage row carries `run_id`.
pub async fn complete(
    deps: GatewayDeps<'_>,
    caller: &Caller,
    route: &Arc<Route>,
    mut request: ChatCompletionRequest,
    run_id: &str,
) -> Result<ChatAnswer, CallError> {
    let started = Instant::now();
    request.model = route.name.clone();
    request.stream = None;
    request.stream_options = None;
    let request = Arc::new(request);
    let estimate = Estimate::chat(&request, route);
    let at = deps.clock.now();
    let admission = deps.meter.admit(deps.db, caller, estimate, at).await?;
    let in_flight = deps.metrics.gateway().admitted();
    let ticket =
        Ticket::new(admission, in_flight, caller, route, Metered::Chat(request.clone()), started, at)
            .for_run(run_id);
    let answered = match deps.gateway.chat(route, &request).await {
        Ok(answered) => answered,
        Err(err) => {
            ticket.finish(usage_status(&err));
            return Err(err.into());
        }
    };
    let mut ticket = ticket.answered_by(&answered.target, answered.upstream);
    let Reply::Complete { body, usage } = answered.value else {
        ticket.finish(502);
        return Err(CallError::Unreadable("a stream came back for a request that asked for none".to_owned()));
    };
    let body = ticket.completed(body, usage);
    let completion: ChatCompletion = match serde_json::from_slice(&body) {
        Ok(completion) => completion,
        Err(err) => {
            ticket.finish(502);
            return Err(CallError::Unreadable(err.to_string()));
        }
    };
    let Some(choice) = completion.choices.into_iter().next() else {
        ticket.finish(502);
        return Err(CallError::Unreadable("the answer holds no choice".to_owned()));
    };
    let (usage, _) = ticket.usage();
    let cost_micros = ticket.cost_micros();
    ticket.finish(200);
    Ok(ChatAnswer { message: choice.message, finish_reason: choice.finish_reason, usage, cost_micros })
}

/// The status a failed call's usage row records, as a client of
/// `/v1/chat/completions` would have received it.
fn usage_status(err: &GatewayError) -> u16 {
    match err {
        GatewayError::Rejected { status: 404, .. } => 404,
        GatewayError::Rejected { status: 401 | 403, .. } | GatewayError::Exhausted { .. } => 502,
        GatewayError::Rejected { .. } | GatewayError::Unsupported(_) => 400,
        GatewayError::Timeout => 504,
    }
}
