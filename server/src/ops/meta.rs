//! `GET /v1/meta`: name, version, build and enabled features, so clients and
//! operators can tell what they are talking to.

use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::http::error::{ApiError, ErrorCode};
use crate::http::{ApiTags, Ok200};
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct MetaApi;

/// What this server is.
#[derive(Debug, Object)]
pub struct Meta {
    /// Always `switchyard`.
    pub name: String,
    /// The server's semantic version.
    pub version: String,
    pub build: BuildInfo,
    /// Identifies the deployment (its database); the same on every replica.
    pub deployment_id: String,
    /// The API areas this server has enabled.
    pub features: Vec<String>,
}

/// How this binary was built.
#[derive(Debug, Object)]
pub struct BuildInfo {
    /// `release` or `debug`.
    pub profile: String,
    /// The source commit, when the build knew it.
    #[oai(nullable)]
    pub commit: Option<String>,
}

operation_errors!(
    /// Errors of `GET /v1/meta`.
    MetaError: 429, 503
);

#[OpenApi(tag = "ApiTags::Meta")]
impl MetaApi {
    /// Describes this server: name, version, build and enabled features.
    #[oai(path = "/v1/meta", method = "get", operation_id = "meta_get")]
    async fn meta_get(&self, state: Data<&AppState>) -> Result<Ok200<Meta>, MetaError> {
        let deployment_id = state.deployment_id().await.map_err(|err| {
            tracing::warn!(error = %err, "meta: deployment id unavailable");
            ApiError::new(ErrorCode::ServerNotReady, "Database not ready")
                .why("The deployment id lives in the database, which is unreachable or not migrated.")
                .fix("Check GET /ready; run `switchyard migrate` if migrations are pending.")
        })?;
        Ok(Ok200::Ok(Json(Meta {
            name: "switchyard".to_owned(),
            version: crate::VERSION.to_owned(),
            build: BuildInfo {
                profile: if cfg!(debug_assertions) { "debug" } else { "release" }.to_owned(),
                commit: option_env!("BUILD_COMMIT").map(str::to_owned),
            },
            deployment_id: deployment_id.to_owned(),
            features: state.features.iter().map(|f| (*f).to_owned()).collect(),
        })))
    }
}
