//! The append-only security audit trail.

use super::{Db, StoreError};

/// One security event: who did what to which target, from where.
#[derive(Debug, Clone, Default)]
pub struct AuditEvent {
    pub actor_id: Option<String>,
    pub org_id: Option<String>,
    pub action: &'static str,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

impl Db {
    pub async fn audit_record(&self, event: &AuditEvent, id: &str, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (id, occurred_at, actor_id, org_id, action, target, ip, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id)
        .bind(now)
        .bind(&event.actor_id)
        .bind(&event.org_id)
        .bind(event.action)
        .bind(&event.target)
        .bind(&event.ip)
        .bind(&event.request_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The actions recorded for `actor_id`, oldest first (for tests and, later, `/v1/audit`).
    pub async fn audit_actions_of(&self, actor_id: &str) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar("SELECT action FROM audit_events WHERE actor_id = $1 ORDER BY occurred_at, id")
            .bind(actor_id)
            .fetch_all(self.pool())
            .await?)
    }
}
