//! Organizations and their members: create one (the creator becomes its
//! owner), list and read the caller's, rename, delete, and manage who belongs
//! with which role (an address without an account is invited, see
//! [`invitations`]). An org the caller is not in does not exist for them (404,
//! never 403); changes need a session or an API key with the `admin` scope.

use crate::audit::{self, AuditAction, Entry};
use crate::db::Db;
use crate::identity::accounts::normalize_email;
use crate::identity::invitations;
use crate::identity::key_cache::{KeyCache, KeyChange};
use crate::identity::model::{Invitation, Member, Membership, Org, Role};
use crate::identity::names::check_name;
use crate::kernel::context::RequestContext;
use crate::kernel::error::{DomainError, DomainResult, Resource};
use crate::kernel::ids::new_id;
use crate::kernel::page::Page;
use crate::kernel::principal::CostCaps;
use crate::kernel::principal::{Principal, Scope};
use crate::mail::Mailer;

pub async fn org_create(
    db: &Db,
    principal: &Principal,
    name: &str,
    ctx: &RequestContext,
) -> DomainResult<Membership> {
    principal.require_session()?;
    create_owned_by(db, &principal.user_id, name, ctx).await
}

/// Creates an org with `owner_id` as owner; the caller has checked the right to.
pub(super) async fn create_owned_by(
    db: &Db,
    owner_id: &str,
    name: &str,
    ctx: &RequestContext,
) -> DomainResult<Membership> {
    let org =
        Org { id: new_id("org"), name: check_name(name)?, created_at: ctx.now, caps: CostCaps::default() };
    db.org_create(&org, owner_id).await?;
    audit::record(db, ctx, Entry::in_org(AuditAction::OrgCreated, owner_id, &org.id, &org.id)).await?;
    Ok(Membership { org, role: Role::Owner })
}

/// The caller's orgs; an API key sees only its own org.
pub async fn org_list(
    db: &Db,
    principal: &Principal,
    cursor: Option<&str>,
    limit: i64,
) -> DomainResult<Page<Membership>> {
    let rows = match principal.key_org() {
        // One org at most: it is on this page unless the cursor is past it.
        Some(org_id) => db
            .membership(org_id, &principal.user_id)
            .await?
            .filter(|m| cursor.is_none_or(|after| m.org.id.as_str() > after))
            .into_iter()
            .collect(),
        None => db.memberships(&principal.user_id, cursor, limit + 1).await?,
    };
    Ok(Page::from_rows(rows, limit, |m| &m.org.id))
}

pub async fn org_get(db: &Db, principal: &Principal, org_id: &str) -> DomainResult<Membership> {
    if principal.key_org().is_some_and(|own| own != org_id) {
        return Err(DomainError::NotFound(Resource::Organization));
    }
    db.membership(org_id, &principal.user_id).await?.ok_or(DomainError::NotFound(Resource::Organization))
}

/// The caller's membership of `org_id`, or 404 when they are not in it (or
/// their API key is bound to another org).
pub(crate) async fn caller_role(db: &Db, principal: &Principal, org_id: &str) -> DomainResult<Role> {
    if principal.key_org().is_some_and(|own| own != org_id) {
        return Err(DomainError::NotFound(Resource::Organization));
    }
    let membership = db.membership(org_id, &principal.user_id).await?;
    membership.map(|m| m.role).ok_or(DomainError::NotFound(Resource::Organization))
}

/// The org a request names with `org_id`, or an API key's own when it names
/// none; a session must name one.
pub(crate) fn org_asked_for<'a>(principal: &'a Principal, asked: Option<&'a str>) -> DomainResult<&'a str> {
    asked.or(principal.key_org()).ok_or_else(|| DomainError::Invalid {
        param: "org_id",
        message: "is required with a session token".to_owned(),
    })
}

/// The org the caller asked for (an API key's own when none asked), once the
/// caller is shown to hold at least `needed` there as a manager: what reading
/// an org's audit trail needs.
pub async fn org_managed_by<'a>(
    db: &Db,
    principal: &'a Principal,
    asked: Option<&'a str>,
    needed: Role,
) -> DomainResult<&'a str> {
    let org_id = org_asked_for(principal, asked)?;
    manager_role(db, principal, org_id, needed).await?;
    Ok(org_id)
}

