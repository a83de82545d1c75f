//! What the SDK's live tests share: an account with an org and an API key.

use switchyard_sdk::types::{ApiKeyScope, CreateApiKeyRequest, CreateOrgRequest, RegisterRequest};
use switchyard_sdk::{Credential, connect};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Registers a user on the server at `base_url`, creates an org and mints
/// an API key with `scopes` in it; returns the key.
pub async fn mint_key(base_url: &str, scopes: Vec<ApiKeyScope>) -> Result<String, BoxError> {
    let anonymous = connect(base_url, Credential::None)?;
    let register = RegisterRequest {
        email: "ada@example.com".to_owned(),
        password: "correct horse battery staple".to_owned(),
        display_name: None,
    };
    let session = anonymous.auth_register().body(register).send().await?.into_inner();
    let user = connect(base_url, Credential::Bearer(session.access_token))?;
    let org = user.org_create().body(CreateOrgRequest { name: "Engines".to_owned() }).send().await?;
    let key = CreateApiKeyRequest {
        name: "sdk tests".to_owned(),
        scopes,
        org_id: org.id.clone(),
        project_id: None,
        expires_in_days: None,
        allowed_models: Default::default(),
        budget_usd: None,
        rpm_limit: None,
        tpm_limit: None,
    };
    Ok(user.api_key_create().body(key).send().await?.into_inner().key)
}
