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

use switchyard_providers::tokens;
use switchyard_providers::tokens::PromptPiece;
use switchyard_providers::wire::{ChatCompletionRequest, EmbeddingInputs, EmbeddingRequest, Usage};
use tokio::time::Instant;

use crate::db::{Db, StoreError};
use crate::gateway::Route;
use crate::gateway::usage::UsageRow;
use crate::kernel::principal::KeyLimits;

const WINDOW: Duration = Duration::from_secs(60);
/// Completion tokens reserved when a request sets no `max_tokens`.
pub const DEFAULT_COMPLETION_ESTIMATE: u64 = 4_096;

/// Who is calling and what they may spend.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    /// Every gateway call is metered in an org (see `Caller::resolve`).
    pub org_id: String,
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
    /// Every input (message text, names, tool definitions, tool-call
    /// arguments: 4 characters a token and one more per message; images by
    /// the dearest target's rule; other content parts as their JSON) plus the
    /// completion budget of every choice, at the route's dearest price.
    pub fn chat(request: &ChatCompletionRequest, route: &Route) -> Self {
        let mut prompt = 0;
        tokens::prompt_pieces(request, |piece| {
            prompt += match piece {
                PromptPiece::Message { .. } => 1,
                PromptPiece::Text(text) => text_estimate(text),
                PromptPiece::Image { detail_low } => route.estimate_image_tokens(detail_low),
                PromptPiece::Json(value) => text_estimate(&value.to_string()),
            };
        });
        let completion = request.max_output_tokens().map_or(DEFAULT_COMPLETION_ESTIMATE, u64::from)
            * u64::from(request.n.unwrap_or(1).max(1));
        let usage = Usage::new(prompt, completion);
        Self { tokens: usage.total_tokens, cost_micros: route.estimate_price().cost_micros(&usage) }
    }

    /// The inputs' size: token ids as they are, texts at 4 characters a
    /// token; embeddings have no completion.
    pub fn embedding(request: &EmbeddingRequest, route: &Route) -> Self {
        let prompt = match EmbeddingInputs::parse(&request.input) {
            Ok(EmbeddingInputs::Texts(texts)) => texts.iter().map(|text| text_estimate(text)).sum(),
            Ok(EmbeddingInputs::Tokens(arrays)) => arrays.iter().map(|ids| ids.len() as u64).sum(),
            Err(_) => 0,
        };
        let usage = Usage::new(prompt, 0);
        Self { tokens: usage.total_tokens, cost_micros: route.estimate_price().cost_micros(&usage) }
    }
}

/// A cheap measure of text for reservations: 4 characters a token.
fn text_estimate(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Which spend limit a request would break.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// The key's lifetime budget.
    Key,
    /// What the whole org may spend in a UTC day.
    OrgDailyCap,
    /// What one member may spend in the org in a UTC day.
    MemberDailyCap,
}

/// Why a request may not run now.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the key's per-minute {kind} limit ({limit}) is reached")]
    RateLimited { kind: &'static str, limit: u32, retry_after: Duration },
    #[error("a spend budget would be exceeded")]
    BudgetExceeded { what: Budget, budget_micros: i64, spent_micros: i64 },
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

    /// Checks the per-minute limits and the budget, then counts the request
    /// and reserves its estimate.
    fn admit(&mut self, limits: &KeyLimits, estimate: Estimate, now: Instant) -> Result<Quota, Refusal> {
        if let Some(limit) = limits.requests_per_minute {
            if self.window.len() >= limit as usize {
                return Err(Refusal::RateLimited {
                    kind: "request",
                    limit,
                    retry_after: self.retry_after(now),
                });
            }
        }
        if let Some(limit) = limits.tokens_per_minute {
            if self.tokens() + estimate.tokens.min(u64::from(limit)) > u64::from(limit) {
                return Err(Refusal::RateLimited {
                    kind: "token",
                    limit,
                    retry_after: self.retry_after(now),
                });
            }
        }
        if let Some(budget) = limits.budget_micros {
            let spent = self.spent_micros.unwrap_or(0);
            if spent + self.reserved_micros + estimate.cost_micros > budget {
                return Err(Refusal::BudgetExceeded {
                    what: Budget::Key,
                    budget_micros: budget,
                    spent_micros: spent,
                });
            }
        }
        if limits.requests_per_minute.is_some() || limits.tokens_per_minute.is_some() {
            self.window.push_back((now, estimate.tokens));
        }
        self.reserved_micros += estimate.cost_micros;
        Ok(Quota {
            requests: limits.requests_per_minute.map(|l| (l, l.saturating_sub(self.window.len() as u32))),
            tokens: limits
                .tokens_per_minute
                .map(|l| (l, l.saturating_sub(u32::try_from(self.tokens()).unwrap_or(u32::MAX)))),
            reset_secs: self.retry_after(now).as_secs_f64().ceil() as u64,
        })
    }
}

