//! `/v1/audit`: an organization's tamper-evident audit trail, and the check
//! that recomputes its hash chain; `/v1/auth/security-log`: a user's own
//! account events.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::audit::chain::{AuditFilter, ChainedEvent};
use crate::audit::service;
use crate::audit::service::{AuditQuery, Verification};
use crate::http::credential::AnyCredential;
use crate::http::page::{PageCursor, PageSize, page_type};
use crate::http::wire::timestamp;
use crate::http::{ApiTags, Ok200};
use crate::identity::{Role, org_managed_by};
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct AuditApi;

/// One security event, linked to the one before it in its organization's
/// chain.
#[derive(Debug, Object)]
pub struct AuditEvent {
    pub id: String,
    /// The event's position in the organization's chain, from 1.
    pub seq: u64,
    /// `null` for account events, which belong to no org.
    #[oai(nullable)]
    pub org_id: Option<String>,
    /// The user who acted, when one did.
    #[oai(nullable)]
    pub actor_id: Option<String>,
    /// What happened, as `area.verb` (`member.added`, `api_key.created`, …).
    pub action: String,
    /// The id of what it happened to.
    #[oai(nullable)]
    pub target: Option<String>,
    /// The client address the request came from.
    #[oai(nullable)]
    pub ip: Option<String>,
    #[oai(nullable)]
    pub request_id: Option<String>,
    /// The gateway route, for the events of a run.
    #[oai(nullable)]
    pub route: Option<String>,
    /// More about the event: for `run.created` who started it; for
    /// `run.tool_called` the tool, the SHA-256 of its arguments and the
    /// outcome; for `run.finished` the status, usage and cost; for
    /// `session.access_changed` who changed it and the session's new access.
    #[oai(nullable)]
    pub details: Option<std::collections::BTreeMap<String, serde_json::Value>>,
    pub occurred_at: DateTime<Utc>,
    /// The `hash` of the event before (64 zeros for the first).
    pub prev_hash: String,
    /// SHA-256 (lowercase hex) of the JSON array `[prev_hash, seq, id,
    /// occurred_at (Unix seconds), actor_id, org_id, action, target, ip,
    /// request_id]`, followed by `route` and `details` (as the JSON text
    /// stored) when the event has either.
    pub hash: String,
}

impl From<ChainedEvent> for AuditEvent {
    fn from(event: ChainedEvent) -> Self {
        let details = event.details.as_deref().and_then(|text| match serde_json::from_str(text) {
            Ok(serde_json::Value::Object(details)) => Some(details.into_iter().collect()),
            _ => {
                tracing::error!(event = %event.id, "stored audit details are not a JSON object");
                None
            }
        });
        Self {
            id: event.id,
            // Positions start at 1; a negative one cannot be stored.
            seq: u64::try_from(event.seq).unwrap_or(0),
            org_id: event.org_id,
            actor_id: event.actor_id,
            action: event.action,
            target: event.target,
            ip: event.ip,
            request_id: event.request_id,
            route: event.route,
            details,
            occurred_at: timestamp(event.occurred_at),
            prev_hash: event.prev_hash,
            hash: event.hash,
        }
    }
}

page_type! {
    /// A page of audit events, newest first.
    AuditEventList of AuditEvent
}

/// What recomputing an organization's chain found.
#[derive(Debug, Object)]
pub struct AuditVerification {
    pub org_id: String,
    /// Whether every event from the first to the head links up.
    pub valid: bool,
    /// Events that matched, from the first on.
    pub verified_events: u64,
    /// The hash of the last event that matched.
    pub head_hash: String,
    /// The first position that does not match (an event changed, missing or
    /// out of place); `null` when the chain is intact.
    #[oai(nullable)]
    pub broken_at_seq: Option<u64>,
}

impl From<Verification> for AuditVerification {
    fn from(verification: Verification) -> Self {
        Self {
            org_id: verification.chain,
            valid: verification.broken_at.is_none(),
            verified_events: u64::try_from(verification.verified_events).unwrap_or(0),
            head_hash: verification.head_hash,
            broken_at_seq: verification.broken_at.and_then(|seq| u64::try_from(seq).ok()),
        }
    }
}

operation_errors!(AuditListError: 400, 401, 403, 404, 422, 429);
operation_errors!(AuditVerifyError: 401, 403, 404, 422, 429);
operation_errors!(SecurityLogError: 400, 401, 403, 422, 429);

#[OpenApi(tag = "ApiTags::Audit")]
impl AuditApi {
    /// An organization's audit events, newest first. Owners and admins; an
    /// API key needs the `admin` scope.
    #[oai(path = "/v1/audit", method = "get", operation_id = "audit_list")]
    #[expect(
        clippy::too_many_arguments,
        reason = "each query parameter is an argument: poem-openapi has no query structs"
    )]
    async fn audit_list(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        /// The organization; required with a session, an API key's own by default.
        org_id: Query<Option<String>>,
        /// Only events of this user.
        principal: Query<Option<String>>,
        /// Only events with this action, such as `member.added`.
        action: Query<Option<String>>,
        /// Only events at or after this time.
        since: Query<Option<DateTime<Utc>>>,
        /// Only events before this time.
        until: Query<Option<DateTime<Utc>>>,
        /// Only the events of runs on this gateway route, such as `default`.
        route: Query<Option<String>>,
        limit: PageSize,
        cursor: PageCursor,
    ) -> Result<Ok200<AuditEventList>, AuditListError> {
        let caller = state.principal(&auth).await?;
        let org_id = org_managed_by(&state.db, &caller, org_id.0.as_deref(), Role::Admin).await?;
        let query = AuditQuery {
            filter: AuditFilter {
                actor_id: principal.0.as_deref(),
                action: action.0.as_deref(),
                since: since.0.map(|at| at.timestamp()),
                until: until.0.map(|at| at.timestamp()),
                route: route.0.as_deref(),
            },
            cursor: cursor.as_deref(),
            limit: limit.get(),
        };
        let page = service::audit_list(&state.db, org_id, query).await?;
        Ok(Ok200::Ok(Json(AuditEventList::from(page.map(AuditEvent::from)))))
    }

    /// The caller's own account events, newest first: sign-ups, logins and
    /// failed logins, password and two-factor changes, sessions ended. Needs
    /// a session token.
    #[oai(
        path = "/v1/auth/security-log",
        method = "get",
        operation_id = "security_log_list",
        tag = "ApiTags::Auth"
    )]
    async fn security_log_list(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        limit: PageSize,
        cursor: PageCursor,
    ) -> Result<Ok200<AuditEventList>, SecurityLogError> {
        let caller = state.principal(&auth).await?;
        let page = service::security_log(&state.db, &caller, cursor.as_deref(), limit.get()).await?;
        Ok(Ok200::Ok(Json(AuditEventList::from(page.map(AuditEvent::from)))))
    }

    /// Recomputes an organization's hash chain from its first event to its
    /// head. Owners and admins; an API key needs the `admin` scope.
    #[oai(path = "/v1/audit/verify", method = "get", operation_id = "audit_verify")]
    async fn audit_verify(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        /// The organization; required with a session, an API key's own by default.
        org_id: Query<Option<String>>,
    ) -> Result<Ok200<AuditVerification>, AuditVerifyError> {
        let caller = state.principal(&auth).await?;
        let org_id = org_managed_by(&state.db, &caller, org_id.0.as_deref(), Role::Admin).await?;
        let verification = service::audit_verify(&state.db, org_id).await?;
        Ok(Ok200::Ok(Json(verification.into())))
    }
}
