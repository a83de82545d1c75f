//! Projects: created by owners and admins, seen by the org's members, absent
//! for everyone else, and able to narrow an API key.

use serde_json::json;

use crate::support::{
    Api, Credential, TestEngine, TestResult, assert_error, expect_status, on_both_engines, start, string_at,
};

on_both_engines!(projects_belong_to_their_org, keys_can_be_narrowed_to_a_project,);

async fn projects_belong_to_their_org(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("ada@example.com").await?;
    let org = api.create_org(&owner, "Engines").await?;
    let other_org = api.create_org(&owner, "Looms").await?;
    let created =
        api.post("/v1/projects", owner.bearer(), json!({"org_id": org, "name": " Analytical "})).await?;
    let project = expect_status(created, 201)?;
    let id = string_at(&project, "/id")?;
    assert!(id.starts_with("prj_"), "{id}");
    assert_eq!(string_at(&project, "/name")?, "Analytical");
    expect_status(
        api.post("/v1/projects", owner.bearer(), json!({"org_id": other_org, "name": "Jacquard"})).await?,
        201,
    )?;

    // Filtered by org, and paginated.
    let mine = expect_status(api.get(&format!("/v1/projects?org_id={org}"), owner.bearer()).await?, 200)?;
    assert_eq!(mine["data"].as_array().map(Vec::len), Some(1), "{mine}");
    let page = expect_status(api.get("/v1/projects?limit=1", owner.bearer()).await?, 200)?;
    assert_eq!(page["has_more"], true, "{page}");

    // A stranger sees nothing of it, not even that it exists.
    let stranger = api.register("stranger@example.com").await?;
    assert_error(&api.get(&format!("/v1/projects/{id}"), stranger.bearer()).await?, 404, "project.not_found");
    let listed = expect_status(api.get("/v1/projects", stranger.bearer()).await?, 200)?;
    assert_eq!(listed["data"], json!([]));
    let theirs = json!({"org_id": org, "name": "Hijack"});
    assert_error(&api.post("/v1/projects", stranger.bearer(), theirs).await?, 404, "org.not_found");

    expect_status(api.delete(&format!("/v1/projects/{id}"), owner.bearer()).await?, 204)?;
    assert_error(&api.get(&format!("/v1/projects/{id}"), owner.bearer()).await?, 404, "project.not_found");
    server.stop().await?;
    Ok(())
}

async fn keys_can_be_narrowed_to_a_project(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("ada@example.com").await?;
    let org = api.create_org(&owner, "Engines").await?;
    let other_org = api.create_org(&owner, "Looms").await?;
    let project = string_at(
        &expect_status(
            api.post("/v1/projects", owner.bearer(), json!({"org_id": org, "name": "P"})).await?,
            201,
        )?,
        "/id",
    )?;
    let narrowed = json!({"name": "ci", "scopes": ["chat"], "org_id": org, "project_id": project});
    let key = expect_status(api.post("/v1/api-keys", owner.bearer(), narrowed).await?, 201)?;
    assert_eq!(string_at(&key, "/project_id")?, project);
    let secret = string_at(&key, "/key")?;
    expect_status(api.get("/v1/auth/me", Credential::Bearer(&secret)).await?, 200)?;

    // A project of another org cannot narrow a key of this one.
    let mismatched = json!({"name": "ci", "scopes": ["chat"], "org_id": other_org, "project_id": project});
    assert_error(&api.post("/v1/api-keys", owner.bearer(), mismatched).await?, 404, "project.not_found");

    // Deleting the project removes the keys narrowed to it.
    expect_status(api.delete(&format!("/v1/projects/{project}"), owner.bearer()).await?, 204)?;
    assert_error(&api.get("/v1/auth/me", Credential::Bearer(&secret)).await?, 401, "auth.invalid_api_key");
    server.stop().await?;
    Ok(())
}
