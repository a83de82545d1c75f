//! Runs and their journals. Every write of a run's driver names the lease
//! epoch it claimed and only lands while the run is still `running` under
//! that epoch, so a cancelled run or a server that lost its lease writes
//! nothing.

/// `<start> <the statuses of a run that is not over> <rest>`, built at
/// compile time (a session has at most one such run).
macro_rules! with_live_statuses {
    ($start:literal, $rest:literal) => {
        concat!($start, " ('pending', 'running', 'requires_action', 'paused') ", $rest)
    };
}

mod sessions;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{Stamped, append_in};
use crate::db::{Db, Engine, StoreError, is_unique_violation};
use crate::mail::{Queued, queue_in};
use crate::runs::model::{
    EventRecord, PendingApproval, Run, RunEvent, RunFailure, RunSpec, RunStatus, Step, StepRecord, ToolCall,
    ToolInFlight,
};

/// `SELECT <every run column> FROM runs <rest>`, built at compile time.
macro_rules! select_runs {
    ($rest:literal) => {
        concat!(
            "SELECT id, org_id, user_id, key_id, project_id, session_id, route, status, spec, step_count, prompt_tokens, \
             completion_tokens, cost_micros, output, pending, pending_approval, tool_in_flight, failure, created_at, updated_at, started_at, \
             finished_at FROM runs ",
            $rest
        )
    };
}

/// A stored value that does not read back.
fn corrupt(what: String) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(what.into()))
}

fn decode<T: serde::de::DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|err| corrupt(format!("runs.{column}: {err}")))
}

fn encode<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|err| corrupt(format!("a run value: {err}")))
}

fn count(row: &AnyRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|_| corrupt(format!("runs.{column} is negative")))
}

fn run(row: &AnyRow) -> Result<Run, StoreError> {
    let status: String = row.try_get("status")?;
    let spec: String = row.try_get("spec")?;
    let pending: Option<String> = row.try_get("pending")?;
    let pending_approval: Option<String> = row.try_get("pending_approval")?;
    let tool_in_flight: Option<String> = row.try_get("tool_in_flight")?;
    let failure: Option<String> = row.try_get("failure")?;
    let step_count: i32 = row.try_get("step_count")?;
    Ok(Run {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        user_id: row.try_get("user_id")?,
        key_id: row.try_get("key_id")?,
        project_id: row.try_get("project_id")?,
        session_id: row.try_get("session_id")?,
        route: row.try_get("route")?,
        status: RunStatus::parse(&status).ok_or_else(|| corrupt(format!("runs.status {status:?}")))?,
        spec: decode::<RunSpec>("spec", &spec)?,
        step_count: u32::try_from(step_count)
            .map_err(|_| corrupt("runs.step_count is negative".to_owned()))?,
        prompt_tokens: count(row, "prompt_tokens")?,
        completion_tokens: count(row, "completion_tokens")?,
        cost_micros: row.try_get("cost_micros")?,
        output: row.try_get("output")?,
        pending: pending
            .map(|text| decode::<Vec<ToolCall>>("pending", &text))
            .transpose()?
            .unwrap_or_default(),
        pending_approval: pending_approval
            .map(|text| decode::<PendingApproval>("pending_approval", &text))
            .transpose()?,
        tool_in_flight: tool_in_flight
            .map(|text| decode::<ToolInFlight>("tool_in_flight", &text))
            .transpose()?,
        failure: failure.map(|text| decode::<RunFailure>("failure", &text)).transpose()?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        steps: Vec::new(),
    })
}

fn step(row: &AnyRow) -> Result<StepRecord, StoreError> {
    let index: i32 = row.try_get("idx")?;
    let body: String = row.try_get("body")?;
    Ok(StepRecord {
        index: u32::try_from(index).map_err(|_| corrupt("run_steps.idx is negative".to_owned()))?,
        created_at: row.try_get("step_created_at")?,
        step: decode::<Step>("steps", &body)?,
    })
}