/// One org's or one member's spend on one UTC day.
#[derive(Debug, Clone, Copy, Default)]
struct DaySpend {
    /// Days since the Unix epoch.
    day: i64,
    spent_micros: i64,
    reserved_micros: i64,
}

/// A daily cap that applies to a request.
struct DayCap {
    /// Where its spend is kept in [`Inner::days`].
    slot: String,
    org_id: String,
    user_id: Option<String>,
    limit_micros: i64,
    what: Budget,
}

/// The UTC day `now` (Unix seconds) falls in, as days since the Unix epoch.
fn utc_day(now: i64) -> i64 {
    now.div_euclid(86_400)
}

#[derive(Default)]
struct Inner {
    keys: Mutex<HashMap<String, KeyState>>,
    /// Daily spend by org and by member.
    days: Mutex<HashMap<String, DaySpend>>,
    /// Held while usage rows are written, so no row is in flight while a
    /// daily cap's spend is read.
    flushing: tokio::sync::Mutex<()>,
    pending: Mutex<Vec<UsageRow>>,
    /// Woken when [`FULL_BATCH`] rows are waiting.
    batch_ready: tokio::sync::Notify,
}

/// Waiting usage rows that call for a write before the next tick.
const FULL_BATCH: usize = 1_000;

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
    /// The daily caps it reserved against, and the day it did.
    day_slots: Vec<String>,
    day: i64,
    admitted_at: Instant,
    estimate: Estimate,
    pub quota: Quota,
    settled: bool,
}

impl Meter {
    /// Checks the caller's limits and reserves `estimate` against every
    /// budget and cap that applies, all under the same locks; the daily caps
    /// are those of the UTC day of `at` (Unix seconds).
    pub async fn admit(
        &self,
        db: &Db,
        caller: &Caller,
        estimate: Estimate,
        at: i64,
    ) -> Result<Admission, Refusal> {
        let now = Instant::now();
        let limits = &caller.limits;
        let windowed = limits.requests_per_minute.is_some() || limits.tokens_per_minute.is_some();
        let key_id = caller.key_id.as_ref().filter(|_| windowed || limits.budget_micros.is_some());
        let day = utc_day(at);
        let caps = self.day_caps(caller);
        // Sessions and keys without limits have nothing to count or reserve.
        if key_id.is_none() && caps.is_empty() {
            return Ok(self.admission(None, Vec::new(), day, estimate, Quota::default(), now));
        }
        if let Some(key_id) = key_id.filter(|_| limits.budget_micros.is_some()) {
            if !self.knows_spend(key_id) {
                let spent = db.usage_spent_by_key(key_id).await?;
                self.lock_keys().entry(key_id.clone()).or_default().spent_micros.get_or_insert(spent);
            }
        }
        for cap in &caps {
            if !self.knows_day(&cap.slot, day) {
                self.load_day(db, cap, day).await?;
            }
        }
        let mut keys = self.lock_keys();
        let mut days = self.lock_days();
        for cap in &caps {
            let spend = days.get(&cap.slot).filter(|spend| spend.day == day).copied().unwrap_or_default();
            if spend.spent_micros + spend.reserved_micros + estimate.cost_micros > cap.limit_micros {
                return Err(Refusal::BudgetExceeded {
                    what: cap.what,
                    budget_micros: cap.limit_micros,
                    spent_micros: spend.spent_micros,
                });
            }
        }
        let mut quota = Quota::default();
        if let Some(key_id) = key_id {
            let state = keys.entry(key_id.clone()).or_default();
            state.prune(now);
            quota = state.admit(limits, estimate, now)?;
        }
        for cap in &caps {
            if let Some(spend) = days.get_mut(&cap.slot) {
                spend.reserved_micros += estimate.cost_micros;
            }
        }
        drop((keys, days));
        let slots = caps.into_iter().map(|cap| cap.slot).collect();
        Ok(self.admission(key_id.cloned(), slots, day, estimate, quota, now))
    }

