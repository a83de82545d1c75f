//! Projects of an organization.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::db::{Db, StoreError};
use crate::identity::model::Project;

fn project(row: &AnyRow) -> Result<Project, StoreError> {
    Ok(Project {
        id: row.try_get("id")?,
        org_id: row.try_get("org_id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

impl Db {
    pub async fn project_insert(&self, project: &Project) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO projects (id, org_id, name, created_at) VALUES ($1, $2, $3, $4)")
            .bind(&project.id)
            .bind(&project.org_id)
            .bind(&project.name)
            .bind(project.created_at)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn project_by_id(&self, id: &str) -> Result<Option<Project>, StoreError> {
        let row = sqlx::query("SELECT id, org_id, name, created_at FROM projects WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(project).transpose()
    }

    /// Projects of the orgs `user_id` belongs to (optionally one org), in id
    /// order after the keyset cursor `after`.
    pub async fn projects_visible_to(
        &self,
        user_id: &str,
        org_id: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Project>, StoreError> {
        let rows = sqlx::query(
            "SELECT p.id, p.org_id, p.name, p.created_at FROM projects p \
             JOIN org_members m ON m.org_id = p.org_id AND m.user_id = $1 \
             WHERE ($2 = '' OR p.org_id = $2) AND p.id > $3 ORDER BY p.id LIMIT $4",
        )
        .bind(user_id)
        .bind(org_id.unwrap_or(""))
        .bind(after.unwrap_or(""))
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(project).collect()
    }

    pub async fn project_rename(&self, id: &str, name: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE projects SET name = $1 WHERE id = $2")
            .bind(name)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Deletes the project and the API keys narrowed to it.
    pub async fn project_delete(&self, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("DELETE FROM api_keys WHERE project_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM projects WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
