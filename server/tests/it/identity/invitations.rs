//! Invitations: an address without an account is invited by mail, registers
//! with that address and accepts; the token works once, for that address
//! only, within its lifetime, and inviting again or revoking spends it.

use serde_json::{Value, json};
use switchyard_server::mail::OutboxRow;

use crate::support::{
    Api, BoxError, Credential, RunningServer, Session, TestEngine, TestResult, assert_error,
    audit_actions_of, expect_status, on_both_engines, start, string_at,
};

on_both_engines!(
    an_invited_address_registers_accepts_and_is_a_member,
    only_the_invited_address_may_accept,
    a_token_works_once,
    an_expired_invitation_is_refused,
    inviting_again_spends_the_old_token,
    admins_cannot_invite_owners_and_keys_cannot_accept,
    admins_list_and_revoke_pending_invitations,
    an_account_that_has_not_verified_its_address_is_invited_not_added,
    one_user_sends_at_most_twenty_invitations_an_hour,
);

const INVITEE: &str = "grace@example.com";
const ACCEPT: &str = "/v1/orgs/invitations/accept";

/// The newest outbox message to `to`, read straight from the database.
async fn latest_mail(server: &RunningServer, to: &str) -> Result<OutboxRow, BoxError> {
    crate::support::latest_mail(&server.database.url, to).await
}

/// The token in an invitation mail's link.
fn token_in(mail: &OutboxRow) -> Result<String, BoxError> {
    let marker = "/invitations/accept?token=";
    let start = mail.body.find(marker).ok_or_else(|| format!("no link in {}", mail.body))? + marker.len();
    let token = mail.body[start..].split_whitespace().next().unwrap_or_default();
    if !token.starts_with("syi_") || token.len() < 4 + 43 {
        return Err(format!("not an invitation token: {token}").into());
    }
    Ok(token.to_owned())
}

/// An owner with an org.
async fn owner_with_org(api: &Api) -> Result<(Session, String), BoxError> {
    let owner = api.register("ada@example.com").await?;
    let org = api.create_org(&owner, "Analytical Engines").await?;
    Ok((owner, org))
}

/// Invites `email` to `org` with `role` as `who`; returns the invitation and the mailed token.
async fn invite(
    server: &RunningServer,
    api: &Api,
    who: &Session,
    org: &str,
    email: &str,
    role: &str,
) -> Result<(Value, String), BoxError> {
    let body = json!({"email": email, "role": role});
    let invitation =
        expect_status(api.post(&format!("/v1/orgs/{org}/members"), who.bearer(), body).await?, 201)?;
    let token = token_in(&latest_mail(server, email).await?)?;
    Ok((invitation, token))
}

async fn accept(api: &Api, who: &Session, token: &str) -> Result<(u16, Value), BoxError> {
    api.post(ACCEPT, who.bearer(), json!({"token": token})).await
}

async fn an_invited_address_registers_accepts_and_is_a_member(engine: TestEngine) -> TestResult {
    let server =
        start(engine, |config| config.public_url = "https://switchyard.example.com".to_owned()).await?;
    let api = Api::new(&server);
    let (owner, org) = owner_with_org(&api).await?;
    let (invitation, token) = invite(&server, &api, &owner, &org, INVITEE, "admin").await?;
    assert!(string_at(&invitation, "/id")?.starts_with("inv_"), "{invitation}");
    assert_eq!(
        (invitation["org_id"].as_str(), invitation["email"].as_str(), invitation["role"].as_str()),
        (Some(org.as_str()), Some(INVITEE), Some("admin")),
    );
    let created = chrono::DateTime::parse_from_rfc3339(&string_at(&invitation, "/created_at")?)?;
    let expires = chrono::DateTime::parse_from_rfc3339(&string_at(&invitation, "/expires_at")?)?;
    assert_eq!((expires - created).num_days(), 7);
    let mail = latest_mail(&server, INVITEE).await?;
    assert_eq!(mail.kind, "invitation");
    assert!(
        mail.body.contains(&format!("https://switchyard.example.com/invitations/accept?token={token}")),
        "{}",
        mail.body
    );

    // Grace registers with the invited address (the domain's case does not matter) and accepts.
    let grace = api.register("grace@EXAMPLE.com").await?;
    let member = expect_status(accept(&api, &grace, &token).await?, 200)?;
    assert_eq!(
        (member["user_id"].as_str(), member["role"].as_str()),
        (Some(grace.user_id.as_str()), Some("admin"))
    );
    let listed = expect_status(api.get(&format!("/v1/orgs/{org}/members"), grace.bearer()).await?, 200)?;
    let roles: Vec<_> = listed["data"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| (m["email"].clone(), m["role"].clone()))
        .collect();
    assert!(roles.contains(&(json!(INVITEE), json!("admin"))), "{listed}");
    assert!(audit_actions_of(&server, &owner.user_id).await?.contains(&"member.invited".to_owned()));
    assert!(audit_actions_of(&server, &grace.user_id).await?.contains(&"member.joined".to_owned()));
    server.stop().await?;
    Ok(())
}

