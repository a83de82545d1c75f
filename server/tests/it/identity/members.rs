//! Organization management: renaming, deleting, and who belongs with which
//! role — owners manage everyone, admins manage members and externals, an
//! org always keeps an owner, and leaving revokes the member's keys.

use reqwest::Method;
use serde_json::json;
use switchyard_server::db::Db;

use crate::support::{
    Api, Credential, Session, TestEngine, TestResult, assert_error, expect_status, on_both_engines, start,
    string_at,
};

on_both_engines!(
    roles_decide_who_manages_whom,
    an_org_always_keeps_an_owner,
    leaving_or_deletion_stops_the_members_keys,
    owners_and_admins_rename_members_do_not,
    a_chat_key_cannot_remove_its_own_user,
    two_owners_leaving_at_once_leave_one_owner,
);

async fn patch(
    api: &Api,
    path: &str,
    who: &Session,
    body: serde_json::Value,
) -> Result<(u16, serde_json::Value), crate::support::BoxError> {
    api.call(Method::PATCH, path, who.bearer(), Some(&body)).await
}

/// An owner with an org, and a second account added to it with `role`.
async fn org_with(
    api: &Api,
    database_url: &str,
    role: &str,
) -> Result<(Session, Session, String), crate::support::BoxError> {
    let owner = api.register("ada@example.com").await?;
    let org = api.create_org(&owner, "Engines").await?;
    let other = api.register_verified("grace@example.com", database_url).await?;
    let added = api
        .post(&format!("/v1/orgs/{org}/members"), owner.bearer(), json!({"email": other.email, "role": role}))
        .await?;
    let added = expect_status(added, 201)?;
    assert_eq!(string_at(&added, "/role")?, role);
    Ok((owner, other, org))
}

async fn roles_decide_who_manages_whom(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, admin, org) = org_with(&api, &server.database.url, "admin").await?;
    let members = format!("/v1/orgs/{org}/members");
    let newcomer = api.register_verified("newcomer@example.com", &server.database.url).await?;

    // Admins add members and externals, never owners or admins.
    let as_owner = json!({"email": newcomer.email, "role": "owner"});
    assert_error(&api.post(&members, admin.bearer(), as_owner).await?, 403, "auth.role_denied");
    let as_member = json!({"email": newcomer.email, "role": "member"});
    expect_status(api.post(&members, admin.bearer(), as_member.clone()).await?, 201)?;
    assert_error(&api.post(&members, owner.bearer(), as_member).await?, 409, "org.already_member");

    // Admins cannot touch the owner; members manage nobody.
    let owner_path = format!("{members}/{}", owner.user_id);
    assert_error(
        &patch(&api, &owner_path, &admin, json!({"role": "member"})).await?,
        403,
        "auth.role_denied",
    );
    let admin_path = format!("{members}/{}", admin.user_id);
    assert_error(
        &patch(&api, &admin_path, &newcomer, json!({"role": "member"})).await?,
        403,
        "auth.role_denied",
    );
    assert_error(&api.delete(&owner_path, admin.bearer()).await?, 403, "auth.role_denied");

    // Externals cannot see the member list; everyone else can.
    let newcomer_path = format!("{members}/{}", newcomer.user_id);
    expect_status(patch(&api, &newcomer_path, &admin, json!({"role": "external"})).await?, 200)?;
    assert_error(&api.get(&members, newcomer.bearer()).await?, 403, "auth.role_denied");
    let listed = expect_status(api.get(&members, admin.bearer()).await?, 200)?;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(3), "{listed}");

    // Addresses without an account are invited; non-members are 404s; other
    // tenants see no org at all.
    let nobody = json!({"email": "nobody@example.com", "role": "member"});
    let invited = expect_status(api.post(&members, owner.bearer(), nobody).await?, 201)?;
    assert!(string_at(&invited, "/id")?.starts_with("inv_"), "{invited}");
    let stranger = api.register("stranger@example.com").await?;
    assert_error(&api.get(&members, stranger.bearer()).await?, 404, "org.not_found");
    let stranger_path = format!("{members}/{}", stranger.user_id);
    assert_error(&api.delete(&stranger_path, owner.bearer()).await?, 404, "org.member_not_found");
    server.stop().await?;
    Ok(())
}

async fn an_org_always_keeps_an_owner(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, other, org) = org_with(&api, &server.database.url, "member").await?;
    let owner_path = format!("/v1/orgs/{org}/members/{}", owner.user_id);
    assert_error(&patch(&api, &owner_path, &owner, json!({"role": "admin"})).await?, 409, "org.last_owner");
    assert_error(&api.delete(&owner_path, owner.bearer()).await?, 409, "org.last_owner");

    // With a second owner, the first may step down and leave.
    let other_path = format!("/v1/orgs/{org}/members/{}", other.user_id);
    expect_status(patch(&api, &other_path, &owner, json!({"role": "owner"})).await?, 200)?;
    expect_status(patch(&api, &owner_path, &owner, json!({"role": "admin"})).await?, 200)?;
    expect_status(api.delete(&owner_path, owner.bearer()).await?, 204)?;
    assert_error(&api.get(&format!("/v1/orgs/{org}"), owner.bearer()).await?, 404, "org.not_found");
    server.stop().await?;
    Ok(())
}

