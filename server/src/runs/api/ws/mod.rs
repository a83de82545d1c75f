//! `GET /v1/runs/ws`: the run loop over a WebSocket, as
//! `openapi/asyncapi.yaml` documents it. The upgrade checks the browser
//! origin and any credential it carries; `connection` serves the frames.

mod connection;
pub mod frames;

use poem::web::Data;
use poem::web::websocket::{WebSocket, WebSocketConfig};
use poem::{IntoResponse, Request, Response, handler};

use crate::http::error::{ApiError, ErrorCode};
use crate::http::origin::AllowedOrigins;
use crate::http::request_id;
use crate::runs::Runs;
use crate::state::AppState;

use connection::{Connection, Credential};

/// What the WebSocket endpoints need besides the state: the browser origins
/// allowed to open one, and the largest frame taken.
#[derive(Debug, Clone)]
pub struct SocketSettings {
    pub origins: AllowedOrigins,
    pub max_frame_bytes: usize,
}

/// Upgrades to the run loop, once the origin passed and a credential on
/// the upgrade, if any, is good; without one the first frame must carry it.
#[handler]
pub async fn runs_socket(
    request: &Request,
    socket: WebSocket,
    state: Data<&AppState>,
    runs: Data<&Runs>,
    settings: Data<&SocketSettings>,
) -> Response {
    upgrade(request, socket, &state, &runs, &settings).await.unwrap_or_else(IntoResponse::into_response)
}

async fn upgrade(
    request: &Request,
    socket: WebSocket,
    state: &AppState,
    runs: &Runs,
    settings: &SocketSettings,
) -> Result<Response, ApiError> {
    let origin = request.headers().get("origin").map(|value| value.to_str().unwrap_or_default());
    if !settings.origins.admits(origin) {
        return Err(ApiError::new(ErrorCode::RequestOriginNotAllowed, "This origin may not open WebSockets")
            .why(format!("{} is not one of the server's [cors] allowed_origins.", origin.unwrap_or_default()))
            .fix("Ask the operator to add the page's origin to [cors] allowed_origins."));
    }
    let org = header(request, "x-switchyard-org");
    let token = match header(request, "authorization") {
        Some(value) => match value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) {
            Some(token) => Some(token.trim().to_owned()),
            None => {
                return Err(ApiError::new(
                    ErrorCode::AuthMissingCredentials,
                    "Send Authorization: Bearer <token>",
                )
                .param("Authorization"));
            }
        },
        None => header(request, "x-api-key"),
    };
    let credential = match token {
        Some(token) => {
            let principal = state.principal_from_token(&token).await?;
            Some(Credential { token, org, principal })
        }
        None => None,
    };
    let connection = Connection::new(state.clone(), runs.clone(), credential);
    let id = request_id::current().unwrap_or_else(request_id::mint);
    let mut config = WebSocketConfig::default();
    config.max_message_size = Some(settings.max_frame_bytes);
    config.max_frame_size = Some(settings.max_frame_bytes);
    Ok(socket
        .config(config)
        .on_upgrade(move |stream| request_id::scope(id, connection.serve(stream)))
        .into_response())
}

fn header(request: &Request, name: &str) -> Option<String> {
    request.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned)
}