async fn only_the_invited_address_may_accept(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, org) = owner_with_org(&api).await?;
    let (_, token) = invite(&server, &api, &owner, &org, INVITEE, "member").await?;
    let mallory = api.register("mallory@example.com").await?;
    assert_error(&accept(&api, &mallory, &token).await?, 403, "org.invitation_email_mismatch");
    assert_error(&api.get(&format!("/v1/orgs/{org}"), mallory.bearer()).await?, 404, "org.not_found");
    // The refusal did not spend the token.
    let grace = api.register(INVITEE).await?;
    expect_status(accept(&api, &grace, &token).await?, 200)?;
    server.stop().await?;
    Ok(())
}

async fn a_token_works_once(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, org) = owner_with_org(&api).await?;
    let (_, token) = invite(&server, &api, &owner, &org, INVITEE, "member").await?;
    let grace = api.register(INVITEE).await?;
    expect_status(accept(&api, &grace, &token).await?, 200)?;
    assert_error(&accept(&api, &grace, &token).await?, 401, "org.invalid_invitation");
    assert_error(&accept(&api, &grace, "syi_NeverIssued").await?, 401, "org.invalid_invitation");
    server.stop().await?;
    Ok(())
}

/// Moves the server's clock past the 7 days an invitation lives.
fn expire_invitations(server: &RunningServer) {
    server.clock.advance(std::time::Duration::from_secs(7 * 86_400 + 60));
}

async fn an_expired_invitation_is_refused(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, org) = owner_with_org(&api).await?;
    let (_, token) = invite(&server, &api, &owner, &org, INVITEE, "member").await?;
    expire_invitations(&server);
    let grace = api.register(INVITEE).await?;
    assert_error(&accept(&api, &grace, &token).await?, 401, "org.invalid_invitation");
    assert_error(&api.get(&format!("/v1/orgs/{org}"), grace.bearer()).await?, 404, "org.not_found");
    server.stop().await?;
    Ok(())
}

async fn inviting_again_spends_the_old_token(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, org) = owner_with_org(&api).await?;
    let (first, old_token) = invite(&server, &api, &owner, &org, INVITEE, "member").await?;
    let (second, new_token) = invite(&server, &api, &owner, &org, INVITEE, "external").await?;
    assert_ne!(first["id"], second["id"]);
    assert_ne!(old_token, new_token);
    let grace = api.register(INVITEE).await?;
    assert_error(&accept(&api, &grace, &old_token).await?, 401, "org.invalid_invitation");
    let member = expect_status(accept(&api, &grace, &new_token).await?, 200)?;
    assert_eq!(member["role"], "external", "{member}");
    server.stop().await?;
    Ok(())
}

async fn admins_cannot_invite_owners_and_keys_cannot_accept(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, org) = owner_with_org(&api).await?;
    let admin = api.register_verified("admin@example.com", &server.database.url).await?;
    let add = json!({"email": admin.email, "role": "admin"});
    expect_status(api.post(&format!("/v1/orgs/{org}/members"), owner.bearer(), add).await?, 201)?;

    let members = format!("/v1/orgs/{org}/members");
    for role in ["owner", "admin"] {
        let body = json!({"email": INVITEE, "role": role});
        assert_error(&api.post(&members, admin.bearer(), body).await?, 403, "auth.role_denied");
    }
    let (invitation, token) = invite(&server, &api, &admin, &org, INVITEE, "external").await?;
    assert_eq!(invitation["role"], "external", "{invitation}");

    // Accepting needs a session: the invitee's own API key is refused.
    let grace = api.register(INVITEE).await?;
    let graces_org = api.create_org(&grace, "Grace's").await?;
    let key = api.mint_key(&grace, &graces_org, &["*"]).await?;
    let by_key = api.post(ACCEPT, Credential::Bearer(&key.key), json!({"token": token})).await?;
    assert_error(&by_key, 403, "auth.session_required");
    assert_error(
        &api.post(ACCEPT, Credential::Anonymous, json!({"token": token})).await?,
        401,
        "auth.missing_credentials",
    );
    expect_status(accept(&api, &grace, &token).await?, 200)?;
    server.stop().await?;
    Ok(())
}

