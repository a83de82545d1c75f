//! Per-client abuse limits for the sensitive endpoints (register, login, API-key
//! minting, password reset), the per-account login lockout, and the general
//! per-credential limit every authenticated request counts against. This module owns
//! the policy (which bucket, which key, which numbers) and the in-process
//! counter store; handlers ask it for a [`Decision`] and turn a refusal into a
//! 429 with the headers [`Decision::write_headers`] sets.
//!
//! # Algorithm
//!
//! A sliding-window log: each key keeps the instants of the hits it counted in
//! the last `window`, and a hit is allowed while fewer than `max` remain. That
//! is the exact guarantee "at most `max` in any `window`", which the lockout
//! needs literally ("5 failures within 15 minutes lock the account until fewer
//! than 5 are that recent"); a GCRA would reopen one attempt every
//! `window / max` instead. Memory is one instant per counted hit, i.e. at most
//! `max` per key, and the limits here are small. Refused hits are not recorded,
//! so hammering a limited key does not push its release further away. A shared
//! store maps the same log onto a Redis sorted set (`ZREMRANGEBYSCORE`,
//! `ZCARD`, `ZADD` in one script).
//!
//! # The store seam
//!
//! State sits behind [`LimiterStore`] so replicas can later share it. The trait
//! returns boxed futures: a networked store must not block the executor, and
//! `async fn` in traits is not yet usable through `dyn`, which the
//! `Arc<dyn LimiterStore>` in [`AbuseLimits`] needs. The allocation is noise
//! next to a password hash. Methods return `Result` because a network store can
//! fail; [`AbuseLimits`] then fails *open* (logged), since a store outage must
//! not lock every user out of login, and password hashing and the password
//! policy still stand behind it. The trait takes no `now`: replicas' clocks are
//! not comparable, so each store owns its clock (Redis would use its server
//! time). [`InMemoryLimiterStore`] takes a [`Clock`], so tests use
//! [`ManualClock`] and never sleep.
//!
//! # Keys
//!
//! `<bucket>:<client>` and `lockout:<sha256(account)>:<client>`, where
//! `<client>` is the IPv4 address, or the /64 network of an IPv6 address (one
//! subscriber usually holds a whole /64, so per-address IPv6 limits are free to
//! dodge); IPv4-mapped IPv6 addresses count as IPv4. The account is hashed so a
//! key has a bounded length whatever the request body says. Pass the account as
//! the login lookup normalises it (e.g. `identity::accounts::normalize_email`),
//! or case variants would count separately. The lockout is per account *and*
//! client, so an attacker cannot lock a victim out from everywhere.
//!
//! # Configuration
//!
//! [`AbuseLimitsConfig`], e.g. as a TOML table:
//!
//! ```toml
//! register         = { max = 5,  window_secs = 60 }
//! login            = { max = 10, window_secs = 60 }
//! key_mint         = { max = 10, window_secs = 60 }
//! password_reset   = { max = 5,  window_secs = 60 }
//! lockout          = { max = 5,  window_secs = 900 }  # failed logins per account and client
//! credential       = { max = 6000, window_secs = 60 } # requests per session token or API key
//! max_tracked_keys = 100000                           # in-process store only
//! ```
//!
//! # Use in a login handler
//!
//! 1. `limits.login(ip)`: refused → 429 with its headers.
//! 2. `limits.login_locked(account, ip)`: `Some(retry_after)` → 429, without
//!    checking the password.
//! 3. Verify; on failure `limits.login_failed(account, ip)` (unknown accounts
//!    too, so the lockout does not tell which exist), on success
//!    `limits.login_succeeded(account, ip)`.

mod abuse;
mod credential;
mod memory;
#[cfg(test)]
mod tests;

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use poem::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde::{Deserialize, Serialize};

pub use abuse::{AbuseLimits, AbuseLimitsConfig, Bucket, InvalidLimits, MAX_PER_WINDOW, MAX_WINDOW};
pub use credential::CredentialLimiter;
pub use memory::InMemoryLimiterStore;

/// At most `max` hits in any `window`.
///
/// In configuration: `{ max = 5, window_secs = 60 }` (whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub max: u32,
    #[serde(rename = "window_secs", with = "whole_secs")]
    pub window: Duration,
}

impl Limit {
    pub const fn new(max: u32, window: Duration) -> Self {
        Self { max, window }
    }

    pub const fn per_minute(max: u32) -> Self {
        Self::new(max, Duration::from_secs(60))
    }
}

mod whole_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u64(value.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

/// The outcome of a hit (or a [`LimiterStore::peek`]): everything the
/// `X-RateLimit-*` and `Retry-After` headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed {
        /// The bucket's `max`.
        limit: u32,
        /// Hits still allowed in the current window (after this one, for a hit).
        remaining: u32,
        /// Time until the full `limit` is available again if no more hits come.
        reset_after: Duration,
    },
    Limited {
        limit: u32,
        /// Time until one more hit will be allowed.
        retry_after: Duration,
    },
}

pub const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
pub const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
pub const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed { .. })
    }

    pub fn limit(&self) -> u32 {
        match *self {
            Self::Allowed { limit, .. } | Self::Limited { limit, .. } => limit,
        }
    }

    /// `Some(retry_after)` when limited.
    pub fn retry_after(&self) -> Option<Duration> {
        match *self {
            Self::Allowed { .. } => None,
            Self::Limited { retry_after, .. } => Some(retry_after),
        }
    }

    /// Sets `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset`
    /// (seconds from now) and, when limited, `Retry-After` (seconds). Seconds
    /// round up so a client that obeys them is never early.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let (remaining, reset) = match *self {
            Self::Allowed { remaining, reset_after, .. } => (remaining, reset_after),
            Self::Limited { retry_after, .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(ceil_secs(retry_after)));
                (0, retry_after)
            }
        };
        headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(self.limit()));
        headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(remaining));
        headers.insert(X_RATELIMIT_RESET, HeaderValue::from(ceil_secs(reset)));
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs().saturating_add(u64::from(duration.subsec_nanos() > 0))
}

/// A limiter store failed (only networked stores can).
#[derive(Debug, thiserror::Error)]
#[error("rate limiter store: {0}")]
pub struct LimiterError(pub Box<dyn std::error::Error + Send + Sync>);

/// Counter state for sliding-window limits, keyed by opaque strings. A hit is
/// an atomic check-and-record: concurrent hits on one key never allow more than
/// `limit.max` within `limit.window`.
pub trait LimiterStore: Send + Sync {
    /// Counts a hit on `key` if `limit` allows it; a refused hit is not counted.
    fn hit<'a>(&'a self, key: &'a str, limit: Limit) -> BoxFuture<'a, Result<Decision, LimiterError>>;
    /// What a hit would be told now, without counting one; `remaining` is
    /// before the hit.
    fn peek<'a>(&'a self, key: &'a str, limit: Limit) -> BoxFuture<'a, Result<Decision, LimiterError>>;
    /// Forgets every hit on `key`.
    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), LimiterError>>;
}

/// Where [`InMemoryLimiterStore`] reads the time.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

impl Clock for MonotonicClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Instant>,
}

impl ManualClock {
    pub fn new() -> Self {
        Self { now: Mutex::new(Instant::now()) }
    }

    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner) += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
