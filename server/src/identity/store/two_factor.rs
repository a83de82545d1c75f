//! Two-factor state: TOTP secrets, the last accepted step, recovery codes and
//! login challenges. Every "use once" rule is a conditional UPDATE, so two
//! concurrent uses of one code cannot both succeed.

use sqlx::Row;

use crate::db::{Db, StoreError};

#[derive(Debug, Clone, Default)]
pub struct TotpState {
    pub secret: Option<String>,
    pub pending_secret: Option<String>,
}

impl Db {
    pub async fn totp_state(&self, user_id: &str) -> Result<TotpState, StoreError> {
        let row = sqlx::query("SELECT totp_secret, totp_pending_secret FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        let Some(row) = row else { return Ok(TotpState::default()) };
        Ok(TotpState {
            secret: row.try_get("totp_secret")?,
            pending_secret: row.try_get("totp_pending_secret")?,
        })
    }

    pub async fn totp_set_pending(&self, user_id: &str, secret: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET totp_pending_secret = $1, updated_at = $2 WHERE id = $3")
            .bind(secret)
            .bind(now)
            .bind(user_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Turns 2FA on with the pending secret, records `step` as used, replaces
    /// the recovery codes and revokes every session of the user.
    pub async fn totp_enable(
        &self,
        user_id: &str,
        secret: &str,
        step: i64,
        recovery_hashes: &[String],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_pending_secret = NULL, totp_last_step = $2, \
             two_factor_enabled = TRUE, updated_at = $3 WHERE id = $4",
        )
        .bind(secret)
        .bind(step)
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (code_hash, user_id) VALUES ($1, $2)")
                .bind(hash)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        revoke_all_sessions(&mut tx, user_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Turns 2FA off, drops the recovery codes and revokes every session.
    pub async fn totp_disable(&self, user_id: &str, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE users SET totp_secret = NULL, totp_pending_secret = NULL, totp_last_step = NULL, \
             two_factor_enabled = FALSE, updated_at = $1 WHERE id = $2",
        )
        .bind(now)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        revoke_all_sessions(&mut tx, user_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Accepts time step `step` if it is later than the last accepted one;
    /// `Ok(false)` means the code was already used.
    pub async fn totp_accept_step(&self, user_id: &str, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE users SET totp_last_step = $1 \
             WHERE id = $2 AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Spends a recovery code; `Ok(false)` when unknown or already used.
    pub async fn recovery_code_use(
        &self,
        user_id: &str,
        code_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 WHERE code_hash = $2 AND user_id = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(code_hash)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn challenge_create(
        &self,
        token_hash: &str,
        user_id: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO login_challenges (token_hash, user_id, expires_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(user_id)
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Claims one of a live challenge's `max_attempts`, atomically: the
    /// attempt is counted before the code is checked, so parallel guesses
    /// cannot all pass the check. The challenge's user, or `None` when the
    /// challenge is unknown, expired, used or out of attempts.
    pub async fn challenge_claim_attempt(
        &self,
        token_hash: &str,
        now: i64,
        max_attempts: i64,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "UPDATE login_challenges SET attempts = attempts + 1 \
             WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 AND attempts < $3 \
             RETURNING user_id",
        )
        .bind(token_hash)
        .bind(now)
        .bind(max_attempts)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| Ok(row.try_get("user_id")?)).transpose()
    }

    /// Claims one of the `max` second-factor attempts a user has per
    /// `window_secs`, across challenges and addresses, atomically. `None`
    /// while they are spent: the window's start, to tell when it ends.
    pub async fn second_factor_claim_attempt(
        &self,
        user_id: &str,
        now: i64,
        max: i64,
        window_secs: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        let expired = now - window_secs;
        let claimed = sqlx::query(
            "UPDATE users SET \
             second_factor_attempts = CASE WHEN second_factor_window_start <= $2 THEN 1 \
                                           ELSE second_factor_attempts + 1 END, \
             second_factor_window_start = CASE WHEN second_factor_window_start <= $2 THEN $3 \
                                               ELSE second_factor_window_start END \
             WHERE id = $1 AND (second_factor_window_start <= $2 OR second_factor_attempts < $4)",
        )
        .bind(user_id)
        .bind(expired)
        .bind(now)
        .bind(max)
        .execute(self.pool())
        .await?;
        if claimed.rows_affected() == 1 {
            return Ok(Ok(()));
        }
        let row = sqlx::query("SELECT second_factor_window_start FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await?;
        let started = row.map(|row| row.try_get::<i64, _>("second_factor_window_start")).transpose()?;
        Ok(Err(started.unwrap_or(now)))
    }

    /// A second factor was right: the user's attempts start afresh.
    pub async fn second_factor_succeeded(&self, user_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET second_factor_attempts = 0, second_factor_window_start = 0 WHERE id = $1",
        )
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks the challenge used; `Ok(false)` if another request used it first.
    pub async fn challenge_consume(&self, token_hash: &str, now: i64) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE login_challenges SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL")
                .bind(now)
                .bind(token_hash)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

pub(super) async fn revoke_all_sessions(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: &str,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE auth_sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
