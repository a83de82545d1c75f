//! `/v1/api-keys`: mint (with a session), list and revoke API keys.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi};
use switchyard_providers::price::{format_usd_micros, parse_usd_micros};

use crate::http::client_addr::{ClientAddr, context};
use crate::http::credential::AnyCredential;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::page::{PageCursor, PageSize, page_type};
use crate::http::responses::{Created201, NoContent204};
use crate::http::wire::timestamp;
use crate::http::{ApiTags, Ok200};
use crate::identity::api::auth::enforce;
use crate::identity::api_keys;
use crate::identity::api_keys::NewApiKey;
use crate::identity::model;
use crate::kernel::principal::{KeyLimits, Scope};
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct ApiKeysApi;

/// What a key may be used for; `*` grants every scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
pub enum ApiKeyScope {
    #[oai(rename = "chat")]
    Chat,
    #[oai(rename = "runs")]
    Runs,
    #[oai(rename = "knowledge")]
    Knowledge,
    #[oai(rename = "agents")]
    Agents,
    #[oai(rename = "orders")]
    Orders,
    #[oai(rename = "proxy")]
    Proxy,
    #[oai(rename = "admin")]
    Admin,
    #[oai(rename = "*")]
    All,
}

impl From<ApiKeyScope> for Scope {
    fn from(scope: ApiKeyScope) -> Self {
        match scope {
            ApiKeyScope::Chat => Scope::Chat,
            ApiKeyScope::Runs => Scope::Runs,
            ApiKeyScope::Knowledge => Scope::Knowledge,
            ApiKeyScope::Agents => Scope::Agents,
            ApiKeyScope::Orders => Scope::Orders,
            ApiKeyScope::Proxy => Scope::Proxy,
            ApiKeyScope::Admin => Scope::Admin,
            ApiKeyScope::All => Scope::All,
        }
    }
}

impl From<Scope> for ApiKeyScope {
    fn from(scope: Scope) -> Self {
        match scope {
            Scope::Chat => ApiKeyScope::Chat,
            Scope::Runs => ApiKeyScope::Runs,
            Scope::Knowledge => ApiKeyScope::Knowledge,
            Scope::Agents => ApiKeyScope::Agents,
            Scope::Orders => ApiKeyScope::Orders,
            Scope::Proxy => ApiKeyScope::Proxy,
            Scope::Admin => ApiKeyScope::Admin,
            Scope::All => ApiKeyScope::All,
        }
    }
}

#[derive(Debug, Object)]
pub struct CreateApiKeyRequest {
    /// 1 to 100 characters.
    pub name: String,
    pub scopes: Vec<ApiKeyScope>,
    /// The organization the key acts in; the caller must be a member.
    pub org_id: String,
    /// Narrows the key to one project of that organization.
    pub project_id: Option<String>,
    /// Days until the key stops working (1 to 3650); never, when absent.
    pub expires_in_days: Option<u32>,
    /// Route names the key may use through the model gateway; every route when absent.
    pub allowed_models: Option<Vec<String>>,
    /// Gateway requests per minute; no limit when absent.
    pub rpm_limit: Option<u32>,
    /// Gateway tokens (prompt and completion) per minute; no limit when absent.
    pub tpm_limit: Option<u32>,
    /// Most the key may ever spend through the gateway, in USD (`"25.00"`).
    pub budget_usd: Option<String>,
}

/// An API key, without its secret.
#[derive(Debug, Object)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// The non-secret start of the key (`sy_live_<key id>`), to recognise it.
    pub prefix: String,
    pub scopes: Vec<ApiKeyScope>,
    pub org_id: String,
    #[oai(nullable)]
    pub project_id: Option<String>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub expires_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub last_used_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub allowed_models: Option<Vec<String>>,
    #[oai(nullable)]
    pub rpm_limit: Option<u32>,
    #[oai(nullable)]
    pub tpm_limit: Option<u32>,
    #[oai(nullable)]
    pub budget_usd: Option<String>,
}

