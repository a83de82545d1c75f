//! One metered gateway call: the admission under the caller's limits, the
//! usage row and the metrics it leaves, settled exactly once whether the
//! call finished, failed, or was dropped when its client went away.
//!
//! What is charged is the provider's reported usage; when the provider
//! reported none (or reported no completion for an answer that produced
//! text), the ticket counts it itself from the request and the output that
//! passed through it, and marks the row `estimated`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchyard_providers::tokens;
use switchyard_providers::tokens::{ImageRule, OutputTally, Tokenizer};
use switchyard_providers::wire::{
    ChatCompletionChunk, ChatCompletionRequest, EmbeddingList, EmbeddingRequest, Usage,
};
use tokio::time::Instant;

use crate::db::Db;
use crate::gateway::metering::{Admission, Caller, Quota};
use crate::gateway::usage::{UsageRow, UsageSource};
use crate::gateway::{ChunkEvent, Price, Route, Target};
use crate::kernel::error::{DomainError, DomainResult, Resource};
use crate::kernel::principal::{KeyLimits, Principal, Via};
use crate::metrics::{GatewayOutcome, InFlight};

impl Caller {
    /// Who a gateway request is made for, as metering sees it. An API key
    /// acts in its own org (a named org must be that one); a session token
    /// must name an org its user belongs to (`org`), and is metered as that
    /// member, under the org's daily caps. No call is unattributed.
    pub async fn resolve(db: &Db, principal: &Principal, org: Option<&str>) -> DomainResult<Self> {
        let user_id = principal.user_id.clone();
        match &principal.via {
            Via::ApiKey { org_id, .. } if org.is_some_and(|named| named != org_id) => {
                Err(DomainError::NotFound(Resource::Organization))
            }
            Via::ApiKey { key_id, org_id, project_id, limits, .. } => Ok(Caller {
                user_id,
                org_id: org_id.clone(),
                project_id: project_id.clone(),
                key_id: Some(key_id.clone()),
                limits: limits.clone(),
            }),
            Via::Session { .. } => Self::member(db, &user_id, org.ok_or(DomainError::OrgRequired)?).await,
        }
    }

    /// A member of `org_id` acting in it without a key, under the org's
    /// daily caps; 404 when they are not a member.
    pub async fn member(db: &Db, user_id: &str, org_id: &str) -> DomainResult<Self> {
        let membership =
            db.membership(org_id, user_id).await?.ok_or(DomainError::NotFound(Resource::Organization))?;
        Ok(Caller {
            user_id: user_id.to_owned(),
            org_id: membership.org.id,
            project_id: None,
            key_id: None,
            limits: KeyLimits { org_caps: membership.org.caps, ..KeyLimits::default() },
        })
    }
}

/// The request a ticket meters, read again only when its usage must be counted.
#[derive(Debug, Clone)]
pub enum Metered {
    Chat(Arc<ChatCompletionRequest>),
    Embedding(Arc<EmbeddingRequest>),
}

/// The status a request is recorded with when its client went away.
const CLIENT_GONE: u16 = 499;

