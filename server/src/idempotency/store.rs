//! The SQL of idempotency keys: reserve, read, complete and release one.

use sqlx::Row;

use crate::db::{Db, StoreError};

/// What is kept for one (owner, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Kept {
    pub operation: String,
    pub request_hash: String,
    /// `None` while the first request is in progress.
    pub answer: Option<(i64, String)>,
}

const IN_PROGRESS: &str = "in_progress";
const DONE: &str = "done";

impl Db {
    /// Reserves `key` for `owner`, in progress; `false` when another request
    /// holds it (or held it) already.
    pub(super) async fn idempotency_reserve(
        &self,
        owner: &str,
        key: &str,
        operation: &str,
        request_hash: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (owner, idempotency_key, operation, request_hash, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (owner, idempotency_key) DO NOTHING",
        )
        .bind(owner)
        .bind(key)
        .bind(operation)
        .bind(request_hash)
        .bind(IN_PROGRESS)
        .bind(now)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    pub(super) async fn idempotency_read(&self, owner: &str, key: &str) -> Result<Option<Kept>, StoreError> {
        let row = sqlx::query(
            "SELECT operation, request_hash, state, response_status, response_body FROM idempotency_keys \
             WHERE owner = $1 AND idempotency_key = $2",
        )
        .bind(owner)
        .bind(key)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get("state")?;
        let status: Option<i64> = row.try_get("response_status")?;
        let body: Option<String> = row.try_get("response_body")?;
        let answer = match (state.as_str(), status, body) {
            (DONE, Some(status), Some(body)) => Some((status, body)),
            _ => None,
        };
        Ok(Some(Kept {
            operation: row.try_get("operation")?,
            request_hash: row.try_get("request_hash")?,
            answer,
        }))
    }

    /// Stores the answer of the request that holds the reservation.
    pub(super) async fn idempotency_complete(
        &self,
        owner: &str,
        key: &str,
        status: i64,
        body: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE idempotency_keys SET state = $1, response_status = $2, response_body = $3 \
             WHERE owner = $4 AND idempotency_key = $5 AND state = $6",
        )
        .bind(DONE)
        .bind(status)
        .bind(body)
        .bind(owner)
        .bind(key)
        .bind(IN_PROGRESS)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Gives up a reservation whose request stored no answer, so the key
    /// may be sent again.
    pub(super) async fn idempotency_release(&self, owner: &str, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM idempotency_keys WHERE owner = $1 AND idempotency_key = $2 AND state = $3")
            .bind(owner)
            .bind(key)
            .bind(IN_PROGRESS)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}
