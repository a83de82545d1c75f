//! Tests of the limiter store and the abuse limits, on a manual clock.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use futures::future;

use crate::limits::abuse::{client_key, lockout_key};
use crate::limits::*;

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
