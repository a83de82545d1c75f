//! Per-client abuse limits for the sensitive endpoints (register, login, API-key
//! minting, password reset) and the per-account login lockout. This module owns
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
//! the login lookup normalises it (e.g. `domain::accounts::normalize_email`),
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

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::{self, BoxFuture};
use poem::http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

/// Windows beyond this are treated as this long, so instant arithmetic cannot
/// overflow whatever a caller passes.
const WINDOW_CEILING: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// How often a store operation also drops every expired key.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// The in-process [`LimiterStore`]: one mutex over a map of hit logs.
///
/// Memory is bounded: a key is dropped once its newest hit has left the window
/// (checked on access and in a sweep at most every minute), and the map never
/// holds more than `max_keys` keys. At the cap, expired keys go first; if that
/// is not enough, the keys closest to expiring are forgotten (down to 7/8 of
/// the cap, so the work is amortised). A flood of fresh keys thus makes the
/// limiter forget the entries nearest to expiring anyway, rather than refusing
/// everyone or growing without bound.
pub struct InMemoryLimiterStore {
    clock: Arc<dyn Clock>,
    max_keys: usize,
    state: Mutex<State>,
}

struct State {
    entries: HashMap<String, HitLog>,
    last_sweep: Instant,
}

struct HitLog {
    /// Counted hits, oldest first, all within `window` of the last access.
    hits: VecDeque<Instant>,
    window: Duration,
}

impl HitLog {
    fn prune(&mut self, now: Instant) {
        while self.hits.front().is_some_and(|&t| t + self.window <= now) {
            self.hits.pop_front();
        }
    }

    /// When the newest hit leaves the window; `None` if there are no hits.
    fn expires_at(&self) -> Option<Instant> {
        self.hits.back().map(|&t| t + self.window)
    }

    fn is_expired(&self, now: Instant) -> bool {
        self.expires_at().is_none_or(|at| at <= now)
    }

    /// Counts a hit at `now`; the caller has checked there is room for it.
    fn record(&mut self, max: u32, now: Instant) -> Decision {
        self.hits.push_back(now);
        let counted = u32::try_from(self.hits.len()).unwrap_or(u32::MAX);
        Decision::Allowed { limit: max, remaining: max.saturating_sub(counted), reset_after: self.window }
    }

    /// What a hit at `now` would be told, before counting it.
    fn decide(&self, max: u32, now: Instant) -> Decision {
        let count = self.hits.len();
        let max_len = max as usize;
        if count >= max_len {
            // Once hits[count - max] (0-based, oldest first) expires, count < max.
            let retry_after = self
                .hits
                .get(count - max_len)
                .map_or(self.window, |&t| (t + self.window).saturating_duration_since(now));
            return Decision::Limited { limit: max, retry_after };
        }
        let remaining = u32::try_from(max_len - count).unwrap_or(max);
        let reset_after = self.expires_at().map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        Decision::Allowed { limit: max, remaining, reset_after }
    }
}

impl State {
    fn sweep(&mut self, now: Instant) {
        self.entries.retain(|_, log| !log.is_expired(now));
        self.last_sweep = now;
    }

    fn maybe_sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) >= SWEEP_INTERVAL {
            self.sweep(now);
        }
    }

    /// Makes room for one more key when the map is at `max_keys`.
    fn make_room(&mut self, now: Instant, max_keys: usize) {
        if self.entries.len() < max_keys {
            return;
        }
        self.sweep(now);
        let target = max_keys - max_keys.div_ceil(8);
        let Some(excess) = self.entries.len().checked_sub(target).filter(|&n| n > 0) else {
            return;
        };
        let mut expiries: Vec<Instant> =
            self.entries.values().map(|log| log.expires_at().unwrap_or(now)).collect();
        let (_, &mut threshold, _) = expiries.select_nth_unstable(excess - 1);
        let sooner = expiries.iter().filter(|&&at| at < threshold).count();
        let mut ties = excess - sooner;
        self.entries.retain(|_, log| {
            let at = log.expires_at().unwrap_or(now);
            if at < threshold {
                false
            } else if at == threshold && ties > 0 {
                ties -= 1;
                false
            } else {
                true
            }
        });
    }
}

impl InMemoryLimiterStore {
    /// A store on the real clock holding at most `max_keys` keys (at least 1).
    pub fn new(max_keys: usize) -> Self {
        Self::with_clock(max_keys, Arc::new(MonotonicClock))
    }

