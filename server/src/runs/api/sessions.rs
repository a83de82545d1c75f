//! `/v1/sessions`: conversations that runs continue — start one, list and
//! read them (with their history and totals), delete one, and share one
//! (`/v1/sessions/{id}/access`).

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use switchyard_providers::price::format_usd_micros;

use crate::http::client_addr::{ClientAddr, context};
use crate::http::credential::AnyCredential;
use crate::http::page::{PageCursor, PageSize, page_type};
use crate::http::responses::{Created201, NoContent204};
use crate::http::wire::timestamp;
use crate::http::{ApiTags, Ok200};
use crate::operation_errors;
use crate::runs::Runs;
use crate::runs::api::wire::RunUsage;
use crate::runs::{Access, AccessChange, Permission, Session, SessionDetail, Visibility};
use crate::state::AppState;

#[derive(Default)]
pub struct RunSessionsApi;

/// `POST /v1/sessions`.
#[derive(Debug, Clone, Object)]
pub struct CreateSessionRequest {
    /// A name for people; at most 200 characters.
    #[oai(validator(max_length = 200))]
    pub title: Option<String>,
}

/// Whom besides its creator, and the owners and admins of its organization,
/// a session is shared with: nobody (`private`), every member of its
/// organization (`org`), or the members it names (`members`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum SessionVisibility {
    Private,
    Org,
    Members,
}

/// What those a session is shared with may do: `read` it (its history and
/// its runs), or also `continue` it (start runs in it, and answer or cancel
/// its runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum SessionPermission {
    Read,
    Continue,
}

/// Whom a session is shared with, and what they may do.
#[derive(Debug, Clone, Object)]
pub struct SessionAccess {
    pub visibility: SessionVisibility,
    pub permission: SessionPermission,
    /// The user ids it is shared with, in order, when `visibility` is `members`; else empty.
    pub members: Vec<String>,
}

impl From<Access> for SessionAccess {
    fn from(access: Access) -> Self {
        Self {
            visibility: match access.visibility {
                Visibility::Private => SessionVisibility::Private,
                Visibility::Org => SessionVisibility::Org,
                Visibility::Members => SessionVisibility::Members,
            },
            permission: match access.permission {
                Permission::Read => SessionPermission::Read,
                Permission::Continue => SessionPermission::Continue,
            },
            members: access.members,
        }
    }
}

/// `PATCH /v1/sessions/{id}/access`: the fields to change, at least one;
/// those left out stay as they are.
#[derive(Debug, Clone, Object)]
pub struct UpdateSessionAccessRequest {
    pub visibility: Option<SessionVisibility>,
    pub permission: Option<SessionPermission>,
    /// With `visibility` `members`: whom to share it with, 1 to 100 members
    /// of its organization by user id or email, in place of those it named.
    #[oai(validator(max_items = 100))]
    pub members: Option<Vec<String>>,
}

impl From<UpdateSessionAccessRequest> for AccessChange {
    fn from(request: UpdateSessionAccessRequest) -> Self {
        Self {
            visibility: request.visibility.map(|visibility| match visibility {
                SessionVisibility::Private => Visibility::Private,
                SessionVisibility::Org => Visibility::Org,
                SessionVisibility::Members => Visibility::Members,
            }),
            permission: request.permission.map(|permission| match permission {
                SessionPermission::Read => Permission::Read,
                SessionPermission::Continue => Permission::Continue,
            }),
            members: request.members,
        }
    }
}

/// A conversation that runs continue.
#[derive(Debug, Clone, Object)]
pub struct SessionSummary {
    pub id: String,
    #[oai(nullable)]
    pub title: Option<String>,
    pub org_id: String,
    #[oai(nullable)]
    pub project_id: Option<String>,
    /// The user who started it.
    pub user_id: String,
    /// The API key that started it, if one did.
    #[oai(nullable)]
    pub key_id: Option<String>,
    pub access: SessionAccess,
    pub created_at: DateTime<Utc>,
    /// When a run last joined it.
    pub updated_at: DateTime<Utc>,
}

impl From<Session> for SessionSummary {
    fn from(session: Session) -> Self {
        Self {
            id: session.id,
            title: session.title,
            org_id: session.org_id,
            project_id: session.project_id,
            user_id: session.user_id,
            key_id: session.key_id,
            access: session.access.into(),
            created_at: timestamp(session.created_at),
            updated_at: timestamp(session.updated_at),
        }
    }
}

/// A message of a session's history.
#[derive(Debug, Clone, Object)]
pub struct SessionHistoryMessage {
    /// `user` (a run's message) or `assistant` (its final answer).
    pub role: String,
    pub content: String,
    /// The run it came from.
    pub run_id: String,
    pub created_at: DateTime<Utc>,
}

/// A session with its history — the message and final answer of each of
/// its completed runs, in order — and what its runs used.
#[derive(Debug, Clone, Object)]
pub struct SessionWithHistory {
    #[oai(flatten)]
    pub session: SessionSummary,
    pub messages: Vec<SessionHistoryMessage>,
    /// Runs that joined it, whatever their status.
    pub run_count: u64,
    pub usage: RunUsage,
    /// What its runs' model calls cost, in USD.
    pub cost_usd: String,
    /// The run that is not over yet; while there is one, another is 409 `run.session_busy`.
    #[oai(nullable)]
    pub active_run_id: Option<String>,
}