    /// The daily caps of the caller's org that apply: the org's and the member's.
    fn day_caps(&self, caller: &Caller) -> Vec<DayCap> {
        let org_id = &caller.org_id;
        let caps = caller.limits.org_caps;
        let mut out = Vec::new();
        if let Some(limit_micros) = caps.org_daily_micros {
            out.push(DayCap {
                slot: format!("org {org_id}"),
                org_id: org_id.clone(),
                user_id: None,
                limit_micros,
                what: Budget::OrgDailyCap,
            });
        }
        if let Some(limit_micros) = caps.member_daily_micros {
            out.push(DayCap {
                slot: format!("member {org_id} {}", caller.user_id),
                org_id: org_id.clone(),
                user_id: Some(caller.user_id.clone()),
                limit_micros,
                what: Budget::MemberDailyCap,
            });
        }
        out
    }

    fn admission(
        &self,
        key_id: Option<String>,
        day_slots: Vec<String>,
        day: i64,
        estimate: Estimate,
        quota: Quota,
        at: Instant,
    ) -> Admission {
        Admission {
            inner: self.inner.clone(),
            key_id,
            day_slots,
            day,
            admitted_at: at,
            estimate,
            quota,
            settled: false,
        }
    }

    /// Starts counting a daily cap's spend: what the database holds, plus
    /// this process's rows not written yet. Writing is paused meanwhile, and
    /// settling cannot slip between the sum and the start of counting, so no
    /// request is counted twice or missed.
    async fn load_day(&self, db: &Db, cap: &DayCap, day: i64) -> Result<(), StoreError> {
        let _no_flush = self.inner.flushing.lock().await;
        let since = day * 86_400;
        let stored = db.usage_spent_in_org_since(&cap.org_id, cap.user_id.as_deref(), since).await?;
        let mut days = self.lock_days();
        let unwritten: i64 = self
            .inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|row| row.occurred_at >= since && row.org_id.as_deref() == Some(cap.org_id.as_str()))
            .filter(|row| cap.user_id.as_ref().is_none_or(|user| *user == row.user_id))
            .map(|row| row.cost_micros)
            .sum();
        let entry = days.entry(cap.slot.clone()).or_default();
        if entry.day != day {
            *entry = DaySpend { day, spent_micros: stored + unwritten, reserved_micros: 0 };
        }
        Ok(())
    }

    fn knows_day(&self, slot: &str, day: i64) -> bool {
        self.lock_days().get(slot).is_some_and(|spend| spend.day == day)
    }

    fn lock_days(&self) -> std::sync::MutexGuard<'_, HashMap<String, DaySpend>> {
        self.inner.days.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn knows_spend(&self, key_id: &str) -> bool {
        self.lock_keys().get(key_id).is_some_and(|state| state.spent_micros.is_some())
    }

    fn lock_keys(&self) -> std::sync::MutexGuard<'_, HashMap<String, KeyState>> {
        self.inner.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves once a full batch of usage rows waits to be written.
    pub async fn batch_ready(&self) {
        self.inner.batch_ready.notified().await;
    }

    /// Usage rows waiting to be written.
    pub fn pending(&self) -> usize {
        self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Writes the waiting usage rows; on failure they wait for the next flush.
    pub async fn flush(&self, db: &Db) -> Result<usize, StoreError> {
        let _flushing = self.inner.flushing.lock().await;
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
        // Charged to the daily caps and queued under one lock (see `Meter::load_day`).
        let days = self.release_days(row.cost_micros);
        let mut pending = self.inner.pending.lock().unwrap_or_else(PoisonError::into_inner);
        pending.push(row);
        let full = pending.len() == FULL_BATCH;
        drop((pending, days));
        if full {
            self.inner.batch_ready.notify_one();
        }
    }

    /// Takes the reservation off the daily caps and charges `cost_micros`;
    /// returns the caps' lock, still held. Past midnight the day's spend
    /// started afresh and nothing is left to undo.
    fn release_days(&self, cost_micros: i64) -> Option<std::sync::MutexGuard<'_, HashMap<String, DaySpend>>> {
        if self.day_slots.is_empty() {
            return None;
        }
        let mut days = self.inner.days.lock().unwrap_or_else(PoisonError::into_inner);
        for slot in &self.day_slots {
            if let Some(spend) = days.get_mut(slot).filter(|spend| spend.day == self.day) {
                spend.reserved_micros -= self.estimate.cost_micros;
                spend.spent_micros += cost_micros;
            }
        }
        Some(days)
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
        drop(self.release_days(0));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;
    use switchyard_providers::dev;

    use super::*;
    use crate::gateway::{Price, Provider, Target};

    /// One dev target at one micro-USD a token, so cost equals tokens.
    fn route() -> Route {
        let price = Price { input_micros_per_mtok: 1_000_000, output_micros_per_mtok: 1_000_000 };
        let target = Target {
            provider_name: "dev".into(),
            provider: Arc::new(Provider::Dev(dev::Dev::default())),
            model: "dev".into(),
            price,
        };
        Route { name: "r".into(), targets: vec![target], created: 0, tokenizer: Default::default() }
    }

    #[test]
    fn chat_estimates_count_every_input() {
        let request = |value: serde_json::Value| -> ChatCompletionRequest {
            serde_json::from_value(value).unwrap_or_else(|e| panic!("{e}"))
        };
        let plain = request(
            json!({"model": "r", "max_tokens": 5, "messages": [{"role": "user", "content": "Hello"}]}),
        );
        assert_eq!(Estimate::chat(&plain, &route()), Estimate { tokens: 8, cost_micros: 8 });

        let heavy = request(json!({"model": "r", "max_tokens": 5, "n": 2, "messages": [
            {"role": "user", "name": "abcd", "content": [{"type": "text", "text": "Hello"}]},
            {"role": "assistant", "tool_calls": [{"id": "call", "type": "function",
                "function": {"name": "look", "arguments": "{\"q\":\"12345678\"}"}}]},
            {"role": "tool", "tool_call_id": "call", "content": "done"}
        ], "tools": [{"type": "function", "function": {"name": "look", "description": "Looks",
            "parameters": {"type": "object"}}}]}));
        // Messages 3; name 1; "Hello" 2; call id 1, name 1, arguments 4; tool
        // id 1, "done" 1; tool name 1, description 2, parameters 5; completion
        // 5 for each of 2 choices.
        assert_eq!(Estimate::chat(&heavy, &route()).tokens, 3 + 1 + 2 + 6 + 2 + 8 + 10);
    }

    #[test]
    fn embedding_estimates_count_token_ids_as_they_are() {
        let request = |input: serde_json::Value| -> EmbeddingRequest {
            serde_json::from_value(json!({"model": "r", "input": input})).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(Estimate::embedding(&request(json!([[1, 2, 3], [4, 5]])), &route()).tokens, 5);
        assert_eq!(Estimate::embedding(&request(json!(["12345678", "1"])), &route()).tokens, 3);
    }
}
