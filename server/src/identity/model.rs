//! What the identity area hands out: users, organizations and the caller's
//! membership, members, invitations, projects, login sessions and API keys,
//! with typed roles and scopes and without secrets. The store reads into these
//! (or into its own rows where a secret sits beside the data); handlers turn
//! them into wire types. Times are Unix seconds.

use crate::kernel::principal::{CostCaps, KeyLimits, Scope};

/// A role in an org, from most to least powerful.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Owner,
    Admin,
    Member,
    External,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Member => "member",
            Self::External => "external",
        }
    }

    /// Roles as stored; the column's CHECK constraint allows only these.
    pub(in crate::identity) fn parse(stored: &str) -> Self {
        match stored {
            "owner" => Self::Owner,
            "admin" => Self::Admin,
            "member" => Self::Member,
            _ => Self::External,
        }
    }

    /// Owners manage everyone; admins manage members and externals.
    pub(in crate::identity) fn may_manage(self, target: Role) -> bool {
        match self {
            Self::Owner => true,
            Self::Admin => matches!(target, Role::Member | Role::External),
            Self::Member | Self::External => false,
        }
    }
}

/// A person with an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub email_verified: bool,
    pub two_factor_enabled: bool,
    pub created_at: i64,
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub caps: CostCaps,
}

/// An org together with the caller's role in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub org: Org,
    pub role: Role,
}

/// A member of an org, with their account's public details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub joined_at: i64,
}

/// An open (or spent) invitation to an org; its token is never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub role: Role,
    pub expires_at: i64,
    pub created_at: i64,
}

/// A project of an org.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: i64,
}

/// A login session as its user sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    /// The client address it began from.
    pub ip: Option<String>,
    pub created_at: i64,
    /// When it last rotated its refresh token.
    pub refreshed_at: Option<i64>,
}

/// An API key as its owner sees it: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub org_id: String,
    /// The project the key is narrowed to, if any.
    pub project_id: Option<String>,
    pub user_id: String,
    pub name: String,
    /// The first characters of the secret, to recognise it by.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    /// What it may do through the gateway (`org_caps` left at no cap).
    pub limits: KeyLimits,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}
