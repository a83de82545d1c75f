//! Users and the refresh-token families of their login sessions.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Db, StoreError, is_unique_violation};
use crate::identity::model::{Session, User};
use crate::identity::store::email::spend_resets_and_sessions;

/// A user as stored, with the hash of their password.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub display_name: Option<String>,
    pub password_hash: String,
    pub email_verified: bool,
    pub two_factor_enabled: bool,
    pub created_at: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            email_verified: row.email_verified,
            two_factor_enabled: row.two_factor_enabled,
            created_at: row.created_at,
        }
    }
}

fn user(row: &AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        email_verified: flag(row, "email_verified")?,
        two_factor_enabled: flag(row, "two_factor_enabled")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A boolean column: BOOLEAN on PostgreSQL, INTEGER 0/1 on SQLite (the `Any`
/// driver cannot decode SQLite's boolean affinity).
fn flag(row: &AnyRow, column: &str) -> Result<bool, sqlx::Error> {
    row.try_get::<bool, _>(column).or_else(|_| row.try_get::<i64, _>(column).map(|value| value != 0))
}

/// What a refresh token's lookup finds.
#[derive(Debug, Clone)]
pub struct RefreshTokenRow {
    pub session_id: String,
    pub user_id: String,
    pub expires_at: i64,
    pub spent: bool,
    pub session_revoked: bool,
}

impl Db {
    /// Inserts a user; `Ok(false)` when the email is taken.
    pub async fn user_insert(&self, user: &UserRow) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, display_name, password_hash, email_verified, two_factor_enabled, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&user.id)
        .bind(&user.email)
        .bind(&user.display_name)
        .bind(&user.password_hash)
        .bind(user.email_verified)
        .bind(user.two_factor_enabled)
        .bind(user.created_at)
        .execute(self.pool())
        .await;
        match inserted {
            Ok(_) => Ok(true),
            Err(err) if is_unique_violation(&err) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, email, display_name, password_hash, email_verified, two_factor_enabled, created_at \
             FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(user).transpose()?)
    }

    pub async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, email, display_name, password_hash, email_verified, two_factor_enabled, created_at \
             FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(user).transpose()?)
    }

    /// Starts a login session with its first refresh token.
    /// Starts a session for `user_id` from `ip` with its first refresh token.
    pub async fn session_create(
        &self,
        session_id: &str,
        user_id: &str,
        ip: Option<&str>,
        token_hash: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO auth_sessions (id, user_id, ip, created_at) VALUES ($1, $2, $3, $4)")
            .bind(session_id)
            .bind(user_id)
            .bind(ip)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(token_hash)
        .bind(session_id)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn refresh_token_find(&self, token_hash: &str) -> Result<Option<RefreshTokenRow>, StoreError> {
        let row = sqlx::query(
            "SELECT t.session_id, s.user_id, t.expires_at, t.spent_at, s.revoked_at \
             FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(RefreshTokenRow {
            session_id: row.try_get("session_id")?,
            user_id: row.try_get("user_id")?,
            expires_at: row.try_get("expires_at")?,
            spent: row.try_get::<Option<i64>, _>("spent_at")?.is_some(),
            session_revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
        }))
    }

    /// Spends `old_hash` and issues `new_hash` in the same session, atomically.
    /// `Ok(false)` when the old token was already spent (a concurrent reuse).
    pub async fn refresh_token_rotate(
        &self,
        old_hash: &str,
        new_hash: &str,
        session_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let spent =
            sqlx::query("UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2 AND spent_at IS NULL")
                .bind(now)
                .bind(old_hash)
                .execute(&mut *tx)
                .await?;
        if spent.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, session_id, expires_at, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(new_hash)
        .bind(session_id)
        .bind(expires_at)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE auth_sessions SET refreshed_at = $1 WHERE id = $2")
            .bind(now)
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// The user's sessions that can still be used (not ended, with a live
    /// refresh token), in id order after the keyset cursor `after`.
    pub async fn sessions_of(
        &self,
        user_id: &str,
        now: i64,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Session>, StoreError> {
        let rows = sqlx::query(
            "SELECT s.id, s.ip, s.created_at, s.refreshed_at FROM auth_sessions s \
             WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.id > $2 AND EXISTS \
             (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id AND t.spent_at IS NULL AND t.expires_at > $3) \
             ORDER BY s.id LIMIT $4",
        )
        .bind(user_id)
        .bind(after.unwrap_or(""))
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Session {
                    id: row.try_get("id")?,
                    ip: row.try_get("ip")?,
                    created_at: row.try_get("created_at")?,
                    refreshed_at: row.try_get("refreshed_at")?,
                })
            })
            .collect()
    }

    /// Ends one of the user's sessions; false when they have no such live one.
    pub async fn session_revoke_of(
        &self,
        user_id: &str,
        session_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let ended = sqlx::query(
            "UPDATE auth_sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(session_id)
        .bind(user_id)
        .execute(self.pool())
        .await?;
        Ok(ended.rows_affected() == 1)
    }

    pub async fn session_revoke(&self, session_id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE auth_sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(session_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Whether `session_id` is `user_id`'s and not ended.
    pub async fn session_is_active(&self, session_id: &str, user_id: &str) -> Result<bool, StoreError> {
        let revoked: Option<Option<i64>> =
            sqlx::query_scalar("SELECT revoked_at FROM auth_sessions WHERE id = $1 AND user_id = $2")
                .bind(session_id)
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        Ok(matches!(revoked, Some(None)))
    }

    /// Whether the user had a session before, and one from `ip`.
    pub async fn sessions_seen_from(&self, user_id: &str, ip: &str) -> Result<(bool, bool), StoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS sessions, \
             CAST(COALESCE(SUM(CASE WHEN ip = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS from_ip \
             FROM auth_sessions WHERE user_id = $1",
        )
        .bind(user_id)
        .bind(ip)
        .fetch_one(self.pool())
        .await?;
        let (sessions, from_ip): (i64, i64) = (row.try_get("sessions")?, row.try_get("from_ip")?);
        Ok((sessions > 0, from_ip > 0))
    }

    /// When the session's user last proved who they are: its start, or its
    /// latest reauthentication.
    pub async fn session_authenticated_at(&self, session_id: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(authenticated_at, created_at) AS at FROM auth_sessions WHERE id = $1",
        )
        .bind(session_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| row.try_get("at")).transpose().map_err(Into::into)
    }

    pub async fn session_reauthenticated(&self, session_id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE auth_sessions SET authenticated_at = $1 WHERE id = $2")
            .bind(now)
            .bind(session_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Replaces the password hash if it is still `current_hash`, spends every
    /// pending reset token and ends every session, in one transaction. False
    /// when the password changed in the meantime.
    pub async fn user_change_password(
        &self,
        user_id: &str,
        current_hash: &str,
        new_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        let changed = sqlx::query(
            "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4",
        )
        .bind(new_hash)
        .bind(now)
        .bind(user_id)
        .bind(current_hash)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() != 1 {
            return Ok(false);
        }
        spend_resets_and_sessions(&mut tx, user_id, now).await?;
        tx.commit().await?;
        Ok(true)
    }
}
