//! The supervised background task that delivers `pending` outbox rows over
//! SMTP. It wakes when a request has queued mail and otherwise polls, so rows
//! written by other replicas, and retries, go out too.
//!
//! A row is claimed by pushing its `next_attempt_at` past a lease with a
//! conditional UPDATE, so replicas never send one row concurrently; a replica
//! that dies mid-send leaves the row to be retried once the lease runs out.
//! A refused or failed send is retried with exponential backoff (5 s doubling
//! up to an hour), for as long as it takes: a message is never dropped because
//! the mail server is down. Only a message that can never be sent (an
//! unusable address) is marked `failed`.

use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::db::Db;
use crate::kernel::clock::Clock;
use crate::mail::smtp::{SendError, SmtpSender};
use crate::mail::{BodyKey, Mailer, Message};

/// How often the outbox is checked when nothing wakes the task.
const POLL_EVERY: Duration = Duration::from_secs(5);
/// How long a claimed row is reserved for its sender.
const LEASE_SECS: i64 = 120;
/// The first retry comes this long after a failure; each further one doubles.
const FIRST_RETRY_SECS: i64 = 5;
const MAX_RETRY_SECS: i64 = 3600;
/// Most rows sent in one round before checking for shutdown again.
const ROUND: usize = 100;
/// How long a panicked worker waits before it is restarted.
const RESTART_AFTER: Duration = Duration::from_secs(1);
/// How long shutdown waits for a send in progress.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// The running delivery task; [`Delivery::stop`] ends it.
pub struct Delivery {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Delivery {
    /// Starts delivery when SMTP is configured; without it there is nothing
    /// to deliver (messages stay in the dev outbox) and `None` is returned.
    pub fn spawn(db: Db, mailer: Mailer, clock: Clock) -> Option<Self> {
        mailer.smtp()?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(supervise(db, mailer, clock, stopped));
        Some(Self { stop, task })
    }

    /// Asks the task to stop, lets a send in progress finish (for a while),
    /// and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if tokio::time::timeout(STOP_GRACE, &mut self.task).await.is_err() {
            tracing::warn!("mail delivery did not stop in time; the row in flight will be retried");
            self.task.abort();
        }
    }
}

/// Runs the worker, restarting it if it panics, until asked to stop.
async fn supervise(db: Db, mailer: Mailer, clock: Clock, mut stopped: watch::Receiver<bool>) {
    loop {
        let worker = tokio::spawn(work(db.clone(), mailer.clone(), clock.clone(), stopped.clone()));
        match worker.await {
            Ok(()) => return,
            Err(err) => tracing::error!(error = %err, "mail delivery failed; restarting it"),
        }
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(RESTART_AFTER) => {}
        }
    }
}

async fn work(db: Db, mailer: Mailer, clock: Clock, mut stopped: watch::Receiver<bool>) {
    let Some(config) = mailer.smtp() else { return };
    loop {
        if *stopped.borrow() {
            return;
        }
        match (SmtpSender::new(config), mailer.body_key(&db).await) {
            (Ok(sender), Ok(key)) => deliver_due(&db, &sender, key, &clock).await,
            (Err(err), _) => tracing::warn!(error = %err, "cannot set up SMTP; mail stays queued"),
            (_, Err(err)) => {
                tracing::warn!(error = %err, "cannot load the mail encryption key; mail stays queued")
            }
        }
        tokio::select! {
            _ = stopped.changed() => return,
            () = mailer.woken() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
        }
    }
}

/// Sends what is due, one claimed row at a time.
async fn deliver_due(db: &Db, sender: &SmtpSender, key: &BodyKey, clock: &Clock) {
    for _ in 0..ROUND {
        let now = clock.now();
        let row = match db.outbox_claim_next(now, now + LEASE_SECS).await {
            Ok(Some(row)) => row,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the outbox; will retry");
                return;
            }
        };
        let outcome = match key.open(&row.id, &row.body) {
            Ok(body) => {
                let message =
                    Message { to: row.recipient.clone(), kind: "", subject: row.subject.clone(), body };
                sender.send(&message).await
            }
            Err(unreadable) => Err(SendError::Permanent(unreadable.to_string())),
        };
        let now = clock.now();
        let recorded = match &outcome {
            Ok(()) => db.outbox_mark_sent(&row.id, now).await,
            Err(SendError::Permanent(reason)) => {
                tracing::error!(id = %row.id, %reason, "mail cannot be delivered");
                db.outbox_mark_failed(&row.id, None, reason).await
            }
            Err(SendError::Transient(reason)) => {
                let wait = retry_after_secs(row.attempts + 1);
                tracing::warn!(id = %row.id, %reason, retry_in_secs = wait, "mail not delivered; will retry");
                db.outbox_mark_failed(&row.id, Some(now + wait), reason).await
            }
        };
        if let Err(err) = recorded {
            // The lease runs out and the row is tried again: at worst it goes twice.
            tracing::warn!(id = %row.id, error = %err, "could not record a delivery attempt");
        }
    }
}

/// Seconds to wait before attempt `attempts + 1`.
fn retry_after_secs(attempts: i64) -> i64 {
    let doublings = u32::try_from((attempts - 1).clamp(0, 20)).unwrap_or(20);
    (FIRST_RETRY_SECS << doublings).min(MAX_RETRY_SECS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let waits: Vec<i64> = (1..=12).map(retry_after_secs).collect();
        assert_eq!(&waits[..5], &[5, 10, 20, 40, 80]);
        assert_eq!(waits[11], 3600);
        assert_eq!(retry_after_secs(1_000), 3600);
    }
}
