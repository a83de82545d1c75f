//! API keys checked recently, kept in memory so validating a key on the hot
//! path reads no database. An entry lives at most [`KeyCache::TTL`]; anything
//! on this server that revokes a key, removes its owner from the org, or
//! deletes its org or project forgets it at once, so those take effect on the
//! next request here; so does a change of the org's spend caps. Other
//! replicas notice within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::store::{ApiKeyRow, CostCaps};

/// A key as stored, and whether its owner still belonged to its org when read.
#[derive(Debug, Clone)]
pub struct CachedKey {
    pub key: Arc<ApiKeyRow>,
    pub owner_is_member: bool,
    /// The daily spend caps of the key's org when read.
    pub org_caps: CostCaps,
    read_at: Instant,
}

#[derive(Clone, Default)]
pub struct KeyCache {
    entries: Arc<Mutex<HashMap<String, CachedKey>>>,
}

impl KeyCache {
    /// How long a key read from the database is trusted.
    pub const TTL: Duration = Duration::from_secs(30);
    /// Most keys held; past it the cache starts over.
    const CAPACITY: usize = 100_000;

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CachedKey>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key with this id, if it was read within the TTL.
    pub fn get(&self, key_id: &str) -> Option<CachedKey> {
        self.lock().get(key_id).filter(|entry| entry.read_at.elapsed() < Self::TTL).cloned()
    }

    pub fn put(&self, key: ApiKeyRow, owner_is_member: bool, org_caps: CostCaps) -> CachedKey {
        let entry = CachedKey { key: Arc::new(key), owner_is_member, org_caps, read_at: Instant::now() };
        let mut entries = self.lock();
        if entries.len() >= Self::CAPACITY {
            entries.clear();
        }
        entries.insert(entry.key.id.clone(), entry.clone());
        entry
    }

    pub fn forget_key(&self, key_id: &str) {
        self.lock().remove(key_id);
    }

    /// Forgets the keys `user_id` holds in `org_id`.
    pub fn forget_member(&self, org_id: &str, user_id: &str) {
        self.lock().retain(|_, entry| !(entry.key.org_id == org_id && entry.key.user_id == user_id));
    }

    /// Forgets the org's keys: it was deleted, or its caps changed.
    pub fn forget_org(&self, org_id: &str) {
        self.lock().retain(|_, entry| entry.key.org_id != org_id);
    }

    pub fn forget_project(&self, project_id: &str) {
        self.lock().retain(|_, entry| entry.key.project_id.as_deref() != Some(project_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::KeyLimitsRow;

    fn row(id: &str, org: &str, user: &str, project: Option<&str>) -> ApiKeyRow {
        ApiKeyRow {
            id: id.to_owned(),
            org_id: org.to_owned(),
            project_id: project.map(str::to_owned),
            user_id: user.to_owned(),
            name: "k".to_owned(),
            prefix: String::new(),
            secret_hash: String::new(),
            scopes: "chat".to_owned(),
            created_at: 0,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
            limits: KeyLimitsRow::default(),
        }
    }

    #[test]
    fn forgets_by_key_member_org_and_project() {
        let cache = KeyCache::default();
        cache.put(row("a", "org1", "u1", None), true, CostCaps::default());
        cache.put(row("b", "org1", "u2", Some("p1")), true, CostCaps::default());
        cache.put(row("c", "org2", "u1", None), true, CostCaps::default());
        cache.put(row("d", "org3", "u3", None), true, CostCaps::default());
        cache.forget_member("org1", "u1");
        assert!(cache.get("a").is_none() && cache.get("b").is_some() && cache.get("c").is_some());
        cache.forget_project("p1");
        assert!(cache.get("b").is_none());
        cache.forget_org("org2");
        assert!(cache.get("c").is_none());
        cache.forget_key("d");
        assert!(cache.get("d").is_none());
    }
}
