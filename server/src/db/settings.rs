//! Deployment-wide settings kept in the `settings` table.

use crate::db::{Db, StoreError};

impl Db {
    /// The deployment id: minted by the first migration and shared by every
    /// replica that uses this database.
    pub async fn deployment_id(&self) -> Result<String, StoreError> {
        let id = sqlx::query_scalar::<_, String>("SELECT value FROM settings WHERE key = $1")
            .bind("deployment_id")
            .fetch_one(self.pool())
            .await?;
        Ok(id)
    }
}

impl Db {
    /// The value stored under `key`, inserting `candidate` first if there is
    /// none. Replicas racing on first start all read the one winner.
    pub async fn setting_get_or_insert(&self, key: &str, candidate: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(candidate)
            .execute(self.pool())
            .await?;
        Ok(sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
            .bind(key)
            .fetch_one(self.pool())
            .await?)
    }
}