/// One request's usage record and metrics in the making; finishing it
/// settles the reservation and records both, once. Dropped unfinished (the
/// client went away mid-stream), it records what was used with status 499.
pub struct Ticket {
    admission: Option<Admission>,
    in_flight: InFlight,
    row: UsageRow,
    price: Price,
    metered: Metered,
    tokenizer: Tokenizer,
    /// How the answering provider counts images; set once one answered.
    images: Option<ImageRule>,
    /// What the provider said the request used.
    reported: Option<Usage>,
    /// What the answer produced, for counting when nothing was reported.
    output: OutputTally,
    /// A stream's usage-only chunk, held back until the stream ends.
    held_usage_chunk: Option<Bytes>,
    /// The figure charged, once decided.
    decided: Option<(Usage, UsageSource)>,
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
        route: &Route,
        metered: Metered,
        started: Instant,
        at: i64,
    ) -> Self {
        Self {
            admission: Some(admission),
            in_flight,
            row: UsageRow {
                id: crate::kernel::ids::new_id("use"),
                occurred_at: at,
                org_id: Some(caller.org_id.clone()),
                project_id: caller.project_id.clone(),
                user_id: caller.user_id.clone(),
                key_id: caller.key_id.clone(),
                route: route.name.clone(),
                provider: None,
                upstream_model: None,
                prompt_tokens: 0,
                completion_tokens: 0,
                cost_micros: 0,
                latency_ms: 0,
                status: i64::from(CLIENT_GONE),
                usage_source: UsageSource::Reported,
                run_id: None,
            },
            price: Price::default(),
            metered,
            tokenizer: route.tokenizer,
            images: None,
            reported: None,
            output: OutputTally::default(),
            held_usage_chunk: None,
            decided: None,
            started,
            upstream: None,
            responded: None,
            first_token: None,
        }
    }

    /// Marks the call as a step of the run `run_id`.
    pub fn for_run(mut self, run_id: &str) -> Self {
        self.row.run_id = Some(run_id.to_owned());
        self
    }

    /// What the call is charged, in micro-USD, once a target answered.
    pub fn cost_micros(&mut self) -> i64 {
        let (usage, _) = self.usage();
        self.price.cost_micros(&usage)
    }

    /// `target` answered after `upstream` spent waiting on providers.
    pub fn answered_by(mut self, target: &Target, upstream: Duration) -> Self {
        self.row.provider = Some(target.provider_name.to_string());
        self.row.upstream_model = Some(target.model.to_string());
        self.price = target.price;
        self.images = Some(target.provider.image_rule());
        self.upstream = Some(upstream);
        self
    }

    /// Notes the first byte of the answer going out.
    pub fn responding(&mut self) {
        if self.responded.is_none() {
            self.responded = Some(self.started.elapsed());
        }
    }

    /// Reads a stream chunk as it arrives: its usage, and its output for
    /// counting. Call it for every chunk; a usage-only chunk is held back
    /// (see [`Ticket::usage_chunk`]) and the others go to the client.
    pub fn observe(&mut self, chunk: &ChunkEvent) {
        if chunk.usage.is_some() {
            self.reported = chunk.usage;
        }
        if chunk.usage_only {
            self.held_usage_chunk = Some(chunk.data.clone());
        } else if self.output.add_chunk(&chunk.data) && self.first_token.is_none() {
            self.first_token = Some(self.started.elapsed());
        }
    }

    /// Takes a whole chat answer and the usage its provider reported. When
    /// none was reported, the answer's output is counted and the body gains
    /// the counted `usage`, as OpenAI's answers always carry one.
    pub fn completed(&mut self, body: Bytes, usage: Option<Usage>) -> Bytes {
        self.reported = usage;
        if usage.is_some_and(|u| u.prompt_tokens > 0 && u.completion_tokens > 0) {
            return body;
        }
        self.output.add_completion(&body);
        let (usage, source) = self.usage();
        if source == UsageSource::Reported {
            return body;
        }
        let Ok(mut completion) = serde_json::from_slice::<serde_json::Value>(&body) else { return body };
        let Some(object) = completion.as_object_mut() else { return body };
        // Three integers always serialise; if not, the answer goes out as sent.
        let usage = match serde_json::to_value(usage) {
            Ok(usage) => usage,
            Err(err) => {
                tracing::error!(error = %err, "the counted usage did not serialise");
                return body;
            }
        };
        object.insert("usage".to_owned(), usage);
        serde_json::to_vec(&completion).map(Bytes::from).unwrap_or(body)
    }

    /// Takes an embeddings answer; when its provider reported no usage, the
    /// inputs are counted and the answer carries the count.
    pub fn embedded(&mut self, list: &mut EmbeddingList) {
        let reported = list.usage.prompt_tokens;
        self.reported = (reported > 0).then(|| Usage::new(reported, 0));
        let (usage, _) = self.usage();
        list.usage.prompt_tokens = usage.prompt_tokens;
        list.usage.total_tokens = usage.total_tokens;
    }

    /// The last chunk of a stream for a client that asked for usage
    /// (`stream_options.include_usage`): the provider's usage chunk when its
    /// report is whole, otherwise one in OpenAI's shape with the count.
    /// `None` when the usage already went out on a chunk with choices.
    pub fn usage_chunk(&mut self) -> Option<Bytes> {
        let (usage, source) = self.usage();
        if source == UsageSource::Reported {
            return self.held_usage_chunk.take();
        }
        let head = self.output.head().cloned().unwrap_or_default();
        let chunk = ChatCompletionChunk {
            id: head.id,
            object: "chat.completion.chunk".to_owned(),
            created: head.created,
            model: head.model,
            choices: Vec::new(),
            usage: Some(usage),
        };
        serde_json::to_vec(&chunk).ok().map(Bytes::from)
    }

    /// What the request is charged: the provider's report when it is whole,
    /// otherwise the tokenizer's count. A request no provider answered used
    /// nothing.
    pub fn usage(&mut self) -> (Usage, UsageSource) {
        if let Some(decided) = self.decided {
            return decided;
        }
        let decided = self.decide();
        self.decided = Some(decided);
        decided
    }

    fn decide(&self) -> (Usage, UsageSource) {
        let Some(images) = self.images else {
            return (self.reported.unwrap_or_default(), UsageSource::Reported);
        };
        let produced = !self.output.is_empty();
        if let Some(reported) = self.reported {
            let whole = reported.prompt_tokens > 0 && (reported.completion_tokens > 0 || !produced);
            if whole {
                return (reported, UsageSource::Reported);
            }
        }
        let reported_prompt = self.reported.map(|u| u.prompt_tokens).filter(|tokens| *tokens > 0);
        let prompt = reported_prompt.unwrap_or_else(|| match &self.metered {
            Metered::Chat(request) => tokens::chat_prompt_tokens(request, self.tokenizer, images),
            Metered::Embedding(request) => tokens::embedding_input_tokens(request, self.tokenizer),
        });
        (Usage::new(prompt, self.output.tokens(self.tokenizer)), UsageSource::Estimated)
    }

    pub fn quota(&self) -> Quota {
        self.admission.as_ref().map(|a| a.quota).unwrap_or_default()
    }

    pub fn finish(mut self, status: u16) {
        self.responding();
        self.settle(status);
    }

    fn settle(&mut self, status: u16) {
        if self.admission.is_none() {
            return;
        }
        let (usage, source) = self.usage();
        let Some(admission) = self.admission.take() else { return };
        let mut row = self.row.clone();
        row.prompt_tokens = i64::try_from(usage.prompt_tokens).unwrap_or(i64::MAX);
        row.completion_tokens = i64::try_from(usage.completion_tokens).unwrap_or(i64::MAX);
        row.cost_micros = self.cost_micros();
        row.latency_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        row.usage_source = source;
        row.status = i64::from(status);
        self.in_flight.finished(&GatewayOutcome {
            route: &row.route,
            provider: row.provider.as_deref(),
            status,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            usage_source: source.as_str(),
            // Prices take no sign (`parse_usd_micros`), so no cost is below zero.
            cost_micro_usd: row.cost_micros.max(0).unsigned_abs(),
            upstream: self.upstream,
            overhead: self.upstream.zip(self.responded).map(|(upstream, at)| at.saturating_sub(upstream)),
            first_token: self.first_token,
        });
        admission.settle(row);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.settle(CLIENT_GONE);
    }
}
