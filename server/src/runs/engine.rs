//! The agent loop. A driver claims a run's lease, then takes one step at a
//! time — a metered model call through the gateway, or one tool call — and
//! journals each before the next begins, until the run completes, fails,
//! is blocked by its route's policy, or waits (for client tool outputs, or
//! for an approver's decision, which is journaled too). A run is rebuilt from its journal, so
//! a driver can pick it up wherever the last one stopped: model answers are
//! never sampled again, and tool calls already answered are never repeated.

use std::collections::HashSet;

use serde_json::Value;
use switchyard_providers::wire::{self, ChatCompletionRequest, ChatMessage, FunctionDefinition};

use crate::gateway::{self, CallError, Caller, ChatAnswer, GatewayError, Refusal};
use crate::identity::api_key_principal;
use crate::kernel::error::{DomainError, DomainResult};
use crate::kernel::ids::random_base62;
use crate::runs::Runs;
use crate::runs::model::{
    ApprovalReason, Decision, Executor, ModelStep, PendingApproval, Run, RunEvent, RunFailure, RunStatus,
    Step, StepRecord, ToolCall, ToolInFlight, ToolStep,
};
use crate::runs::policy::Policy;
use crate::runs::store::{Outcome, Progress, Totals};
use crate::runs::tools::{ToolContext, ToolResult, checked_arguments, compile};

impl Runs {
    /// Drives the run until it stops or waits, if no other server holds it.
    pub(crate) async fn drive(&self, run_id: &str) -> DomainResult<()> {
        let now = self.clock().now();
        match self.db().run_claim(run_id, self.owner(), now, now + self.lease_secs()).await? {
            Some(epoch) => self.drive_claimed(run_id, epoch).await,
            None => Ok(()),
        }
    }

    /// Drives a run this server claimed under `epoch`, as its journal has it.
    pub(crate) async fn drive_claimed(&self, run_id: &str, epoch: i64) -> DomainResult<()> {
        match self.db().run_with_steps(run_id).await? {
            Some(run) => self.drive_loaded(run, epoch).await,
            None => Ok(()),
        }
    }

    /// Drives `run`, claimed under `epoch` and as stored, renewing the
    /// lease while a step takes long (a slow model, a slow tool). The
    /// renewals run beside the driver, never instead of it: a renewal waits
    /// for the run's row while the driver's transaction holds it, and that
    /// transaction must go on to let it go.
    pub(crate) async fn drive_loaded(&self, run: Run, epoch: i64) -> DomainResult<()> {
        let run_id = run.id.clone();
        let driver = Driver { runs: self, run, epoch, unjournaled: Unjournaled::default() }.run();
        tokio::select! {
            result = driver => result,
            () = self.inner.stopping.cancelled() => Ok(()),
            () = self.renew_lease_while_driven(&run_id, epoch) => Ok(()),
        }
    }

    /// Renews the run's lease a few times per lease term, for as long as it
    /// is polled.
    async fn renew_lease_while_driven(&self, run_id: &str, epoch: i64) {
        let every = std::time::Duration::from_secs(self.inner.config.lease_secs.div_ceil(3).max(1));
        let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            beat.tick().await;
            let expires_at = self.clock().now() + self.lease_secs();
            match self.db().run_renew_lease(run_id, epoch, expires_at, None).await {
                // Renewed; or cancelled, or claimed elsewhere: the driver's next write finds out.
                Ok(_) => {}
                Err(err) => tracing::warn!(run_id, error = %err, "could not renew a run's lease"),
            }
        }
    }
}

/// How a driver leaves a run.
enum Stop {
    Completed(String),
    Waiting(Vec<ToolCall>),
    /// Waiting for an approver.
    Paused(PendingApproval),
    Failed(RunFailure),
    /// Refused by the route's policy.
    Blocked(RunFailure),
    /// The run was cancelled or the lease lost: write nothing more.
    Lost,
}

/// What a check before a server tool call decides.
enum Gate {
    /// The call may go on.
    Go,
    /// The call's result for the model (made, or refused with why).
    Answer(ToolResult),
    Stop(Stop),
}

