//! A run's events: a page of them after a sequence number, and the live
//! stream that replays what a client missed and follows the run until it
//! ends — on any replica, since every event is in the database.

use std::collections::VecDeque;
use std::time::Duration;

use futures::Stream;

use crate::kernel::error::{DomainError, DomainResult, Resource};
use crate::kernel::principal::{Principal, Scope};
use crate::runs::Runs;
use crate::runs::model::EventRecord;

/// How often a stream looks for events written by other replicas.
const POLL: Duration = Duration::from_secs(1);
/// Events read from the database at a time.
const BATCH: i64 = 100;

impl Runs {
    /// Up to `limit` events of a run the caller may see, after `after`, and
    /// whether more follow.
    pub async fn events(
        &self,
        principal: &Principal,
        id: &str,
        after: i64,
        limit: i64,
    ) -> DomainResult<(Vec<EventRecord>, bool)> {
        self.visible(principal, id).await?;
        let mut events = self.db().run_events_after(id, after, limit + 1).await?;
        let more = events.len() > usize::try_from(limit).unwrap_or(usize::MAX);
        events.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok((events, more))
    }

    /// The run's events after `after`, then each new one as it is written,
    /// ending once the run has ended and every event went out. Checks that
    /// the caller may see the run first.
    pub async fn follow(
        &self,
        principal: &Principal,
        id: &str,
        after: i64,
    ) -> DomainResult<impl Stream<Item = DomainResult<EventRecord>> + Send + 'static> {
        self.visible(principal, id).await?;
        let follower =
            Follower { runs: self.clone(), id: id.to_owned(), after, ready: VecDeque::new(), ended: false };
        Ok(futures::stream::unfold(follower, |mut follower| async move {
            let next = follower.next().await.transpose()?;
            Some((next, follower))
        }))
    }

    /// 404 unless the caller may see the run.
    async fn visible(&self, principal: &Principal, id: &str) -> DomainResult<()> {
        principal.require_scope(Scope::Runs)?;
        let run = self.db().run_by_id(id).await?.ok_or(DomainError::NotFound(Resource::Run))?;
        if !self.may_see(principal, &run).await? {
            return Err(DomainError::NotFound(Resource::Run));
        }
        Ok(())
    }
}

struct Follower {
    runs: Runs,
    id: String,
    /// The last sequence number handed out.
    after: i64,
    ready: VecDeque<EventRecord>,
    ended: bool,
}

impl Follower {
    /// The next event; `None` once the run ended and its events are out.
    async fn next(&mut self) -> DomainResult<Option<EventRecord>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                self.after = event.seq;
                return Ok(Some(event));
            }
            if self.ended {
                return Ok(None);
            }
            let bell = self.runs.bell(&self.id);
            let rung = bell.notified();
            tokio::pin!(rung);
            rung.as_mut().enable();
            let batch = self.runs.db().run_events_after(&self.id, self.after, BATCH).await?;
            if !batch.is_empty() {
                self.ready.extend(batch);
                continue;
            }
            // Nothing new: the run may have ended (its last events are out), or not yet.
            let run =
                self.runs.db().run_by_id(&self.id).await?.ok_or(DomainError::NotFound(Resource::Run))?;
            if run.status.is_final() {
                // Its final events were written with the final status: read once more.
                let rest = self.runs.db().run_events_after(&self.id, self.after, BATCH).await?;
                self.ended = rest.len() < usize::try_from(BATCH).unwrap_or(usize::MAX);
                self.ready.extend(rest);
                continue;
            }
            let _ = tokio::time::timeout(POLL, rung).await;
        }
    }
}
