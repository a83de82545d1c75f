//! The mail outbox: rows are written with the state change that causes them
//! (see `identity::store::email`), claimed and marked by the delivery task, and read by
//! `switchyard outbox` and the conformance suite.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Db, StoreError};
use crate::mail::{OutboxStatus, Queued};

/// A message as stored.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: String,
    pub recipient: String,
    pub kind: String,
    pub subject: String,
    /// Sealed until delivered (open it with [`crate::mail::BodyKey`]); then a note.
    pub body: String,
    pub status: OutboxStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

/// What a delivered message's body becomes: the codes and tokens it carried
/// must not outlive the delivery in plain text.
const DELIVERED_BODY: &str = "(delivered; the body is not kept)";

/// The columns `outbox_row` reads, as a literal so queries are built with
/// `concat!` at compile time, never formatted at run time.
macro_rules! outbox_columns {
    () => {
        "id, recipient, kind, subject, body, status, attempts, last_error, created_at, sent_at"
    };
}

fn outbox_row(row: &AnyRow) -> Result<OutboxRow, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(OutboxRow {
        id: row.try_get("id")?,
        recipient: row.try_get("recipient")?,
        kind: row.try_get("kind")?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        status: OutboxStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown outbox status `{status}`").into()))?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        sent_at: row.try_get("sent_at")?,
    })
}

/// Queues `mail` inside the caller's transaction.
pub async fn queue_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mail: &Queued,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (id, recipient, kind, subject, body, status, attempts, next_attempt_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)",
    )
    .bind(&mail.id)
    .bind(&mail.to)
    .bind(mail.kind)
    .bind(&mail.subject)
    .bind(&mail.sealed_body)
    .bind(mail.status.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    /// Queues `message` on its own (a notice that follows a change already made).
    pub async fn outbox_enqueue(&self, mail: &Queued, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        queue_in(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Claims the next `pending` row due at `now` by leasing it until
    /// `lease_until`; `None` when nothing is due.
    pub async fn outbox_claim_next(
        &self,
        now: i64,
        lease_until: i64,
    ) -> Result<Option<OutboxRow>, StoreError> {
        // Another replica may claim the row between the two statements; try the next one then.
        for _ in 0..5 {
            let id: Option<String> = sqlx::query_scalar(
                "SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= $1 \
                 ORDER BY next_attempt_at, id LIMIT 1",
            )
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
            let Some(id) = id else { return Ok(None) };
            let claimed = sqlx::query(
                "UPDATE outbox SET next_attempt_at = $1 \
                 WHERE id = $2 AND status = 'pending' AND next_attempt_at <= $3",
            )
            .bind(lease_until)
            .bind(&id)
            .bind(now)
            .execute(self.pool())
            .await?;
            if claimed.rows_affected() == 1 {
                let row = sqlx::query(concat!("SELECT ", outbox_columns!(), " FROM outbox WHERE id = $1"))
                    .bind(&id)
                    .fetch_one(self.pool())
                    .await?;
                return Ok(Some(outbox_row(&row)?));
            }
        }
        Ok(None)
    }

    /// Records a delivery and drops the body.
    pub async fn outbox_mark_sent(&self, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET status = 'sent', sent_at = $1, body = $2, attempts = attempts + 1, \
             last_error = NULL WHERE id = $3",
        )
        .bind(now)
        .bind(DELIVERED_BODY)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records a failed attempt: retried at `retry_at`, or, when `None`,
    /// never (the row becomes `failed`).
    pub async fn outbox_mark_failed(
        &self,
        id: &str,
        retry_at: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        let status = if retry_at.is_some() { OutboxStatus::Pending } else { OutboxStatus::Failed };
        sqlx::query(
            "UPDATE outbox SET status = $1, attempts = attempts + 1, last_error = $2, \
             next_attempt_at = COALESCE($3, next_attempt_at) WHERE id = $4",
        )
        .bind(status.as_str())
        .bind(error)
        .bind(retry_at)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Undelivered rows whose body does not start with `sealed_prefix` (rows
    /// queued before bodies were sealed), as `(id, body)`.
    pub async fn outbox_unsealed(&self, sealed_prefix: &str) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT id, body FROM outbox WHERE status <> 'sent' AND body NOT LIKE $1")
            .bind(format!("{sealed_prefix}%"))
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("body")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    /// Replaces row `id`'s body `clear` with `sealed`, unless it changed meanwhile.
    pub async fn outbox_seal_body(&self, id: &str, clear: &str, sealed: &str) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE outbox SET body = $1 WHERE id = $2 AND body = $3 AND status <> 'sent'")
                .bind(sealed)
                .bind(id)
                .bind(clear)
                .execute(self.pool())
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The newest `limit` messages, newest first.
    pub async fn outbox_list(&self, limit: i64) -> Result<Vec<OutboxRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox ORDER BY created_at DESC, id DESC LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(outbox_row).collect::<Result<_, _>>()?)
    }

    /// The newest message to `recipient`.
    pub async fn outbox_latest_to(&self, recipient: &str) -> Result<Option<OutboxRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            outbox_columns!(),
            " FROM outbox WHERE recipient = $1 ORDER BY created_at DESC, id DESC LIMIT 1"
        ))
        .bind(recipient)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(outbox_row).transpose()?)
    }
}
