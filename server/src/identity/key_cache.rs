//! API keys checked recently, kept in memory so validating a key on the hot
//! path reads no database. An entry lives at most [`KeyCache::TTL`]. Anything
//! that revokes a key, removes its owner from the org, deletes its org or
//! project, or changes the org's spend caps is a [`KeyChange`]: this server
//! forgets the keys concerned at once, and on PostgreSQL advances the shared
//! key epoch, which every replica reads with each API-key request
//! ([`KeyCache::observe_epoch`]): one that sees it moved forgets every key,
//! so a change made through any replica holds on the next request to all.
//!
//! A request that missed the cache reads the row, then puts it back; a
//! change in between would be undone by that put, so every change bumps a
//! generation and a put made with an older one is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::db::Db;
use crate::identity::model::ApiKey;
use crate::identity::store::StoredKey;
use crate::kernel::principal::CostCaps;

/// A key as stored, and whether its owner still belonged to its org when read.
#[derive(Debug, Clone)]
pub struct CachedKey {
    pub stored: Arc<StoredKey>,
    pub owner_is_member: bool,
    /// The daily spend caps of the key's org when read.
    pub org_caps: CostCaps,
    read_at: Instant,
}

/// Something that changes what cached keys may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// The key was revoked or deleted.
    Key(String),
    /// The user left the org, or was removed from it.
    Member { org_id: String, user_id: String },
    /// The org was deleted, or its spend caps changed.
    Org(String),
    /// The project was deleted.
    Project(String),
}

impl KeyChange {
    fn concerns(&self, key: &ApiKey) -> bool {
        match self {
            Self::Key(id) => key.id == *id,
            Self::Member { org_id, user_id } => key.org_id == *org_id && key.user_id == *user_id,
            Self::Org(id) => key.org_id == *id,
            Self::Project(id) => key.project_id.as_deref() == Some(id),
        }
    }
}

/// The cache's generation when a request started reading a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Generation(u64);

#[derive(Clone, Default)]
pub struct KeyCache {
    entries: Arc<Mutex<HashMap<String, CachedKey>>>,
    generation: Arc<AtomicU64>,
    /// The shared key epoch this cache's entries were read under.
    epoch: Arc<Mutex<Option<i64>>>,
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

    /// Takes the shared key epoch as just read: if it moved since the
    /// entries were read, some replica changed what keys may do, and every
    /// entry is forgotten.
    pub fn observe_epoch(&self, epoch: i64) {
        let mut seen = self.epoch.lock().unwrap_or_else(PoisonError::into_inner);
        if *seen != Some(epoch) {
            *seen = Some(epoch);
            drop(seen);
            self.forget_all();
        }
    }

    /// Take before reading a key from the database, to [`KeyCache::put`] it.
    pub fn generation(&self) -> Generation {
        Generation(self.generation.load(Ordering::SeqCst))
    }

    /// Keeps a key read from the database since `read_from`, unless
    /// something changed meanwhile; returns it either way.
    pub fn put(
        &self,
        stored: StoredKey,
        owner_is_member: bool,
        org_caps: CostCaps,
        read_from: Generation,
    ) -> CachedKey {
        let entry =
            CachedKey { stored: Arc::new(stored), owner_is_member, org_caps, read_at: Instant::now() };
        let mut entries = self.lock();
        // Changes bump the generation under this lock, so none slips in
        // between this check and the insert.
        if self.generation() != read_from {
            return entry;
        }
        if entries.len() >= Self::CAPACITY {
            entries.clear();
        }
        entries.insert(entry.stored.key.id.clone(), entry.clone());
        entry
    }

    /// Forgets the keys `change` concerns.
    /// What every domain function that changes what keys may do calls after
    /// the change: forgets the keys `change` concerns here at once, and moves
    /// the shared key epoch so every other replica forgets its keys on its
    /// next API-key request.
    pub async fn changed(&self, db: &Db, change: KeyChange) {
        self.forget(&change);
        if let Err(err) = db.key_epoch_advance().await {
            tracing::warn!(error = %err, "could not advance the key epoch; other replicas notice within the cache's TTL");
        }
    }

    pub fn forget(&self, change: &KeyChange) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, entry| !change.concerns(&entry.stored.key));
    }

    /// Forgets every key: changes may have been missed.
    pub fn forget_all(&self) {
        let mut entries = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::principal::{KeyLimits, Scope};

    fn row(id: &str, org: &str, user: &str, project: Option<&str>) -> StoredKey {
        let key = ApiKey {
            id: id.to_owned(),
            org_id: org.to_owned(),
            project_id: project.map(str::to_owned),
            user_id: user.to_owned(),
            name: "k".to_owned(),
            prefix: String::new(),
            scopes: vec![Scope::Chat],
            limits: KeyLimits::default(),
            created_at: 0,
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        StoredKey { key, secret_hash: String::new() }
    }

    #[test]
    fn forgets_by_key_member_org_and_project() {
        let cache = KeyCache::default();
        let put = |id, org, user, project| {
            cache.put(row(id, org, user, project), true, CostCaps::default(), cache.generation())
        };
        put("a", "org1", "u1", None);
        put("b", "org1", "u2", Some("p1"));
        put("c", "org2", "u1", None);
        put("d", "org3", "u3", None);
        cache.forget(&KeyChange::Member { org_id: "org1".into(), user_id: "u1".into() });
        assert!(cache.get("a").is_none() && cache.get("b").is_some() && cache.get("c").is_some());
        cache.forget(&KeyChange::Project("p1".into()));
        assert!(cache.get("b").is_none());
        cache.forget(&KeyChange::Org("org2".into()));
        assert!(cache.get("c").is_none());
        cache.forget(&KeyChange::Key("d".into()));
        assert!(cache.get("d").is_none());
    }

    #[test]
    fn a_read_that_started_before_a_change_is_not_kept() {
        let cache = KeyCache::default();
        let before = cache.generation();
        // The row was read, then revoked elsewhere before the put.
        cache.forget(&KeyChange::Key("a".into()));
        cache.put(row("a", "org1", "u1", None), true, CostCaps::default(), before);
        assert!(cache.get("a").is_none(), "a stale read re-inserted a revoked key");
        cache.put(row("a", "org1", "u1", None), true, CostCaps::default(), cache.generation());
        assert!(cache.get("a").is_some());
    }

    #[test]
    fn a_moved_epoch_forgets_every_key() {
        let cache = KeyCache::default();
        cache.observe_epoch(7);
        cache.put(row("a", "org1", "u1", None), true, CostCaps::default(), cache.generation());
        cache.observe_epoch(7);
        assert!(cache.get("a").is_some(), "the same epoch keeps the entries");
        cache.observe_epoch(8);
        assert!(cache.get("a").is_none());
    }
}
