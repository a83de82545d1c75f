//! `/v1/projects`: an organization's projects.

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};

use crate::http::client_addr::{ClientAddr, context};
use crate::http::credential::AnyCredential;
use crate::http::page::{PageCursor, PageSize, page_type};
use crate::http::responses::{Created201, NoContent204};
use crate::http::wire::timestamp;
use crate::http::{ApiTags, Ok200};
use crate::identity::model;
use crate::identity::projects;
use crate::operation_errors;
use crate::state::AppState;

#[derive(Default)]
pub struct ProjectsApi;

/// A project of an organization.
#[derive(Debug, Object)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

impl From<model::Project> for Project {
    fn from(project: model::Project) -> Self {
        Self {
            id: project.id,
            org_id: project.org_id,
            name: project.name,
            created_at: timestamp(project.created_at),
        }
    }
}

#[derive(Debug, Object)]
pub struct CreateProjectRequest {
    /// An organization the caller owns or administers.
    pub org_id: String,
    /// 1 to 100 characters.
    pub name: String,
}

#[derive(Debug, Object)]
pub struct UpdateProjectRequest {
    /// 1 to 100 characters.
    pub name: String,
}

page_type! {
    /// A page of projects.
    ProjectList of Project
}

operation_errors!(ProjectCreateError: 400, 401, 403, 404, 422, 429);
operation_errors!(ProjectListError: 400, 401, 429);
operation_errors!(ProjectGetError: 401, 404, 429);
operation_errors!(ProjectUpdateError: 400, 401, 403, 404, 422, 429);
operation_errors!(ProjectDeleteError: 401, 403, 404, 429);

#[OpenApi(tag = "ApiTags::Projects")]
impl ProjectsApi {
    /// Creates a project in an organization. Owners and admins; an API key
    /// needs the `admin` scope.
    #[oai(path = "/v1/projects", method = "post", operation_id = "project_create")]
    async fn project_create(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        body: Json<CreateProjectRequest>,
    ) -> Result<Created201<Project>, ProjectCreateError> {
        let principal = state.principal(&auth).await?;
        let Json(body) = body;
        let project = projects::project_create(
            &state.db,
            &principal,
            &body.org_id,
            &body.name,
            &context(&state, client),
        )
        .await?;
        Ok(Created201::Created(Json(project.into())))
    }

    /// The projects of the caller's organizations, oldest first.
    #[oai(path = "/v1/projects", method = "get", operation_id = "project_list")]
    async fn project_list(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        /// Only this organization's projects.
        org_id: Query<Option<String>>,
        limit: PageSize,
        cursor: PageCursor,
    ) -> Result<Ok200<ProjectList>, ProjectListError> {
        let principal = state.principal(&auth).await?;
        let page = projects::project_list(
            &state.db,
            &principal,
            org_id.0.as_deref(),
            cursor.as_deref(),
            limit.get(),
        )
        .await?;
        Ok(Ok200::Ok(Json(ProjectList::from(page.map(Project::from)))))
    }

    /// One project of the caller's organizations; any other is 404.
    #[oai(path = "/v1/projects/:id", method = "get", operation_id = "project_get")]
    async fn project_get(
        &self,
        state: Data<&AppState>,
        auth: AnyCredential,
        id: Path<String>,
    ) -> Result<Ok200<Project>, ProjectGetError> {
        let principal = state.principal(&auth).await?;
        Ok(Ok200::Ok(Json(projects::project_get(&state.db, &principal, &id.0).await?.into())))
    }

    /// Renames a project. Owners and admins.
    #[oai(path = "/v1/projects/:id", method = "patch", operation_id = "project_update")]
    async fn project_update(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        id: Path<String>,
        body: Json<UpdateProjectRequest>,
    ) -> Result<Ok200<Project>, ProjectUpdateError> {
        let principal = state.principal(&auth).await?;
        let project =
            projects::project_rename(&state.db, &principal, &id.0, &body.0.name, &context(&state, client))
                .await?;
        Ok(Ok200::Ok(Json(project.into())))
    }

    /// Deletes a project and the API keys narrowed to it. Owners and admins.
    #[oai(path = "/v1/projects/:id", method = "delete", operation_id = "project_delete")]
    async fn project_delete(
        &self,
        state: Data<&AppState>,
        client: ClientAddr,
        auth: AnyCredential,
        id: Path<String>,
    ) -> Result<NoContent204, ProjectDeleteError> {
        let principal = state.principal(&auth).await?;
        projects::project_delete(&state.db, &state.keys, &principal, &id.0, &context(&state, client)).await?;
        Ok(NoContent204::NoContent)
    }
}
