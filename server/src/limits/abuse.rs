//! Switchyard's abuse limits on top of a [`LimiterStore`]: per-client budgets
//! for sign-up, login, key minting and password resets, and the login lockout.

use std::fmt;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::limits::{Decision, InMemoryLimiterStore, Limit, LimiterStore};

/// Longest configurable window.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest configurable `max`: the log keeps one instant per counted hit.
pub const MAX_PER_WINDOW: u32 = 10_000;

/// Largest `max` of the per-credential limit.
pub const MAX_CREDENTIAL_PER_WINDOW: u32 = 100_000_000;

/// The abuse limits; see the module docs for the TOML shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AbuseLimitsConfig {
    /// Account registrations per client.
    pub register: Limit,
    /// Login attempts per client, whatever the account.
    pub login: Limit,
    /// API keys minted per client.
    pub key_mint: Limit,
    /// Password-reset requests per client.
    pub password_reset: Limit,
    /// Failed logins per account and client before further attempts are
    /// refused until the oldest counted failure leaves the window.
    pub lockout: Limit,
    /// Requests per credential (session token or API key), for every
    /// authenticated endpoint; counted in fixed windows.
    pub credential: Limit,
    /// Most keys the in-process store tracks at once (ignored by shared stores).
    pub max_tracked_keys: usize,
}

impl Default for AbuseLimitsConfig {
    fn default() -> Self {
        Self {
            register: Limit::per_minute(5),
            login: Limit::per_minute(10),
            key_mint: Limit::per_minute(10),
            password_reset: Limit::per_minute(5),
            lockout: Limit::new(5, Duration::from_secs(15 * 60)),
            credential: Limit::per_minute(6_000),
            max_tracked_keys: 100_000,
        }
    }
}

/// A configuration value out of range; `key` names it within the table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InvalidLimits {
    pub key: &'static str,
    pub reason: String,
}

impl AbuseLimitsConfig {
    /// Checks what the types alone cannot: every `max` in
    /// `1..=MAX_PER_WINDOW`, every window in `1s..=MAX_WINDOW`, and at least
    /// one tracked key.
    pub fn validate(&self) -> Result<(), InvalidLimits> {
        let limits = [
            ("register", self.register),
            ("login", self.login),
            ("key_mint", self.key_mint),
            ("password_reset", self.password_reset),
            ("lockout", self.lockout),
        ];
        for (key, limit) in limits {
            if !(1..=MAX_PER_WINDOW).contains(&limit.max) {
                return Err(InvalidLimits { key, reason: format!("max must be 1 to {MAX_PER_WINDOW}") });
            }
            if limit.window < Duration::from_secs(1) || limit.window > MAX_WINDOW {
                let reason = format!("window_secs must be 1 to {}", MAX_WINDOW.as_secs());
                return Err(InvalidLimits { key, reason });
            }
        }
        // A fixed window keeps one counter whatever `max`, so it may be large.
        if !(1..=MAX_CREDENTIAL_PER_WINDOW).contains(&self.credential.max) {
            let reason = format!("max must be 1 to {MAX_CREDENTIAL_PER_WINDOW}");
            return Err(InvalidLimits { key: "credential", reason });
        }
        if self.credential.window < Duration::from_secs(1) || self.credential.window > MAX_WINDOW {
            let reason = format!("window_secs must be 1 to {}", MAX_WINDOW.as_secs());
            return Err(InvalidLimits { key: "credential", reason });
        }
        if self.max_tracked_keys == 0 {
            return Err(InvalidLimits { key: "max_tracked_keys", reason: "must be at least 1".to_owned() });
        }
        Ok(())
    }

    pub fn limit(&self, bucket: Bucket) -> Limit {
        match bucket {
            Bucket::Register => self.register,
            Bucket::Login => self.login,
            Bucket::KeyMint => self.key_mint,
            Bucket::PasswordReset => self.password_reset,
        }
    }
}

/// A per-client limit on one kind of request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Register,
    Login,
    KeyMint,
    PasswordReset,
}