fn signed(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// What a driver writes with a step: the run's new totals.
#[derive(Debug, Clone, Copy)]
pub struct Totals {
    pub step_count: u32,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cost_micros: i64,
}

impl Totals {
    pub fn of(run: &Run) -> Self {
        Self {
            step_count: run.step_count,
            prompt_tokens: run.prompt_tokens,
            completion_tokens: run.completion_tokens,
            cost_micros: run.cost_micros,
        }
    }
}

/// Journal entries a driver writes, the events that tell of them, the
/// run's totals after them, and the audit event they come with.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    pub steps: &'a [StepRecord],
    pub events: &'a [RunEvent],
    pub totals: Totals,
    pub audit: Option<&'a Stamped>,
}

/// Which runs of an org a list holds.
#[derive(Debug, Clone, Copy)]
pub struct RunFilter<'a> {
    pub org_id: &'a str,
    /// Only this user's runs (whom a member may see).
    pub user_id: Option<&'a str>,
    /// Only this project's runs (what a key narrowed to it may see).
    pub project_id: Option<&'a str>,
    pub status: Option<RunStatus>,
    /// Only runs this user or API key started.
    pub principal: Option<&'a str>,
    /// Only runs created at or after this time.
    pub since: Option<i64>,
    /// Only runs of this session.
    pub session_id: Option<&'a str>,
}

/// How a new run is stored.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// Left for a driver.
    Pending,
    /// Claimed by the server that created it, which drives it at once.
    Claimed { owner: &'a str, expires_at: i64 },
    /// Refused by its route's policy before any step.
    Blocked(&'a RunFailure),
}

/// Whether a new run was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    Stored,
    /// The session it continues was deleted meanwhile.
    SessionGone,
    /// The session it continues has a run that is not over.
    SessionBusy,
}

/// What answering client tool calls did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answered {
    /// Some calls are still waiting.
    StillWaiting,
    /// Every call is answered and the run is claimed again under `epoch`.
    Resumed { epoch: i64 },
    /// The run moved on meanwhile; nothing was written.
    Conflict,
}

/// How a driver leaves a run it stops driving.
#[derive(Debug)]
pub struct Outcome<'a> {
    pub status: RunStatus,
    pub output: Option<&'a str>,
    pub pending: &'a [ToolCall],
    pub pending_approval: Option<&'a PendingApproval>,
    pub failure: Option<&'a RunFailure>,
    /// The steps journaled with it (the final answer, if any), their
    /// events, the run's totals as it stops, and the audit event of its end.
    pub progress: Progress<'a>,
    /// Mail that goes out with it (to the approvers of a run that pauses).
    pub mail: &'a [Queued],
}

impl Outcome<'_> {
    /// The events that tell of it, after those of its steps.
    fn events(&self) -> Vec<RunEvent> {
        let mut events = self.progress.events.to_vec();
        events.push(RunEvent::Status { status: self.status });
        match self.status {
            RunStatus::RequiresAction => {
                events.push(RunEvent::RequiresAction { pending: self.pending.to_vec() })
            }
            RunStatus::Paused => {
                if let Some(pending_approval) = self.pending_approval {
                    events.push(RunEvent::Paused { pending_approval: pending_approval.clone() });
                }
            }
            RunStatus::Completed => events.push(RunEvent::Completed {
                output: self.output.unwrap_or_default().to_owned(),
                prompt_tokens: self.progress.totals.prompt_tokens,
                completion_tokens: self.progress.totals.completion_tokens,
                cost_micros: self.progress.totals.cost_micros,
            }),
            _ => {}
        }
        if let Some(failure) = self.failure {
            events.push(RunEvent::Failed { failure: failure.clone() });
        }
        events
    }
}

