//! `GET /health` and `GET /ready`: probes for load balancers and orchestrators.

use std::time::Instant;

use poem::web::Data;
use poem_openapi::{Enum, Object, OpenApi};

use crate::db::Readiness;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::{ApiTags, Ok200};
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct OperationsApi;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
}

/// The process is up and serving HTTP.
#[derive(Debug, Object)]
pub struct Health {
    pub status: HealthStatus,
    /// Seconds since this process started.
    pub uptime_seconds: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ReadyStatus {
    Ready,
}

/// The server can take traffic: the database answers and its schema is current.
#[derive(Debug, Object)]
pub struct Ready {
    pub status: ReadyStatus,
    /// Number of database migrations applied.
    pub migrations_applied: u64,
}

operation_errors!(
    /// Errors of `GET /ready`.
    ReadyError: 503
);

#[OpenApi(tag = "ApiTags::Operations")]
impl OperationsApi {
    /// Liveness: answers while the process runs, without touching the database.
    #[oai(path = "/health", method = "get", operation_id = "health_get")]
    async fn health_get(&self, state: Data<&AppState>) -> Ok200<Health> {
        let uptime = Instant::now().duration_since(state.started_at).as_secs();
        Ok200::Ok(poem_openapi::payload::Json(Health { status: HealthStatus::Ok, uptime_seconds: uptime }))
    }

    /// Readiness: 200 only when the database answers and migrations are applied.
    #[oai(path = "/ready", method = "get", operation_id = "ready_get")]
    async fn ready_get(&self, state: Data<&AppState>) -> Result<Ok200<Ready>, ReadyError> {
        match state.db.readiness().await {
            Readiness::Ready { applied } => Ok(Ok200::Ok(poem_openapi::payload::Json(Ready {
                status: ReadyStatus::Ready,
                migrations_applied: applied as u64,
            }))),
            Readiness::Unreachable(reason) => {
                tracing::warn!(%reason, "readiness: database unreachable");
                Err(ApiError::new(ErrorCode::ServerNotReady, "Database unreachable")
                    .why("The server cannot reach its database.")
                    .fix("Check database_url and that the database server is running.")
                    .into())
            }
            Readiness::MigrationsPending { applied, expected } => {
                Err(ApiError::new(ErrorCode::ServerNotReady, "Database migrations pending")
                    .why(format!("{applied} of {expected} migrations are applied."))
                    .fix("Run `switchyard migrate`, or start the server with auto_migrate = true.")
                    .into())
            }
        }
    }
}
