//! The resumer: every few seconds, each server looks for runs no server is
//! driving — background runs still `pending`, and runs whose server stopped
//! or crashed and let its lease run out — and drives them; and ends the runs
//! that waited for client tool outputs longer than
//! `runs.client_tool_timeout_secs`. Claims are taken
//! in the database, a batch at a time, so several servers never drive one
//! run at once.

use std::time::Duration;

use crate::runs::Runs;
use crate::runs::model::{RunFailure, RunStatus};

/// Most runs one look picks up.
const BATCH: i64 = 50;

impl Runs {
    /// Ends the runs that waited for client tool outputs too long.
    async fn time_out_waiting_runs(&self) -> Result<(), crate::db::StoreError> {
        let waited_secs = self.inner.config.client_tool_timeout_secs;
        let now = self.clock().now();
        let cutoff = now.saturating_sub(i64::try_from(waited_secs).unwrap_or(i64::MAX));
        let failure = RunFailure::ClientToolTimeout { waited_secs };
        for id in self.db().runs_waiting_since(cutoff).await? {
            let Some(run) = self.db().run_by_id(&id).await? else { continue };
            let finished = self.finished_event(&run, RunStatus::Error, Some(&failure));
            if self.db().run_time_out(&id, cutoff, &failure, &finished, now).await? {
                self.ring(&id);
                self.metrics().finished(&run.route, RunStatus::Error.as_str());
            }
        }
        Ok(())
    }
}

/// The resumer task; stopping it leaves runs as they are, for the next look.
pub struct Resumer {
    task: tokio::task::JoinHandle<()>,
}

impl Resumer {
    pub fn spawn(runs: Runs) -> Self {
        let every = Duration::from_secs(runs.inner.config.resume_interval_secs.max(1));
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = runs.inner.stopping.cancelled() => return,
                }
                let now = runs.clock().now();
                match runs.db().runs_claim_due(runs.owner(), now, now + runs.lease_secs(), BATCH).await {
                    Ok(claimed) => {
                        for (id, epoch) in claimed {
                            runs.spawn_drive_claimed(id, epoch);
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "could not claim runs to resume; will retry"),
                }
                if let Err(err) = runs.time_out_waiting_runs().await {
                    tracing::warn!(error = %err, "could not end runs that waited too long; will retry");
                }
            }
        });
        Self { task }
    }

    pub fn stop(self) {
        self.task.abort();
    }
}
