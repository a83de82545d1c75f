//! Per-key gateway limits and usage: requests and tokens per minute, spend
//! budgets enforced by reserving an estimate before the call and settling to
//! actual usage after it, and usage rows queued for batch writing.
//!
//! Everything is decided in memory under one short lock, so concurrent
//! requests cannot overspend; the only database read is a key's past spend,
//! once per process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::Price;
use super::wire::{ChatCompletionRequest, EmbeddingRequest, Usage};
use crate::domain::principal::KeyLimits;
use crate::store::{Db, StoreError, UsageRow};

const WINDOW: Duration = Duration::from_secs(60);
/// Completion tokens reserved when a request sets no `max_tokens`.
pub const DEFAULT_COMPLETION_ESTIMATE: u64 = 4_096;

/// Who is calling and what they may spend.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    /// `None` for session tokens, which have no per-key limits.
    pub key_id: Option<String>,
    pub limits: KeyLimits,
}

/// Tokens and cost a request may use at most, reserved before it runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Estimate {
    pub tokens: u64,
    pub cost_micros: i64,
}

impl Estimate {
    /// Prompt size (4 characters a token, one more per message) plus the
    /// completion budget, at the route's dearest price.
    pub fn chat(request: &ChatCompletionRequest, price: Price) -> Self {
        let prompt: u64 = request.messages.iter().map(|m| 1 + (m.content_chars() as u64).div_ceil(4)).sum();
        let completion = request.max_output_tokens().map_or(DEFAULT_COMPLETION_ESTIMATE, u64::from)
            * u64::from(request.n.unwrap_or(1).max(1));
        let usage = Usage::new(prompt, completion);
        Self { tokens: usage.total_tokens, cost_micros: price.cost_micros(&usage) }
    }
}

impl Estimate {
    /// The inputs' size; embeddings have no completion.
    pub fn embedding(request: &EmbeddingRequest, price: Price) -> Self {
        let chars: usize = match &request.input {
            serde_json::Value::String(text) => text.chars().count(),
            serde_json::Value::Array(items) => {
                items.iter().filter_map(serde_json::Value::as_str).map(|t| t.chars().count()).sum()
            }
            _ => 0,
        };
        let usage = Usage::new((chars as u64).div_ceil(4), 0);
        Self { tokens: usage.total_tokens, cost_micros: price.cost_micros(&usage) }
    }
}

