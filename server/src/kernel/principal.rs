//! Who is calling: a user through a session token, or an API key acting for
//! its owner within one org and a set of scopes. Every domain operation takes
//! a [`Principal`] and checks what it needs once.

use std::fmt;

use crate::kernel::error::{DomainError, DomainResult};

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
    pub fn allows_model(&self, name: &str) -> bool {
        self.allowed_models.as_ref().is_none_or(|names| names.iter().any(|n| n == name))
    }
}

/// An org's daily gateway spend caps, in micro-USD per UTC day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostCaps {
    /// What the whole org may spend in a day.
    pub org_daily_micros: Option<i64>,
    /// What each member (with all their keys) may spend in a day.
    pub member_daily_micros: Option<i64>,
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

    /// The API key's id; `None` for sessions.
    pub fn key_id(&self) -> Option<&str> {
        match &self.via {
            Via::ApiKey { key_id, .. } => Some(key_id),
            Via::Session { .. } => None,
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
