//! The credentials endpoints accept, as the spec's security schemes
//! `BearerAuth` and `ApiKeyAuth`, and their resolution to a [`Principal`].

use poem_openapi::SecurityScheme;
use poem_openapi::auth::{ApiKey, Bearer};

use crate::identity::{authenticate_api_key, authenticate_bearer};
use crate::kernel::error::DomainResult;
use crate::kernel::principal::Principal;
use crate::state::AppState;

/// A session token or an API key as `Authorization: Bearer …`.
#[derive(SecurityScheme)]
#[oai(ty = "bearer")]
pub struct BearerAuth(Bearer);

/// An API key in the `X-API-Key` header.
#[derive(SecurityScheme)]
#[oai(ty = "api_key", key_name = "X-API-Key", key_in = "header")]
pub struct ApiKeyAuth(ApiKey);

/// Either credential, for endpoints open to sessions and API keys alike.
#[derive(SecurityScheme)]
pub enum AnyCredential {
    Bearer(BearerAuth),
    ApiKey(ApiKeyAuth),
}

impl AppState {
    /// Resolves the credential: a session token or an API key as bearer, or
    /// an API key in `X-API-Key`. Whether the principal may do the operation
    /// is the domain's decision.
    pub async fn principal(&self, auth: &AnyCredential) -> DomainResult<Principal> {
        match auth {
            AnyCredential::Bearer(bearer) => self.principal_from_token(&bearer.0.token).await,
            AnyCredential::ApiKey(key) => {
                authenticate_api_key(&self.db, &self.keys, &self.key_usage, &key.0.key, self.clock.now())
                    .await
            }
        }
    }

    /// Resolves a session token or an API key sent as a bearer token (or in
    /// a WebSocket's `auth` frame).
    pub async fn principal_from_token(&self, token: &str) -> DomainResult<Principal> {
        let issuer = self.token_issuer().await?;
        authenticate_bearer(&self.db, issuer, &self.keys, &self.key_usage, token, self.clock.now()).await
    }
}