impl From<model::ApiKey> for ApiKey {
    fn from(key: model::ApiKey) -> Self {
        let limits = key.limits;
        Self {
            scopes: key.scopes.into_iter().map(ApiKeyScope::from).collect(),
            allowed_models: limits.allowed_models,
            rpm_limit: limits.requests_per_minute,
            tpm_limit: limits.tokens_per_minute,
            budget_usd: limits.budget_micros.map(format_usd_micros),
            id: key.id,
            name: key.name,
            prefix: key.prefix,
            org_id: key.org_id,
            project_id: key.project_id,
            created_at: timestamp(key.created_at),
            expires_at: key.expires_at.map(timestamp),
            last_used_at: key.last_used_at.map(timestamp),
        }
    }
}

/// A new key. `key` is the only time the secret is shown: store it now.
#[derive(Debug, Object)]
pub struct CreatedApiKey {
    /// The full key, `sy_live_<key id>_<secret>`.
    pub key: String,
    #[oai(flatten)]
    pub api_key: ApiKey,
}

page_type! {
    /// A page of API keys.
    ApiKeyList of ApiKey
}

operation_errors!(ApiKeyCreateError: 400, 401, 403, 404, 422, 429);
operation_errors!(ApiKeyListError: 400, 401, 403, 429);
operation_errors!(ApiKeyDeleteError: 401, 403, 404, 429);

#[OpenApi(tag = "ApiTags::ApiKeys")]
impl ApiKeysApi {
    /// Mints an API key for one of the caller's organizations. Needs a session
    /// token: API keys cannot mint keys.
    #[oai(path = "/v1/api-keys", method = "post", operation_id = "api_key_create")]
    async fn api_key_create(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        body: Json<CreateApiKeyRequest>,
    ) -> Result<Created201<CreatedApiKey>, ApiKeyCreateError> {
        enforce(state.limits.key_mint(client.ip()).await)?;
        let principal = state.principal(&auth).await?;
        let Json(body) = body;
        let input = NewApiKey {
            name: body.name,
            scopes: body.scopes.into_iter().map(Scope::from).collect(),
            org_id: body.org_id,
            project_id: body.project_id,
            expires_in_days: body.expires_in_days,
            limits: KeyLimits {
                allowed_models: body.allowed_models,
                requests_per_minute: body.rpm_limit,
                tokens_per_minute: body.tpm_limit,
                budget_micros: body.budget_usd.as_deref().map(parse_budget).transpose()?,
                org_caps: Default::default(),
            },
        };
        let minted = api_keys::api_key_create(
            &state.db,
            &state.mail,
            &principal,
            state.require_verified_email,
            state.step_up_window_secs(),
            input,
            &context(&state, client),
        )
        .await?;
        Ok(Created201::Created(Json(CreatedApiKey { key: minted.plain, api_key: minted.key.into() })))
    }

    /// Lists the caller's live keys, without secrets.
    #[oai(path = "/v1/api-keys", method = "get", operation_id = "api_key_list")]
    async fn api_key_list(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        limit: PageSize,
        cursor: PageCursor,
    ) -> Result<Ok200<ApiKeyList>, ApiKeyListError> {
        let principal = state.principal(&auth).await?;
        let page = api_keys::api_key_list(&state.db, &principal, cursor.as_deref(), limit.get()).await?;
        Ok(Ok200::Ok(Json(ApiKeyList::from(page.map(ApiKey::from)))))
    }

    /// Revokes one of the caller's keys; it stops working at once.
    #[oai(path = "/v1/api-keys/:id", method = "delete", operation_id = "api_key_delete")]
    async fn api_key_delete(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        id: Path<String>,
    ) -> Result<NoContent204, ApiKeyDeleteError> {
        let principal = state.principal(&auth).await?;
        api_keys::api_key_revoke(&state.db, &state.keys, &principal, &id.0, &context(&state, client)).await?;
        Ok(NoContent204::NoContent)
    }
}

/// `"25.00"` → micro-USD; anything else is a 422 naming the field.
fn parse_budget(text: &str) -> Result<i64, ApiError> {
    parse_usd_micros(text).ok_or_else(|| {
        ApiError::new(ErrorCode::RequestInvalid, "Invalid budget_usd: not a decimal USD amount")
            .param("budget_usd")
            .fix("Send a string such as \"25.00\" (up to six decimals).")
    })
}
