//! Organizations and their members.

use sqlx::Row;

use crate::db::{Db, StoreError};
use crate::identity::model::{Member, Membership, Org, Role};
use crate::kernel::principal::CostCaps;

impl Db {
    /// Creates an org with `owner_id` as its owner.
    pub async fn org_create(&self, org: &Org, owner_id: &str) -> Result<(), StoreError> {
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
    pub async fn membership(&self, org_id: &str, user_id: &str) -> Result<Option<Membership>, StoreError> {
        let row = sqlx::query(
            "SELECT o.id, o.name, o.created_at, o.daily_cost_cap_micros, o.member_daily_cost_cap_micros, m.role \
             FROM orgs o \
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
    ) -> Result<Vec<Membership>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.name, o.created_at, o.daily_cost_cap_micros, o.member_daily_cost_cap_micros, m.role \
             FROM orgs o \
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

fn membership(row: &sqlx::any::AnyRow) -> Result<Membership, StoreError> {
    Ok(Membership {
        org: Org {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            created_at: row.try_get("created_at")?,
            caps: CostCaps {
                org_daily_micros: row.try_get("daily_cost_cap_micros")?,
                member_daily_micros: row.try_get("member_daily_cost_cap_micros")?,
            },
        },
        role: Role::parse(&row.try_get::<String, _>("role")?),
    })
}

impl Db {
    pub async fn org_rename(&self, org_id: &str, name: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE orgs SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(org_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn org_set_cost_caps(&self, org_id: &str, caps: CostCaps) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE orgs SET daily_cost_cap_micros = $1, member_daily_cost_cap_micros = $2 WHERE id = $3",
        )
        .bind(caps.org_daily_micros)
        .bind(caps.member_daily_micros)
        .bind(org_id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes the org; memberships, invitations and API keys go with it.
    pub async fn org_delete(&self, org_id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        // Explicit rather than relying on ON DELETE CASCADE, which SQLite
        // applies only with foreign keys switched on for the connection.
        sqlx::query("DELETE FROM api_keys WHERE org_id = $1").bind(org_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM org_members WHERE org_id = $1").bind(org_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM org_invitations WHERE org_id = $1").bind(org_id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM orgs WHERE id = $1").bind(org_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Members in user-id order after the keyset cursor `after`.
    pub async fn members(
        &self,
        org_id: &str,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Member>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.user_id, u.email, u.display_name, m.role, m.created_at FROM org_members m \
             JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.user_id > $2 ORDER BY m.user_id LIMIT $3",
        )
        .bind(org_id)
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(member).collect()
    }

    pub async fn member(&self, org_id: &str, user_id: &str) -> Result<Option<Member>, StoreError> {
        let row = sqlx::query(
            "SELECT m.user_id, u.email, u.display_name, m.role, m.created_at FROM org_members m \
             JOIN users u ON u.id = m.user_id WHERE m.org_id = $1 AND m.user_id = $2",
        )
        .bind(org_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(member).transpose()
    }

    /// Adds a member; `Ok(false)` when they already belong to the org.
    pub async fn member_add(
        &self,
        org_id: &str,
        user_id: &str,
        role: Role,
        now: i64,
    ) -> Result<bool, StoreError> {
        let added = sqlx::query(
            "INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, user_id) DO NOTHING",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(added.rows_affected() == 1)
    }

    /// Changes a member's role, unless that would leave the org without an
    /// owner; `Ok(false)` then. One statement, so the check and the change
    /// cannot be split by another request.
    pub async fn member_set_role(&self, org_id: &str, user_id: &str, role: Role) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        lock_org(&mut tx, org_id).await?;
        let changed = sqlx::query(
            "UPDATE org_members SET role = $1 WHERE org_id = $2 AND user_id = $3 \
             AND (role <> 'owner' OR $1 = 'owner' \
                  OR (SELECT COUNT(*) FROM org_members WHERE org_id = $2 AND role = 'owner') > 1)",
        )
        .bind(role.as_str())
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(changed.rows_affected() == 1)
    }

    /// Removes a member and revokes their keys for the org, unless they are
    /// the last owner; `Ok(false)` then.
    pub async fn member_remove(&self, org_id: &str, user_id: &str, now: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool().begin().await?;
        lock_org(&mut tx, org_id).await?;
        let removed = sqlx::query(
            "DELETE FROM org_members WHERE org_id = $1 AND user_id = $2 \
             AND (role <> 'owner' OR (SELECT COUNT(*) FROM org_members WHERE org_id = $1 AND role = 'owner') > 1)",
        )
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if removed.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query(
            "UPDATE api_keys SET revoked_at = $1 WHERE org_id = $2 AND user_id = $3 AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(org_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Takes the org's row lock for the rest of `tx`, so changes to its owners
/// run one after another: under PostgreSQL's READ COMMITTED, two demotions
/// could otherwise each count two owners and leave none. (SQLite runs one
/// writer at a time anyway; the no-op update takes its write lock early.)
async fn lock_org(tx: &mut sqlx::Transaction<'_, sqlx::Any>, org_id: &str) -> Result<(), StoreError> {
    sqlx::query("UPDATE orgs SET name = name WHERE id = $1").bind(org_id).execute(&mut **tx).await?;
    Ok(())
}

fn member(row: &sqlx::any::AnyRow) -> Result<Member, StoreError> {
    Ok(Member {
        user_id: row.try_get("user_id")?,
        email: row.try_get("email")?,
        display_name: row.try_get("display_name")?,
        role: Role::parse(&row.try_get::<String, _>("role")?),
        joined_at: row.try_get("created_at")?,
    })
}
