//! The HTTP surface, one module per spec tag. Handlers extract, call one
//! domain or store function, and map the result to the wire types named as in
//! `openapi/switchyard.yaml`.

mod api_keys;
mod audit;
mod auth;
mod email;
mod errors;
mod gateway;
mod meta;
mod operations;
mod orgs;
mod projects;
mod responses;
pub mod security;
mod sessions;
mod two_factor;
mod usage;
mod wire;

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
    auth::AuthApi,
    sessions::SessionsApi,
    two_factor::TwoFactorApi,
    email::EmailApi,
    api_keys::ApiKeysApi,
    orgs::OrgsApi,
    projects::ProjectsApi,
    gateway::GatewayApi,
    usage::UsageApi,
    audit::AuditApi,
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
