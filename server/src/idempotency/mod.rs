//! Idempotent requests: an `Idempotency-Key` makes a request that starts
//! work or moves money safe to retry. The first request with a key reserves
//! it and does the work; the same key with the same request replays the
//! stored answer; the same key with another request is refused.
//!
//! What is stored: only a success. A refusal (4xx) or a failure (5xx)
//! releases the key, so the client may send it again, as is or fixed. Every
//! refusal of the operations that use this happens before any work starts,
//! so there is nothing to protect from a repeat, and storing one would pin a
//! passing refusal (a rate limit, a budget) for the key's whole life.
//!
//! The work runs in its own task: a client that hangs up does not cancel
//! it halfway, and its answer is stored for the retry. Keys are kept at least
//! [`Retention::idempotency_secs`](crate::db::Retention) (24 hours), then
//! swept by housekeeping. A server that dies mid-request leaves its key in
//! progress until then; a retry gets `idempotency.in_progress`, and the work
//! itself (a run, say) resumes on another server.

mod store;

use std::future::Future;
use std::time::{Duration, Instant};

use tracing::Instrument;

use crate::db::Db;
use crate::kernel::clock::Clock;
use crate::kernel::error::{DomainError, DomainResult};
use crate::kernel::principal::{Principal, Via};

/// The longest key, in characters.
pub const MAX_KEY_CHARS: usize = 255;

/// How long a request waits for the first request with its key to finish.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(30);

/// The shortest and longest pause between two reads of a key in progress.
const FIRST_POLL: Duration = Duration::from_millis(20);
const LONGEST_POLL: Duration = Duration::from_millis(500);

/// A request to do at most once: who sent it, with which key, for which
/// operation, and the hash of what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotentRequest {
    owner: String,
    key: String,
    operation: &'static str,
    request_hash: String,
}

impl IdempotentRequest {
    /// Checks `key` (1 to 255 printable ASCII characters) and names its
    /// owner: the user and the API key, or the user and the session.
    /// `request_hash` is what the request means, such as the SHA-256 of its
    /// canonical body and the headers that change what it does.
    pub fn new(
        principal: &Principal,
        key: &str,
        operation: &'static str,
        request_hash: String,
    ) -> DomainResult<Self> {
        let printable = key.chars().all(|c| c.is_ascii_graphic() || c == ' ');
        if key.is_empty() || key.len() > MAX_KEY_CHARS || !printable {
            return Err(DomainError::Invalid {
                param: "Idempotency-Key",
                message: format!("must be 1 to {MAX_KEY_CHARS} printable ASCII characters"),
            });
        }
        let owner = match &principal.via {
            Via::ApiKey { key_id, .. } => format!("{}/key/{key_id}", principal.user_id),
            Via::Session { session_id } => format!("{}/session/{session_id}", principal.user_id),
        };
        Ok(Self { owner, key: key.to_owned(), operation, request_hash })
    }
}

/// A response as it is stored and replayed: its status and body, as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// An answer, and whether it is the replay of an earlier request's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayable {
    pub answer: Answer,
    pub replayed: bool,
}

/// The front handlers call: keeps each key's first answer.
#[derive(Clone)]
pub struct Idempotency {
    db: Db,
    clock: Clock,
    wait: Duration,
}

/// What a request finds under its key.
enum Found {
    /// The key was free; the request holds it now.
    Reserved,
    /// The first request's answer.
    Answered(Answer),
}

impl Idempotency {
    pub fn new(db: Db, clock: Clock) -> Self {
        Self { db, clock, wait: DEFAULT_WAIT }
    }

    /// The same, waiting at most `wait` for a request in progress.
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Does `work` once for `request`'s key: the first time, and again only
    /// if it failed. The same request again replays the stored answer
    /// (waiting while the first is in progress); another request with the
    /// key is refused with [`DomainError::IdempotencyKeyReused`].
    pub async fn once<E, W>(&self, request: &IdempotentRequest, work: W) -> Result<Replayable, E>
    where
        E: From<DomainError> + Send + 'static,
        W: Future<Output = Result<Answer, E>> + Send + 'static,
    {
        if let Found::Answered(answer) = self.reserve_or_wait(request).await? {
            return Ok(Replayable { answer, replayed: true });
        }
        let (db, owner, key) = (self.db.clone(), request.owner.clone(), request.key.clone());
        let task = tokio::spawn(
            async move {
                let result = work.await;
                let kept = match &result {
                    Ok(answer) => {
                        db.idempotency_complete(&owner, &key, answer.status.into(), &answer.body).await
                    }
                    Err(_) => db.idempotency_release(&owner, &key).await,
                };
                if let Err(err) = kept {
                    tracing::error!(error = %err, "could not store or release an idempotency key");
                }
                result
            }
            .in_current_span(),
        );
        match task.await {
            Ok(result) => result.map(|answer| Replayable { answer, replayed: false }),
            Err(err) => {
                // The work panicked before its answer could be kept.
                if let Err(release) = self.db.idempotency_release(&request.owner, &request.key).await {
                    tracing::error!(error = %release, "could not release an idempotency key");
                }
                Err(DomainError::Internal(format!("the idempotent work did not finish: {err}")).into())
            }
        }
    }

    /// Reserves the key, or finds the answer of the same request, waiting
    /// while it is in progress.
    async fn reserve_or_wait(&self, request: &IdempotentRequest) -> DomainResult<Found> {
        let IdempotentRequest { owner, key, operation, request_hash } = request;
        let deadline = Instant::now() + self.wait;
        let mut pause = FIRST_POLL;
        loop {
            if self.db.idempotency_reserve(owner, key, operation, request_hash, self.clock.now()).await? {
                return Ok(Found::Reserved);
            }
            // Gone between the two statements: released, so try again.
            let Some(kept) = self.db.idempotency_read(owner, key).await? else { continue };
            if kept.operation != *operation || kept.request_hash != *request_hash {
                return Err(DomainError::IdempotencyKeyReused);
            }
            if let Some((status, body)) = kept.answer {
                let status = u16::try_from(status)
                    .map_err(|_| DomainError::Internal(format!("stored status {status} is not a status")))?;
                return Ok(Found::Answered(Answer { status, body }));
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(DomainError::IdempotencyInProgress(self.wait.as_secs()));
            }
            tokio::time::sleep(pause.min(deadline - now)).await;
            pause = (pause * 2).min(LONGEST_POLL);
        }
    }
}
