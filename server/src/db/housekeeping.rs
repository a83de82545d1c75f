//! Housekeeping: deletes the rows that can no longer matter. Every statement
//! is idempotent, so each replica may sweep on its own schedule.
//!
//! Idempotency keys go once older than their retention (a day): a key is
//! honoured at least that long. A run's events go a week after it ended.
//!
//! What stays: users, orgs, keys, usage and the audit trail (never swept),
//! and spent refresh tokens until they would have expired, because
//! presenting one again is how a leaked token is detected.

use crate::db::{Db, StoreError};

/// How long finished rows are kept before they are swept, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Ended sessions, expired tokens, challenges, codes and reset tokens.
    pub credentials_secs: i64,
    /// Invitations that were accepted, revoked or expired, and delivered mail.
    pub history_secs: i64,
    /// `Idempotency-Key`s and the answers kept for them, from their first use.
    pub idempotency_secs: i64,
    /// The event streams of runs, from when the run ended (the run and its
    /// steps stay).
    pub run_events_secs: i64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            credentials_secs: 24 * 3600,
            history_secs: 30 * 24 * 3600,
            idempotency_secs: 24 * 3600,
            run_events_secs: 7 * 24 * 3600,
        }
    }
}

/// How many rows one sweep deleted, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub login_challenges: u64,
    pub email_verifications: u64,
    pub password_resets: u64,
    pub invitations: u64,
    pub delivered_mail: u64,
    pub idempotency_keys: u64,
    pub run_events: u64,
}

impl Swept {
    pub fn total(&self) -> u64 {
        self.sessions
            + self.refresh_tokens
            + self.login_challenges
            + self.email_verifications
            + self.password_resets
            + self.invitations
            + self.delivered_mail
            + self.idempotency_keys
            + self.run_events
    }
}

impl Db {
    /// Deletes what expired or ended longer ago than `retention` before `now`.
    pub async fn sweep(&self, now: i64, retention: Retention) -> Result<Swept, StoreError> {
        let credentials = now - retention.credentials_secs;
        let history = now - retention.history_secs;
        let run = |sql: &'static str, before: i64| async move {
            Ok::<_, StoreError>(sqlx::query(sql).bind(before).execute(self.pool()).await?.rows_affected())
        };
        // A session whose refresh tokens all expired can mint no access token
        // either; an ended one no longer authenticates. Its tokens go with it.
        let refresh_tokens = run("DELETE FROM refresh_tokens WHERE expires_at < $1", credentials).await?;
        let sessions = run(
            "DELETE FROM auth_sessions WHERE revoked_at < $1 OR (created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM refresh_tokens t WHERE t.session_id = auth_sessions.id))",
            credentials,
        )
        .await?;
        Ok(Swept {
            sessions,
            refresh_tokens,
            login_challenges: run("DELETE FROM login_challenges WHERE expires_at < $1", credentials).await?,
            email_verifications: run("DELETE FROM email_verifications WHERE expires_at < $1", credentials)
                .await?,
            password_resets: run("DELETE FROM password_resets WHERE expires_at < $1", credentials).await?,
            invitations: run(
                "DELETE FROM org_invitations WHERE expires_at < $1 OR accepted_at < $1 OR revoked_at < $1",
                history,
            )
            .await?,
            delivered_mail: run("DELETE FROM outbox WHERE status = 'sent' AND sent_at < $1", history).await?,
            idempotency_keys: run(
                "DELETE FROM idempotency_keys WHERE created_at < $1",
                now - retention.idempotency_secs,
            )
            .await?,
            run_events: run(
                "DELETE FROM run_events WHERE run_id IN (SELECT id FROM runs WHERE finished_at < $1)",
                now - retention.run_events_secs,
            )
            .await?,
        })
    }
}
