//! Who is calling: a user through a session token, or an API key acting for
//! its owner within one org and a set of scopes. Every domain operation takes
//! a [`Principal`] and checks what it needs once.

use std::fmt;

use subtle::ConstantTimeEq;

use crate::db::Db;
use crate::identity::key_cache::KeyCache;
use crate::identity::key_usage::KeyUsage;
use crate::identity::store::{CostCaps, KeyLimitsRow};
use crate::identity::tokens::{TokenIssuer, digest};
use crate::kernel::error::{DomainError, DomainResult};
use crate::kernel::ids::now;

/// The literal start of every API key, so leaked keys are easy to find.
pub const API_KEY_PREFIX: &str = "sy_live_";

/// What an API key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Chat,
    Runs,
    Knowledge,
    Agents,
    Orders,
    Proxy,
    Admin,
    /// Every scope.
    All,
}

impl Scope {
    pub const ALL: [Scope; 8] = [
        Scope::Chat,
        Scope::Runs,
        Scope::Knowledge,
        Scope::Agents,
        Scope::Orders,
        Scope::Proxy,
        Scope::Admin,
        Scope::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Runs => "runs",
            Self::Knowledge => "knowledge",
            Self::Agents => "agents",
            Self::Orders => "orders",
            Self::Proxy => "proxy",
            Self::Admin => "admin",
            Self::All => "*",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the principal authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A session token from login; may do everything the user may do.
    Session { session_id: String },
    /// An API key, limited to one org and its scopes.
    ApiKey {
        key_id: String,
        org_id: String,
        project_id: Option<String>,
        scopes: Vec<Scope>,
        limits: KeyLimits,
    },
}

/// What an API key may do through the model gateway; `None` is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyLimits {
    /// Route names the key may use.
    pub allowed_models: Option<Vec<String>>,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
    /// Spend ceiling over the key's life, in micro-USD.
    pub budget_micros: Option<i64>,
    /// The org's daily caps, as read with the key.
    pub org_caps: CostCaps,
}

impl KeyLimits {
    pub fn from_row(row: &KeyLimitsRow) -> Self {
        Self {
            allowed_models: row
                .allowed_models
                .as_ref()
                .map(|names| names.split_whitespace().map(str::to_owned).collect()),
            requests_per_minute: row.rpm_limit.and_then(|n| u32::try_from(n).ok()),
            tokens_per_minute: row.tpm_limit.and_then(|n| u32::try_from(n).ok()),
            budget_micros: row.budget_micros,
            org_caps: CostCaps::default(),
        }
    }

    pub fn to_row(&self) -> KeyLimitsRow {
        KeyLimitsRow {
            allowed_models: self.allowed_models.as_ref().map(|names| names.join(" ")),
            rpm_limit: self.requests_per_minute.map(i64::from),
            tpm_limit: self.tokens_per_minute.map(i64::from),
            budget_micros: self.budget_micros,
        }
    }

    pub fn allows_model(&self, name: &str) -> bool {
        self.allowed_models.as_ref().is_none_or(|names| names.iter().any(|n| n == name))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    pub via: Via,
}

impl Principal {
    /// Refuses API keys: minting keys, for one, needs a session.
    pub fn require_session(&self) -> DomainResult<&str> {
        match &self.via {
            Via::Session { session_id } => Ok(session_id),
            Via::ApiKey { .. } => Err(DomainError::SessionRequired),
        }
    }

    /// Sessions carry every scope; keys need `scope` or `*`.
    pub fn require_scope(&self, scope: Scope) -> DomainResult<()> {
        match &self.via {
            Via::Session { .. } => Ok(()),
            Via::ApiKey { scopes, .. } if scopes.contains(&scope) || scopes.contains(&Scope::All) => Ok(()),
            Via::ApiKey { .. } => Err(DomainError::ScopeDenied(scope.as_str())),
        }
    }

    /// The one project an API key is narrowed to, if any.
    pub fn key_project(&self) -> Option<&str> {
        match &self.via {
            Via::ApiKey { project_id, .. } => project_id.as_deref(),
            Via::Session { .. } => None,
        }
    }

    /// Refuses keys narrowed to a project: org-wide administration and
    /// org-wide reads are not theirs.
    pub fn require_org_wide(&self) -> DomainResult<()> {
        match self.key_project() {
            Some(_) => Err(DomainError::ProjectKeyDenied),
            None => Ok(()),
        }
    }

