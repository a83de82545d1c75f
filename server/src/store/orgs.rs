//! Organizations and their members.

use sqlx::Row;

use super::{Db, StoreError};

#[derive(Debug, Clone)]
pub struct OrgRow {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// An org together with the caller's role in it.
#[derive(Debug, Clone)]
pub struct MembershipRow {
    pub org: OrgRow,
    pub role: String,
}

impl Db {
    /// Creates an org with `owner_id` as its owner.
    pub async fn org_create(&self, org: &OrgRow, owner_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&org.id)
            .bind(&org.name)
            .bind(org.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, 'owner', $3)",
        )
        .bind(&org.id)
        .bind(owner_id)
        .bind(org.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The org with `org_id` if `user_id` belongs to it, with their role.
    pub async fn membership(&self, org_id: &str, user_id: &str) -> Result<Option<MembershipRow>, StoreError> {
        let row = sqlx::query(
            "SELECT o.id, o.name, o.created_at, m.role FROM orgs o \
             JOIN org_members m ON m.org_id = o.id WHERE o.id = $1 AND m.user_id = $2",
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| membership(&row)).transpose()
    }

    /// The user's orgs in id order, after `after` (a keyset cursor), at most `limit`.
    pub async fn memberships(
        &self,
        user_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<MembershipRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.created_at, m.role FROM orgs o \
             JOIN org_members m ON m.org_id = o.id \
             WHERE m.user_id = $1 AND o.id > $2 ORDER BY o.id LIMIT $3",
        )
        .bind(user_id)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(membership).collect()
    }
}

fn membership(row: &sqlx::any::AnyRow) -> Result<MembershipRow, StoreError> {
    Ok(MembershipRow {
        org: OrgRow {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
        },
        role: row.try_get("role")?,
    })
}