async fn leaving_or_deletion_stops_the_members_keys(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, member, org) = org_with(&api, &server.database.url, "member").await?;
    let members_key = api.mint_key(&member, &org, &["chat"]).await?;
    let owners_key = api.mint_key(&owner, &org, &["*"]).await?;
    expect_status(api.get("/v1/auth/me", Credential::Bearer(&members_key.key)).await?, 200)?;

    // The member leaves: their key stops working at once.
    expect_status(
        api.delete(&format!("/v1/orgs/{org}/members/{}", member.user_id), member.bearer()).await?,
        204,
    )?;
    assert_error(
        &api.get("/v1/auth/me", Credential::Bearer(&members_key.key)).await?,
        401,
        "auth.invalid_api_key",
    );

    // Only owners delete; the org's keys go with it.
    expect_status(api.get("/v1/auth/me", Credential::Bearer(&owners_key.key)).await?, 200)?;
    expect_status(api.delete(&format!("/v1/orgs/{org}"), owner.bearer()).await?, 204)?;
    assert_error(
        &api.get("/v1/auth/me", Credential::Bearer(&owners_key.key)).await?,
        401,
        "auth.invalid_api_key",
    );
    assert_error(&api.get(&format!("/v1/orgs/{org}"), owner.bearer()).await?, 404, "org.not_found");
    server.stop().await?;
    Ok(())
}

async fn owners_and_admins_rename_members_do_not(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, member, org) = org_with(&api, &server.database.url, "member").await?;
    let path = format!("/v1/orgs/{org}");
    assert_error(&patch(&api, &path, &member, json!({"name": "Mine now"})).await?, 403, "auth.role_denied");
    assert_error(&api.delete(&path, member.bearer()).await?, 403, "auth.role_denied");
    let renamed =
        expect_status(patch(&api, &path, &owner, json!({"name": "  Difference Engines "})).await?, 200)?;
    assert_eq!(string_at(&renamed, "/name")?, "Difference Engines");
    assert_error(&patch(&api, &path, &owner, json!({"name": ""})).await?, 422, "request.invalid");
    server.stop().await?;
    Ok(())
}

async fn a_chat_key_cannot_remove_its_own_user(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (_, member, org) = org_with(&api, &server.database.url, "member").await?;
    let key = api.mint_key(&member, &org, &["chat"]).await?;
    let path = format!("/v1/orgs/{org}/members/{}", member.user_id);
    let refused = api.delete(&path, crate::support::Credential::Bearer(&key.key)).await?;
    crate::support::assert_error(&refused, 403, "auth.scope_denied");
    // With a session, leaving is the member's own choice.
    assert_eq!(api.delete(&path, member.bearer()).await?.0, 204);
    server.stop().await?;
    Ok(())
}

async fn two_owners_leaving_at_once_leave_one_owner(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    for round in 0..8 {
        let ada = api.register(&format!("ada{round}@example.com")).await?;
        let org = api.create_org(&ada, "Engines").await?;
        let grace = api.register_verified(&format!("grace{round}@example.com"), &server.database.url).await?;
        let add = json!({"email": grace.email, "role": "owner"});
        expect_status(api.post(&format!("/v1/orgs/{org}/members"), ada.bearer(), add).await?, 201)?;
        // Each demotes the other at the same moment, or both leave.
        let (to_ada, to_grace) = (
            format!("/v1/orgs/{org}/members/{}", ada.user_id),
            format!("/v1/orgs/{org}/members/{}", grace.user_id),
        );
        let demote = json!({"role": "member"});
        let statuses = if round % 2 == 0 {
            let (a, b) = futures::future::join(
                patch(&api, &to_grace, &ada, demote.clone()),
                patch(&api, &to_ada, &grace, demote),
            )
            .await;
            [a?.0, b?.0]
        } else {
            let (a, b) = futures::future::join(
                api.delete(&to_ada, ada.bearer()),
                api.delete(&to_grace, grace.bearer()),
            )
            .await;
            [a?.0, b?.0]
        };
        let db = Db::connect(&server.database.url).await?;
        let owners: Result<i64, _> =
            sqlx::query_scalar("SELECT COUNT(*) FROM org_members WHERE org_id = $1 AND role = 'owner'")
                .bind(&org)
                .fetch_one(db.pool())
                .await;
        db.close().await;
        assert_eq!(owners?, 1, "round {round}: {statuses:?}");
        // The second is refused: as the last owner (409), or, demoted by the
        // first, as no longer an owner (403).
        let refused = statuses.iter().filter(|status| matches!(**status, 403 | 409)).count();
        assert_eq!(refused, 1, "round {round}: {statuses:?}");
    }
    server.stop().await?;
    Ok(())
}