/// Why a request may not run now.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the key's per-minute {kind} limit ({limit}) is reached")]
    RateLimited { kind: &'static str, limit: u32, retry_after: Duration },
    #[error("the key's budget would be exceeded")]
    BudgetExceeded { budget_micros: i64, spent_micros: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The state of a key's per-minute windows after admitting a request, for
/// the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    pub requests: Option<(u32, u32)>,
    pub tokens: Option<(u32, u32)>,
    /// Seconds until the oldest request leaves the window.
    pub reset_secs: u64,
}

#[derive(Default)]
struct KeyState {
    /// Admitted requests of the last minute: when, and tokens counted.
    window: VecDeque<(Instant, u64)>,
    /// Spend recorded before this process started, plus what it settled.
    spent_micros: Option<i64>,
    /// Estimates of requests still running.
    reserved_micros: i64,
}

impl KeyState {
    fn prune(&mut self, now: Instant) {
        while self.window.front().is_some_and(|(at, _)| now.duration_since(*at) >= WINDOW) {
            self.window.pop_front();
        }
    }

    fn retry_after(&self, now: Instant) -> Duration {
        self.window.front().map_or(Duration::ZERO, |(at, _)| WINDOW.saturating_sub(now.duration_since(*at)))
    }

    fn tokens(&self) -> u64 {
        self.window.iter().map(|(_, tokens)| tokens).sum()
    }
}

#[derive(Default)]
struct Inner {
    keys: Mutex<HashMap<String, KeyState>>,
    pending: Mutex<Vec<UsageRow>>,
}

/// Shared by every request of this process.
#[derive(Clone, Default)]
pub struct Meter {
    inner: Arc<Inner>,
}

/// A request allowed to run; settle it with its usage. Dropped unsettled,
/// its reservation is released and nothing is charged.
pub struct Admission {
    inner: Arc<Inner>,
    key_id: Option<String>,
    admitted_at: Instant,
    estimate: Estimate,
    pub quota: Quota,
    settled: bool,
}

impl Meter {
    /// Checks the caller's limits and reserves `estimate`.
    pub async fn admit(&self, db: &Db, caller: &Caller, estimate: Estimate) -> Result<Admission, Refusal> {
        let limits = &caller.limits;
        let limited = limits.requests_per_minute.is_some()
            || limits.tokens_per_minute.is_some()
            || limits.budget_micros.is_some();
        // Sessions and keys without limits have nothing to count or reserve.
        let Some(key_id) = caller.key_id.as_ref().filter(|_| limited) else {
            return Ok(self.admission(None, estimate, Quota::default(), Instant::now()));
        };
        let windowed = limits.requests_per_minute.is_some() || limits.tokens_per_minute.is_some();
        if limits.budget_micros.is_some() && !self.knows_spend(key_id) {
            let spent = db.usage_spent_by_key(key_id).await?;
            self.lock_keys().entry(key_id.clone()).or_default().spent_micros.get_or_insert(spent);
        }
        let now = Instant::now();
        let mut keys = self.lock_keys();
        let state = keys.entry(key_id.clone()).or_default();
        state.prune(now);
        if let Some(limit) = limits.requests_per_minute {
            if state.window.len() >= limit as usize {
                return Err(Refusal::RateLimited {
                    kind: "request",
                    limit,
                    retry_after: state.retry_after(now),
                });
            }
        }
        if let Some(limit) = limits.tokens_per_minute {
            if state.tokens() + estimate.tokens.min(u64::from(limit)) > u64::from(limit) {
                return Err(Refusal::RateLimited {
                    kind: "token",
                    limit,
                    retry_after: state.retry_after(now),
                });
            }
        }
        if let Some(budget) = limits.budget_micros {
            let spent = state.spent_micros.unwrap_or(0);
            if spent + state.reserved_micros + estimate.cost_micros > budget {
                return Err(Refusal::BudgetExceeded { budget_micros: budget, spent_micros: spent });
            }
        }
        if windowed {
            state.window.push_back((now, estimate.tokens));
        }
        state.reserved_micros += estimate.cost_micros;
        let quota = Quota {
            requests: limits.requests_per_minute.map(|l| (l, l.saturating_sub(state.window.len() as u32))),
            tokens: limits
                .tokens_per_minute
                .map(|l| (l, l.saturating_sub(u32::try_from(state.tokens()).unwrap_or(u32::MAX)))),
            reset_secs: state.retry_after(now).as_secs_f64().ceil() as u64,
        };
        drop(keys);
        Ok(self.admission(Some(key_id.clone()), estimate, quota, now))
    }

    fn admission(&self, key_id: Option<String>, estimate: Estimate, quota: Quota, at: Instant) -> Admission {
        Admission { inner: self.inner.clone(), key_id, admitted_at: at, estimate, quota, settled: false }
    }

    fn knows_spend(&self, key_id: &str) -> bool {
        self.lock_keys().get(key_id).is_some_and(|state| state.spent_micros.is_some())
    }

    fn lock_keys(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyState>> {
        self.inner.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Usage rows waiting to be written.
    pub fn pending(&self) -> usize {
        self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Writes the waiting usage rows; on failure they wait for the next flush.
    pub async fn flush(&self, db: &Db) -> Result<usize, StoreError> {
        let batch = std::mem::take(&mut *self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner));
        if batch.is_empty() {
            return Ok(0);
        }
        match db.usage_insert(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(err) => {
                let mut pending = self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
                let newer = std::mem::replace(&mut *pending, batch);
                pending.extend(newer);
                Err(err)
            }
        }
    }
}

impl Admission {
    /// Charges the actual cost in place of the estimate and queues the usage row.
    pub fn settle(mut self, row: UsageRow) {
        self.settled = true;
        if let Some(key_id) = &self.key_id {
            let mut keys = self.inner.keys.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(state) = keys.get_mut(key_id) {
                state.reserved_micros -= self.estimate.cost_micros;
                if let Some(spent) = &mut state.spent_micros {
                    *spent += row.cost_micros;
                }
                let used = u64::try_from(row.prompt_tokens + row.completion_tokens).unwrap_or(0);
                // Recent requests are at the back; settling is usually quick.
                if let Some(entry) = state.window.iter_mut().rev().find(|(at, _)| *at == self.admitted_at) {
                    entry.1 = used;
                }
            }
        }
        self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner).push(row);
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        if let Some(key_id) = &self.key_id {
            let mut keys = self.inner.keys.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(state) = keys.get_mut(key_id) {
                state.reserved_micros -= self.estimate.cost_micros;
            }
        }
    }
}
