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
    /// The gateway route of a run's event.
    pub route: Option<String>,
    /// More about the event, as JSON text.
    pub details: Option<String>,
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
    pub route: Option<String>,
    pub details: Option<String>,
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
    pub route: Option<&'a str>,
}

/// The SHA-256 (hex) that links an event to the one before it: over the
/// previous hash, the position and every recorded field, as one JSON array
/// (so no field can run into the next). `route` and `details` join the array
/// only when the event has either, so events recorded before they existed
/// keep their hash.
pub fn link_hash(prev_hash: &str, seq: i64, event: &ChainedEvent) -> String {
    let mut canonical = serde_json::json!([
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
    if let (Some(fields), true) = (canonical.as_array_mut(), event.route.is_some() || event.details.is_some())
    {
        fields.push(serde_json::json!(event.route));
        fields.push(serde_json::json!(event.details));
    }
    let digest = Sha256::digest(canonical.to_string().as_bytes());
    data_encoding::HEXLOWER.encode(&digest)
}