impl From<SessionDetail> for SessionWithHistory {
    fn from(SessionDetail { session, messages, totals }: SessionDetail) -> Self {
        Self {
            session: session.into(),
            messages: messages
                .into_iter()
                .map(|message| SessionHistoryMessage {
                    role: message.role,
                    content: message.content,
                    run_id: message.run_id,
                    created_at: timestamp(message.created_at),
                })
                .collect(),
            run_count: totals.run_count,
            usage: RunUsage::of(totals.prompt_tokens, totals.completion_tokens),
            cost_usd: format_usd_micros(totals.cost_micros),
            active_run_id: totals.active_run_id,
        }
    }
}

page_type! {
    /// A page of sessions.
    SessionList of SessionSummary
}

operation_errors!(SessionCreateError: 400, 401, 403, 404, 429);
operation_errors!(SessionListError: 400, 401, 403, 404, 429);
operation_errors!(SessionGetError: 401, 403, 404, 429);
operation_errors!(SessionDeleteError: 401, 403, 404, 409, 429);
operation_errors!(SessionAccessUpdateError: 400, 401, 403, 404, 422, 429);

#[OpenApi(tag = "ApiTags::Runs")]
impl RunSessionsApi {
    /// Starts an empty session in the caller's organization; runs continue
    /// it with `session_id` and `message`. Needs the `runs` scope.
    #[oai(path = "/v1/sessions", method = "post", operation_id = "run_session_create")]
    async fn session_create(
        &self,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        auth: AnyCredential,
        /// With a session token: the organization to start it in.
        #[oai(name = "X-Switchyard-Org")]
        org: Header<Option<String>>,
        body: Json<CreateSessionRequest>,
    ) -> Result<Created201<SessionWithHistory>, SessionCreateError> {
        let principal = state.principal(&auth).await?;
        let session = runs.session_create(&principal, org.0.as_deref(), body.0.title).await?;
        Ok(Created201::Created(Json(session.into())))
    }

    /// The sessions of the organization the caller may see, oldest first:
    /// their own and those shared with them, or all of them for owners and
    /// admins. Needs the `runs` scope.
    #[oai(path = "/v1/sessions", method = "get", operation_id = "run_session_list")]
    async fn session_list(
        &self,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        auth: AnyCredential,
        /// With a session token: the organization whose sessions to list.
        #[oai(name = "X-Switchyard-Org")]
        org: Header<Option<String>>,
        limit: PageSize,
        cursor: PageCursor,
    ) -> Result<Ok200<SessionList>, SessionListError> {
        let principal = state.principal(&auth).await?;
        let page = runs.session_list(&principal, org.0.as_deref(), cursor.as_deref(), limit.get()).await?;
        Ok(Ok200::Ok(Json(page.map(SessionSummary::from).into())))
    }

    /// One session, with its history and totals. Needs the `runs` scope.
    #[oai(path = "/v1/sessions/:id", method = "get", operation_id = "run_session_get")]
    async fn session_get(
        &self,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        auth: AnyCredential,
        id: Path<String>,
    ) -> Result<Ok200<SessionWithHistory>, SessionGetError> {
        let principal = state.principal(&auth).await?;
        Ok(Ok200::Ok(Json(runs.session_get(&principal, &id.0).await?.into())))
    }

    /// Deletes a session and its history; its runs stay, no longer in it.
    /// Its creator, or an owner or admin of its organization. While one of
    /// its runs is not over: 409 `run.session_busy`. Needs the `runs` scope.
    #[oai(path = "/v1/sessions/:id", method = "delete", operation_id = "run_session_delete")]
    async fn session_delete(
        &self,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        auth: AnyCredential,
        id: Path<String>,
    ) -> Result<NoContent204, SessionDeleteError> {
        let principal = state.principal(&auth).await?;
        runs.session_delete(&principal, &id.0).await?;
        Ok(NoContent204::NoContent)
    }

    /// Shares a session, or stops sharing it: whom with, and whether they
    /// may only read it or also continue it. Its creator, or an owner or
    /// admin of its organization. Needs the `runs` scope.
    #[oai(path = "/v1/sessions/:id/access", method = "patch", operation_id = "run_session_access_update")]
    async fn session_access_update(
        &self,
        state: Data<&AppState>,
        runs: Data<&Runs>,
        client: ClientAddr,
        auth: AnyCredential,
        id: Path<String>,
        body: Json<UpdateSessionAccessRequest>,
    ) -> Result<Ok200<SessionAccess>, SessionAccessUpdateError> {
        let principal = state.principal(&auth).await?;
        let ctx = context(&state, client);
        let access = runs.session_access_update(&principal, &id.0, body.0.into(), &ctx).await?;
        Ok(Ok200::Ok(Json(access.into())))
    }
}
