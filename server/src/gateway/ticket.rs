//! One metered gateway call: the admission under the caller's limits, the
//! usage row and the metrics it leaves, settled exactly once whether the
//! call finished, failed, or was dropped when its client went away.

use std::time::Duration;

use tokio::time::Instant;

use super::metering::{Admission, Caller, Quota};
use super::wire::Usage;
use super::{ChunkEvent, Price, Target};
use crate::domain::principal::{Principal, Via};
use crate::metrics::{GatewayOutcome, InFlight};
use crate::store::UsageRow;

impl Caller {
    /// Who a request is made for, as metering sees it.
    pub fn of(principal: &Principal) -> Self {
        match &principal.via {
            Via::ApiKey { key_id, org_id, project_id, limits, .. } => Caller {
                user_id: principal.user_id.clone(),
                org_id: Some(org_id.clone()),
                project_id: project_id.clone(),
                key_id: Some(key_id.clone()),
                limits: limits.clone(),
            },
            Via::Session { .. } => Caller {
                user_id: principal.user_id.clone(),
                org_id: None,
                project_id: None,
                key_id: None,
                limits: Default::default(),
            },
        }
    }
}

/// One request's usage record and metrics in the making; finishing it
/// settles the reservation and records both, once. Dropped unfinished (the
/// client went away mid-stream), it records what was used with status 499.
pub struct Ticket {
    admission: Option<Admission>,
    in_flight: InFlight,
    row: UsageRow,
    price: Price,
    pub usage: Option<Usage>,
    started: Instant,
    /// Time spent upstream, once a target answered.
    upstream: Option<Duration>,
    /// When the answer (a stream's first byte) was ready, since `started`.
    responded: Option<Duration>,
    /// When a stream's first content or tool call went out, since `started`.
    first_token: Option<Duration>,
}

impl Ticket {
    pub fn new(
        admission: Admission,
        in_flight: InFlight,
        caller: &Caller,
        route: &str,
        started: Instant,
    ) -> Self {
        Self {
            admission: Some(admission),
            in_flight,
            row: UsageRow {
                id: crate::domain::new_id("use"),
                occurred_at: crate::domain::now(),
                org_id: caller.org_id.clone(),
                project_id: caller.project_id.clone(),
                user_id: caller.user_id.clone(),
                key_id: caller.key_id.clone(),
                route: route.to_owned(),
                provider: None,
                upstream_model: None,
                prompt_tokens: 0,
                completion_tokens: 0,
                cost_micros: 0,
                latency_ms: 0,
                status: 499,
            },
            price: Price::default(),
            usage: None,
            started,
            upstream: None,
            responded: None,
            first_token: None,
        }
    }

    /// `target` answered after `upstream` spent waiting on providers.
    pub fn answered_by(mut self, target: &Target, upstream: Duration) -> Self {
        self.row.provider = Some(target.provider_name.to_string());
        self.row.upstream_model = Some(target.model.to_string());
        self.price = target.price;
        self.upstream = Some(upstream);
        self
    }

    /// Notes the first byte of the answer going out.
    pub fn responding(&mut self) {
        if self.responded.is_none() {
            self.responded = Some(self.started.elapsed());
        }
    }

    /// Notes a stream chunk going out: the first one with output sets the
    /// time to first token.
    pub fn sending(&mut self, chunk: &ChunkEvent) {
        self.responding();
        if self.first_token.is_none() && !chunk.usage_only && chunk.carries_output() {
            self.first_token = Some(self.started.elapsed());
        }
    }

    pub fn quota(&self) -> Quota {
        self.admission.as_ref().map(|a| a.quota).unwrap_or_default()
    }

    pub fn finish(mut self, status: u16, usage: Option<Usage>) {
        self.responding();
        self.usage = usage.or(self.usage);
        self.row.status = i64::from(status);
        self.settle();
    }

    fn settle(&mut self) {
        let Some(admission) = self.admission.take() else { return };
        let usage = self.usage.unwrap_or_default();
        let mut row = self.row.clone();
        row.prompt_tokens = i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX);
        row.completion_tokens = i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX);
        row.cost_micros = self.price.cost_micros(&usage);
        row.latency_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.in_flight.finished(&GatewayOutcome {
            route: &row.route,
            provider: row.provider.as_deref(),
            status: u16::try_from(row.status).unwrap_or_default(),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cost_micro_usd: u64::try_from(row.cost_micros).unwrap_or_default(),
            upstream: self.upstream,
            overhead: self.upstream.zip(self.responded).map(|(upstream, at)| at.saturating_sub(upstream)),
            first_token: self.first_token,
        });
        admission.settle(row);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.settle();
    }
}
