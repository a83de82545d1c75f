//! `/v1/orgs`: create an organization, list the caller's, read one; manage
//! its members, invite addresses without an account, accept an invitation.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{Object, OpenApi, Union};
use switchyard_providers::price::parse_usd_micros;

use crate::http::client_addr::{ClientAddr, context};
use crate::http::credential::AnyCredential;
use crate::http::error::{ApiError, ErrorCode};
use crate::http::page::{PageCursor, PageSize, page_type};
use crate::http::responses::{Created201, NoContent204};
use crate::http::wire::timestamp;
use crate::http::{ApiTags, Ok200};
use crate::identity::api::wire::{Member, Org, Role};
use crate::identity::model;
use crate::identity::orgs::MemberAdded;
use crate::identity::{invitations, orgs};
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct OrgsApi;

#[derive(Debug, Object)]
pub struct CreateOrgRequest {
    /// 1 to 100 characters.
    pub name: String,
}

page_type! {
    /// A page of organizations.
    OrgList of Org
}

/// The fields to change; at least one.
#[derive(Debug, Object)]
pub struct UpdateOrgRequest {
    /// 1 to 100 characters.
    pub name: Option<String>,
    /// Daily gateway spend cap for the whole organization in USD (`"50.00"`);
    /// null removes it.
    #[oai(nullable)]
    pub daily_cost_cap_usd: MaybeUndefined<String>,
    /// Daily gateway spend cap for each member in USD; null removes it.
    #[oai(nullable)]
    pub member_daily_cost_cap_usd: MaybeUndefined<String>,
}

/// `"50.00"` → `Some(50_000_000)`, null → `None`, absent → unchanged.
fn cap_change(field: &'static str, value: MaybeUndefined<String>) -> Result<Option<Option<i64>>, ApiError> {
    match value {
        MaybeUndefined::Undefined => Ok(None),
        MaybeUndefined::Null => Ok(Some(None)),
        MaybeUndefined::Value(text) => {
            parse_usd_micros(&text).map(|micros| Some(Some(micros))).ok_or_else(|| {
                ApiError::new(ErrorCode::RequestInvalid, format!("Invalid {field}: not a decimal USD amount"))
                    .param(field)
                    .fix("Send a string such as \"50.00\", or null to remove the cap.")
            })
        }
    }
}

#[derive(Debug, Object)]
pub struct AddMemberRequest {
    /// An account's email; an address without an account is invited.
    pub email: String,
    pub role: Role,
}

/// A pending invitation for an address without an account.
#[derive(Debug, Object)]
pub struct Invitation {
    /// `inv_` followed by a ULID.
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub role: Role,
    pub expires_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

impl From<model::Invitation> for Invitation {
    fn from(invitation: model::Invitation) -> Self {
        Self {
            role: invitation.role.into(),
            id: invitation.id,
            org_id: invitation.org_id,
            email: invitation.email,
            expires_at: timestamp(invitation.expires_at),
            created_at: timestamp(invitation.created_at),
        }
    }
}

/// The new member, or the invitation mailed to an address without an account.
#[derive(Debug, Union)]
#[oai(one_of)]
pub enum MemberAddResult {
    Member(Member),
    Invitation(Invitation),
}

impl From<MemberAdded> for MemberAddResult {
    fn from(added: MemberAdded) -> Self {
        match added {
            MemberAdded::Member(member) => Self::Member(member.into()),
            MemberAdded::Invited(invitation) => Self::Invitation(invitation.into()),
        }
    }
}

page_type! {
    /// A page of pending invitations.
    InvitationList of Invitation
}

#[derive(Debug, Object)]
pub struct AcceptInvitationRequest {
    /// The token from the invitation mail.
    pub token: String,
}

#[derive(Debug, Object)]
pub struct UpdateMemberRequest {
    pub role: Role,
}

page_type! {
    /// A page of members.
    MemberList of Member
}

operation_errors!(OrgCreateError: 400, 401, 403, 422, 429);
operation_errors!(OrgListError: 400, 401, 429);
operation_errors!(OrgGetError: 401, 404, 429);
operation_errors!(OrgUpdateError: 400, 401, 403, 404, 422, 429);
operation_errors!(OrgDeleteError: 401, 403, 404, 429);
operation_errors!(MemberListError: 400, 401, 403, 404, 429);
operation_errors!(MemberAddError: 400, 401, 403, 404, 409, 422, 429);
operation_errors!(InvitationAcceptError: 400, 401, 403, 409, 429);
operation_errors!(InvitationListError: 400, 401, 403, 404, 429);
operation_errors!(InvitationDeleteError: 401, 403, 404, 429);
operation_errors!(MemberUpdateError: 400, 401, 403, 404, 409, 429);
operation_errors!(MemberRemoveError: 401, 403, 404, 409, 429);

#[OpenApi(tag = "ApiTags::Orgs")]
impl OrgsApi {
    /// Creates an organization; the caller becomes its owner. Needs a session.
    #[oai(path = "/v1/orgs", method = "post", operation_id = "org_create")]
    async fn org_create(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        body: Json<CreateOrgRequest>,
    ) -> Result<Created201<Org>, OrgCreateError> {
        let principal = state.principal(&auth).await?;
        let org = orgs::org_create(&state.db, &principal, &body.0.name, &context(&state, client)).await?;
        Ok(Created201::Created(Json(org.into())))
    }

