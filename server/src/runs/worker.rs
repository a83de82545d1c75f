//! The resumer: every few seconds, each server looks for runs no server is
//! driving — background runs still `pending`, and runs whose server stopped
//! or crashed and let its lease run out — and drives them. Claims are taken
//! in the database, so several servers never drive one run at once.

use std::time::Duration;

use crate::runs::Runs;

/// Most runs one look picks up.
const BATCH: i64 = 50;

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
                match runs.db().runs_to_resume(runs.clock().now(), BATCH).await {
                    Ok(ids) => ids.into_iter().for_each(|id| runs.spawn_drive(id)),
                    Err(err) => tracing::warn!(error = %err, "could not look for runs to resume; will retry"),
                }
            }
        });
        Self { task }
    }

    pub fn stop(self) {
        self.task.abort();
    }
}