impl Db {
    /// Stores a new run: `pending`, `running` (claimed by its creator's
    /// server under epoch 1), or `blocked` by its route's policy; with the
    /// audit events of its creation (and of its end, when blocked).
    pub async fn run_insert(
        &self,
        run: &Run,
        start: Start<'_>,
        audit: &[Stamped],
    ) -> Result<Inserted, StoreError> {
        let mut tx = self.pool().begin().await?;
        if let Some(session_id) = &run.session_id {
            // Taking the session's row first serialises this with its deletion.
            let touched = sqlx::query("UPDATE run_sessions SET updated_at = $1 WHERE id = $2")
                .bind(run.created_at)
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
            if touched.rows_affected() == 0 {
                return Ok(Inserted::SessionGone);
            }
        }
        let (status, owner, epoch, expires_at, started_at) = match start {
            Start::Claimed { owner, expires_at } => {
                (RunStatus::Running, Some(owner), 1_i64, Some(expires_at), Some(run.created_at))
            }
            Start::Pending => (RunStatus::Pending, None, 0, None, None),
            Start::Blocked(_) => (RunStatus::Blocked, None, 0, None, None),
        };
        let failure = match start {
            Start::Blocked(failure) => Some(failure),
            Start::Pending | Start::Claimed { .. } => None,
        };
        let inserted = sqlx::query(
            "INSERT INTO runs (id, org_id, user_id, key_id, project_id, route, status, spec, lease_owner, \
             lease_epoch, lease_expires_at, started_at, created_at, updated_at, failure, finished_at, session_id, \
             session_message) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $14, $15, $16, $17)",
        )
        .bind(&run.id)
        .bind(&run.org_id)
        .bind(&run.user_id)
        .bind(&run.key_id)
        .bind(&run.project_id)
        .bind(&run.route)
        .bind(status.as_str())
        .bind(encode(&run.spec)?)
        .bind(owner)
        .bind(epoch)
        .bind(expires_at)
        .bind(started_at)
        .bind(run.created_at)
        .bind(failure.map(encode).transpose()?)
        .bind(failure.map(|_| run.created_at))
        .bind(&run.session_id)
        .bind(run.spec.session_message.as_ref().map(encode).transpose()?)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            Err(err) if run.session_id.is_some() && is_unique_violation(&err) => {
                return Ok(Inserted::SessionBusy);
            }
            Err(err) => return Err(err.into()),
        }
        let mut events = vec![RunEvent::Status { status }];
        events.extend(failure.map(|failure| RunEvent::Failed { failure: failure.clone() }));
        append_events(&mut tx, &run.id, &events, run.created_at).await?;
        for stamped in audit {
            append_in(&mut tx, stamped).await?;
        }
        tx.commit().await?;
        Ok(Inserted::Stored)
    }

    /// Journals an approver's decision on a run `paused` with `step_count`
    /// steps, with its audit event, and claims the run again for `owner`
    /// until `expires_at`. The epoch claimed; none, with nothing written,
    /// when the run moved on meanwhile.
    pub async fn run_decide(
        &self,
        id: &str,
        step_count: u32,
        (decision, audit): (&StepRecord, &Stamped),
        (owner, expires_at): (&str, i64),
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let waiting = Waiting { status: RunStatus::Paused, step_count };
        let Some(epoch) = reclaim(&mut tx, id, waiting, step_count + 1, (owner, expires_at), now).await?
        else {
            return Ok(None);
        };
        insert_steps(&mut tx, id, std::slice::from_ref(decision)).await?;
        let mut events = RunEvent::of_step(decision);
        events.push(RunEvent::Status { status: RunStatus::Running });
        append_events(&mut tx, id, &events, now).await?;
        append_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(Some(epoch))
    }

    /// Extends the lease `epoch` holds to `expires_at`, noting `starting`,
    /// the call of a tool that is not idempotent about to be made, when
    /// given. False when the run is no longer `running` under `epoch` (then
    /// the call must not be made).
    pub async fn run_renew_lease(
        &self,
        id: &str,
        epoch: i64,
        expires_at: i64,
        starting: Option<&ToolInFlight>,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(
            "UPDATE runs SET lease_expires_at = $1, tool_in_flight = COALESCE($4, tool_in_flight) \
             WHERE id = $2 AND lease_epoch = $3 AND status = 'running'",
        )
        .bind(expires_at)
        .bind(id)
        .bind(epoch)
        .bind(starting.map(encode).transpose()?)
        .execute(self.pool())
        .await?;
        Ok(updated.rows_affected() > 0)
    }

    /// The runs waiting for client tool outputs since before `cutoff`, up
    /// to 100 of them.
    pub async fn runs_waiting_since(&self, cutoff: i64) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM runs WHERE status = 'requires_action' AND updated_at < $1 ORDER BY id LIMIT 100",
        )
        .bind(cutoff)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
    }

    /// Ends in `error` the run, if it still waits for client tool outputs
    /// since before `cutoff`, with its events and `audit` (the end's audit
    /// event) in the same transaction. Whether it ended it.
    pub async fn run_time_out(
        &self,
        id: &str,
        cutoff: i64,
        failure: &RunFailure,
        audit: &Stamped,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            "UPDATE runs SET status = 'error', pending = NULL, failure = $1, finished_at = $2, updated_at = $2 \
             WHERE id = $3 AND status = 'requires_action' AND updated_at < $4",
        )
        .bind(encode(failure)?)
        .bind(now)
        .bind(id)
        .bind(cutoff)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        let events =
            [RunEvent::Status { status: RunStatus::Error }, RunEvent::Failed { failure: failure.clone() }];
        append_events(&mut tx, id, &events, now).await?;
        append_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Gives up `owner`'s leases of runs still `running`, leaving them for
    /// the next server to claim at once. How many.
    pub async fn run_leases_release(&self, owner: &str, now: i64) -> Result<u64, StoreError> {
        let released = sqlx::query(
            "UPDATE runs SET lease_owner = NULL, lease_expires_at = $1, updated_at = $2 \
             WHERE lease_owner = $3 AND status = 'running'",
        )
        .bind(now - 1)
        .bind(now)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(released.rows_affected())
    }

    /// Claims up to `limit` runs no server is driving — `pending`, or
    /// `running` under a lease that ran out — for `owner` until
    /// `expires_at`, each under its next epoch and with the event that it
    /// runs; returns their ids and epochs. On PostgreSQL the candidates are
    /// locked with `FOR UPDATE SKIP LOCKED`, so replicas looking at once
    /// split the runs between them instead of queueing on the same rows;
    /// SQLite's one writer gives the same.
    pub async fn runs_claim_due(
        &self,
        owner: &str,
        now: i64,
        expires_at: i64,
        limit: i64,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let claim = match self.engine() {
            Engine::Postgres => claim_due!(" FOR UPDATE SKIP LOCKED"),
            Engine::Sqlite => claim_due!(""),
        };
        let mut tx = self.pool().begin().await?;
        let rows =
            sqlx::query(claim).bind(owner).bind(expires_at).bind(now).bind(limit).fetch_all(&mut *tx).await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: String = row.try_get("id")?;
            append_events(&mut tx, &id, &[RunEvent::Status { status: RunStatus::Running }], now).await?;
            claimed.push((id, row.try_get("lease_epoch")?));
        }
        tx.commit().await?;
        Ok(claimed)
    }

    /// The run without its journal.
    pub async fn run_by_id(&self, id: &str) -> Result<Option<Run>, StoreError> {
        let row = sqlx::query(select_runs!("WHERE id = $1")).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(run).transpose()
    }

    /// The run with its journal, in order: in one statement, a row per
    /// step (or one with no step), each carrying the run's columns.
    pub async fn run_with_steps(&self, id: &str) -> Result<Option<Run>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT r.*, s.idx, s.body, s.step_created_at FROM (",
            select_runs!("WHERE id = $1"),
            ") r LEFT JOIN (SELECT run_id, idx, body, created_at AS step_created_at FROM run_steps \
             WHERE run_id = $1) s ON s.run_id = r.id ORDER BY s.idx",
        ))
        .bind(id)
        .fetch_all(self.pool())
        .await?;
        let Some(first) = rows.first() else { return Ok(None) };
        let mut run = run(first)?;
        if first.try_get::<Option<i32>, _>("idx")?.is_some() {
            run.steps = rows.iter().map(step).collect::<Result<_, _>>()?;
        }
        Ok(Some(run))
    }

    /// The runs `filter` matches with their journals, in id order after
    /// `after`, newest last.
    pub async fn runs_in_org(
        &self,
        filter: &RunFilter<'_>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Run>, StoreError> {
        let rows = filtered(
            sqlx::query(select_runs!(
                "WHERE org_id = $1 AND ($2 = '' OR user_id = $2) AND ($3 = '' OR project_id = $3) \
             AND ($4 = '' OR status = $4) AND ($5 = '' OR user_id = $5 OR key_id = $5) AND created_at >= $6 \
             AND id > $7 AND ($8 = '' OR session_id = $8) ORDER BY id LIMIT $9"
            )),
            filter,
            after,
        )
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut runs: Vec<Run> = rows.iter().map(run).collect::<Result<_, _>>()?;
        let Some(last) = runs.last().map(|run| run.id.clone()) else { return Ok(runs) };
        // The page is every matching run in (after, last]: one read of their journals.
        let steps = filtered(sqlx::query(
            "SELECT s.run_id, s.idx, s.body, s.created_at AS step_created_at FROM run_steps s JOIN runs r ON r.id = s.run_id \
             WHERE r.org_id = $1 AND ($2 = '' OR r.user_id = $2) AND ($3 = '' OR r.project_id = $3) \
             AND ($4 = '' OR r.status = $4) AND ($5 = '' OR r.user_id = $5 OR r.key_id = $5) \
             AND r.created_at >= $6 AND r.id > $7 AND ($8 = '' OR r.session_id = $8) AND r.id <= $9 \
             ORDER BY s.run_id, s.idx",
        ), filter, after)
        .bind(&last)
        .fetch_all(self.pool())
        .await?;
        let mut at = 0;
        for row in &steps {
            let run_id: String = row.try_get("run_id")?;
            while at < runs.len() && runs[at].id != run_id {
                at += 1;
            }
            if let Some(run) = runs.get_mut(at) {
                run.steps.push(step(row)?);
            }
        }
        Ok(runs)
    }

    /// Takes the lease of a run that waits for a driver (`pending`), or
    /// whose driver's lease ran out (`running`), for `owner` until
    /// `expires_at`. The new epoch, or `None` when someone else holds it or
    /// the run no longer needs driving.
    pub async fn run_claim(
        &self,
        id: &str,
        owner: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let row = sqlx::query(claim!(concat!("id = $4 AND (", due!(), ")")))
            .bind(owner)
            .bind(expires_at)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let epoch: i64 = row.try_get("lease_epoch")?;
        append_events(&mut tx, id, &[RunEvent::Status { status: RunStatus::Running }], now).await?;
        tx.commit().await?;
        Ok(Some(epoch))
    }

    /// Journals `progress` and extends the lease to `expires_at`. False,
    /// with nothing written, when the run is no longer `running` under
    /// `epoch`.
    pub async fn run_record_steps(
        &self,
        id: &str,
        epoch: i64,
        progress: Progress<'_>,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let Progress { steps, events, totals, audit } = progress;
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(concat!(
            "UPDATE runs SET step_count = $1, prompt_tokens = $2, completion_tokens = $3, cost_micros = $4, \
             updated_at = $5, lease_expires_at = $6, tool_in_flight = NULL \
             WHERE id = $7 AND lease_epoch = $8 AND status = 'running' RETURNING ",
            last_event!("$7"),
        ))
        .bind(i32::try_from(totals.step_count).unwrap_or(i32::MAX))
        .bind(signed(totals.prompt_tokens))
        .bind(signed(totals.completion_tokens))
        .bind(totals.cost_micros)
        .bind(now)
        .bind(expires_at)
        .bind(id)
        .bind(epoch)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(updated) = updated else { return Ok(false) };
        insert_steps(&mut tx, id, steps).await?;
        append_events_after(&mut tx, id, updated.try_get("last_event")?, events, now).await?;
        if let Some(stamped) = audit {
            append_in(&mut tx, stamped).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Leaves the run as `outcome` says and gives up its lease. False when
    /// the run is no longer `running` under `epoch`.
    pub async fn run_settle(
        &self,
        id: &str,
        epoch: i64,
        outcome: &Outcome<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let pending = if outcome.pending.is_empty() { None } else { Some(encode(&outcome.pending)?) };
        let pending_approval = outcome.pending_approval.map(encode).transpose()?;
        let failure = outcome.failure.map(encode).transpose()?;
        let finished_at = outcome.status.is_final().then_some(now);
        let mut tx = self.pool().begin().await?;
        let Progress { steps, totals, audit, .. } = outcome.progress;
        let updated = sqlx::query(concat!(
            "UPDATE runs SET status = $1, output = $2, pending = $3, pending_approval = $9, failure = $4, \
             finished_at = $5, updated_at = $6, lease_owner = NULL, lease_expires_at = NULL, \
             step_count = $10, prompt_tokens = $11, completion_tokens = $12, cost_micros = $13 \
             WHERE id = $7 AND lease_epoch = $8 AND status = 'running' RETURNING ",
            last_event!("$7"),
        ))
        .bind(outcome.status.as_str())
        .bind(outcome.output)
        .bind(pending)
        .bind(failure)
        .bind(finished_at)
        .bind(now)
        .bind(id)
        .bind(epoch)
        .bind(pending_approval)
        .bind(i32::try_from(totals.step_count).unwrap_or(i32::MAX))
        .bind(signed(totals.prompt_tokens))
        .bind(signed(totals.completion_tokens))
        .bind(totals.cost_micros)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(updated) = updated else { return Ok(false) };
        insert_steps(&mut tx, id, steps).await?;
        append_events_after(&mut tx, id, updated.try_get("last_event")?, &outcome.events(), now).await?;
        for message in outcome.mail {
            queue_in(&mut tx, message, now).await?;
        }
        if let Some(stamped) = audit {
            append_in(&mut tx, stamped).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Journals client tool outputs for a run waiting in `requires_action`
    /// with `step_count` steps. The calls still unanswered stay pending;
    /// with none left the run goes back to `running`, claimed for `owner`
    /// until `expires_at`. Whether it was written, and the epoch claimed;
    /// nothing is written when the run moved on meanwhile or a call was
    /// answered by someone else. `audit` holds the events of the calls.
    pub async fn run_answer_tool_calls(
        &self,
        id: &str,
        step_count: u32,
        (steps, audit): (&[StepRecord], &[Stamped]),
        still_pending: &[ToolCall],
        (owner, expires_at): (&str, i64),
        now: i64,
    ) -> Result<Answered, StoreError> {
        let total = step_count + u32::try_from(steps.len()).unwrap_or(u32::MAX);
        let mut tx = self.pool().begin().await?;
        let answered = if still_pending.is_empty() {
            let waiting = Waiting { status: RunStatus::RequiresAction, step_count };
            match reclaim(&mut tx, id, waiting, total, (owner, expires_at), now).await? {
                Some(epoch) => Answered::Resumed { epoch },
                None => Answered::Conflict,
            }
        } else {
            let updated = sqlx::query(
                "UPDATE runs SET pending = $1, step_count = $2, updated_at = $3 \
                 WHERE id = $4 AND status = 'requires_action' AND step_count = $5",
            )
            .bind(encode(&still_pending)?)
            .bind(i32::try_from(total).unwrap_or(i32::MAX))
            .bind(now)
            .bind(id)
            .bind(i32::try_from(step_count).unwrap_or(i32::MAX))
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() == 0 { Answered::Conflict } else { Answered::StillWaiting }
        };
        if answered == Answered::Conflict {
            return Ok(answered);
        }
        insert_steps(&mut tx, id, steps).await?;
        let mut events: Vec<RunEvent> = steps.iter().flat_map(RunEvent::of_step).collect();
        if matches!(answered, Answered::Resumed { .. }) {
            events.push(RunEvent::Status { status: RunStatus::Running });
        }
        append_events(&mut tx, id, &events, now).await?;
        for stamped in audit {
            append_in(&mut tx, stamped).await?;
        }
        tx.commit().await?;
        Ok(answered)
    }

    /// Cancels a run that has not ended, with the audit event of its end.
    /// False when it had.
    pub async fn run_cancel(&self, id: &str, audit: &Stamped, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let updated = sqlx::query(
            with_live_statuses!(
                "UPDATE runs SET status = 'cancelled', pending = NULL, pending_approval = NULL, finished_at = $1, \
                 updated_at = $1, lease_owner = NULL, lease_expires_at = NULL WHERE id = $2 AND status IN",
                ""
            ),
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        append_events(&mut tx, id, &[RunEvent::Status { status: RunStatus::Cancelled }], now).await?;
        append_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Up to `limit` events of the run after `after`, in order.
    pub async fn run_events_after(
        &self,
        id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT run_id, seq, data, created_at FROM run_events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let data: String = row.try_get("data")?;
                Ok(EventRecord {
                    run_id: row.try_get("run_id")?,
                    seq: row.try_get("seq")?,
                    created_at: row.try_get("created_at")?,
                    event: decode::<RunEvent>("events", &data)?,
                })
            })
            .collect()
    }
}

/// A run waiting (for tool outputs, or an approver) with this many steps.
#[derive(Debug, Clone, Copy)]
struct Waiting {
    status: RunStatus,
    step_count: u32,
}

/// Puts a run that still waits as `waiting` says back to `running` with
/// `total` steps, claimed for `owner` until `expires_at`. The epoch claimed;
/// none when the run moved on meanwhile.
async fn reclaim(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: &str,
    waiting: Waiting,
    total: u32,
    (owner, expires_at): (&str, i64),
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let row = sqlx::query(
        "UPDATE runs SET status = 'running', pending = NULL, pending_approval = NULL, step_count = $1, \
         updated_at = $2, lease_owner = $3, lease_epoch = lease_epoch + 1, lease_expires_at = $4 \
         WHERE id = $5 AND status = $6 AND step_count = $7 RETURNING lease_epoch",
    )
    .bind(i32::try_from(total).unwrap_or(i32::MAX))
    .bind(now)
    .bind(owner)
    .bind(expires_at)
    .bind(id)
    .bind(waiting.status.as_str())
    .bind(i32::try_from(waiting.step_count).unwrap_or(i32::MAX))
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|row| row.try_get("lease_epoch")).transpose().map_err(StoreError::from)
}

/// Binds `$1`–`$8` of a list query: the filter's columns, `after`, then the session.
fn filtered<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    filter: &RunFilter<'q>,
    after: Option<&'q str>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    query
        .bind(filter.org_id)
        .bind(filter.user_id.unwrap_or(""))
        .bind(filter.project_id.unwrap_or(""))
        .bind(filter.status.map_or("", RunStatus::as_str))
        .bind(filter.principal.unwrap_or(""))
        .bind(filter.since.unwrap_or(i64::MIN))
        .bind(after.unwrap_or(""))
        .bind(filter.session_id.unwrap_or(""))
}

/// `UPDATE runs` claiming the runs `$which` selects for `$1` until `$2`
/// (now is `$3`), each under its next epoch; returns their ids and epochs.
macro_rules! claim {
    ($which:expr) => {
        concat!(
            "UPDATE runs SET status = 'running', lease_owner = $1, lease_epoch = lease_epoch + 1, \
             lease_expires_at = $2, started_at = COALESCE(started_at, $3), updated_at = $3 WHERE ",
            $which,
            " RETURNING id, lease_epoch"
        )
    };
}
use claim;

/// The runs no server drives at `$3`: not yet claimed, or under a lease that ran out.
macro_rules! due {
    () => {
        "status = 'pending' OR (status = 'running' AND lease_expires_at < $3)"
    };
}
use due;

/// The claim of up to `$4` runs due to be driven (see [`Db::runs_claim_due`]),
/// with the lock clause of the engine.
macro_rules! claim_due {
    ($lock:literal) => {
        claim!(concat!("id IN (SELECT id FROM runs WHERE ", due!(), " ORDER BY id LIMIT $4", $lock, ")"))
    };
}
use claim_due;

/// The number of the last event of the run `$id` names, as `last_event`:
/// read in the `RETURNING` of the update of the run's row that every
/// transaction appending events starts with, so writers take turns.
macro_rules! last_event {
    ($id:literal) => {
        concat!(
            "(SELECT CAST(COALESCE(MAX(seq), 0) AS BIGINT) FROM run_events WHERE run_id = ",
            $id,
            ") AS last_event"
        )
    };
}
use last_event;

/// Inserts of one to four events at once: the run's id is `$1`, the time `$2`,
/// then each event's number, kind and data.
const INSERT_EVENTS: [&str; 4] = [
    "INSERT INTO run_events (run_id, seq, kind, data, created_at) VALUES ($1, $3, $4, $5, $2)",
    "INSERT INTO run_events (run_id, seq, kind, data, created_at) VALUES ($1, $3, $4, $5, $2), \
     ($1, $6, $7, $8, $2)",
    "INSERT INTO run_events (run_id, seq, kind, data, created_at) VALUES ($1, $3, $4, $5, $2), \
     ($1, $6, $7, $8, $2), ($1, $9, $10, $11, $2)",
    "INSERT INTO run_events (run_id, seq, kind, data, created_at) VALUES ($1, $3, $4, $5, $2), \
     ($1, $6, $7, $8, $2), ($1, $9, $10, $11, $2), ($1, $12, $13, $14, $2)",
];

/// Appends `events` after the run's event number `last`, a few per statement.
async fn append_events_after(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: &str,
    last: i64,
    events: &[RunEvent],
    now: i64,
) -> Result<(), StoreError> {
    let mut seq = last;
    for chunk in events.chunks(INSERT_EVENTS.len()) {
        let mut insert = sqlx::query(INSERT_EVENTS[chunk.len() - 1]).bind(run_id).bind(now);
        for event in chunk {
            seq += 1;
            insert = insert.bind(seq).bind(event.kind()).bind(encode(event)?);
        }
        insert.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Appends `events` after the run's last one. Called in the transaction
/// that made the change the events tell of, after its guarded update, so
/// writers of one run are serialised and the numbers have no gaps.
async fn append_events(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: &str,
    events: &[RunEvent],
    now: i64,
) -> Result<(), StoreError> {
    for event in events {
        // The next number of the run's events; the run's row, updated
        // first in every transaction that appends, keeps writers in turn.
        sqlx::query(
            "INSERT INTO run_events (run_id, seq, kind, data, created_at) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM run_events WHERE run_id = $1",
        )
        .bind(run_id)
        .bind(event.kind())
        .bind(encode(event)?)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn insert_steps(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run_id: &str,
    steps: &[StepRecord],
) -> Result<(), StoreError> {
    for record in steps {
        sqlx::query(
            "INSERT INTO run_steps (run_id, idx, kind, tool_call_id, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(run_id)
        .bind(i32::try_from(record.index).unwrap_or(i32::MAX))
        .bind(record.step.kind())
        .bind(record.step.tool_call_id())
        .bind(encode(&record.step)?)
        .bind(record.created_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
