//! Invitations: adding an address that has no account yet, or whose account
//! has not verified it, to an org.
//!
//! An invitation carries a token `syi_` and 43 base62 characters (256 bits),
//! stored as a SHA-256 digest, valid for 7 days and once. It is mailed
//! through the outbox with the link `{public_url}/invitations/accept?token=…`.
//! Inviting the same address to the same org again revokes the open
//! invitation (its token stops working) and mails a new one. The signed-in
//! user whose address is the invited one accepts it and joins with the
//! invited role. Owners and admins list the pending invitations and revoke
//! them (admins only those for members and externals).

use crate::audit::{self, AuditAction, Entry};
use crate::db::Db;
use crate::identity::model::{Invitation, Member, Role};
use crate::identity::orgs::{caller_role, manager_role};
use crate::identity::store::Accepted;
use crate::identity::tokens::digest;
use crate::kernel::context::RequestContext;
use crate::kernel::error::{DomainError, DomainResult, Resource};
use crate::kernel::ids::new_id;
use crate::kernel::ids::random_base62;
use crate::kernel::page::Page;
use crate::kernel::principal::Principal;
use crate::mail::{Mailer, render};

pub const INVITATION_TTL_DAYS: i64 = 7;
pub const INVITATION_TTL_SECS: i64 = INVITATION_TTL_DAYS * 24 * 60 * 60;
/// Invitations one user may send per hour, across orgs, and one org may
/// receive per day: each mails an address the sender chose.
pub const INVITATIONS_PER_USER_HOUR: i64 = 20;
pub const INVITATIONS_PER_ORG_DAY: i64 = 100;

/// The invitation quota a refused invitation ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InvitationQuota {
    /// [`INVITATIONS_PER_USER_HOUR`] from one user to one org.
    PerUserHour,
    /// [`INVITATIONS_PER_ORG_DAY`] to one org, from all its members.
    PerOrgDay,
}

impl InvitationQuota {
    /// The refusal of an invitation past this quota.
    fn spent(self) -> DomainError {
        let (limit, window_secs, why) = match self {
            Self::PerUserHour => (
                INVITATIONS_PER_USER_HOUR,
                3_600,
                format!("Each member may send {INVITATIONS_PER_USER_HOUR} invitations an hour."),
            ),
            Self::PerOrgDay => (
                INVITATIONS_PER_ORG_DAY,
                86_400,
                format!(
                    "An organization may send {INVITATIONS_PER_ORG_DAY} invitations a day, from all its members."
                ),
            ),
        };
        DomainError::QuotaSpent { limit: u32::try_from(limit).unwrap_or(u32::MAX), window_secs, why }
    }
}

/// Invites `email` (normalised, with no verified account) to `org_id` with `role`
/// and mails the token; the caller has checked the right to.
pub(super) async fn invite(
    db: &Db,
    mail: &Mailer,
    inviter: &Principal,
    org_id: &str,
    email: String,
    role: Role,
    ctx: &RequestContext,
) -> DomainResult<Invitation> {
    let org = db
        .membership(org_id, &inviter.user_id)
        .await?
        .ok_or(DomainError::NotFound(Resource::Organization))?
        .org;
    let now = ctx.now;
    let (by_inviter, _) = db.invitations_issued_since(&inviter.user_id, org_id, now - 3_600).await?;
    let (_, to_org) = db.invitations_issued_since(&inviter.user_id, org_id, now - 86_400).await?;
    if by_inviter >= INVITATIONS_PER_USER_HOUR {
        return Err(InvitationQuota::PerUserHour.spent());
    }
    if to_org >= INVITATIONS_PER_ORG_DAY {
        return Err(InvitationQuota::PerOrgDay.spent());
    }
    let token = format!("syi_{}", random_base62(43));
    let invitation = Invitation {
        id: new_id("inv"),
        org_id: org_id.to_owned(),
        email,
        role,
        expires_at: now + INVITATION_TTL_SECS,
        created_at: now,
    };
    let message = render::invitation(
        &invitation.email,
        &org.name,
        role.as_str(),
        &token,
        &mail.invitation_link(&token),
        INVITATION_TTL_DAYS,
    );
    let queued = mail.queue(db, message).await?;
    db.invitation_issue(&invitation, &digest(&token), &inviter.user_id, &queued).await?;
    mail.wake();
    audit::record(
        db,
        ctx,
        Entry::in_org(AuditAction::MemberInvited, &inviter.user_id, org_id, &invitation.id),
    )
    .await?;
    Ok(invitation)
}

/// The signed-in caller accepts the invitation with `token`: they join its
/// org with its role if their address is the invited one.
pub async fn accept(
    db: &Db,
    principal: &Principal,
    token: &str,
    ctx: &RequestContext,
) -> DomainResult<Member> {
    principal.require_session()?;
    let user = db.user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
    let invitation =
        db.invitation_live(&digest(token.trim()), ctx.now).await?.ok_or(DomainError::InvalidInvitation)?;
    if invitation.email != user.email {
        return Err(DomainError::InvitationEmailMismatch);
    }
    match db.invitation_accept(&invitation, &user.id, ctx.now).await? {
        Accepted::Joined => {}
        Accepted::Spent => return Err(DomainError::InvalidInvitation),
        Accepted::AlreadyMember => return Err(DomainError::AlreadyMember),
    }
    audit::record(db, ctx, Entry::in_org(AuditAction::MemberJoined, &user.id, &invitation.org_id, &user.id))
        .await?;
    db.member(&invitation.org_id, &user.id).await?.ok_or(DomainError::NotFound(Resource::Member))
}

/// The org's pending invitations; owners and admins only.
pub async fn pending(
    db: &Db,
    principal: &Principal,
    org_id: &str,
    cursor: Option<&str>,
    limit: i64,
    now: i64,
) -> DomainResult<Page<Invitation>> {
    if caller_role(db, principal, org_id).await? > Role::Admin {
        return Err(DomainError::RoleDenied);
    }
    principal.require_scope(crate::kernel::principal::Scope::Admin)?;
    principal.require_org_wide()?;
    let rows = db.invitations_pending(org_id, now, cursor, limit + 1).await?;
    Ok(Page::from_rows(rows, limit, |row| &row.id))
}

/// Revokes a pending invitation: its token stops working.
pub async fn revoke(
    db: &Db,
    principal: &Principal,
    org_id: &str,
    invitation_id: &str,
    ctx: &RequestContext,
) -> DomainResult<()> {
    let own = manager_role(db, principal, org_id, Role::Admin).await?;
    let invitation = db
        .invitation_pending(org_id, invitation_id, ctx.now)
        .await?
        .ok_or(DomainError::NotFound(Resource::Invitation))?;
    if !own.may_manage(invitation.role) {
        return Err(DomainError::RoleDenied);
    }
    if !db.invitation_revoke(org_id, invitation_id, ctx.now).await? {
        return Err(DomainError::NotFound(Resource::Invitation));
    }
    audit::record(
        db,
        ctx,
        Entry::in_org(AuditAction::MemberInvitationRevoked, &principal.user_id, org_id, invitation_id),
    )
    .await
}
