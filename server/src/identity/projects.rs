//! Projects: named groups inside an organization. Members of the org see its
//! projects; owners and admins (or keys with the `admin` scope) change them.
//! A project in an org the caller is not in does not exist for them, nor
//! does any project but its own for a key narrowed to one; such a key, with
//! the `admin` scope, may rename or delete its own project and no other.

use crate::audit::{self, AuditAction, Entry};
use crate::db::Db;
use crate::identity::key_cache::{KeyCache, KeyChange};
use crate::identity::model::{Project, Role};
use crate::identity::names::check_name;
use crate::identity::orgs::{caller_role, manager_role};
use crate::kernel::context::RequestContext;
use crate::kernel::error::{DomainError, DomainResult, Resource};
use crate::kernel::ids::new_id;
use crate::kernel::page::Page;
use crate::kernel::principal::{Principal, Scope};

/// The project, if the caller may see it; 404 otherwise, whether or not it exists.
pub async fn project_get(db: &Db, principal: &Principal, project_id: &str) -> DomainResult<Project> {
    if principal.key_project().is_some_and(|own| own != project_id) {
        return Err(DomainError::NotFound(Resource::Project));
    }
    let project = db.project_by_id(project_id).await?.ok_or(DomainError::NotFound(Resource::Project))?;
    match caller_role(db, principal, &project.org_id).await {
        Ok(_) => Ok(project),
        Err(DomainError::NotFound(Resource::Organization)) => Err(DomainError::NotFound(Resource::Project)),
        Err(other) => Err(other),
    }
}

pub async fn project_create(
    db: &Db,
    principal: &Principal,
    org_id: &str,
    name: &str,
    ctx: &RequestContext,
) -> DomainResult<Project> {
    manager_role(db, principal, org_id, Role::Admin).await?;
    let project = Project {
        id: new_id("prj"),
        org_id: org_id.to_owned(),
        name: check_name(name)?,
        created_at: ctx.now,
    };
    db.project_insert(&project).await?;
    audit::record(
        db,
        ctx,
        Entry::in_org(AuditAction::ProjectCreated, &principal.user_id, org_id, &project.id),
    )
    .await?;
    Ok(project)
}

/// The projects of the caller's orgs (an API key: of its org), optionally of one org.
pub async fn project_list(
    db: &Db,
    principal: &Principal,
    org_id: Option<&str>,
    cursor: Option<&str>,
    limit: i64,
) -> DomainResult<Page<Project>> {
    if let Some(own) = principal.key_project() {
        let project = project_get(db, principal, own).await?;
        let visible = org_id.is_none_or(|asked| asked == project.org_id) && cursor.is_none();
        return Ok(Page { items: visible.then_some(project).into_iter().collect(), next_cursor: None });
    }
    let org_id = match (principal.key_org(), org_id) {
        (Some(own), Some(asked)) if own != asked => return Ok(Page { items: Vec::new(), next_cursor: None }),
        (Some(own), _) => Some(own),
        (None, asked) => asked,
    };
    let rows = db.projects_visible_to(&principal.user_id, org_id, cursor, limit + 1).await?;
    Ok(Page::from_rows(rows, limit, |p| &p.id))
}

pub async fn project_rename(
    db: &Db,
    principal: &Principal,
    project_id: &str,
    name: &str,
    ctx: &RequestContext,
) -> DomainResult<Project> {
    let project = project_get(db, principal, project_id).await?;
    project_manager_role(db, principal, &project).await?;
    let name = check_name(name)?;
    db.project_rename(project_id, &name).await?;
    audit::record(
        db,
        ctx,
        Entry::in_org(AuditAction::ProjectRenamed, &principal.user_id, &project.org_id, project_id),
    )
    .await?;
    Ok(Project { name, ..project })
}

/// Deletes the project and the keys narrowed to it.
pub async fn project_delete(
    db: &Db,
    keys: &KeyCache,
    principal: &Principal,
    project_id: &str,
    ctx: &RequestContext,
) -> DomainResult<()> {
    let project = project_get(db, principal, project_id).await?;
    project_manager_role(db, principal, &project).await?;
    db.project_delete(project_id).await?;
    keys.changed(db, KeyChange::Project(project_id.to_owned())).await;
    audit::record(
        db,
        ctx,
        Entry::in_org(AuditAction::ProjectDeleted, &principal.user_id, &project.org_id, project_id),
    )
    .await
}

/// Checks the caller may change `project`: an owner or admin of its org, by
/// session or by a key with the `admin` scope, org-wide or narrowed to it.
async fn project_manager_role(db: &Db, principal: &Principal, project: &Project) -> DomainResult<Role> {
    if principal.key_project() != Some(project.id.as_str()) {
        return manager_role(db, principal, &project.org_id, Role::Admin).await;
    }
    let role = caller_role(db, principal, &project.org_id).await?;
    principal.require_scope(Scope::Admin)?;
    if role > Role::Admin {
        return Err(DomainError::RoleDenied);
    }
    Ok(role)
}
