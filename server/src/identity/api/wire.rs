//! Identity's wire types shared by several of its tags (users, organizations,
//! members, roles), named as in the spec.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use switchyard_providers::price::format_usd_micros;

use crate::http::wire::timestamp;
use crate::identity::model;

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

impl From<model::User> for User {
    fn from(user: model::User) -> Self {
        Self {
            id: user.id,
            email: user.email,
            display_name: user.display_name,
            email_verified: user.email_verified,
            two_factor_enabled: user.two_factor_enabled,
            created_at: timestamp(user.created_at),
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

impl From<model::Role> for Role {
    fn from(role: model::Role) -> Self {
        match role {
            model::Role::Owner => Self::Owner,
            model::Role::Admin => Self::Admin,
            model::Role::Member => Self::Member,
            model::Role::External => Self::External,
        }
    }
}

impl From<Role> for model::Role {
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

impl From<model::Member> for Member {
    fn from(member: model::Member) -> Self {
        Self {
            role: member.role.into(),
            user_id: member.user_id,
            email: member.email,
            display_name: member.display_name,
            joined_at: timestamp(member.joined_at),
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

impl From<model::Membership> for Org {
    fn from(membership: model::Membership) -> Self {
        let caps = membership.org.caps;
        Self {
            id: membership.org.id,
            name: membership.org.name,
            role: membership.role.into(),
            created_at: timestamp(membership.org.created_at),
            daily_cost_cap_usd: caps.org_daily_micros.map(format_usd_micros),
            member_daily_cost_cap_usd: caps.member_daily_micros.map(format_usd_micros),
        }
    }
}
