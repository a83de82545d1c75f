//! Invitations to an organization, with their tokens as SHA-256 digests.
//! Issuing one revokes the open invitation of the same address to the same
//! org and queues the mail, in one transaction; accepting is a conditional
//! statement, so a token cannot be spent twice.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Db, StoreError};
use crate::identity::model::{Invitation, Role};
use crate::mail;
use crate::mail::Queued;

/// What accepting an invitation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    Joined,
    /// The token was spent, revoked or expired in the meantime.
    Spent,
    /// The user already belongs to the org; the token stays unspent.
    AlreadyMember,
}

/// The columns an invitation row is read from, for `concat!`-built queries.
macro_rules! invitation_columns {
    () => {
        "id, org_id, email, role, expires_at, created_at"
    };
}

fn invitation(row: &AnyRow) -> Result<Invitation, StoreError> {
    Ok(Invitation {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        email: row.try_get("email")?,
        role: Role::parse(&row.try_get::<String, _>("role")?),
        expires_at: row.try_get("expires_at")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    /// Invitations issued since `since`: by `inviter` (in any org), and to `org_id`.
    pub async fn invitations_issued_since(
        &self,
        inviter: &str,
        org_id: &str,
        since: i64,
    ) -> Result<(i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(SUM(CASE WHEN invited_by = $1 THEN 1 ELSE 0 END), 0) AS BIGINT) AS by_inviter, \
             CAST(COALESCE(SUM(CASE WHEN org_id = $2 THEN 1 ELSE 0 END), 0) AS BIGINT) AS to_org \
             FROM org_invitations WHERE created_at >= $3 AND (invited_by = $1 OR org_id = $2)",
        )
        .bind(inviter)
        .bind(org_id)
        .bind(since)
        .fetch_one(self.pool())
        .await?;
        Ok((row.try_get("by_inviter")?, row.try_get("to_org")?))
    }

    /// Stores a new invitation, revokes any open one of the same address to
    /// the same org (its token stops working), and queues the mail.
    pub async fn invitation_issue(
        &self,
        row: &Invitation,
        token_hash: &str,
        invited_by: &str,
        mail: &Queued,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "UPDATE org_invitations SET revoked_at = $1 \
             WHERE org_id = $2 AND email = $3 AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(row.created_at)
        .bind(&row.org_id)
        .bind(&row.email)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO org_invitations (id, org_id, email, role, token_hash, invited_by, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&row.id)
        .bind(&row.org_id)
        .bind(&row.email)
        .bind(row.role.as_str())
        .bind(token_hash)
        .bind(invited_by)
        .bind(row.expires_at)
        .bind(row.created_at)
        .execute(&mut *tx)
        .await?;
        mail::queue_in(&mut tx, mail, row.created_at).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The live (unaccepted, unrevoked, unexpired) invitation with this token digest.
    pub async fn invitation_live(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM org_invitations \
             WHERE token_hash = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(invitation).transpose()
    }

    /// Spends the invitation and makes `user_id` a member with its role, atomically.
    pub async fn invitation_accept(
        &self,
        invitation: &Invitation,
        user_id: &str,
        now: i64,
    ) -> Result<Accepted, StoreError> {
        let mut tx = self.pool().begin().await?;
        let spent = sqlx::query(
            "UPDATE org_invitations SET accepted_at = $1 \
             WHERE id = $2 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1",
        )
        .bind(now)
        .bind(&invitation.id)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            return Ok(Accepted::Spent);
        }
        let joined = sqlx::query(
            "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, user_id) DO NOTHING",
        )
        .bind(&invitation.org_id)
        .bind(user_id)
        .bind(invitation.role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if joined.rows_affected() != 1 {
            return Ok(Accepted::AlreadyMember);
        }
        tx.commit().await?;
        Ok(Accepted::Joined)
    }

    /// The org's pending (unaccepted, unrevoked, unexpired) invitations in
    /// id order after the keyset cursor `after`, at most `limit`.
    pub async fn invitations_pending(
        &self,
        org_id: &str,
        now: i64,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Invitation>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM org_invitations WHERE org_id = $1 AND accepted_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $2 AND id > $3 ORDER BY id LIMIT $4"
        ))
        .bind(org_id)
        .bind(now)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(invitation).collect()
    }

    /// One pending invitation of the org.
    pub async fn invitation_pending(
        &self,
        org_id: &str,
        id: &str,
        now: i64,
    ) -> Result<Option<Invitation>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            invitation_columns!(),
            " FROM org_invitations WHERE org_id = $1 AND id = $2 AND accepted_at IS NULL \
             AND revoked_at IS NULL AND expires_at > $3"
        ))
        .bind(org_id)
        .bind(id)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(invitation).transpose()
    }

    /// Revokes a pending invitation; `Ok(false)` if it was no longer pending.
    pub async fn invitation_revoke(&self, org_id: &str, id: &str, now: i64) -> Result<bool, StoreError> {
        let revoked = sqlx::query(
            "UPDATE org_invitations SET revoked_at = $1 WHERE org_id = $2 AND id = $3 \
             AND accepted_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(org_id)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(revoked.rows_affected() == 1)
    }
}