impl Bucket {
    /// Stable name, used as the key prefix (and fit for a metrics label).
    pub fn name(self) -> &'static str {
        match self {
            Self::Register => "register",
            Self::Login => "login",
            Self::KeyMint => "key_mint",
            Self::PasswordReset => "password_reset",
        }
    }
}

/// The policy facade handlers call.
#[derive(Clone)]
pub struct AbuseLimits {
    config: AbuseLimitsConfig,
    store: Arc<dyn LimiterStore>,
}

impl fmt::Debug for AbuseLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbuseLimits").field("config", &self.config).finish_non_exhaustive()
    }
}

impl AbuseLimits {
    pub fn new(config: AbuseLimitsConfig, store: Arc<dyn LimiterStore>) -> Self {
        Self { config, store }
    }

    /// Limits kept in this process, bounded by `config.max_tracked_keys`.
    pub fn in_memory(config: AbuseLimitsConfig) -> Self {
        let store = Arc::new(InMemoryLimiterStore::new(config.max_tracked_keys));
        Self::new(config, store)
    }

    pub fn config(&self) -> &AbuseLimitsConfig {
        &self.config
    }

    /// Counts a request from `ip` against `bucket`.
    pub async fn check(&self, bucket: Bucket, ip: IpAddr) -> Decision {
        let key = format!("{}:{}", bucket.name(), client_key(ip));
        let limit = self.config.limit(bucket);
        match self.store.hit(&key, limit).await {
            Ok(decision) => decision,
            Err(error) => {
                tracing::warn!(%error, bucket = bucket.name(), "abuse limiter unavailable; allowing the request");
                Decision::Allowed {
                    limit: limit.max,
                    remaining: limit.max.saturating_sub(1),
                    reset_after: limit.window,
                }
            }
        }
    }

    pub async fn register(&self, ip: IpAddr) -> Decision {
        self.check(Bucket::Register, ip).await
    }

    pub async fn login(&self, ip: IpAddr) -> Decision {
        self.check(Bucket::Login, ip).await
    }

    pub async fn key_mint(&self, ip: IpAddr) -> Decision {
        self.check(Bucket::KeyMint, ip).await
    }

    pub async fn password_reset(&self, ip: IpAddr) -> Decision {
        self.check(Bucket::PasswordReset, ip).await
    }

    /// Records a failed login for `account` from `ip`.
    pub async fn login_failed(&self, account: &str, ip: IpAddr) {
        if let Err(error) = self.store.hit(&lockout_key(account, ip), self.config.lockout).await {
            tracing::warn!(%error, "abuse limiter unavailable; failed login not counted");
        }
    }

    /// `Some(retry_after)` while `account` is locked for `ip`.
    pub async fn login_locked(&self, account: &str, ip: IpAddr) -> Option<Duration> {
        match self.store.peek(&lockout_key(account, ip), self.config.lockout).await {
            Ok(decision) => decision.retry_after(),
            Err(error) => {
                tracing::warn!(%error, "abuse limiter unavailable; lockout not checked");
                None
            }
        }
    }

    /// Clears the failures counted for `account` from `ip`.
    pub async fn login_succeeded(&self, account: &str, ip: IpAddr) {
        if let Err(error) = self.store.reset(&lockout_key(account, ip)).await {
            tracing::warn!(%error, "abuse limiter unavailable; failed logins not cleared");
        }
    }
}

/// The client part of a key: the IPv4 address, or the /64 of an IPv6 one.
pub(crate) fn client_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{}/64", Ipv6Addr::from(v6.to_bits() & !(u128::from(u64::MAX)))),
    }
}

pub(super) fn lockout_key(account: &str, ip: IpAddr) -> String {
    let mut key = String::from("lockout:");
    for byte in Sha256::digest(account.as_bytes()) {
        let _ = write!(key, "{byte:02x}");
    }
    key.push(':');
    key.push_str(&client_key(ip));
    key
}