    pub fn with_clock(max_keys: usize, clock: Arc<dyn Clock>) -> Self {
        let last_sweep = clock.now();
        Self {
            clock,
            max_keys: max_keys.max(1),
            state: Mutex::new(State { entries: HashMap::new(), last_sweep }),
        }
    }

    /// Keys currently held, expired or not (for tests and a gauge).
    pub fn tracked_keys(&self) -> usize {
        self.lock().entries.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update leaves the map consistent between statements, so a
        // panic elsewhere while holding the lock leaves nothing to repair.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn hit_now(&self, key: &str, limit: Limit) -> Decision {
        let now = self.clock.now();
        let window = limit.window.min(WINDOW_CEILING);
        let mut state = self.lock();
        state.maybe_sweep(now);
        if let Some(log) = state.entries.get_mut(key) {
            log.window = window;
            log.prune(now);
            if log.hits.len() < limit.max as usize {
                return log.record(limit.max, now);
            }
            let decision = log.decide(limit.max, now);
            if log.hits.is_empty() {
                state.entries.remove(key);
            }
            return decision;
        }
        let fresh = HitLog { hits: VecDeque::new(), window };
        if limit.max == 0 {
            return fresh.decide(0, now);
        }
        state.make_room(now, self.max_keys);
        let mut log = fresh;
        let decision = log.record(limit.max, now);
        state.entries.insert(key.to_owned(), log);
        decision
    }

    fn peek_now(&self, key: &str, limit: Limit) -> Decision {
        let now = self.clock.now();
        let window = limit.window.min(WINDOW_CEILING);
        let mut state = self.lock();
        state.maybe_sweep(now);
        match state.entries.get_mut(key) {
            Some(log) => {
                log.window = window;
                log.prune(now);
                let decision = log.decide(limit.max, now);
                if log.hits.is_empty() {
                    state.entries.remove(key);
                }
                decision
            }
            None => HitLog { hits: VecDeque::new(), window }.decide(limit.max, now),
        }
    }

    fn reset_now(&self, key: &str) {
        self.lock().entries.remove(key);
    }
}

impl fmt::Debug for InMemoryLimiterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InMemoryLimiterStore")
            .field("max_keys", &self.max_keys)
            .field("tracked_keys", &self.tracked_keys())
            .finish_non_exhaustive()
    }
}

impl LimiterStore for InMemoryLimiterStore {
    fn hit<'a>(&'a self, key: &'a str, limit: Limit) -> BoxFuture<'a, Result<Decision, LimiterError>> {
        Box::pin(future::ready(Ok(self.hit_now(key, limit))))
    }

    fn peek<'a>(&'a self, key: &'a str, limit: Limit) -> BoxFuture<'a, Result<Decision, LimiterError>> {
        Box::pin(future::ready(Ok(self.peek_now(key, limit))))
    }

    fn reset<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), LimiterError>> {
        self.reset_now(key);
        Box::pin(future::ready(Ok(())))
    }
}

/// Longest configurable window.
pub const MAX_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// Largest configurable `max`: the log keeps one instant per counted hit.
pub const MAX_PER_WINDOW: u32 = 10_000;

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
fn client_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("{}/64", Ipv6Addr::from(v6.to_bits() & !(u128::from(u64::MAX)))),
    }
}

