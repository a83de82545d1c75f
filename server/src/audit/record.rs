//! Recording: what every area calls to append one event to the trail, on its
//! own ([`record`]) or as part of the area's own transaction ([`Stamped`],
//! appended with `audit::append_in`). An event names its action from
//! [`AuditAction`], never a free string, so the set of actions is one list
//! that `GET /v1/audit?action=` filters by.

use crate::db::Db;
use crate::kernel::context::RequestContext;
use crate::kernel::error::DomainResult;
use crate::kernel::ids::new_id;

use crate::audit::chain::NewEvent;

/// Everything the trail records, as `area.event` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditAction {
    UserRegistered,
    UserLogin,
    UserLoginFailed,
    UserLogout,
    UserSessionRevoked,
    UserReauthenticated,
    UserReauthenticationFailed,
    UserPasswordChanged,
    UserPasswordChangeFailed,
    UserPasswordResetRequested,
    UserPasswordReset,
    UserEmailVerified,
    UserTwoFactorEnabled,
    UserTwoFactorDisabled,
    OrgCreated,
    OrgRenamed,
    OrgCostCapsChanged,
    OrgDeleted,
    MemberInvited,
    MemberInvitationRevoked,
    MemberJoined,
    MemberAdded,
    MemberRoleChanged,
    MemberRemoved,
    ProjectCreated,
    ProjectRenamed,
    ProjectDeleted,
    ApiKeyCreated,
    ApiKeyRevoked,
    RunCreated,
    RunToolCalled,
    RunApprovalDecided,
    RunFinished,
    SessionAccessChanged,
}

impl AuditAction {
    /// The action as stored and shown: `user.login`, `api_key.revoked`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserRegistered => "user.registered",
            Self::UserLogin => "user.login",
            Self::UserLoginFailed => "user.login_failed",
            Self::UserLogout => "user.logout",
            Self::UserSessionRevoked => "user.session_revoked",
            Self::UserReauthenticated => "user.reauthenticated",
            Self::UserReauthenticationFailed => "user.reauthentication_failed",
            Self::UserPasswordChanged => "user.password_changed",
            Self::UserPasswordChangeFailed => "user.password_change_failed",
            Self::UserPasswordResetRequested => "user.password_reset_requested",
            Self::UserPasswordReset => "user.password_reset",
            Self::UserEmailVerified => "user.email_verified",
            Self::UserTwoFactorEnabled => "user.2fa_enabled",
            Self::UserTwoFactorDisabled => "user.2fa_disabled",
            Self::OrgCreated => "org.created",
            Self::OrgRenamed => "org.renamed",
            Self::OrgCostCapsChanged => "org.cost_caps_changed",
            Self::OrgDeleted => "org.deleted",
            Self::MemberInvited => "member.invited",
            Self::MemberInvitationRevoked => "member.invitation_revoked",
            Self::MemberJoined => "member.joined",
            Self::MemberAdded => "member.added",
            Self::MemberRoleChanged => "member.role_changed",
            Self::MemberRemoved => "member.removed",
            Self::ProjectCreated => "project.created",
            Self::ProjectRenamed => "project.renamed",
            Self::ProjectDeleted => "project.deleted",
            Self::ApiKeyCreated => "api_key.created",
            Self::ApiKeyRevoked => "api_key.revoked",
            Self::RunCreated => "run.created",
            Self::RunToolCalled => "run.tool_called",
            Self::RunApprovalDecided => "run.approval_decided",
            Self::RunFinished => "run.finished",
            Self::SessionAccessChanged => "session.access_changed",
        }
    }
}

/// One event: who did what to which target, in which org's chain (none: the
/// account chain). Where it came from is the request's context.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub action: AuditAction,
    pub actor: Option<&'a str>,
    pub org: Option<&'a str>,
    pub target: Option<&'a str>,
    /// The gateway route, for a run's events.
    pub route: Option<&'a str>,
    /// More about the event, as JSON text.
    pub details: Option<&'a str>,
}

impl<'a> Entry<'a> {
    /// An account event a user caused to their own account (`user.*`).
    pub fn own_account(action: AuditAction, user_id: &'a str) -> Self {
        Self { action, actor: Some(user_id), org: None, target: Some(user_id), route: None, details: None }
    }

    /// An event in `org`'s chain.
    pub fn in_org(action: AuditAction, actor: &'a str, org: &'a str, target: &'a str) -> Self {
        Self { action, actor: Some(actor), org: Some(org), target: Some(target), route: None, details: None }
    }

    /// The same event, for a run on `route`, with `details` (JSON text).
    pub fn of_run(self, route: &'a str, details: &'a str) -> Self {
        Self { route: Some(route), ..self.with_details(details) }
    }

    /// The same event, with `details` (JSON text).
    pub fn with_details(self, details: &'a str) -> Self {
        Self { details: Some(details), ..self }
    }
}

/// An event with its id, time and origin, ready to append: kept by an area
/// that writes it in the same transaction as what it records, so the two
/// are stored together or not at all.
#[derive(Debug, Clone)]
pub struct Stamped {
    pub(super) id: String,
    pub(super) at: i64,
    pub(super) event: NewEvent,
}

impl Stamped {
    pub fn new(ctx: &RequestContext, entry: Entry<'_>) -> Self {
        let event = NewEvent {
            actor_id: entry.actor.map(str::to_owned),
            org_id: entry.org.map(str::to_owned),
            action: entry.action.as_str(),
            target: entry.target.map(str::to_owned),
            ip: ctx.ip.clone(),
            request_id: ctx.request_id.clone(),
            route: entry.route.map(str::to_owned),
            details: entry.details.map(str::to_owned),
        };
        Self { id: new_id("evt"), at: ctx.now, event }
    }
}

/// Appends `entry` to its chain.
pub async fn record(db: &Db, ctx: &RequestContext, entry: Entry<'_>) -> DomainResult<()> {
    db.audit_record(&Stamped::new(ctx, entry)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::AuditAction;

    #[test]
    fn actions_are_area_dot_event() {
        let action = AuditAction::UserTwoFactorEnabled.as_str();
        assert_eq!(action, "user.2fa_enabled");
        assert!(AuditAction::ApiKeyRevoked.as_str().split_once('.').is_some());
    }
}