    /// The one org an API key is bound to; `None` for sessions.
    pub fn key_org(&self) -> Option<&str> {
        match &self.via {
            Via::ApiKey { org_id, .. } => Some(org_id),
            Via::Session { .. } => None,
        }
    }
}

/// Resolves a bearer credential: an API key (`sy_live_…`) or a session token.
pub async fn authenticate_bearer(
    db: &Db,
    issuer: &TokenIssuer,
    cache: &KeyCache,
    usage: &KeyUsage,
    token: &str,
) -> DomainResult<Principal> {
    if token.starts_with(API_KEY_PREFIX) {
        return authenticate_api_key(db, cache, usage, token).await;
    }
    let claims = issuer.verify_access(token)?;
    // Logging out or changing the password revokes the session at once.
    if !db.session_is_active(&claims.sid, &claims.sub).await? {
        return Err(DomainError::InvalidToken);
    }
    Ok(Principal { user_id: claims.sub, via: Via::Session { session_id: claims.sid } })
}

/// Resolves `sy_live_<key_id>_<secret>`: looked up by id (in memory when
/// read recently), compared in constant time, and refused once revoked,
/// expired, or its owner has left the org.
pub async fn authenticate_api_key(
    db: &Db,
    cache: &KeyCache,
    usage: &KeyUsage,
    presented: &str,
) -> DomainResult<Principal> {
    let (key_id, secret) = presented
        .strip_prefix(API_KEY_PREFIX)
        .and_then(|rest| rest.rsplit_once('_'))
        .ok_or(DomainError::InvalidApiKey)?;
    // Replicas on PostgreSQL: a change made through another one moved the
    // shared epoch, and what this one holds in memory is forgotten first.
    if let Some(epoch) = db.key_epoch().await? {
        cache.observe_epoch(epoch);
    }
    let cached = match cache.get(key_id) {
        Some(cached) => cached,
        None => {
            let read_from = cache.generation();
            let key = db.api_key_by_id(key_id).await?.ok_or(DomainError::InvalidApiKey)?;
            let membership = db.membership(&key.org_id, &key.user_id).await?;
            let caps = membership.as_ref().map(|m| m.org.caps).unwrap_or_default();
            cache.put(key, membership.is_some(), caps, read_from)
        }
    };
    let key = &cached.key;
    let matches: bool = digest(secret).as_bytes().ct_eq(key.secret_hash.as_bytes()).into();
    let expired = key.expires_at.is_some_and(|at| at <= now());
    if !matches || expired || key.revoked_at.is_some() || !cached.owner_is_member {
        return Err(DomainError::InvalidApiKey);
    }
    usage.touch(&key.id, now());
    let scopes = key.scopes.split_whitespace().filter_map(Scope::parse).collect();
    Ok(Principal {
        user_id: key.user_id.clone(),
        via: Via::ApiKey {
            limits: KeyLimits { org_caps: cached.org_caps, ..KeyLimits::from_row(&key.limits) },
            key_id: key.id.clone(),
            org_id: key.org_id.clone(),
            project_id: key.project_id.clone(),
            scopes,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: Vec<Scope>) -> Principal {
        Principal {
            user_id: "usr_1".into(),
            via: Via::ApiKey {
                key_id: "key_1".into(),
                org_id: "org_1".into(),
                project_id: None,
                scopes,
                limits: KeyLimits::default(),
            },
        }
    }

    #[test]
    fn scopes_parse_and_print_the_same() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()), Some(scope));
        }
        assert_eq!(Scope::parse("root"), None);
    }

    #[test]
    fn keys_need_the_scope_or_star_and_sessions_have_all() {
        assert!(key(vec![Scope::Chat]).require_scope(Scope::Chat).is_ok());
        assert!(matches!(
            key(vec![Scope::Chat]).require_scope(Scope::Runs),
            Err(DomainError::ScopeDenied("runs"))
        ));
        assert!(key(vec![Scope::All]).require_scope(Scope::Admin).is_ok());
        let session = Principal { user_id: "usr_1".into(), via: Via::Session { session_id: "ses_1".into() } };
        assert!(session.require_scope(Scope::Admin).is_ok());
        assert!(key(vec![Scope::All]).require_session().is_err());
    }
}
