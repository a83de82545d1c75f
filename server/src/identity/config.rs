//! Identity's settings: the `[auth]` table.

use serde::{Deserialize, Serialize};

/// The `[auth]` table: session tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// HS256 signing secret for access tokens (at least 32 bytes). When unset,
    /// one is generated on first start and kept in the database, so every
    /// replica shares it.
    pub jwt_secret: Option<String>,
    /// Lifetime of an access token.
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token; each refresh issues a new one.
    pub refresh_token_ttl_days: u64,
    /// How long after signing in (or `POST /v1/auth/reauthenticate`) a
    /// session may turn on two-factor login or mint API keys.
    pub reauthentication_window_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: None,
            access_token_ttl_secs: 15 * 60,
            refresh_token_ttl_days: 30,
            reauthentication_window_secs: 10 * 60,
        }
    }
}