impl Gate {
    /// What the call comes to when the gate does not let it go on.
    fn decided(self) -> Option<Result<ToolResult, Stop>> {
        match self {
            Self::Go => None,
            Self::Answer(result) => Some(Ok(result)),
            Self::Stop(stop) => Some(Err(stop)),
        }
    }
}

struct Driver<'a> {
    runs: &'a Runs,
    run: Run,
    epoch: i64,
    /// A model answer taken into the run but not yet journaled: one after
    /// which nothing runs on the server before the run stops (the final
    /// answer, or calls of client tools only) is journaled with how the run
    /// stops, in one write, so a client never sees a call it cannot yet
    /// answer. Any other step's write takes it along.
    unjournaled: Unjournaled,
}

/// Steps, and their events, waiting for the next write.
#[derive(Default)]
struct Unjournaled {
    steps: Vec<StepRecord>,
    events: Vec<RunEvent>,
}

impl Driver<'_> {
    async fn run(mut self) -> DomainResult<()> {
        let stop = self.steps().await?;
        let (status, output, pending, failure) = match &stop {
            Stop::Lost => return Ok(()),
            Stop::Completed(output) => (RunStatus::Completed, Some(output.as_str()), &[][..], None),
            Stop::Waiting(calls) => (RunStatus::RequiresAction, None, calls.as_slice(), None),
            Stop::Paused(_) => (RunStatus::Paused, None, &[][..], None),
            Stop::Failed(failure) => (RunStatus::Error, None, &[][..], Some(failure)),
            Stop::Blocked(failure) => (RunStatus::Blocked, None, &[][..], Some(failure)),
        };
        let (pending_approval, mail) = match &stop {
            Stop::Paused(pending) => (Some(pending), self.runs.approval_mail(&self.run, pending).await?),
            _ => (None, Vec::new()),
        };
        let finished = status.is_final().then(|| self.runs.finished_event(&self.run, status, failure));
        let Unjournaled { steps, events } = &self.unjournaled;
        let progress = Progress { steps, events, totals: Totals::of(&self.run), audit: finished.as_ref() };
        let outcome = Outcome { status, output, pending, pending_approval, failure, progress, mail: &mail };
        if self.runs.db().run_settle(&self.run.id, self.epoch, &outcome, self.runs.clock().now()).await? {
            self.runs.ring(&self.run.id);
            if !mail.is_empty() {
                self.runs.inner.state.mail.wake();
            }
            if status.is_final() {
                self.runs.metrics().finished(&self.run.route, status.as_str());
            }
        }
        Ok(())
    }

    async fn steps(&mut self) -> DomainResult<Stop> {
        loop {
            match self.last_model_step().map(|step| (step.tool_calls.is_empty(), step.content.clone())) {
                Some((true, content)) => return Ok(self.finish(content.unwrap_or_default())),
                Some((false, _)) => {
                    if let Some(stop) = self.answer_tool_calls().await? {
                        return Ok(stop);
                    }
                }
                None => {}
            }
            if let Some(stop) = self.call_model().await? {
                return Ok(stop);
            }
        }
    }

    /// The route's policy, as configured now.
    fn policy(&self) -> &Policy {
        self.runs.inner.policies.of(&self.run.route)
    }

    /// How a run with its final answer ends: blocked when the answer
    /// matches a blocked pattern; else completed, once an approver approved
    /// it where the policy asks for that.
    fn finish(&self, output: String) -> Stop {
        let route = &self.run.route;
        if let Some(blocked) = self.policy().blocks(route, "output", &output) {
            return Stop::Blocked(blocked);
        }
        if !self.policy().approve_output {
            return Stop::Completed(output);
        }
        match self.run.approval(ApprovalReason::OutputApprovalRequired, None, 0) {
            Some(approval) if approval.decision == Decision::Approved => Stop::Completed(output),
            Some(approval) => Stop::Blocked(RunFailure::Blocked {
                rule: format!("policies.{route}.approve_output"),
                reason: format!("the final answer was {}", approval.rejection()),
            }),
            None => Stop::Paused(PendingApproval {
                reason: ApprovalReason::OutputApprovalRequired,
                tool_call: None,
                output: Some(output),
            }),
        }
    }

    /// The last model answer, when no later model call was made.
    fn last_model_step(&self) -> Option<&ModelStep> {
        self.run.steps.iter().rev().find_map(|record| match &record.step {
            Step::Model(model) => Some(model),
            Step::Tool(_) | Step::Approval(_) => None,
        })
    }

    /// The tool calls of the last model answer that have no result yet.
    fn open_tool_calls(&self) -> Vec<ToolCall> {
        let answered: HashSet<&str> = self.run.steps.iter().filter_map(|r| r.step.tool_call_id()).collect();
        self.last_model_step()
            .map(|step| {
                step.tool_calls.iter().filter(|call| !answered.contains(call.id.as_str())).cloned().collect()
            })
            .unwrap_or_default()
    }

    /// Runs the open server tool calls, answers calls it cannot make with an
    /// error for the model, and leaves client tool calls waiting.
    async fn answer_tool_calls(&mut self) -> DomainResult<Option<Stop>> {
        let mut waiting = Vec::new();
        for call in self.open_tool_calls() {
            let client_tool = self.run.spec.client_tools.iter().find(|tool| tool.name == call.name);
            let result = if !self.policy().allows_tool(&call.name) {
                Err(format!("the tool {:?} is not allowed on this route", call.name))
            } else if let Some(tool) = client_tool {
                match compile(&tool.parameters).and_then(|v| checked_arguments(&v, &call.arguments)) {
                    Ok(_) => {
                        waiting.push(call);
                        continue;
                    }
                    Err(reason) => Err(reason),
                }
            } else {
                match self.server_call(&call).await? {
                    Ok(result) => result,
                    Err(stop) => return Ok(Some(stop)),
                }
            };
            if let Some(stop) = self.record_tool(&call, result, Executor::Server).await? {
                return Ok(Some(stop));
            }
        }
        Ok((!waiting.is_empty()).then_some(Stop::Waiting(waiting)))
    }

    /// A server tool call's result, once the gates before it let it run:
    /// an approver's decision where one is needed, and, for a tool that is
    /// not idempotent, what became of an earlier attempt.
    async fn server_call(&mut self, call: &ToolCall) -> DomainResult<Result<ToolResult, Stop>> {
        if !self.run.spec.server_tools.contains(&call.name) {
            return Ok(Ok(Err(format!("no tool named {:?} is available to this run", call.name))));
        }
        if let Some(decided) = self.approval_gate(call).decided() {
            return Ok(decided);
        }
        if self.runs.tools().idempotent(&call.name) == Some(false) {
            if let Some(decided) = self.start_unsafe_call(call).await?.decided() {
                return Ok(decided);
            }
        }
        let context = ToolContext {
            run_id: self.run.id.clone(),
            tool_call_id: call.id.clone(),
            now: self.runs.clock().now_utc(),
        };
        Ok(Ok(self.runs.tools().call(&call.name, &call.arguments, &context).await))
    }

    /// Whether a call the route's policy (or the tool) wants approved may run.
    fn approval_gate(&self, call: &ToolCall) -> Gate {
        let needs_approval = self.policy().needs_approval(&call.name)
            || self.runs.tools().requires_approval(&call.name) == Some(true);
        if !needs_approval {
            return Gate::Go;
        }
        let reason = ApprovalReason::ToolApprovalRequired;
        match self.run.approval(reason, Some(&call.id), 0) {
            None => Gate::Stop(Stop::Paused(PendingApproval::call(reason, call))),
            Some(approval) if approval.decision == Decision::Rejected => {
                Gate::Answer(Err(approval.rejection()))
            }
            Some(_) => Gate::Go,
        }
    }

    /// Before a call of a tool that is not idempotent. When an earlier
    /// attempt of this call was started and never journaled (its server
    /// stopped during it), whether it took effect is unknown: it is made
    /// again only if an approver says so after that attempt, and the run
    /// pauses to ask one. Then the call is noted as started, so the next
    /// driver knows.
    async fn start_unsafe_call(&mut self, call: &ToolCall) -> DomainResult<Gate> {
        if let Some(flight) = self.run.tool_in_flight.as_ref().filter(|flight| flight.tool_call_id == call.id)
        {
            let reason = ApprovalReason::ToolOutcomeUnknown;
            match self.run.approval(reason, Some(&call.id), flight.at_step) {
                None => return Ok(Gate::Stop(Stop::Paused(PendingApproval::call(reason, call)))),
                Some(approval) if approval.decision == Decision::Rejected => {
                    return Ok(Gate::Answer(Err(format!(
                        "not made again: a server stopped during this call, so whether it took effect is unknown; {}",
                        approval.rejection()
                    ))));
                }
                Some(_) => {}
            }
        }
        let started = ToolInFlight { tool_call_id: call.id.clone(), at_step: self.run.step_count };
        let expires_at = self.runs.clock().now() + self.runs.lease_secs();
        if !self.runs.db().run_renew_lease(&self.run.id, self.epoch, expires_at, Some(&started)).await? {
            return Ok(Gate::Stop(Stop::Lost));
        }
        self.run.tool_in_flight = Some(started);
        Ok(Gate::Go)
    }

    async fn record_tool(
        &mut self,
        call: &ToolCall,
        result: Result<String, String>,
        executor: Executor,
    ) -> DomainResult<Option<Stop>> {
        let (output, is_error) = match result {
            Ok(output) => (output, false),
            Err(reason) => (serde_json::json!({ "error": reason }).to_string(), true),
        };
        let step = Step::Tool(ToolStep {
            tool_call_id: call.id.clone(),
            name: call.name.clone(),
            arguments: call.arguments.clone(),
            output,
            is_error,
            executor,
        });
        self.record(step, 0, 0, 0).await
    }

    /// One metered model call over the conversation so far.
    async fn call_model(&mut self) -> DomainResult<Option<Stop>> {
        let limit = self.run.spec.max_steps;
        if self.run.steps_taken() >= limit {
            return Ok(Some(Stop::Failed(RunFailure::MaxStepsExceeded { limit })));
        }
        let caller = match self.caller().await {
            Ok(caller) => caller,
            Err(DomainError::InvalidApiKey) => return Ok(Some(Stop::Failed(RunFailure::KeyRevoked))),
            Err(DomainError::NotFound(_)) => return Ok(Some(Stop::Failed(RunFailure::CreatorLeftOrg))),
            Err(err) => return Err(err),
        };
        let Some(route) = self.runs.gateway().route(&self.run.route).cloned() else {
            return Ok(Some(Stop::Failed(RunFailure::ModelUnsupported {
                what: format!("the route {:?} is no longer configured", self.run.route),
            })));
        };
        let request = self.chat_request();
        if let Some(limit_micros) = self.run.spec.max_cost_micros {
            let estimate = gateway::Estimate::chat(&request, &route).cost_micros;
            if self.run.cost_micros.saturating_add(estimate) > limit_micros {
                return Ok(Some(Stop::Failed(RunFailure::MaxCostExceeded {
                    limit_micros,
                    spent_micros: self.run.cost_micros,
                })));
            }
        }
        let answer =
            match gateway::complete(self.runs.gateway_deps(), &caller, &route, request, &self.run.id).await {
                Ok(answer) => answer,
                Err(err) => return Ok(Some(Stop::Failed(failure(err)?))),
            };
        let ChatAnswer { message, finish_reason, usage, cost_micros } = answer;
        let step = Step::Model(ModelStep {
            content: message.content,
            tool_calls: self.unique_calls(message.tool_calls.unwrap_or_default()),
            finish_reason,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cost_micros,
        });
        self.record(step, usage.prompt_tokens, usage.completion_tokens, cost_micros).await
    }

    /// Who the run's model calls are metered for: its creator's key as it
    /// is now (refused once revoked), or its creator as a member of the org.
    async fn caller(&self) -> DomainResult<Caller> {
        let db = self.runs.db();
        match &self.run.key_id {
            Some(key_id) => {
                let principal =
                    api_key_principal(db, self.runs.keys(), key_id, self.runs.clock().now()).await?;
                Caller::resolve(db, &principal, Some(&self.run.org_id)).await
            }
            None => Caller::member(db, &self.run.user_id, &self.run.org_id).await,
        }
    }

    /// The model's tool calls with ids unique within the run: a provider
    /// that repeats or omits ids gets fresh ones.
    fn unique_calls(&self, calls: Vec<wire::ToolCall>) -> Vec<ToolCall> {
        let mut seen: HashSet<String> = self
            .run
            .steps
            .iter()
            .filter_map(|record| match &record.step {
                Step::Model(model) => Some(model.tool_calls.iter().map(|call| call.id.clone())),
                Step::Tool(_) | Step::Approval(_) => None,
            })
            .flatten()
            .collect();
        calls
            .into_iter()
            .map(|call| {
                let id = if call.id.is_empty() || seen.contains(&call.id) {
                    format!("call_{}", random_base62(24))
                } else {
                    call.id
                };
                seen.insert(id.clone());
                ToolCall { id, name: call.function.name, arguments: call.function.arguments }
            })
            .collect()
    }

    /// Journals one step with the run's new totals; a final answer is
    /// journaled when the run stops, with its outcome.
    async fn record(
        &mut self,
        step: Step,
        prompt_tokens: u64,
        completion_tokens: u64,
        cost_micros: i64,
    ) -> DomainResult<Option<Stop>> {
        let limit = self.run.spec.max_steps;
        if step.is_work() && self.run.steps_taken() >= limit {
            return Ok(Some(Stop::Failed(RunFailure::MaxStepsExceeded { limit })));
        }
        let now = self.runs.clock().now();
        let record = StepRecord { index: self.run.step_count, created_at: now, step };
        let mut events = RunEvent::of_step(&record);
        if let Step::Model(model) = &record.step {
            events.extend(model.tool_calls.iter().map(|call| RunEvent::ToolCalled {
                index: record.index,
                call: call.clone(),
                executor: if self.is_client_tool(&call.name) { Executor::Client } else { Executor::Server },
            }));
        }
        let totals = Totals {
            step_count: self.run.step_count + 1,
            prompt_tokens: self.run.prompt_tokens + prompt_tokens,
            completion_tokens: self.run.completion_tokens + completion_tokens,
            cost_micros: self.run.cost_micros.saturating_add(cost_micros),
        };
        // Nothing runs on the server after this answer before the run stops.
        let waits = matches!(&record.step,
            Step::Model(model) if model.tool_calls.iter().all(|call| self.is_client_tool(&call.name)));
        if waits {
            self.unjournaled.steps.push(record.clone());
            self.unjournaled.events.extend(events);
        } else {
            let audit = match &record.step {
                Step::Tool(tool) => Some(self.runs.tool_called_event(&self.run, tool)),
                Step::Model(_) | Step::Approval(_) => None,
            };
            let Unjournaled { mut steps, events: mut all_events } = std::mem::take(&mut self.unjournaled);
            steps.push(record.clone());
            all_events.extend(events);
            let progress = Progress { steps: &steps, events: &all_events, totals, audit: audit.as_ref() };
            let expires_at = now + self.runs.lease_secs();
            if !self.runs.db().run_record_steps(&self.run.id, self.epoch, progress, now, expires_at).await? {
                return Ok(Some(Stop::Lost));
            }
            self.runs.ring(&self.run.id);
            self.run.tool_in_flight = None;
        }
        self.run.step_count = totals.step_count;
        self.run.prompt_tokens = totals.prompt_tokens;
        self.run.completion_tokens = totals.completion_tokens;
        self.run.cost_micros = totals.cost_micros;
        match &record.step {
            Step::Tool(_) => self.runs.metrics().step("tool"),
            Step::Model(_) => self.runs.metrics().step("model"),
            Step::Approval(_) => {}
        }
        self.run.steps.push(record);
        Ok(None)
    }

    fn is_client_tool(&self, name: &str) -> bool {
        self.run.spec.client_tools.iter().any(|tool| tool.name == name)
    }

    /// The conversation so far, with the tools the run offers.
    fn chat_request(&self) -> ChatCompletionRequest {
        let spec = &self.run.spec;
        let mut messages = Vec::with_capacity(spec.messages.len() + self.run.steps.len() + 1);
        if let Some(instructions) = &spec.instructions {
            messages.push(text_message("system", instructions));
        }
        messages.extend(spec.messages.iter().map(|m| text_message(&m.role, &m.content)));
        for record in self.run.steps.iter().filter(|record| record.step.is_work()) {
            messages.push(match &record.step {
                Step::Model(model) => ChatMessage {
                    role: "assistant".to_owned(),
                    content: model.content.clone().map(Value::String),
                    tool_calls: (!model.tool_calls.is_empty()).then(|| {
                        model
                            .tool_calls
                            .iter()
                            .map(|call| wire::ToolCall {
                                id: call.id.clone(),
                                kind: "function".to_owned(),
                                function: wire::FunctionCall {
                                    name: call.name.clone(),
                                    arguments: call.arguments.clone(),
                                },
                            })
                            .collect()
                    }),
                    ..ChatMessage::default()
                },
                Step::Tool(tool) => ChatMessage {
                    role: "tool".to_owned(),
                    content: Some(Value::String(tool.output.clone())),
                    tool_call_id: Some(tool.tool_call_id.clone()),
                    ..ChatMessage::default()
                },
                Step::Approval(_) => continue,
            });
        }
        let registry = self.runs.tools();
        let mut tools: Vec<wire::Tool> = spec
            .server_tools
            .iter()
            .filter_map(|name| registry.describe(name))
            .map(|(name, description, parameters)| {
                function_tool(name, Some(description.to_owned()), parameters)
            })
            .collect();
        tools.extend(
            spec.client_tools
                .iter()
                .map(|tool| function_tool(&tool.name, tool.description.clone(), tool.parameters.clone())),
        );
        ChatCompletionRequest {
            model: self.run.route.clone(),
            messages,
            tools: (!tools.is_empty()).then_some(tools),
            ..ChatCompletionRequest::default()
        }
    }
}