fn lockout_key(account: &str, ip: IpAddr) -> String {
    let mut key = String::from("lockout:");
    for byte in Sha256::digest(account.as_bytes()) {
        let _ = write!(key, "{byte:02x}");
    }
    key.push(':');
    key.push_str(&client_key(ip));
    key
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::net::Ipv4Addr;
    use std::sync::Barrier;

    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn run<F: Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }

    fn store(max_keys: usize) -> (Arc<ManualClock>, InMemoryLimiterStore) {
        let clock = Arc::new(ManualClock::new());
        (clock.clone(), InMemoryLimiterStore::with_clock(max_keys, clock))
    }

    fn limits(config: AbuseLimitsConfig) -> (Arc<ManualClock>, Arc<InMemoryLimiterStore>, AbuseLimits) {
        let (clock, store) = store(config.max_tracked_keys);
        let store = Arc::new(store);
        (clock, store.clone(), AbuseLimits::new(config, store))
    }

    const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 8));

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn allows_up_to_max_then_limits_until_the_oldest_hit_expires() {
        let (clock, store) = store(100);
        let limit = Limit::per_minute(3);
        assert_eq!(
            store.hit_now("k", limit),
            Decision::Allowed { limit: 3, remaining: 2, reset_after: secs(60) }
        );
        clock.advance(secs(10));
        assert_eq!(
            store.hit_now("k", limit),
            Decision::Allowed { limit: 3, remaining: 1, reset_after: secs(60) }
        );
        clock.advance(secs(10));
        assert_eq!(
            store.hit_now("k", limit),
            Decision::Allowed { limit: 3, remaining: 0, reset_after: secs(60) }
        );
        clock.advance(secs(5));
        // The first hit (25s ago) frees its slot in 35s.
        assert_eq!(store.hit_now("k", limit), Decision::Limited { limit: 3, retry_after: secs(35) });
        assert_eq!(store.peek_now("k", limit), Decision::Limited { limit: 3, retry_after: secs(35) });
    }

    #[test]
    fn refused_hits_are_not_counted_and_the_window_slides() {
        let (clock, store) = store(100);
        let limit = Limit::per_minute(2);
        assert!(store.hit_now("k", limit).is_allowed()); // t=0
        clock.advance(secs(30));
        assert!(store.hit_now("k", limit).is_allowed()); // t=30
        for _ in 0..10 {
            assert!(!store.hit_now("k", limit).is_allowed());
        }
        clock.advance(secs(30)); // t=60: the first hit has left the window, the second has not.
        assert_eq!(
            store.peek_now("k", limit),
            Decision::Allowed { limit: 2, remaining: 1, reset_after: secs(30) }
        );
        assert!(store.hit_now("k", limit).is_allowed()); // t=60
        assert_eq!(store.hit_now("k", limit), Decision::Limited { limit: 2, retry_after: secs(30) });
        clock.advance(secs(60)); // t=120: everything has left the window.
        assert_eq!(
            store.peek_now("k", limit),
            Decision::Allowed { limit: 2, remaining: 2, reset_after: Duration::ZERO }
        );
        assert_eq!(store.tracked_keys(), 0, "an emptied log is dropped");
    }

    #[test]
    fn a_lowered_max_waits_for_enough_hits_to_expire() {
        let (clock, store) = store(100);
        for _ in 0..4 {
            assert!(store.hit_now("k", Limit::per_minute(4)).is_allowed());
            clock.advance(secs(10));
        }
        // t=40, hits at 0,10,20,30; with max 2 a hit needs at most one left,
        // so the hits at 0, 10 and 20 must expire: the last does at 80.
        assert_eq!(
            store.hit_now("k", Limit::per_minute(2)),
            Decision::Limited { limit: 2, retry_after: secs(40) }
        );
    }

    #[test]
    fn reset_forgets_a_key() -> TestResult {
        let (_clock, store) = store(100);
        let limit = Limit::per_minute(1);
        assert!(store.hit_now("k", limit).is_allowed());
        assert!(!store.hit_now("k", limit).is_allowed());
        run(store.reset("k"))?;
        assert!(store.hit_now("k", limit).is_allowed());
        Ok(())
    }

    #[test]
    fn zero_max_always_limits_and_tracks_nothing() {
        let (_clock, store) = store(100);
        let limit = Limit::per_minute(0);
        assert_eq!(store.hit_now("k", limit), Decision::Limited { limit: 0, retry_after: secs(60) });
        assert_eq!(store.tracked_keys(), 0);
    }

    #[test]
    fn buckets_and_clients_are_independent() {
        let config = AbuseLimitsConfig::default();
        let (_clock, _store, limits) = limits(config);
        for _ in 0..5 {
            assert!(run(limits.register(IP)).is_allowed());
        }
        assert!(!run(limits.register(IP)).is_allowed());
        assert!(run(limits.register(OTHER_IP)).is_allowed());
        assert!(run(limits.password_reset(IP)).is_allowed());
        for _ in 0..10 {
            assert!(run(limits.login(IP)).is_allowed());
            assert!(run(limits.key_mint(IP)).is_allowed());
        }
        assert!(!run(limits.login(IP)).is_allowed());
        assert!(!run(limits.key_mint(IP)).is_allowed());
        assert_eq!(run(limits.login_locked("ada@example.com", IP)), None);
    }

    #[test]
    fn ipv6_clients_are_limited_per_64_and_mapped_ipv4_counts_as_ipv4() -> TestResult {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse()?;
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse()?;
        let c: IpAddr = "2001:db8:1:3::1".parse()?;
        assert_eq!(client_key(a), "2001:db8:1:2::/64");
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(c));
        assert_eq!(client_key("::ffff:203.0.113.7".parse()?), client_key(IP));

        let (_clock, _store, limits) = limits(AbuseLimitsConfig::default());
        for _ in 0..5 {
            assert!(run(limits.register(a)).is_allowed());
        }
        assert!(!run(limits.register(b)).is_allowed());
        assert!(run(limits.register(c)).is_allowed());
        Ok(())
    }

    #[test]
    fn lockout_after_five_failures_until_the_window_passes() {
        let (clock, _store, limits) = limits(AbuseLimitsConfig::default());
        let account = "ada@example.com";
        for _ in 0..4 {
            run(limits.login_failed(account, IP));
            clock.advance(secs(60));
        }
        assert_eq!(run(limits.login_locked(account, IP)), None);
        run(limits.login_failed(account, IP)); // fifth, at t=4min
        assert_eq!(run(limits.login_locked(account, IP)), Some(secs(11 * 60)));
        assert_eq!(run(limits.login_locked(account, OTHER_IP)), None, "other clients are unaffected");
        assert_eq!(run(limits.login_locked("bob@example.com", IP)), None, "other accounts are unaffected");
        clock.advance(secs(11 * 60) - Duration::from_millis(1));
        assert!(run(limits.login_locked(account, IP)).is_some());
        clock.advance(Duration::from_millis(1)); // t=15min: the first failure has expired
        assert_eq!(run(limits.login_locked(account, IP)), None);
    }

    #[test]
    fn a_successful_login_clears_the_failures() {
        let (_clock, _store, limits) = limits(AbuseLimitsConfig::default());
        let account = "ada@example.com";
        for _ in 0..5 {
            run(limits.login_failed(account, IP));
        }
        assert!(run(limits.login_locked(account, IP)).is_some());
        run(limits.login_succeeded(account, IP));
        assert_eq!(run(limits.login_locked(account, IP)), None);
        for _ in 0..4 {
            run(limits.login_failed(account, IP));
        }
        assert_eq!(run(limits.login_locked(account, IP)), None, "counting restarted from zero");
    }

    #[test]
    fn keys_do_not_collide_and_have_bounded_length() {
        let long = "x".repeat(100_000);
        let key = lockout_key(&long, IpAddr::V6(Ipv6Addr::LOCALHOST));
        assert!(key.len() < 128, "{key}");
        assert_ne!(lockout_key("a", IP), lockout_key("a", OTHER_IP));
        assert_ne!(lockout_key("a", IP), lockout_key("b", IP));
        let buckets = [Bucket::Register, Bucket::Login, Bucket::KeyMint, Bucket::PasswordReset];
        let prefixes: std::collections::HashSet<_> = buckets.iter().map(|b| b.name()).collect();
        assert_eq!(prefixes.len(), buckets.len());
        assert!(!prefixes.contains("lockout"));
    }

    #[test]
    fn expired_keys_are_swept() {
        let (clock, store) = store(1_000);
        for i in 0..500 {
            assert!(store.hit_now(&format!("k{i}"), Limit::per_minute(1)).is_allowed());
        }
        assert_eq!(store.tracked_keys(), 500);
        clock.advance(secs(61));
        assert!(store.hit_now("fresh", Limit::per_minute(1)).is_allowed());
        assert_eq!(store.tracked_keys(), 1);
    }

    #[test]
    fn the_key_cap_bounds_memory_and_evicts_what_expires_soonest() {
        let (clock, store) = store(64);
        let limit = Limit::per_minute(1);
        assert!(store.hit_now("victim", Limit::new(1, secs(3_600))).is_allowed());
        for i in 0..10_000 {
            assert!(store.hit_now(&format!("attacker{i}"), limit).is_allowed());
            assert!(store.tracked_keys() <= 64);
            if i % 100 == 0 {
                clock.advance(Duration::from_millis(10));
            }
        }
        // The long-lived entry expires last, so it was never the one forgotten.
        assert!(!store.hit_now("victim", Limit::new(1, secs(3_600))).is_allowed());
    }

    #[test]
    fn eviction_breaks_ties_without_dropping_more_than_needed() {
        let (_clock, store) = store(16);
        for i in 0..17 {
            assert!(store.hit_now(&format!("k{i}"), Limit::per_minute(1)).is_allowed());
        }
        // At the cap of 16 with all expiries equal, exactly 2 (16/8) were dropped before the insert.
        assert_eq!(store.tracked_keys(), 15);
    }

    #[test]
    fn concurrent_hits_never_exceed_max() -> TestResult {
        let (_clock, store) = store(1_000);
        let limit = Limit::per_minute(100);
        let threads = 16;
        let barrier = Barrier::new(threads);
        let allowed = std::thread::scope(|scope| -> Result<usize, Box<dyn std::error::Error>> {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    scope.spawn(|| {
                        barrier.wait();
                        let mut allowed = 0;
                        for _ in 0..50 {
                            allowed += usize::from(run(store.hit("shared", limit))?.is_allowed());
                        }
                        Ok::<_, LimiterError>(allowed)
                    })
                })
                .collect();
            let mut allowed = 0;
            for handle in handles {
                allowed += handle.join().map_err(|_| "a hitting thread panicked")??;
            }
            Ok(allowed)
        })?;
        assert_eq!(allowed, 100);
        Ok(())
    }

    #[test]
    fn headers_round_seconds_up() {
        let mut headers = HeaderMap::new();
        Decision::Limited { limit: 5, retry_after: Duration::from_millis(1_500) }.write_headers(&mut headers);
        assert_eq!(headers[RETRY_AFTER], "2");
        assert_eq!(headers[X_RATELIMIT_LIMIT], "5");
        assert_eq!(headers[X_RATELIMIT_REMAINING], "0");
        assert_eq!(headers[X_RATELIMIT_RESET], "2");

        let mut headers = HeaderMap::new();
        Decision::Allowed { limit: 5, remaining: 3, reset_after: secs(60) }.write_headers(&mut headers);
        assert!(!headers.contains_key(RETRY_AFTER));
        assert_eq!(headers[X_RATELIMIT_REMAINING], "3");
        assert_eq!(headers[X_RATELIMIT_RESET], "60");
    }

    #[test]
    fn config_reads_the_documented_toml_and_validates() -> TestResult {
        let config: AbuseLimitsConfig = toml::from_str(
            "register = { max = 2, window_secs = 30 }\nlockout = { max = 3, window_secs = 600 }\n",
        )?;
        assert_eq!(config.register, Limit::new(2, secs(30)));
        assert_eq!(config.lockout, Limit::new(3, secs(600)));
        assert_eq!(config.login, AbuseLimitsConfig::default().login);
        assert!(config.validate().is_ok());
        assert_eq!(toml::from_str::<AbuseLimitsConfig>(&toml::to_string(&config)?)?, config);

        assert!(toml::from_str::<AbuseLimitsConfig>("regster = { max = 1, window_secs = 1 }").is_err());
        assert!(toml::from_str::<AbuseLimitsConfig>("login = { max = 1, window = 1 }").is_err());
        assert!(toml::from_str::<AbuseLimitsConfig>("login = { max = 1 }").is_err());

        let zero = AbuseLimitsConfig { login: Limit::per_minute(0), ..AbuseLimitsConfig::default() };
        assert_eq!(zero.validate().err().map(|e| e.key), Some("login"));
        let long = AbuseLimitsConfig { lockout: Limit::new(5, secs(2 * 86_400)), ..Default::default() };
        assert_eq!(long.validate().err().map(|e| e.key), Some("lockout"));
        Ok(())
    }

    struct FailingStore;

    impl LimiterStore for FailingStore {
        fn hit<'a>(&'a self, _: &'a str, _: Limit) -> BoxFuture<'a, Result<Decision, LimiterError>> {
            Box::pin(future::ready(Err(LimiterError("down".into()))))
        }
        fn peek<'a>(&'a self, _: &'a str, _: Limit) -> BoxFuture<'a, Result<Decision, LimiterError>> {
            Box::pin(future::ready(Err(LimiterError("down".into()))))
        }
        fn reset<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<(), LimiterError>> {
            Box::pin(future::ready(Err(LimiterError("down".into()))))
        }
    }

    #[test]
    fn a_failing_store_fails_open() {
        let limits = AbuseLimits::new(AbuseLimitsConfig::default(), Arc::new(FailingStore));
        assert!(run(limits.login(IP)).is_allowed());
        run(limits.login_failed("ada@example.com", IP));
        assert_eq!(run(limits.login_locked("ada@example.com", IP)), None);
    }
}
