//! The key epoch: one counter every replica on a PostgreSQL database shares,
//! advanced by any change to what API keys may do, read with every API-key
//! request so no replica serves a key from memory past such a change. A
//! SQLite database serves one process, whose own cache forgets at once, so
//! it is neither read nor needed there.

use crate::db::{Db, Engine, StoreError};

impl Db {
    /// Moves the epoch on: every replica's key cache starts over.
    pub async fn key_epoch_advance(&self) -> Result<(), StoreError> {
        if self.engine() != Engine::Postgres {
            return Ok(());
        }
        sqlx::query("UPDATE key_epoch SET epoch = epoch + 1 WHERE id = 1").execute(self.pool()).await?;
        Ok(())
    }

    /// The current epoch; `None` where there are no other replicas (SQLite).
    pub async fn key_epoch(&self) -> Result<Option<i64>, StoreError> {
        if self.engine() != Engine::Postgres {
            return Ok(None);
        }
        let epoch =
            sqlx::query_scalar("SELECT epoch FROM key_epoch WHERE id = 1").fetch_one(self.pool()).await?;
        Ok(Some(epoch))
    }
}