fn text_message(role: &str, content: &str) -> ChatMessage {
    ChatMessage {
        role: role.to_owned(),
        content: Some(Value::String(content.to_owned())),
        ..ChatMessage::default()
    }
}

fn function_tool(name: &str, description: Option<String>, parameters: Value) -> wire::Tool {
    wire::Tool {
        kind: "function".to_owned(),
        function: FunctionDefinition {
            name: name.to_owned(),
            description,
            parameters: Some(parameters),
            strict: None,
        },
    }
}

/// A failed model call, as the run records it; a failing store is an
/// error of the driver instead, and the run resumes once its lease runs out.
fn failure(err: CallError) -> DomainResult<RunFailure> {
    Ok(match err {
        CallError::Refused(Refusal::RateLimited { kind, limit, retry_after }) => RunFailure::RateLimited {
            kind: kind.to_owned(),
            limit,
            retry_after_secs: retry_after.as_secs().max(1),
        },
        CallError::Refused(Refusal::BudgetExceeded { what, budget_micros, spent_micros }) => {
            RunFailure::BudgetExceeded { what, budget_micros, spent_micros }
        }
        CallError::Refused(Refusal::Store(err)) => return Err(err.into()),
        CallError::Failed(GatewayError::Rejected { provider, status, message }) => {
            RunFailure::ModelRejected { provider: provider.to_string(), status, message }
        }
        CallError::Failed(GatewayError::Exhausted { last, provider }) => {
            RunFailure::ModelUnavailable { provider: provider.to_string(), last: last.to_string() }
        }
        CallError::Failed(GatewayError::Timeout) => RunFailure::ModelTimeout,
        CallError::Failed(GatewayError::Unsupported(what)) => {
            RunFailure::ModelUnsupported { what: what.to_owned() }
        }
        CallError::Unreadable(detail) => RunFailure::ModelUnreadable { detail },
    })
}