    /// The organizations the caller belongs to (an API key sees its own).
    #[oai(path = "/v1/orgs", method = "get", operation_id = "org_list")]
    async fn org_list(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        limit: PageSize,
        cursor: PageCursor,
    ) -> Result<Ok200<OrgList>, OrgListError> {
        let principal = state.principal(&auth).await?;
        let page = orgs::org_list(&state.db, &principal, cursor.as_deref(), limit.get()).await?;
        Ok(Ok200::Ok(Json(OrgList::from(page.map(Org::from)))))
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

    /// Renames an organization or sets its daily gateway spend caps. Owners
    /// and admins.
    #[oai(path = "/v1/orgs/:id", method = "patch", operation_id = "org_update")]
    async fn org_update(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        id: Path<String>,
        body: Json<UpdateOrgRequest>,
    ) -> Result<Ok200<Org>, OrgUpdateError> {
        let principal = state.principal(&auth).await?;
        let Json(body) = body;
        let changes = orgs::OrgChanges {
            name: body.name,
            org_daily_cap: cap_change("daily_cost_cap_usd", body.daily_cost_cap_usd)?,
            member_daily_cap: cap_change("member_daily_cost_cap_usd", body.member_daily_cost_cap_usd)?,
        };
        let org =
            orgs::org_update(&state.db, &state.keys, &principal, &id.0, changes, &context(&state, client))
                .await?;
        Ok(Ok200::Ok(Json(org.into())))
    }

    /// Deletes an organization with its memberships and API keys. Owners only.
    #[oai(path = "/v1/orgs/:id", method = "delete", operation_id = "org_delete")]
    async fn org_delete(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        id: Path<String>,
    ) -> Result<NoContent204, OrgDeleteError> {
        let principal = state.principal(&auth).await?;
        orgs::org_delete(&state.db, &state.keys, &principal, &id.0, &context(&state, client)).await?;
        Ok(NoContent204::NoContent)
    }

    /// The organization's members. Any member but externals.
    #[oai(path = "/v1/orgs/:id/members", method = "get", operation_id = "org_member_list")]
    async fn org_member_list(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        id: Path<String>,
        limit: PageSize,
        cursor: PageCursor,
    ) -> Result<Ok200<MemberList>, MemberListError> {
        let principal = state.principal(&auth).await?;
        let page = orgs::member_list(&state.db, &principal, &id.0, cursor.as_deref(), limit.get()).await?;
        Ok(Ok200::Ok(Json(MemberList::from(page.map(Member::from)))))
    }

    /// Adds an account to the organization by email, or invites an address
    /// without one. Owners add any role; admins add members and externals.
    #[oai(path = "/v1/orgs/:id/members", method = "post", operation_id = "org_member_add")]
    async fn org_member_add(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        id: Path<String>,
        body: Json<AddMemberRequest>,
    ) -> Result<Created201<MemberAddResult>, MemberAddError> {
        let principal = state.principal(&auth).await?;
        let Json(body) = body;
        let role = body.role.into();
        let added = orgs::member_add(
            &state.db,
            &state.mail,
            &principal,
            &id.0,
            &body.email,
            role,
            &context(&state, client),
        )
        .await?;
        Ok(Created201::Created(Json(added.into())))
    }

    /// Accepts an invitation: the signed-in user with the invited address
    /// joins with the invited role. Needs a session.
    #[oai(path = "/v1/orgs/invitations/accept", method = "post", operation_id = "org_invitation_accept")]
    async fn org_invitation_accept(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        body: Json<AcceptInvitationRequest>,
    ) -> Result<Ok200<Member>, InvitationAcceptError> {
        let principal = state.principal(&auth).await?;
        let member =
            invitations::accept(&state.db, &principal, &body.0.token, &context(&state, client)).await?;
        Ok(Ok200::Ok(Json(member.into())))
    }

    /// The organization's pending invitations. Owners and admins.
    #[oai(path = "/v1/orgs/:id/invitations", method = "get", operation_id = "org_invitation_list")]
    async fn org_invitation_list(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        id: Path<String>,
        limit: PageSize,
        cursor: PageCursor,
    ) -> Result<Ok200<InvitationList>, InvitationListError> {
        let principal = state.principal(&auth).await?;
        let now = state.clock.now();
        let page =
            invitations::pending(&state.db, &principal, &id.0, cursor.as_deref(), limit.get(), now).await?;
        Ok(Ok200::Ok(Json(InvitationList::from(page.map(Invitation::from)))))
    }

    /// Revokes a pending invitation; its token stops working. Owners revoke
    /// any; admins those for members and externals.
    #[oai(
        path = "/v1/orgs/:id/invitations/:invitation_id",
        method = "delete",
        operation_id = "org_invitation_delete"
    )]
    async fn org_invitation_delete(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        id: Path<String>,
        invitation_id: Path<String>,
    ) -> Result<NoContent204, InvitationDeleteError> {
        let principal = state.principal(&auth).await?;
        invitations::revoke(&state.db, &principal, &id.0, &invitation_id.0, &context(&state, client)).await?;
        Ok(NoContent204::NoContent)
    }

    /// Changes a member's role. The last owner cannot be demoted.
    #[oai(path = "/v1/orgs/:id/members/:user_id", method = "patch", operation_id = "org_member_update")]
    async fn org_member_update(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        id: Path<String>,
        user_id: Path<String>,
        body: Json<UpdateMemberRequest>,
    ) -> Result<Ok200<Member>, MemberUpdateError> {
        let principal = state.principal(&auth).await?;
        let role = body.0.role.into();
        let member =
            orgs::member_set_role(&state.db, &principal, &id.0, &user_id.0, role, &context(&state, client))
                .await?;
        Ok(Ok200::Ok(Json(member.into())))
    }

    /// Removes a member, or leaves (your own user id). The last owner cannot
    /// leave. Their API keys for the organization are revoked.
    #[oai(path = "/v1/orgs/:id/members/:user_id", method = "delete", operation_id = "org_member_remove")]
    async fn org_member_remove(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        id: Path<String>,
        user_id: Path<String>,
    ) -> Result<NoContent204, MemberRemoveError> {
        let principal = state.principal(&auth).await?;
        orgs::member_remove(&state.db, &state.keys, &principal, &id.0, &user_id.0, &context(&state, client))
            .await?;
        Ok(NoContent204::NoContent)
    }
}
