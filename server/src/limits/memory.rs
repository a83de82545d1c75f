//! The in-process [`LimiterStore`]: a sliding-window log per key, bounded in
//! memory (expired keys are swept; a hard cap evicts what expires soonest).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::{self, BoxFuture};

use crate::limits::{Clock, Decision, Limit, LimiterError, LimiterStore, MonotonicClock};

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

    pub(super) fn hit_now(&self, key: &str, limit: Limit) -> Decision {
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

    pub(super) fn peek_now(&self, key: &str, limit: Limit) -> Decision {
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

    pub(super) fn reset_now(&self, key: &str) {
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
