//! API keys: minted with a session by a member of the key's org, shown once,
//! listed without secrets, revoked at once.

use super::accounts::audit_in_org;
use super::principal::{API_KEY_PREFIX, Principal, Scope};
use super::tokens::{digest, random_base62};
use super::{DomainError, DomainResult, Page, RequestContext, Resource, new_id, now};
use crate::store::{ApiKeyRow, Db};

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_EXPIRES_IN_DAYS: u32 = 3650;
/// 32 base62 characters: about 190 bits.
const SECRET_LEN: usize = 32;
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub org_id: String,
    pub expires_in_days: Option<u32>,
}

/// A stored key and, once only, its full text.
pub struct MintedKey {
    pub key: ApiKeyRow,
    pub plain: String,
}

pub async fn api_key_create(
    db: &Db,
    principal: &Principal,
    input: NewApiKey,
    ctx: &RequestContext,
) -> DomainResult<MintedKey> {
    principal.require_session()?;
    let name = input.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(DomainError::Invalid {
            param: "name",
            message: "must be 1 to 100 characters".to_owned(),
        });
    }
    if input.scopes.is_empty() {
        return Err(DomainError::Invalid { param: "scopes", message: "name at least one scope".to_owned() });
    }
    if input.expires_in_days.is_some_and(|days| days == 0 || days > MAX_EXPIRES_IN_DAYS) {
        return Err(DomainError::Invalid {
            param: "expires_in_days",
            message: "must be 1 to 3650".to_owned(),
        });
    }
    let membership = db.membership(&input.org_id, &principal.user_id).await?;
    match membership.as_ref().map(|m| m.role.as_str()) {
        None => return Err(DomainError::NotFound(Resource::Organization)),
        Some("external") => return Err(DomainError::RoleDenied),
        Some(_) => {}
    }
    let mut scopes = input.scopes;
    scopes.sort();
    scopes.dedup();
    let id = new_id("key");
    let secret = random_base62(SECRET_LEN);
    let now = now();
    let key = ApiKeyRow {
        prefix: format!("{API_KEY_PREFIX}{id}"),
        secret_hash: digest(&secret),
        scopes: scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" "),
        org_id: input.org_id,
        user_id: principal.user_id.clone(),
        name,
        created_at: now,
        expires_at: input.expires_in_days.map(|days| now + i64::from(days) * 86_400),
        last_used_at: None,
        revoked_at: None,
        id,
    };
    db.api_key_insert(&key).await?;
    audit_in_org(db, ctx, Some(&principal.user_id), Some(&key.org_id), "api_key.created", Some(&key.id))
        .await?;
    Ok(MintedKey { plain: format!("{}_{secret}", key.prefix), key })
}

/// The caller's live keys, without secrets.
pub async fn api_key_list(
    db: &Db,
    principal: &Principal,
    cursor: Option<&str>,
    limit: i64,
) -> DomainResult<Page<ApiKeyRow>> {
    principal.require_session()?;
    let rows = db.api_keys_of_user(&principal.user_id, cursor, limit + 1).await?;
    Ok(Page::from_rows(rows, limit, |key| &key.id))
}

pub async fn api_key_revoke(
    db: &Db,
    principal: &Principal,
    key_id: &str,
    ctx: &RequestContext,
) -> DomainResult<()> {
    principal.require_session()?;
    let key = db.api_key_by_id(key_id).await?;
    let Some(key) = key.filter(|k| k.user_id == principal.user_id && k.revoked_at.is_none()) else {
        return Err(DomainError::NotFound(Resource::ApiKey));
    };
    if !db.api_key_revoke(&key.id, &principal.user_id, now()).await? {
        return Err(DomainError::NotFound(Resource::ApiKey));
    }
    audit_in_org(db, ctx, Some(&principal.user_id), Some(&key.org_id), "api_key.revoked", Some(&key.id)).await
}
