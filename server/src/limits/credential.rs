//! The general limit on authenticated requests: each credential (session
//! token or API key, as presented) gets `max` requests per `window`, counted
//! in fixed windows so the state is one counter per credential whatever the
//! limit. The credential is keyed by its SHA-256, never its id: a caller who
//! presents someone else's key id with a wrong secret spends only their own
//! budget.
//!
//! A credential gets a counter of its own only once a request with it was
//! not refused as unauthenticated; until then, and for junk, requests count
//! against the client's address. So a flood of made-up credentials spends
//! one address's budget instead of creating counters, and when the table is
//! full the least recently used counter goes, never all of them.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use lru::LruCache;
use sha2::{Digest, Sha256};

use crate::limits::abuse::client_key;
use crate::limits::{Decision, Limit};

/// Fixed-window counters by credential digest, and by client address for
/// credentials not yet known to authenticate.
pub struct CredentialLimiter {
    limit: Limit,
    windows: Mutex<LruCache<[u8; 32], Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

/// What a request's count went to; hand it back to [`CredentialLimiter::authenticated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    credential: [u8; 32],
    /// Counted against the client's address: the credential has no counter yet.
    by_address: bool,
}

impl CredentialLimiter {
    pub fn new(limit: Limit, max_tracked: usize) -> Self {
        let capacity = NonZeroUsize::new(max_tracked).unwrap_or(NonZeroUsize::MIN);
        Self { limit, windows: Mutex::new(LruCache::new(capacity)) }
    }

    /// Counts a request made with `credential` from `client` at `now`: on
    /// the credential's counter when it has one, otherwise on the address's.
    pub fn hit(&self, credential: &str, client: IpAddr, now: Instant) -> (Decision, Counted) {
        let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        let by_address = !windows.contains(&digest);
        let key = if by_address {
            Sha256::digest(format!("address {}", client_key(client))).into()
        } else {
            digest
        };
        let window = windows.get_or_insert_mut(key, || Window { started: now, count: 0 });
        if now.duration_since(window.started) >= self.limit.window {
            *window = Window { started: now, count: 0 };
        }
        let reset_after = self.limit.window.saturating_sub(now.duration_since(window.started));
        let counted = Counted { credential: digest, by_address };
        if window.count >= self.limit.max {
            return (Decision::Limited { limit: self.limit.max, retry_after: reset_after }, counted);
        }
        window.count += 1;
        let remaining = self.limit.max - window.count;
        (Decision::Allowed { limit: self.limit.max, remaining, reset_after }, counted)
    }

    /// The request counted as `counted` was not refused as unauthenticated:
    /// from now on its credential counts on a counter of its own, starting
    /// with this request.
    pub fn authenticated(&self, counted: Counted, now: Instant) {
        if counted.by_address {
            let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
            windows.get_or_insert_mut(counted.credential, || Window { started: now, count: 1 });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 1));

    /// A request with a credential that authenticates.
    fn genuine(limiter: &CredentialLimiter, credential: &str, now: Instant) -> Decision {
        let (decision, counted) = limiter.hit(credential, HOME, now);
        limiter.authenticated(counted, now);
        decision
    }

    #[test]
    fn counts_per_credential_in_fixed_windows() {
        let limiter = CredentialLimiter::new(Limit::new(2, Duration::from_secs(60)), 10);
        let start = Instant::now();
        assert!(matches!(genuine(&limiter, "a", start), Decision::Allowed { remaining: 1, .. }));
        assert!(matches!(genuine(&limiter, "a", start), Decision::Allowed { remaining: 0, .. }));
        let later = start + Duration::from_secs(20);
        match genuine(&limiter, "a", later) {
            Decision::Limited { retry_after, .. } => assert_eq!(retry_after, Duration::from_secs(40)),
            allowed => panic!("expected a refusal, got {allowed:?}"),
        }
        assert!(limiter.hit("b", AWAY, later).0.is_allowed(), "another credential has its own budget");
        assert!(genuine(&limiter, "a", start + Duration::from_secs(60)).is_allowed(), "a new window");
    }

    #[test]
    fn junk_credentials_share_their_address_budget() {
        let limiter = CredentialLimiter::new(Limit::new(3, Duration::from_secs(60)), 100);
        let now = Instant::now();
        let decisions: Vec<bool> =
            (0..5).map(|i| limiter.hit(&format!("junk {i}"), AWAY, now).0.is_allowed()).collect();
        assert_eq!(decisions, [true, true, true, false, false]);
        assert!(limiter.hit("junk 9", HOME, now).0.is_allowed(), "another address has its own budget");
    }

    #[test]
    fn a_full_table_forgets_the_least_recently_used_counter_only() {
        let limiter = CredentialLimiter::new(Limit::new(2, Duration::from_secs(60)), 3);
        let now = Instant::now();
        genuine(&limiter, "busy", now);
        genuine(&limiter, "busy", now);
        for i in 0..10 {
            genuine(&limiter, &format!("other {i}"), now);
            // The busy credential stays recently used, so it is never the one forgotten.
            assert!(!limiter.hit("busy", HOME, now).0.is_allowed(), "after {i} others");
        }
        let tracked = limiter.windows.lock().map(|w| w.len()).unwrap_or(usize::MAX);
        assert!(tracked <= 3, "{tracked}");
    }
}
