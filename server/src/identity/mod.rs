//! Identity and access: accounts, sessions, two-factor login, email
//! verification and password reset, organizations with members, roles and
//! invitations, projects, and scoped API keys (with the cache that validates
//! them from memory). `model` holds the types it hands out, `api` its HTTP
//! handlers, `store` its SQL.
//!
//! This file is the area's front: other areas and the HTTP layer use what it
//! exports below, never its modules.

mod accounts;
pub mod api;
mod api_keys;
mod authenticate;
mod config;
mod email;
mod invitations;
mod key_cache;
mod key_usage;
pub mod model;
mod names;
mod notices;
mod orgs;
mod passwords;
mod projects;
mod step_up;
mod store;
mod tokens;
mod two_factor;

pub use accounts::normalize_email;
pub use api_keys::{Bootstrapped, api_key_bootstrap};
pub use authenticate::{api_key_principal, authenticate_api_key, authenticate_bearer};
pub use config::AuthConfig;
pub use key_cache::{KeyCache, KeyChange};
pub use key_usage::KeyUsage;
pub use model::Role;
pub use orgs::org_managed_by;
pub(crate) use orgs::{caller_role, org_asked_for};
pub use tokens::TokenIssuer;
pub use two_factor::SECOND_FACTOR_MAX_ATTEMPTS;
