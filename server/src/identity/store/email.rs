//! Verification codes and password-reset tokens (as SHA-256 digests). Each
//! issue writes its mail to the outbox in the same transaction, and each
//! "use once" rule is a conditional statement, so concurrent uses of one code
//! or token cannot both succeed.

use sqlx::Row;

use crate::db::{Db, StoreError};
use crate::identity::store::two_factor::revoke_all_sessions;
use crate::mail;
use crate::mail::Queued;

/// A live verification code's state.
#[derive(Debug, Clone)]
pub struct VerificationRow {
    pub code_hash: String,
    pub expires_at: i64,
    pub attempts: i64,
}

/// What a resend found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resent {
    Issued,
    /// The last resend was at this time, too recently to send another.
    TooSoon {
        last_resent_at: i64,
    },
}

impl Db {
    /// Replaces the user's verification code (attempts start over) and queues its mail.
    pub async fn verification_issue(
        &self,
        user_id: &str,
        code_hash: &str,
        expires_at: i64,
        mail: &Queued,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO email_verifications (user_id, code_hash, expires_at, attempts) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (user_id) DO UPDATE SET code_hash = excluded.code_hash, \
             expires_at = excluded.expires_at, attempts = 0",
        )
        .bind(user_id)
        .bind(code_hash)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        mail::queue_in(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Like [`Db::verification_issue`], unless the previous resend was after
    /// `not_after`: at most one resend per window, even across replicas.
    pub async fn verification_resend(
        &self,
        user_id: &str,
        code_hash: &str,
        expires_at: i64,
        not_after: i64,
        mail: &Queued,
        now: i64,
    ) -> Result<Resent, StoreError> {
        let mut tx = self.pool().begin().await?;
        let issued = sqlx::query(
            "INSERT INTO email_verifications (user_id, code_hash, expires_at, attempts, last_resent_at) \
             VALUES ($1, $2, $3, 0, $4) \
             ON CONFLICT (user_id) DO UPDATE SET code_hash = excluded.code_hash, \
             expires_at = excluded.expires_at, attempts = 0, last_resent_at = excluded.last_resent_at \
             WHERE email_verifications.last_resent_at IS NULL OR email_verifications.last_resent_at <= $5",
        )
        .bind(user_id)
        .bind(code_hash)
        .bind(expires_at)
        .bind(now)
        .bind(not_after)
        .execute(&mut *tx)
        .await?;
        if issued.rows_affected() == 0 {
            let last: Option<i64> =
                sqlx::query_scalar("SELECT last_resent_at FROM email_verifications WHERE user_id = $1")
                    .bind(user_id)
                    .fetch_one(&mut *tx)
                    .await?;
            return Ok(Resent::TooSoon { last_resent_at: last.unwrap_or(now) });
        }
        mail::queue_in(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(Resent::Issued)
    }

    pub async fn verification_find(&self, user_id: &str) -> Result<Option<VerificationRow>, StoreError> {
        let row =
            sqlx::query("SELECT code_hash, expires_at, attempts FROM email_verifications WHERE user_id = $1")
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        row.map(|row| {
            Ok(VerificationRow {
                code_hash: row.try_get("code_hash")?,
                expires_at: row.try_get("expires_at")?,
                attempts: row.try_get("attempts")?,
            })
        })
        .transpose()
    }

    pub async fn verification_record_failure(&self, user_id: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE email_verifications SET attempts = attempts + 1 WHERE user_id = $1")
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Spends the code with digest `code_hash` and marks the address
    /// verified; `Ok(false)` if the code was spent, replaced, expired or out
    /// of attempts in the meantime.
    pub async fn verification_consume(
        &self,
        user_id: &str,
        code_hash: &str,
        max_attempts: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let spent = sqlx::query(
            "DELETE FROM email_verifications \
             WHERE user_id = $1 AND code_hash = $2 AND attempts < $3 AND expires_at > $4",
        )
        .bind(user_id)
        .bind(code_hash)
        .bind(max_attempts)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE users SET email_verified = TRUE, updated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores a reset token's digest and queues its mail.
    pub async fn password_reset_issue(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
        mail: &Queued,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        mail::queue_in(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The user a live (unused, unexpired) reset token belongs to.
    pub async fn password_reset_user(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT user_id FROM password_resets WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?)
    }

    /// Spends the token, sets the new password hash, spends every other
    /// reset token of the user and revokes all their sessions, atomically.
    /// `Ok(false)` if the token was spent or expired in the meantime.
    pub async fn password_reset_complete(
        &self,
        token_hash: &str,
        user_id: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let spent = sqlx::query(
            "UPDATE password_resets SET used_at = $1 \
             WHERE token_hash = $2 AND user_id = $3 AND used_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(token_hash)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        spend_resets_and_sessions(&mut tx, user_id, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// After a password is set: every pending reset token of the user is spent
/// and every session of theirs ends.
pub(super) async fn spend_resets_and_sessions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE password_resets SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    revoke_all_sessions(tx, user_id, now).await
}
