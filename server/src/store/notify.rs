//! Notices between replicas on one PostgreSQL database (LISTEN/NOTIFY): a
//! replica that changes what API keys may do announces it, and every
//! replica's key cache forgets the keys concerned as soon as the notice
//! arrives. SQLite serves one process, so there is nobody to tell.

use sqlx::postgres::PgListener;

use super::{Db, Engine, StoreError};

const KEY_CHANGES: &str = "switchyard_key_changes";

impl Db {
    /// Announces a key change (`KeyChange`'s text) to every replica, this
    /// one included.
    pub async fn key_change_announce(&self, change: &str) -> Result<(), StoreError> {
        if self.engine != Engine::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)").bind(KEY_CHANGES).bind(change).execute(self.pool()).await?;
        Ok(())
    }

    /// Listens for announced key changes; `None` on SQLite.
    pub async fn key_change_listener(&self) -> Result<Option<KeyChangeListener>, StoreError> {
        if self.engine != Engine::Postgres {
            return Ok(None);
        }
        let mut listener = PgListener::connect(&self.url).await?;
        listener.listen(KEY_CHANGES).await?;
        Ok(Some(KeyChangeListener(listener)))
    }
}

/// Announced key changes, as they arrive.
pub struct KeyChangeListener(PgListener);

impl KeyChangeListener {
    /// The next announced change; `None` when the connection was lost and
    /// notices may have been missed (the next call reconnects).
    pub async fn next(&mut self) -> Result<Option<String>, StoreError> {
        Ok(self.0.try_recv().await?.map(|notice| notice.payload().to_owned()))
    }
}
