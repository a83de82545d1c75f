//! Identity and access: accounts, sessions, two-factor login, email
//! verification and password reset, organizations with members, roles and
//! invitations, projects, and scoped API keys (with the cache that validates
//! them from memory). `api` holds its HTTP handlers, `store` its SQL.

pub mod accounts;
pub mod api;
pub mod api_keys;
pub mod authenticate;
mod config;
pub mod email;
pub mod invitations;
pub mod key_cache;
pub mod key_usage;
pub mod names;
pub mod notices;
pub mod orgs;
pub mod passwords;
pub mod projects;
pub mod step_up;
mod store;
pub mod tokens;
pub mod two_factor;

pub use config::AuthConfig;
