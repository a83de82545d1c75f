//! The audit trail as an org's owners and admins read it: its events, newest
//! first and filtered, and a verification that recomputes the org's hash
//! chain from the first event to the head, naming the first position where
//! a stored event no longer matches. And each user's own security log: their
//! account events, which belong to no org.

use crate::audit::chain::{AuditFilter, ChainedEvent, GENESIS_HASH, link_hash};
use crate::db::Db;
use crate::kernel::error::{DomainError, DomainResult};
use crate::kernel::page::Page;
use crate::kernel::principal::Principal;

/// How many events verification reads at a time.
const VERIFY_PAGE: i64 = 1_000;

/// What `GET /v1/audit` asks for.
#[derive(Debug, Default)]
pub struct AuditQuery<'a> {
    pub filter: AuditFilter<'a>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<&'a str>,
    pub limit: i64,
}

/// The org's events, newest first. Who may read them (owners and admins; a
/// key needs `admin`) is identity's decision, made before.
pub async fn audit_list(db: &Db, org_id: &str, query: AuditQuery<'_>) -> DomainResult<Page<ChainedEvent>> {
    page_of_chain(db, org_id, &query.filter, query.cursor, query.limit).await
}

/// The caller's own account events (sign-ups, logins and failed logins,
/// password and two-factor changes, sessions ended), newest first. Needs a
/// session.
pub async fn security_log(
    db: &Db,
    principal: &Principal,
    cursor: Option<&str>,
    limit: i64,
) -> DomainResult<Page<ChainedEvent>> {
    principal.require_session()?;
    let filter = AuditFilter { actor_id: Some(&principal.user_id), ..AuditFilter::default() };
    page_of_chain(db, ACCOUNT_CHAIN, &filter, cursor, limit).await
}

/// The chain of account events outside any org.
const ACCOUNT_CHAIN: &str = "";

/// One page of a chain's events matching `filter`, newest first.
async fn page_of_chain(
    db: &Db,
    chain: &str,
    filter: &AuditFilter<'_>,
    cursor: Option<&str>,
    limit: i64,
) -> DomainResult<Page<ChainedEvent>> {
    let before = cursor
        .map(|cursor| {
            cursor.parse::<i64>().map_err(|_| DomainError::Invalid {
                param: "cursor",
                message: "is not a cursor this endpoint returned".to_owned(),
            })
        })
        .transpose()?;
    if let (Some(since), Some(until)) = (filter.since, filter.until)
        && since >= until
    {
        return Err(DomainError::Invalid {
            param: "until",
            message: "must be later than `since`".to_owned(),
        });
    }
    let mut items = db.audit_list(chain, filter, before, limit + 1).await?;
    let has_more = items.len() as i64 > limit;
    items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    let next_cursor = if has_more { items.last().map(|row| row.seq.to_string()) } else { None };
    Ok(Page { items, next_cursor })
}

/// The outcome of recomputing an org's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The chain: an org id, or `""` for account events.
    pub chain: String,
    /// Events that matched, from the first on.
    pub verified_events: i64,
    /// The hash of the last event that matched (the genesis hash for none).
    pub head_hash: String,
    /// The first position where the chain breaks: an event changed, missing
    /// or out of place, or events missing after the last one.
    pub broken_at: Option<i64>,
}

/// Recomputes the org's hash chain (who may: as for [`audit_list`]).
pub async fn audit_verify(db: &Db, org_id: &str) -> DomainResult<Verification> {
    verify_chain(db, org_id).await
}

/// Every chain there is: each org's that has events, and the account chain
/// (`""`), for `switchyard audit verify` on the server host.
pub async fn chains(db: &Db) -> DomainResult<Vec<String>> {
    Ok(db.audit_chains().await?)
}

/// Recomputes one chain (an org id, or `""` for account events) from its
/// first event to its head. No access check: callers decide who may.
pub async fn verify_chain(db: &Db, chain: &str) -> DomainResult<Verification> {
    // The head first: events appended while the chain is read are not counted.
    let (head_seq, head_hash) = db.audit_chain_head(chain).await?;
    let mut verified = Verification {
        chain: chain.to_owned(),
        verified_events: 0,
        head_hash: GENESIS_HASH.to_owned(),
        broken_at: None,
    };
    while verified.verified_events < head_seq {
        let page = db.audit_chain_page(chain, verified.verified_events, VERIFY_PAGE).await?;
        if page.is_empty() {
            break;
        }
        for row in &page {
            if row.seq > head_seq {
                break;
            }
            if !links(&verified, row) {
                verified.broken_at = Some(verified.verified_events + 1);
                return Ok(verified);
            }
            verified.verified_events = row.seq;
            verified.head_hash = row.hash.clone();
        }
    }
    if verified.verified_events != head_seq || verified.head_hash != head_hash {
        verified.broken_at = Some(verified.verified_events + 1);
    }
    Ok(verified)
}

/// Whether `row` is the event that follows what was verified so far.
fn links(verified: &Verification, row: &ChainedEvent) -> bool {
    row.seq == verified.verified_events + 1
        && row.prev_hash == verified.head_hash
        && link_hash(&verified.head_hash, row.seq, row) == row.hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev_hash: &str) -> ChainedEvent {
        let mut row = ChainedEvent {
            id: format!("evt_{seq}"),
            occurred_at: 1_700_000_000 + seq,
            actor_id: Some("usr_1".to_owned()),
            org_id: Some("org_1".to_owned()),
            action: "member.added".to_owned(),
            target: Some("usr_2".to_owned()),
            ip: Some("127.0.0.1".to_owned()),
            request_id: None,
            route: None,
            details: None,
            seq,
            prev_hash: prev_hash.to_owned(),
            hash: String::new(),
        };
        row.hash = link_hash(prev_hash, seq, &row);
        row
    }

    #[test]
    fn each_event_links_to_the_one_before() {
        let first = row(1, GENESIS_HASH);
        let start = Verification {
            chain: "org_1".to_owned(),
            verified_events: 0,
            head_hash: GENESIS_HASH.to_owned(),
            broken_at: None,
        };
        assert!(links(&start, &first));
        let second = row(2, &first.hash);
        let after_first = Verification { verified_events: 1, head_hash: first.hash.clone(), ..start.clone() };
        assert!(links(&after_first, &second));
        assert!(!links(&start, &second), "out of place");
    }

    #[test]
    fn any_changed_field_breaks_the_link() {
        let start = Verification {
            chain: "org_1".to_owned(),
            verified_events: 0,
            head_hash: GENESIS_HASH.to_owned(),
            broken_at: None,
        };
        let original = row(1, GENESIS_HASH);
        let edits: [fn(&mut ChainedEvent); 8] = [
            |r| r.route = Some("default".to_owned()),
            |r| r.details = Some("{}".to_owned()),
            |r| r.action = "member.removed".to_owned(),
            |r| r.actor_id = None,
            |r| r.target = Some("usr_3".to_owned()),
            |r| r.ip = Some("10.0.0.1".to_owned()),
            |r| r.occurred_at += 1,
            |r| r.id = "evt_other".to_owned(),
        ];
        for edit in edits {
            let mut edited = original.clone();
            edit(&mut edited);
            assert!(!links(&start, &edited), "{edited:?}");
        }
    }
}
