//! The HTTP surface, one module per spec tag. Handlers extract, call one
//! domain or store function, and map the result to the wire types named as in
//! `openapi/switchyard.yaml`.

pub(crate) mod errors;
mod gateway;
mod meta;
mod operations;
pub(crate) mod responses;
pub mod security;
mod usage;
pub(crate) mod wire;

use poem_openapi::{OpenApiService, Tags};

pub use responses::Ok200;

#[derive(Tags)]
#[oai(rename_all = "lowercase")]
pub enum ApiTags {
    /// Liveness and readiness probes.
    Operations,
    /// Facts about this server.
    Meta,
    /// Accounts and sessions.
    Auth,
    /// Scoped API keys.
    #[oai(rename = "api-keys")]
    ApiKeys,
    /// Organizations.
    Orgs,
    /// Projects within organizations.
    Projects,
    /// The OpenAI-compatible model gateway.
    Gateway,
    /// The tamper-evident audit trail.
    Audit,
}

pub type Apis = (
    operations::OperationsApi,
    meta::MetaApi,
    crate::identity::api::auth::AuthApi,
    crate::identity::api::sessions::SessionsApi,
    crate::identity::api::two_factor::TwoFactorApi,
    crate::identity::api::email::EmailApi,
    crate::identity::api::api_keys::ApiKeysApi,
    crate::identity::api::orgs::OrgsApi,
    crate::identity::api::projects::ProjectsApi,
    gateway::GatewayApi,
    usage::UsageApi,
    crate::audit::api::AuditApi,
);

/// The poem-openapi service: the routes, and the spec generated from the code
/// that the drift check compares with the committed one.
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(Apis::default(), "Switchyard", crate::VERSION)
}

/// The spec poem-openapi derives from the code, as JSON.
pub fn generated_spec() -> serde_json::Value {
    serde_json::from_str(&service().spec()).unwrap_or_default()
}