/// Checks the caller may change the org: a session or a key with the `admin`
/// scope that is not narrowed to a project, and at least the `needed` role.
pub(crate) async fn manager_role(
    db: &Db,
    principal: &Principal,
    org_id: &str,
    needed: Role,
) -> DomainResult<Role> {
    let role = caller_role(db, principal, org_id).await?;
    principal.require_scope(Scope::Admin)?;
    principal.require_org_wide()?;
    if role > needed {
        return Err(DomainError::RoleDenied);
    }
    Ok(role)
}

/// What `PATCH /v1/orgs/{id}` changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct OrgChanges {
    pub name: Option<String>,
    /// The org's daily cap in micro-USD; `Some(None)` removes it.
    pub org_daily_cap: Option<Option<i64>>,
    pub member_daily_cap: Option<Option<i64>>,
}

/// Renames the org and/or sets its daily gateway spend caps. Owners and admins.
pub async fn org_update(
    db: &Db,
    keys: &KeyCache,
    principal: &Principal,
    org_id: &str,
    changes: OrgChanges,
    ctx: &RequestContext,
) -> DomainResult<Membership> {
    manager_role(db, principal, org_id, Role::Admin).await?;
    let current = org_get(db, principal, org_id).await?;
    if changes.name.is_none() && changes.org_daily_cap.is_none() && changes.member_daily_cap.is_none() {
        return Err(DomainError::Invalid {
            param: "name",
            message: "name at least one field to change".to_owned(),
        });
    }
    let caps = CostCaps {
        org_daily_micros: changes.org_daily_cap.unwrap_or(current.org.caps.org_daily_micros),
        member_daily_micros: changes.member_daily_cap.unwrap_or(current.org.caps.member_daily_micros),
    };
    for (param, cap) in [
        ("daily_cost_cap_usd", caps.org_daily_micros),
        ("member_daily_cost_cap_usd", caps.member_daily_micros),
    ] {
        if cap.is_some_and(|micros| micros <= 0) {
            return Err(DomainError::Invalid {
                param,
                message: "must be a positive amount, or null for no cap".to_owned(),
            });
        }
    }
    let actor = Some(principal.user_id.as_str());
    if let Some(name) = changes.name {
        db.org_rename(org_id, &check_name(&name)?).await?;
        audit::record(
            db,
            ctx,
            Entry {
                action: AuditAction::OrgRenamed,
                actor,
                org: Some(org_id),
                target: Some(org_id),
                route: None,
                details: None,
            },
        )
        .await?;
    }
    if caps != current.org.caps {
        db.org_set_cost_caps(org_id, caps).await?;
        // Keys carry their org's caps; the next request reads the new ones.
        keys.changed(db, KeyChange::Org(org_id.to_owned())).await;
        audit::record(
            db,
            ctx,
            Entry {
                action: AuditAction::OrgCostCapsChanged,
                actor,
                org: Some(org_id),
                target: Some(org_id),
                route: None,
                details: None,
            },
        )
        .await?;
    }
    org_get(db, principal, org_id).await
}

pub async fn org_delete(
    db: &Db,
    keys: &KeyCache,
    principal: &Principal,
    org_id: &str,
    ctx: &RequestContext,
) -> DomainResult<()> {
    manager_role(db, principal, org_id, Role::Owner).await?;
    db.org_delete(org_id).await?;
    keys.changed(db, KeyChange::Org(org_id.to_owned())).await;
    audit::record(db, ctx, Entry::in_org(AuditAction::OrgDeleted, &principal.user_id, org_id, org_id)).await
}

/// The org's members and their addresses; externals may not list them, nor
/// keys without the `admin` scope.
pub async fn member_list(
    db: &Db,
    principal: &Principal,
    org_id: &str,
    cursor: Option<&str>,
    limit: i64,
) -> DomainResult<Page<Member>> {
    if caller_role(db, principal, org_id).await? == Role::External {
        return Err(DomainError::RoleDenied);
    }
    principal.require_scope(Scope::Admin)?;
    principal.require_org_wide()?;
    let rows = db.members(org_id, cursor, limit + 1).await?;
    Ok(Page::from_rows(rows, limit, |m| &m.user_id))
}

