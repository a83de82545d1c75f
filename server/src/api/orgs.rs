//! `/v1/orgs`: create an organization, list the caller's, read one.

use poem::web::{Data, RemoteAddr};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use super::auth::context;
use super::responses::Created201;
use super::security::AnyCredential;
use super::wire::Org;
use super::{ApiTags, Ok200};
use crate::app::AppState;
use crate::domain::{orgs, page_limit};
use crate::operation_errors;

#[derive(Default)]
pub struct OrgsApi;

#[derive(Debug, Object)]
pub struct CreateOrgRequest {
    /// 1 to 100 characters.
    pub name: String,
}

/// A page of organizations.
#[derive(Debug, Object)]
pub struct OrgList {
    pub data: Vec<Org>,
    #[oai(nullable)]
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

operation_errors!(OrgCreateError: 400, 401, 403, 422);
operation_errors!(OrgListError: 400, 401);
operation_errors!(OrgGetError: 401, 404);

#[OpenApi(tag = "ApiTags::Orgs")]
impl OrgsApi {
    /// Creates an organization; the caller becomes its owner. Needs a session.
    #[oai(path = "/v1/orgs", method = "post", operation_id = "org_create")]
    async fn org_create(
        &self,
        state: Data<&AppState>,
        remote: &RemoteAddr,
        auth: AnyCredential,
        body: Json<CreateOrgRequest>,
    ) -> Result<Created201<Org>, OrgCreateError> {
        let principal = state.principal(&auth).await?;
        let org = orgs::org_create(&state.db, &principal, &body.0.name, &context(remote)).await?;
        Ok(Created201::Created(Json(org.into())))
    }

    /// The organizations the caller belongs to (an API key sees its own).
    #[oai(path = "/v1/orgs", method = "get", operation_id = "org_list")]
    async fn org_list(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        /// Page size, 1 to 200 (default 50).
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> Result<Ok200<OrgList>, OrgListError> {
        let principal = state.principal(&auth).await?;
        let limit = page_limit(limit.0);
        let page = orgs::org_list(&state.db, &principal, cursor.0.as_deref(), limit).await?;
        Ok(Ok200::Ok(Json(OrgList {
            has_more: page.next_cursor.is_some(),
            next_cursor: page.next_cursor,
            data: page.items.into_iter().map(Org::from).collect(),
        })))
    }

    /// One organization the caller belongs to; any other is 404.
    #[oai(path = "/v1/orgs/:id", method = "get", operation_id = "org_get")]
    async fn org_get(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        id: Path<String>,
    ) -> Result<Ok200<Org>, OrgGetError> {
        let principal = state.principal(&auth).await?;
        Ok(Ok200::Ok(Json(orgs::org_get(&state.db, &principal, &id.0).await?.into())))
    }
}
