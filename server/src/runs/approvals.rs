//! Approvals: who decides when a run pauses (the approvers it names and its
//! route's policy's, or else the org's owners and admins), an approver's
//! decision (`POST /v1/runs/{id}/resume`), and the mail approvers get when
//! a run pauses for them.

use crate::identity::{Role, caller_role, normalize_email};
use crate::kernel::error::{DomainError, DomainResult};
use crate::kernel::principal::Principal;
use crate::mail::{Queued, render};
use crate::runs::model::{
    ApprovalReason, ApprovalStep, Decision, PendingApproval, Run, RunStatus, Step, StepRecord,
};
use crate::runs::policy::Policy;
use crate::runs::{Runs, Wait};

/// Most approvers a run may name.
pub const MAX_APPROVERS: usize = 20;
/// Longest reason an approver may give.
pub const MAX_NOTE_CHARS: usize = 1_000;

/// Most members read to find an org's owners and admins.
const MAX_MEMBERS_READ: i64 = 1_000;

impl Runs {
    /// The approvers of a new run in `org_id`, as user ids: each one it
    /// names (a user id or an email) must be a member; the policy's
    /// approvers count where they are members.
    pub(super) async fn approvers(
        &self,
        org_id: &str,
        named: &[String],
        policy: &Policy,
    ) -> DomainResult<Vec<String>> {
        if named.len() > MAX_APPROVERS {
            return Err(invalid(format!("a run names at most {MAX_APPROVERS} approvers")));
        }
        let mut approvers: Vec<String> = Vec::new();
        for who in named {
            let user_id = self
                .member_id(org_id, who)
                .await?
                .ok_or_else(|| invalid(format!("{who:?} is not a member of the run's organization")))?;
            if !approvers.contains(&user_id) {
                approvers.push(user_id);
            }
        }
        for email in &policy.approvers {
            if let Some(user_id) = self.member_id(org_id, email).await? {
                if !approvers.contains(&user_id) {
                    approvers.push(user_id);
                }
            }
        }
        Ok(approvers)
    }

    /// The id of the member `who` (a user id or an email) of `org_id`.
    pub(super) async fn member_id(&self, org_id: &str, who: &str) -> DomainResult<Option<String>> {
        let user_id = if who.contains('@') {
            let Ok(email) = normalize_email(who) else { return Ok(None) };
            match self.db().user_by_email(&email).await? {
                Some(user) => user.id,
                None => return Ok(None),
            }
        } else {
            who.to_owned()
        };
        Ok(self.db().member(org_id, &user_id).await?.map(|member| member.user_id))
    }

    /// Whether the caller may decide on the run: one of its approvers, or,
    /// when it has none, an owner or admin of its org.
    pub(super) async fn is_approver(&self, principal: &Principal, run: &Run) -> DomainResult<bool> {
        if !run.spec.approvers.is_empty() {
            return Ok(run.spec.approvers.contains(&principal.user_id));
        }
        match caller_role(self.db(), principal, &run.org_id).await {
            Ok(role) => Ok(role <= Role::Admin),
            Err(DomainError::NotFound(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// An approver's decision on a paused run. The run goes on at once
    /// (approved: the tool runs, or the answer stands; rejected: the model
    /// is told who rejected the call and why, or a rejected answer blocks
    /// the run), and, like a foreground run, this answers when it stops or
    /// waits again (unless `wait` says not to).
    pub async fn resume(
        &self,
        principal: &Principal,
        id: &str,
        decision: Decision,
        note: Option<String>,
        wait: Wait,
    ) -> DomainResult<Run> {
        let run = self.get(principal, id).await?;
        if note.as_ref().is_some_and(|note| note.chars().count() > MAX_NOTE_CHARS) {
            return Err(DomainError::Invalid {
                param: "reason",
                message: format!("is longer than {MAX_NOTE_CHARS} characters"),
            });
        }
        if !self.is_approver(principal, &run).await? {
            return Err(DomainError::NotAnApprover);
        }
        let Some(pending) = run.pending_approval.as_ref().filter(|_| run.status == RunStatus::Paused) else {
            return Err(DomainError::RunNotPaused(run.status.as_str()));
        };
        let approver = self.db().user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
        let now = self.clock().now();
        let approval = ApprovalStep {
            reason: pending.reason,
            tool_call_id: pending.tool_call.as_ref().map(|call| call.id.clone()),
            decision,
            approver_id: approver.id,
            approver_email: approver.email,
            note: note.filter(|note| !note.trim().is_empty()),
        };
        let record =
            StepRecord { index: run.step_count, created_at: now, step: Step::Approval(approval.clone()) };
        let lease = (self.owner(), now + self.lease_secs());
        let decided = self.decided_event(&run, &approval);
        match self.db().run_decide(id, run.step_count, (&record, &decided), lease, now).await? {
            Some(epoch) => {
                self.ring(id);
                self.drive_claimed_as(id, epoch, wait).await?;
            }
            None => {
                let now_run = self.read(id).await?;
                return Err(DomainError::RunNotPaused(now_run.status.as_str()));
            }
        }
        self.read(id).await
    }

    /// A mail for each approver of a run that pauses for `pending`.
    pub(super) async fn approval_mail(
        &self,
        run: &Run,
        pending: &PendingApproval,
    ) -> DomainResult<Vec<Queued>> {
        let emails: Vec<String> = if run.spec.approvers.is_empty() {
            self.db()
                .members(&run.org_id, None, MAX_MEMBERS_READ)
                .await?
                .into_iter()
                .filter(|member| member.role <= Role::Admin)
                .map(|member| member.email)
                .collect()
        } else {
            let mut emails = Vec::with_capacity(run.spec.approvers.len());
            for user_id in &run.spec.approvers {
                if let Some(member) = self.db().member(&run.org_id, user_id).await? {
                    emails.push(member.email);
                }
            }
            emails
        };
        let what = match (pending.reason, &pending.tool_call) {
            (ApprovalReason::ToolApprovalRequired, Some(call)) => {
                format!("a call of the tool {} with {}", call.name, shortened(&call.arguments))
            }
            (ApprovalReason::ToolOutcomeUnknown, Some(call)) => format!(
                "whether to call the tool {} again: a server stopped during the call, so whether it took effect is unknown",
                call.name
            ),
            _ => "its final answer".to_owned(),
        };
        let mut mail = Vec::with_capacity(emails.len());
        for email in emails {
            let message = render::run_approval(&email, &run.id, &run.route, &what);
            mail.push(self.inner.state.mail.queue(self.db(), message).await?);
        }
        Ok(mail)
    }
}

fn invalid(message: String) -> DomainError {
    DomainError::Invalid { param: "approvers", message }
}

/// At most 200 characters of `text`, for a mail.
fn shortened(text: &str) -> String {
    const MAX: usize = 200;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}
