//! Identity's wire types shared by several of its tags (users, organizations,
//! members, roles), named as in the spec.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use switchyard_providers::price::format_usd_micros;

use crate::http::wire::timestamp;
use crate::identity::orgs;
use crate::identity::store::{MemberRow, MembershipRow, UserRow};

/// A person with an account.
#[derive(Debug, Object)]
pub struct User {
    pub id: String,
    pub email: String,
    #[oai(nullable)]
    pub display_name: Option<String>,
    pub email_verified: bool,
    pub two_factor_enabled: bool,
    pub created_at: DateTime<Utc>,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            email_verified: row.email_verified,
            two_factor_enabled: row.two_factor_enabled,
            created_at: timestamp(row.created_at),
        }
    }
}

/// A role in an organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum Role {
    Owner,
    Admin,
    Member,
    External,
}

impl From<orgs::Role> for Role {
    fn from(role: orgs::Role) -> Self {
        match role {
            orgs::Role::Owner => Self::Owner,
            orgs::Role::Admin => Self::Admin,
            orgs::Role::Member => Self::Member,
            orgs::Role::External => Self::External,
        }
    }
}

impl From<Role> for orgs::Role {
    fn from(role: Role) -> Self {
        match role {
            Role::Owner => Self::Owner,
            Role::Admin => Self::Admin,
            Role::Member => Self::Member,
            Role::External => Self::External,
        }
    }
}

/// A member of an organization.
#[derive(Debug, Object)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    #[oai(nullable)]
    pub display_name: Option<String>,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

impl From<MemberRow> for Member {
    fn from(row: MemberRow) -> Self {
        Self {
            role: orgs::Role::parse(&row.role).into(),
            user_id: row.user_id,
            email: row.email,
            display_name: row.display_name,
            joined_at: timestamp(row.created_at),
        }
    }
}

/// An organization, with the caller's role in it.
#[derive(Debug, Object)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// What the whole organization may spend through the gateway in a UTC
    /// day, in USD; no cap when null.
    #[oai(nullable)]
    pub daily_cost_cap_usd: Option<String>,
    /// What each member may spend through the gateway in a UTC day, in USD;
    /// no cap when null.
    #[oai(nullable)]
    pub member_daily_cost_cap_usd: Option<String>,
}

impl From<MembershipRow> for Org {
    fn from(row: MembershipRow) -> Self {
        Self {
            id: row.org.id,
            name: row.org.name,
            role: orgs::Role::parse(&row.role).into(),
            created_at: timestamp(row.org.created_at),
            daily_cost_cap_usd: row.org.caps.org_daily_micros.map(format_usd_micros),
            member_daily_cost_cap_usd: row.org.caps.member_daily_micros.map(format_usd_micros),
        }
    }
}
