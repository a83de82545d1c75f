//! Deployment-wide settings kept in the `settings` table.

use super::{Db, StoreError};

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
