//! The audit trail's storage: events appended to their chain under a lock on
//! the chain's head (in a transaction of their own, or in another area's),
//! and read back newest first or in chain order.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::chain::{AuditFilter, ChainedEvent, GENESIS_HASH, link_hash};
use crate::audit::record::Stamped;
use crate::db::{Db, StoreError};

fn audit_row(row: &AnyRow) -> Result<ChainedEvent, StoreError> {
    Ok(ChainedEvent {
        id: row.try_get("id")?,
        occurred_at: row.try_get("occurred_at")?,
        actor_id: row.try_get("actor_id")?,
        org_id: row.try_get("org_id")?,
        action: row.try_get("action")?,
        target: row.try_get("target")?,
        ip: row.try_get("ip")?,
        request_id: row.try_get("request_id")?,
        route: row.try_get("route")?,
        details: row.try_get("details")?,
        seq: row.try_get("seq")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// The chain an org's events go to; account events outside orgs use `""`.
fn chain_of(org_id: Option<&str>) -> &str {
    org_id.unwrap_or("")
}

impl Db {
    /// Appends an event to its org's chain.
    pub async fn audit_record(&self, stamped: &Stamped) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        append_in(&mut tx, stamped).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Chains events recorded before the chains existed, oldest first; a
    /// no-op once every event has its hash.
    pub async fn audit_chain_backfill(&self) -> Result<u64, StoreError> {
        let rows = sqlx::query(
            "SELECT id, occurred_at, actor_id, org_id, action, target, ip, request_id, route, details, \
             CAST(0 AS BIGINT) AS seq, '' AS prev_hash, '' AS hash \
             FROM audit_events WHERE hash IS NULL ORDER BY occurred_at, id",
        )
        .fetch_all(self.pool())
        .await?;
        let mut chained = 0;
        for row in rows.iter().map(audit_row) {
            let row = row?;
            let chain = chain_of(row.org_id.as_deref());
            let mut tx = self.pool().begin().await?;
            let (seq, prev_hash) = advance_chain(&mut tx, chain).await?;
            let hash = link_hash(&prev_hash, seq, &row);
            sqlx::query(
                "UPDATE audit_events SET chain = $1, seq = $2, prev_hash = $3, hash = $4 \
                 WHERE id = $5 AND hash IS NULL",
            )
            .bind(chain)
            .bind(seq)
            .bind(&prev_hash)
            .bind(&hash)
            .bind(&row.id)
            .execute(&mut *tx)
            .await?;
            set_head(&mut tx, chain, &hash).await?;
            tx.commit().await?;
            chained += 1;
        }
        Ok(chained)
    }

    /// A chain's events (an org's, or `""` for account events) matching
    /// `filter`, newest first, before position `before` (exclusive) when given.
    pub async fn audit_list(
        &self,
        chain: &str,
        filter: &AuditFilter<'_>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<ChainedEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, occurred_at, actor_id, org_id, action, target, ip, request_id, route, details, seq, \
             prev_hash, hash FROM audit_events WHERE chain = $1 AND seq < $2 \
             AND ($3 = '' OR actor_id = $3) AND ($4 = '' OR action = $4) \
             AND occurred_at >= $5 AND occurred_at < $6 AND ($7 = '' OR route = $7) ORDER BY seq DESC LIMIT $8",
        )
        .bind(chain)
        .bind(before.unwrap_or(i64::MAX))
        .bind(filter.actor_id.unwrap_or(""))
        .bind(filter.action.unwrap_or(""))
        .bind(filter.since.unwrap_or(i64::MIN))
        .bind(filter.until.unwrap_or(i64::MAX))
        .bind(filter.route.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(audit_row).collect()
    }

    /// Up to `limit` events of an org's chain after position `after`, oldest first.
    pub async fn audit_chain_page(
        &self,
        org_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ChainedEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, occurred_at, actor_id, org_id, action, target, ip, request_id, route, details, seq, \
             prev_hash, hash FROM audit_events WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(org_id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(audit_row).collect()
    }

    /// The head of an org's chain: its last position and hash.
    pub async fn audit_chain_head(&self, org_id: &str) -> Result<(i64, String), StoreError> {
        let row = sqlx::query("SELECT seq, head_hash FROM audit_chains WHERE chain = $1")
            .bind(org_id)
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(row) => Ok((row.try_get("seq")?, row.try_get("head_hash")?)),
            None => Ok((0, GENESIS_HASH.to_owned())),
        }
    }

    /// The names of every chain with events: org ids, and `""` for account events.
    pub async fn audit_chains(&self) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT chain FROM audit_chains ORDER BY chain").fetch_all(self.pool()).await?)
    }

    /// The actions recorded for `actor_id`, oldest first.
    pub async fn audit_actions_of(&self, actor_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT action FROM audit_events WHERE actor_id = $1 ORDER BY occurred_at, id")
            .bind(actor_id)
            .fetch_all(self.pool())
            .await?)
    }
}

/// Appends an event to its org's chain as part of `tx`, another area's
/// transaction, in two statements: the chain's next position, then the
/// event, which a trigger makes the chain's head. The head stays locked
/// until the transaction ends, so append last.
pub async fn append_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    stamped: &Stamped,
) -> Result<(), StoreError> {
    let Stamped { id, at, event } = stamped;
    let row = ChainedEvent {
        id: id.clone(),
        occurred_at: *at,
        actor_id: event.actor_id.clone(),
        org_id: event.org_id.clone(),
        action: event.action.to_owned(),
        target: event.target.clone(),
        ip: event.ip.clone(),
        request_id: event.request_id.clone(),
        route: event.route.clone(),
        details: event.details.clone(),
        seq: 0,
        prev_hash: String::new(),
        hash: String::new(),
    };
    let chain = chain_of(event.org_id.as_deref());
    let (seq, prev_hash) = advance_chain(tx, chain).await?;
    let hash = link_hash(&prev_hash, seq, &row);
    sqlx::query(
        "INSERT INTO audit_events \
         (id, occurred_at, actor_id, org_id, action, target, ip, request_id, route, details, chain, seq, \
         prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&row.id)
    .bind(row.occurred_at)
    .bind(&row.actor_id)
    .bind(&row.org_id)
    .bind(&row.action)
    .bind(&row.target)
    .bind(&row.ip)
    .bind(&row.request_id)
    .bind(&row.route)
    .bind(&row.details)
    .bind(chain)
    .bind(seq)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut **tx)
    .await?;
    // The insert made the event its chain's head (the trigger `audit_events_chain_head`).
    Ok(())
}

/// Takes the next position of `chain`, locking its head until the
/// transaction ends; returns the position and the hash to link to. A
/// chain's first event creates its head.
async fn advance_chain(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    chain: &str,
) -> Result<(i64, String), StoreError> {
    const ADVANCE: &str = "UPDATE audit_chains SET seq = seq + 1 WHERE chain = $1 RETURNING seq, head_hash";
    let head = match sqlx::query(ADVANCE).bind(chain).fetch_optional(&mut **tx).await? {
        Some(head) => head,
        None => {
            // Two first events race here: the second waits for the first's head.
            sqlx::query(
                "INSERT INTO audit_chains (chain, seq, head_hash) VALUES ($1, 0, $2) ON CONFLICT (chain) DO NOTHING",
            )
            .bind(chain)
            .bind(GENESIS_HASH)
            .execute(&mut **tx)
            .await?;
            sqlx::query(ADVANCE).bind(chain).fetch_one(&mut **tx).await?
        }
    };
    Ok((head.try_get("seq")?, head.try_get("head_hash")?))
}

async fn set_head(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    chain: &str,
    hash: &str,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE audit_chains SET head_hash = $1 WHERE chain = $2")
        .bind(hash)
        .bind(chain)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
