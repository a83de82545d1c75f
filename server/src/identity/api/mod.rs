//! The identity area's HTTP handlers, one module per spec tag or sub-resource.

pub mod api_keys;
pub mod auth;
pub mod email;
pub mod orgs;
pub mod projects;
pub mod sessions;
pub mod two_factor;
pub mod wire;
