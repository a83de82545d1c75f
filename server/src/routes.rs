//! The route table: every area's handlers, one poem-openapi service per spec
//! tag, assembled into the one service the server runs and the spec is
//! generated from.

use poem_openapi::OpenApiService;

pub type Apis = (
    crate::ops::health::OperationsApi,
    crate::ops::meta::MetaApi,
    IdentityApis,
    crate::gateway::api::GatewayApi,
    crate::gateway::usage::api::UsageApi,
    crate::runs::api::RunsApi,
    crate::runs::api::RunSessionsApi,
    crate::audit::api::AuditApi,
);

/// The identity area's APIs (a tuple of its own: poem-openapi's tuples hold
/// at most twelve).
pub type IdentityApis = (
    crate::identity::api::auth::AuthApi,
    crate::identity::api::sessions::SessionsApi,
    crate::identity::api::two_factor::TwoFactorApi,
    crate::identity::api::email::EmailApi,
    crate::identity::api::api_keys::ApiKeysApi,
    crate::identity::api::orgs::OrgsApi,
    crate::identity::api::projects::ProjectsApi,
);

/// The poem-openapi service: the routes, and the spec generated from the code
/// that the drift check compares with the committed one.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(Apis::default(), "Switchyard", crate::VERSION)
}

/// The spec poem-openapi derives from the code, as JSON.
pub fn generated_spec() -> Result<serde_json::Value, serde_json::Error> {
    serde_json::from_str(&service().spec())
}
