//! When each API key was last used. Validating a key must not write to the
//! database on every request, so uses are noted in memory and written in
//! batches: periodically, and once more when the server stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::db::{Db, StoreError};

#[derive(Clone, Default)]
pub struct KeyUsage {
    /// Key id → latest use (Unix seconds) not yet written.
    pending: Arc<Mutex<HashMap<String, i64>>>,
}

impl KeyUsage {
    pub fn touch(&self, key_id: &str, at: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let latest = pending.entry(key_id.to_owned()).or_insert(at);
        *latest = (*latest).max(at);
    }

    /// Writes every pending use; uses that fail to write are kept for the
    /// next flush.
    pub async fn flush(&self, db: &Db) -> Result<usize, StoreError> {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner));
        let count = batch.len();
        let mut entries = batch.into_iter();
        while let Some((key_id, at)) = entries.next() {
            if let Err(err) = db.api_key_touch(&key_id, at).await {
                self.touch(&key_id, at);
                entries.for_each(|(key_id, at)| self.touch(&key_id, at));
                return Err(err);
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_use_per_key() {
        let usage = KeyUsage::default();
        usage.touch("key_a", 10);
        usage.touch("key_a", 5);
        usage.touch("key_b", 7);
        let pending = usage.pending.lock().unwrap_or_else(PoisonError::into_inner).clone();
        assert_eq!(pending, HashMap::from([("key_a".to_owned(), 10), ("key_b".to_owned(), 7)]));
    }
}
