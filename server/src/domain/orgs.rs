//! Organizations: create one (the creator becomes its owner), list the ones
//! the caller belongs to, read one. An org the caller is not in does not exist
//! for them (404, never 403).

use super::accounts::audit_in_org;
use super::principal::Principal;
use super::{DomainError, DomainResult, Page, RequestContext, Resource, new_id, now};
use crate::store::{Db, MembershipRow, OrgRow};

pub const MAX_NAME_LEN: usize = 100;

fn check_name(name: &str) -> DomainResult<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(DomainError::Invalid {
            param: "name",
            message: "must be 1 to 100 characters".to_owned(),
        });
    }
    Ok(name.to_owned())
}

pub async fn org_create(
    db: &Db,
    principal: &Principal,
    name: &str,
    ctx: &RequestContext,
) -> DomainResult<MembershipRow> {
    principal.require_session()?;
    create_owned_by(db, &principal.user_id, name, ctx).await
}

/// Creates an org with `owner_id` as owner; the caller has checked the right to.
pub(super) async fn create_owned_by(
    db: &Db,
    owner_id: &str,
    name: &str,
    ctx: &RequestContext,
) -> DomainResult<MembershipRow> {
    let org = OrgRow { id: new_id("org"), name: check_name(name)?, created_at: now() };
    db.org_create(&org, owner_id).await?;
    audit_in_org(db, ctx, Some(owner_id), Some(&org.id), "org.created", Some(&org.id)).await?;
    Ok(MembershipRow { org, role: "owner".to_owned() })
}

/// The caller's orgs; an API key sees only its own org.
pub async fn org_list(
    db: &Db,
    principal: &Principal,
    cursor: Option<&str>,
    limit: i64,
) -> DomainResult<Page<MembershipRow>> {
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

pub async fn org_get(db: &Db, principal: &Principal, org_id: &str) -> DomainResult<MembershipRow> {
    if principal.key_org().is_some_and(|own| own != org_id) {
        return Err(DomainError::NotFound(Resource::Organization));
    }
    db.membership(org_id, &principal.user_id).await?.ok_or(DomainError::NotFound(Resource::Organization))
}
