//! What runs leave behind besides their own rows: events in the
//! tamper-evident audit trail, in their org's chain and with their route —
//! a run created (who started it), each tool call (the tool, the SHA-256 of
//! its arguments, the outcome, who executed it), each approver's decision
//! (who, what, why; the approver is the event's actor), and a run's end (status,
//! usage, cost, and why when it failed) — and the Prometheus counters of
//! runs started, ended and their steps. A run's events are written in the
//! transaction of the change they record, so a crash never leaves one
//! without the other. A change of whom a session is shared with is recorded too
//! (`session.access_changed`: who changed it, and the access it now has);
//! that one fails its request when it cannot be written, as the identity
//! area's changes do.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchyard_providers::price::format_usd_micros;

use crate::audit::{AuditAction, Entry, Stamped, record};
use crate::kernel::context::RequestContext;
use crate::kernel::error::DomainResult;
use crate::kernel::principal::Principal;
use crate::runs::Runs;
use crate::runs::model::{ApprovalStep, Executor, Run, RunFailure, RunStatus, ToolStep};
use crate::runs::sessions::{Access, Session};

impl Runs {
    /// The event of a run created.
    pub(super) fn created_event(&self, run: &Run, ctx: &RequestContext) -> Stamped {
        let details = json!({
            "principal": run.key_id.as_deref().unwrap_or(&run.user_id),
            "background": run.spec.background,
            "max_steps": run.spec.max_steps,
        });
        stamped(ctx, AuditAction::RunCreated, run, &details)
    }

    /// The event of a tool call answered.
    pub(super) fn tool_called_event(&self, run: &Run, step: &ToolStep) -> Stamped {
        let details = json!({
            "tool_call_id": step.tool_call_id,
            "name": step.name,
            "arguments_sha256": data_encoding::HEXLOWER.encode(&Sha256::digest(step.arguments.as_bytes())),
            "outcome": if step.is_error { "error" } else { "ok" },
            "executor": match step.executor {
                Executor::Server => "server",
                Executor::Client => "client",
            },
        });
        stamped(&RequestContext::local(self.clock()), AuditAction::RunToolCalled, run, &details)
    }

    /// The event of an approver's decision; the approver is its actor.
    pub(super) fn decided_event(&self, run: &Run, step: &ApprovalStep) -> Stamped {
        let details = json!({
            "reason": step.reason,
            "tool_call_id": step.tool_call_id,
            "decision": step.decision.as_str(),
            "note": step.note,
        });
        let details = details.to_string();
        let entry = Entry::in_org(AuditAction::RunApprovalDecided, &step.approver_id, &run.org_id, &run.id)
            .of_run(&run.route, &details);
        Stamped::new(&RequestContext::local(self.clock()), entry)
    }

    /// The event of a run's end.
    pub(super) fn finished_event(
        &self,
        run: &Run,
        status: RunStatus,
        failure: Option<&RunFailure>,
    ) -> Stamped {
        let details = json!({
            "status": status.as_str(),
            "steps": run.step_count,
            "prompt_tokens": run.prompt_tokens,
            "completion_tokens": run.completion_tokens,
            "cost_usd": format_usd_micros(run.cost_micros),
            "failure": failure.map(|failure| serde_json::to_value(failure).unwrap_or(Value::Null)),
        });
        stamped(&RequestContext::local(self.clock()), AuditAction::RunFinished, run, &details)
    }

    pub(super) async fn audit_access_changed(
        &self,
        principal: &Principal,
        session: &Session,
        access: &Access,
        ctx: &RequestContext,
    ) -> DomainResult<()> {
        let details = json!({
            "principal": principal.key_id().unwrap_or(&principal.user_id),
            "visibility": access.visibility.as_str(),
            "permission": access.permission.as_str(),
            "members": access.members,
        })
        .to_string();
        let entry = Entry::in_org(
            AuditAction::SessionAccessChanged,
            &principal.user_id,
            &session.org_id,
            &session.id,
        )
        .with_details(&details);
        record(self.db(), ctx, entry).await
    }
}

fn stamped(ctx: &RequestContext, action: AuditAction, run: &Run, details: &Value) -> Stamped {
    let details = details.to_string();
    Stamped::new(ctx, Entry::in_org(action, &run.user_id, &run.org_id, &run.id).of_run(&run.route, &details))
}
