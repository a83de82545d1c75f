//! Resolving a credential to a [`Principal`]: a session token (checked
//! against its live session) or an API key (from the key cache when read
//! recently).

use subtle::ConstantTimeEq;

use crate::db::Db;
use crate::identity::key_cache::{CachedKey, KeyCache};
use crate::identity::key_usage::KeyUsage;
use crate::identity::tokens::{TokenIssuer, digest};
use crate::kernel::error::{DomainError, DomainResult};
use crate::kernel::principal::{API_KEY_PREFIX, KeyLimits, Principal, Via};

/// Resolves a bearer credential: an API key (`sy_live_…`) or a session token.
pub async fn authenticate_bearer(
    db: &Db,
    issuer: &TokenIssuer,
    cache: &KeyCache,
    usage: &KeyUsage,
    token: &str,
    now: i64,
) -> DomainResult<Principal> {
    if token.starts_with(API_KEY_PREFIX) {
        return authenticate_api_key(db, cache, usage, token, now).await;
    }
    let claims = issuer.verify_access(token, now)?;
    // Logging out or changing the password revokes the session at once.
    if !db.session_is_active(&claims.sid, &claims.sub).await? {
        return Err(DomainError::InvalidToken);
    }
    Ok(Principal { user_id: claims.sub, via: Via::Session { session_id: claims.sid } })
}

/// Resolves `sy_live_<key_id>_<secret>`: looked up by id (in memory when
/// read recently), compared in constant time, and refused once revoked,
/// expired at `now`, or its owner has left the org.
pub async fn authenticate_api_key(
    db: &Db,
    cache: &KeyCache,
    usage: &KeyUsage,
    presented: &str,
    now: i64,
) -> DomainResult<Principal> {
    let (key_id, secret) = presented
        .strip_prefix(API_KEY_PREFIX)
        .and_then(|rest| rest.rsplit_once('_'))
        .ok_or(DomainError::InvalidApiKey)?;
    let cached = live_key(db, cache, key_id, now).await?;
    let matches: bool = digest(secret).as_bytes().ct_eq(cached.stored.secret_hash.as_bytes()).into();
    if !matches {
        return Err(DomainError::InvalidApiKey);
    }
    usage.touch(key_id, now);
    Ok(principal_of(&cached))
}

/// The principal an API key acts as, found by its id, without its secret:
/// for work a key started that goes on later, such as a run's next step.
/// Refused, as a presented key would be, once the key is revoked, expired
/// at `now`, or its owner has left the org.
pub async fn api_key_principal(db: &Db, cache: &KeyCache, key_id: &str, now: i64) -> DomainResult<Principal> {
    Ok(principal_of(&live_key(db, cache, key_id, now).await?))
}

/// The key by id (in memory when read recently), if it may still be used.
async fn live_key(db: &Db, cache: &KeyCache, key_id: &str, now: i64) -> DomainResult<CachedKey> {
    // Replicas on PostgreSQL: a change made through another one moved the
    // shared epoch, and what this one holds in memory is forgotten first.
    if let Some(epoch) = db.key_epoch().await? {
        cache.observe_epoch(epoch);
    }
    let cached = match cache.get(key_id) {
        Some(cached) => cached,
        None => {
            let read_from = cache.generation();
            let stored = db.api_key_by_id(key_id).await?.ok_or(DomainError::InvalidApiKey)?;
            let membership = db.membership(&stored.key.org_id, &stored.key.user_id).await?;
            let caps = membership.as_ref().map(|m| m.org.caps).unwrap_or_default();
            cache.put(stored, membership.is_some(), caps, read_from)
        }
    };
    let key = &cached.stored.key;
    let expired = key.expires_at.is_some_and(|at| at <= now);
    if expired || key.revoked_at.is_some() || !cached.owner_is_member {
        return Err(DomainError::InvalidApiKey);
    }
    Ok(cached)
}

fn principal_of(cached: &CachedKey) -> Principal {
    let key = &cached.stored.key;
    Principal {
        user_id: key.user_id.clone(),
        via: Via::ApiKey {
            limits: KeyLimits { org_caps: cached.org_caps, ..key.limits.clone() },
            key_id: key.id.clone(),
            org_id: key.org_id.clone(),
            project_id: key.project_id.clone(),
            scopes: key.scopes.clone(),
        },
    }
}
