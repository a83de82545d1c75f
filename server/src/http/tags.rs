//! The spec's tags: one per area of the API, in the order `/docs` shows them.

use poem_openapi::Tags;

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
    /// Governed agent runs.
    Runs,
    /// The tamper-evident audit trail.
    Audit,
}
