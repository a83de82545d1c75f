//! The audit trail as hash chains: one per organization, and one (`""`) for
//! account events outside any org. Each event is linked to the one before it
//! by [`link_hash`], so changing, removing or reordering a stored event breaks
//! the chain from there on.

use sha2::{Digest, Sha256};

/// What an event is chained to when it is the first of its chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One security event to record: who did what to which target, from where.
#[derive(Debug, Clone, Default)]
pub struct NewEvent {
    pub actor_id: Option<String>,
    pub org_id: Option<String>,
    pub action: &'static str,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
}

/// A recorded event with its place in its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainedEvent {
    pub id: String,
    pub occurred_at: i64,
    pub actor_id: Option<String>,
    pub org_id: Option<String>,
    pub action: String,
    pub target: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub seq: i64,
    pub prev_hash: String,
    pub hash: String,
}

/// Which events of a chain to list.
#[derive(Debug, Default)]
pub struct AuditFilter<'a> {
    pub actor_id: Option<&'a str>,
    pub action: Option<&'a str>,
    /// Unix seconds, inclusive.
    pub since: Option<i64>,
    /// Unix seconds, exclusive.
    pub until: Option<i64>,
}

/// The SHA-256 (hex) that links an event to the one before it: over the
/// previous hash, the position and every recorded field, as one JSON array
/// (so no field can run into the next).
pub fn link_hash(prev_hash: &str, seq: i64, event: &ChainedEvent) -> String {
    let canonical = serde_json::json!([
        prev_hash,
        seq,
        event.id,
        event.occurred_at,
        event.actor_id,
        event.org_id,
        event.action,
        event.target,
        event.ip,
        event.request_id,
    ]);
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    data_encoding::HEXLOWER.encode(&digest)
}