async fn admins_list_and_revoke_pending_invitations(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, org) = owner_with_org(&api).await?;
    let admin = api.register_verified("admin@example.com", &server.database.url).await?;
    let member = api.register_verified("member@example.com", &server.database.url).await?;
    let members = format!("/v1/orgs/{org}/members");
    for (who, role) in [(&admin, "admin"), (&member, "member")] {
        let add = json!({"email": who.email, "role": role});
        expect_status(api.post(&members, owner.bearer(), add).await?, 201)?;
    }
    let (for_owner, _) = invite(&server, &api, &owner, &org, "boss@example.com", "owner").await?;
    let (for_member, token) = invite(&server, &api, &admin, &org, INVITEE, "member").await?;

    let invitations = format!("/v1/orgs/{org}/invitations");
    let listed = expect_status(api.get(&invitations, admin.bearer()).await?, 200)?;
    let mut ids: Vec<_> =
        listed["data"].as_array().into_iter().flatten().map(|i| i["id"].to_string()).collect();
    let mut expected = vec![for_owner["id"].to_string(), for_member["id"].to_string()];
    ids.sort();
    expected.sort();
    assert_eq!(ids, expected, "{listed}");
    assert_error(&api.get(&invitations, member.bearer()).await?, 403, "auth.role_denied");

    // Admins revoke invitations for members and externals, not for owners.
    let owner_invitation = format!("{invitations}/{}", string_at(&for_owner, "/id")?);
    assert_error(&api.delete(&owner_invitation, admin.bearer()).await?, 403, "auth.role_denied");
    let member_invitation = format!("{invitations}/{}", string_at(&for_member, "/id")?);
    assert_error(&api.delete(&member_invitation, member.bearer()).await?, 403, "auth.role_denied");
    expect_status(api.delete(&member_invitation, admin.bearer()).await?, 204)?;
    assert_error(&api.delete(&member_invitation, admin.bearer()).await?, 404, "org.invitation_not_found");
    let listed = expect_status(api.get(&invitations, owner.bearer()).await?, 200)?;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");

    // The revoked token no longer works.
    let grace = api.register(INVITEE).await?;
    assert_error(&accept(&api, &grace, &token).await?, 401, "org.invalid_invitation");
    server.stop().await?;
    Ok(())
}

async fn an_account_that_has_not_verified_its_address_is_invited_not_added(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, org) = owner_with_org(&api).await?;
    // Someone registers the address a new hire is about to be added with,
    // and never verifies it.
    let squatter = api.register(INVITEE).await?;
    let add = json!({"email": INVITEE, "role": "member"});
    let answer =
        expect_status(api.post(&format!("/v1/orgs/{org}/members"), owner.bearer(), add).await?, 201)?;
    assert!(
        answer["id"].as_str().is_some_and(|id| id.starts_with("inv_")),
        "an invitation, not a member: {answer}"
    );
    let members = expect_status(api.get(&format!("/v1/orgs/{org}/members"), owner.bearer()).await?, 200)?;
    assert_eq!(members["data"].as_array().map(Vec::len), Some(1), "only the owner: {members}");
    let refused = api.get(&format!("/v1/orgs/{org}"), squatter.bearer()).await?;
    assert_error(&refused, 404, "org.not_found");
    // The invitation goes to the address: only whoever reads its mail can accept.
    let token = token_in(&latest_mail(&server, INVITEE).await?)?;
    let member = expect_status(accept(&api, &squatter, &token).await?, 200)?;
    assert_eq!(member["role"], "member");
    server.stop().await?;
    Ok(())
}

async fn one_user_sends_at_most_twenty_invitations_an_hour(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, org) = owner_with_org(&api).await?;
    let members = format!("/v1/orgs/{org}/members");
    for n in 0..20 {
        let body = json!({"email": format!("invitee{n}@example.com"), "role": "member"});
        expect_status(api.post(&members, owner.bearer(), body).await?, 201)?;
    }
    // Another org of the same sender does not reset the count.
    let other = api.create_org(&owner, "Second").await?;
    let body = json!({"email": "one.more@example.com", "role": "member"});
    let refused = api.post(&format!("/v1/orgs/{other}/members"), owner.bearer(), body).await?;
    assert_error(&refused, 429, "rate_limit.exceeded");
    let mail = latest_mail(&server, "invitee19@example.com").await?;
    assert!(mail.body.contains("\"Analytical Engines\" (a name its members chose)"), "{}", mail.body);
    server.stop().await?;
    Ok(())
}
