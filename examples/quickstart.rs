//! Quickstart: register, log in, create an organization, mint a scoped API
//! key, and ask who the key belongs to — all through the generated SDK.
//!
//! ```sh
//! cargo run --release -p switchyard-server -- serve     # in one terminal
//! cargo run -p switchyard-examples --example quickstart # in another
//! ```
//!
//! `SWITCHYARD_URL` points it elsewhere (default `http://127.0.0.1:8000`).

use switchyard_sdk::types::{
    ApiKeyScope, CreateApiKeyRequest, CreateOrgRequest, LoginRequest, LoginResult, RegisterRequest,
};
use switchyard_sdk::{Credential, Error, connect};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let base_url = std::env::var("SWITCHYARD_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".to_owned());
    let anonymous = connect(&base_url, Credential::None)?;

    let meta = anonymous.meta_get().send().await?;
    println!("{} {} ({} build)", meta.name, meta.version, meta.build.profile);

    // A fresh address each run, so the example can be run again.
    let email = format!("quickstart-{}@example.com", std::process::id());
    let password = "correct horse battery staple".to_owned();
    let registered = anonymous
        .auth_register()
        .body(RegisterRequest { email: email.clone(), password: password.clone(), display_name: None })
        .send()
        .await?;
    println!("registered {}", registered.user.id);

    // Errors arrive as the typed envelope: a stable code, why and how to fix it.
    let login = LoginRequest { email: email.clone(), password: "not the password".to_owned() };
    if let Err(Error::ErrorResponse(err)) = anonymous.auth_login().body(login).send().await {
        println!("wrong password -> {} ({})", err.error.code, err.error.message);
    }
    // Accounts with two-factor login answer with a challenge instead of tokens.
    let session =
        match anonymous.auth_login().body(LoginRequest { email, password }).send().await?.into_inner() {
            LoginResult::AuthTokens(tokens) => tokens,
            LoginResult::TwoFactorChallenge(_) => anyhow::bail!("this new account has no second factor yet"),
        };
    let user = connect(&base_url, Credential::Bearer(session.access_token.clone()))?;

    let org = user.org_create().body(CreateOrgRequest { name: "Quickstart".to_owned() }).send().await?;
    let minted = user
        .api_key_create()
        .body(CreateApiKeyRequest {
            name: "quickstart".to_owned(),
            scopes: vec![ApiKeyScope::Chat, ApiKeyScope::Runs],
            org_id: org.id.clone(),
            project_id: None,
            expires_in_days: Some(30),
            allowed_models: Default::default(),
            budget_usd: None,
            rpm_limit: None,
            tpm_limit: None,
        })
        .send()
        .await?;
    println!("minted {} (prefix {})", minted.id, minted.prefix);

    let with_key = connect(&base_url, Credential::ApiKey(minted.key.clone()))?;
    let me = with_key.auth_me().send().await?;
    let orgs: Vec<&str> = me.orgs.iter().map(|org| org.name.as_str()).collect();
    println!("the key acts for {} in {}", me.user.email, orgs.join(", "));
    Ok(())
}