/// What adding an address to an org did.
#[derive(Debug)]
pub enum MemberAdded {
    /// The address has an account: it is a member now.
    Member(Member),
    /// It has none: an invitation is mailed to it.
    Invited(Invitation),
}

/// Adds the account with `email` with `role`. An address without an
/// account, or whose account has not verified it, is invited instead (a
/// pending invitation of it is replaced and re-sent): only the owner of the
/// address can accept, so registering someone's address ahead of them joins
/// nothing.
pub async fn member_add(
    db: &Db,
    mail: &Mailer,
    principal: &Principal,
    org_id: &str,
    email: &str,
    role: Role,
    ctx: &RequestContext,
) -> DomainResult<MemberAdded> {
    let own = manager_role(db, principal, org_id, Role::Admin).await?;
    if !own.may_manage(role) {
        return Err(DomainError::RoleDenied);
    }
    let email = normalize_email(email)?;
    let Some(user) = db.user_by_email(&email).await?.filter(|user| user.email_verified) else {
        let invitation = invitations::invite(db, mail, principal, org_id, email, role, ctx).await?;
        return Ok(MemberAdded::Invited(invitation));
    };
    if !db.member_add(org_id, &user.id, role, ctx.now).await? {
        return Err(DomainError::AlreadyMember);
    }
    audit::record(db, ctx, Entry::in_org(AuditAction::MemberAdded, &principal.user_id, org_id, &user.id))
        .await?;
    let member = db.member(org_id, &user.id).await?.ok_or(DomainError::NotFound(Resource::Member))?;
    Ok(MemberAdded::Member(member))
}

/// Changes a member's role. Owners may change anyone's; admins only between
/// member and external. The last owner cannot be demoted.
pub async fn member_set_role(
    db: &Db,
    principal: &Principal,
    org_id: &str,
    user_id: &str,
    role: Role,
    ctx: &RequestContext,
) -> DomainResult<Member> {
    let own = manager_role(db, principal, org_id, Role::Admin).await?;
    let target = db.member(org_id, user_id).await?.ok_or(DomainError::NotFound(Resource::Member))?;
    if !own.may_manage(target.role) || !own.may_manage(role) {
        return Err(DomainError::RoleDenied);
    }
    if !db.member_set_role(org_id, user_id, role).await? {
        return Err(DomainError::LastOwner);
    }
    audit::record(
        db,
        ctx,
        Entry::in_org(AuditAction::MemberRoleChanged, &principal.user_id, org_id, user_id),
    )
    .await?;
    db.member(org_id, user_id).await?.ok_or(DomainError::NotFound(Resource::Member))
}

/// Removes a member; anyone may leave, owners remove anyone, admins remove
/// members and externals. The last owner cannot leave.
pub async fn member_remove(
    db: &Db,
    keys: &KeyCache,
    principal: &Principal,
    org_id: &str,
    user_id: &str,
    ctx: &RequestContext,
) -> DomainResult<()> {
    let own = caller_role(db, principal, org_id).await?;
    principal.require_org_wide()?;
    let target = db.member(org_id, user_id).await?.ok_or(DomainError::NotFound(Resource::Member))?;
    let leaving = user_id == principal.user_id;
    // Leaving is a membership change too: a key needs `admin` for it.
    principal.require_scope(Scope::Admin)?;
    if !leaving && !own.may_manage(target.role) {
        return Err(DomainError::RoleDenied);
    }
    if !db.member_remove(org_id, user_id, ctx.now).await? {
        return Err(DomainError::LastOwner);
    }
    keys.changed(db, KeyChange::Member { org_id: org_id.to_owned(), user_id: user_id.to_owned() }).await;
    audit::record(db, ctx, Entry::in_org(AuditAction::MemberRemoved, &principal.user_id, org_id, user_id))
        .await
}
