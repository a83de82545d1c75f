//! `/v1/auth/sessions`: the caller's signed-in sessions (one per login), and
//! ending one of them, such as a lost device's.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::http::client_addr::{ClientAddr, context};
use crate::http::credential::AnyCredential;
use crate::http::page::{PageCursor, PageSize, page_type};
use crate::http::responses::NoContent204;
use crate::http::wire::timestamp;
use crate::http::{ApiTags, Ok200};
use crate::identity::accounts;
use crate::identity::model;
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct SessionsApi;

/// A signed-in session: one login, kept alive by rotating its refresh token.
#[derive(Debug, Object)]
pub struct AuthSession {
    /// `ses_` followed by a ULID.
    pub id: String,
    /// The client address it began from.
    #[oai(nullable)]
    pub ip: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When it last rotated its refresh token; `null` if it never has.
    #[oai(nullable)]
    pub refreshed_at: Option<DateTime<Utc>>,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

page_type! {
    /// A page of sessions, oldest first.
    AuthSessionList of AuthSession
}

fn described(session: model::Session, current: &str) -> AuthSession {
    AuthSession {
        current: session.id == current,
        id: session.id,
        ip: session.ip,
        created_at: timestamp(session.created_at),
        refreshed_at: session.refreshed_at.map(timestamp),
    }
}

operation_errors!(SessionListError: 400, 401, 403, 429);
operation_errors!(SessionDeleteError: 401, 403, 404, 429);

#[OpenApi(tag = "ApiTags::Auth")]
impl SessionsApi {
    /// The caller's sessions that can still be used, oldest first. Needs a
    /// session token.
    #[oai(path = "/v1/auth/sessions", method = "get", operation_id = "session_list")]
    async fn session_list(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        limit: PageSize,
        cursor: PageCursor,
    ) -> Result<Ok200<AuthSessionList>, SessionListError> {
        let principal = state.principal(&auth).await?;
        let (page, current) =
            accounts::session_list(&state.db, &principal, cursor.as_deref(), limit.get(), state.clock.now())
                .await?;
        Ok(Ok200::Ok(Json(AuthSessionList::from(page.map(|session| described(session, &current))))))
    }

    /// Ends one of the caller's sessions: its access and refresh tokens stop
    /// working at once. Needs a session token.
    #[oai(path = "/v1/auth/sessions/:id", method = "delete", operation_id = "session_delete")]
    async fn session_delete(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        id: Path<String>,
    ) -> Result<NoContent204, SessionDeleteError> {
        let principal = state.principal(&auth).await?;
        accounts::session_revoke(&state.db, &principal, &id.0, &context(&state, client)).await?;
        Ok(NoContent204::NoContent)
    }
}
