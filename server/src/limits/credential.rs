//! The general limit on authenticated requests: each credential (session
//! token or API key, as presented) gets `max` requests per `window`, counted
//! in fixed windows so the state is one counter per credential whatever the
//! limit. The credential is keyed by its SHA-256, never its id: a caller who
//! presents someone else's key id with a wrong secret spends only their own
//! budget.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::{Decision, Limit};

/// Fixed-window counters by credential digest.
pub struct CredentialLimiter {
    limit: Limit,
    max_tracked: usize,
    windows: Mutex<HashMap<[u8; 32], Window>>,
}

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    count: u32,
}

impl CredentialLimiter {
    pub fn new(limit: Limit, max_tracked: usize) -> Self {
        Self { limit, max_tracked: max_tracked.max(1), windows: Mutex::default() }
    }

    /// Counts a request made with `credential` at `now`.
    pub fn hit(&self, credential: &str, now: Instant) -> Decision {
        let digest: [u8; 32] = Sha256::digest(credential.as_bytes()).into();
        let mut windows = self.windows.lock().unwrap_or_else(PoisonError::into_inner);
        if windows.len() >= self.max_tracked && !windows.contains_key(&digest) {
            windows.retain(|_, window| now.duration_since(window.started) < self.limit.window);
            if windows.len() >= self.max_tracked {
                windows.clear();
            }
        }
        let window = windows.entry(digest).or_insert(Window { started: now, count: 0 });
        if now.duration_since(window.started) >= self.limit.window {
            *window = Window { started: now, count: 0 };
        }
        let reset_after = self.limit.window.saturating_sub(now.duration_since(window.started));
        if window.count >= self.limit.max {
            return Decision::Limited { limit: self.limit.max, retry_after: reset_after };
        }
        window.count += 1;
        Decision::Allowed { limit: self.limit.max, remaining: self.limit.max - window.count, reset_after }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn counts_per_credential_in_fixed_windows() {
        let limiter = CredentialLimiter::new(Limit::new(2, Duration::from_secs(60)), 10);
        let start = Instant::now();
        assert!(matches!(limiter.hit("a", start), Decision::Allowed { remaining: 1, .. }));
        assert!(matches!(limiter.hit("a", start), Decision::Allowed { remaining: 0, .. }));
        let later = start + Duration::from_secs(20);
        match limiter.hit("a", later) {
            Decision::Limited { retry_after, .. } => assert_eq!(retry_after, Duration::from_secs(40)),
            allowed => panic!("expected a refusal, got {allowed:?}"),
        }
        assert!(limiter.hit("b", later).is_allowed(), "another credential has its own budget");
        assert!(limiter.hit("a", start + Duration::from_secs(60)).is_allowed(), "a new window");
    }

    #[test]
    fn memory_stays_bounded() {
        let limiter = CredentialLimiter::new(Limit::new(5, Duration::from_secs(60)), 3);
        let now = Instant::now();
        for i in 0..10 {
            assert!(limiter.hit(&format!("key {i}"), now).is_allowed());
        }
        let tracked = limiter.windows.lock().map(|w| w.len()).unwrap_or(usize::MAX);
        assert!(tracked <= 3, "{tracked}");
    }
}
