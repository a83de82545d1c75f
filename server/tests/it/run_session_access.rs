//! Sharing a session (`PATCH /v1/sessions/{id}/access`): private by default;
//! shared with the org or with named members, to read or to continue; who
//! may change it; and that every read and continuation of a session, and of
//! its runs, follows it.

use reqwest::Method;
use serde_json::{Value, json};

use crate::runs::{Fixture, fixture};
use crate::support::{
    BoxError, Credential, Reply, Session, TestEngine, TestResult, add_member, assert_error, expect_status,
    on_both_engines, string_at,
};

on_both_engines!(
    a_session_is_private_until_shared_and_private_again,
    a_read_only_share_reads_but_neither_continues_nor_deletes_nor_shares,
    a_continue_share_takes_runs_from_members_one_at_a_time,
    a_session_shared_by_name_is_for_those_named,
    access_changes_are_checked,
    another_org_never_sees_a_shared_session,
    an_access_change_is_audited,
);

const WAITING: &str = "get_weather {\"city\": \"Oslo\"}";

/// A member of the fixture's org, calling with their session token.
struct Member<'f> {
    f: &'f Fixture,
    session: Session,
}

impl<'f> Member<'f> {
    async fn join(f: &'f Fixture, email: &str) -> Result<Self, BoxError> {
        let session = f.api.register(email).await?;
        add_member(&f.server, &f.org, &session.user_id, "member").await?;
        Ok(Self { f, session })
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply, BoxError> {
        let org = [("x-switchyard-org", self.f.org.as_str())];
        self.f.api.call_with_headers(method, path, self.session.bearer(), body, &org).await
    }

    async fn read(&self, session: &Value) -> Result<Reply, BoxError> {
        self.call(Method::GET, &session_path(session)?, None).await
    }

    async fn say(&self, session: &Value, text: &str) -> Result<Reply, BoxError> {
        self.call(Method::POST, "/v1/runs", Some(&said(session, text))).await
    }

    async fn listed(&self) -> Result<Vec<Value>, BoxError> {
        let listed = expect_status(self.call(Method::GET, "/v1/sessions", None).await?, 200)?;
        Ok(listed["data"].as_array().cloned().unwrap_or_default())
    }

    async fn share(&self, session: &Value, access: Value) -> Result<Reply, BoxError> {
        self.call(Method::PATCH, &format!("{}/access", session_path(session)?), Some(&access)).await
    }
}

fn session_path(session: &Value) -> Result<String, BoxError> {
    Ok(format!("/v1/sessions/{}", string_at(session, "/id")?))
}

fn said(session: &Value, text: &str) -> Value {
    let mut body = json!({"session_id": session["id"], "message": {"role": "user", "content": text}});
    if text == WAITING {
        body["tools"] = json!([{"name": "get_weather"}]);
    }
    body
}

impl Fixture {
    async fn owners_session(&self) -> Result<Value, BoxError> {
        expect_status(self.api.post("/v1/sessions", self.key(), json!({"title": "Shared"})).await?, 201)
    }

    async fn share(&self, session: &Value, access: Value) -> Result<Reply, BoxError> {
        let path = format!("{}/access", session_path(session)?);
        self.api.call(Method::PATCH, &path, self.key(), Some(&access)).await
    }

    async fn owner_says(&self, session: &Value, text: &str) -> Result<Reply, BoxError> {
        self.api.post("/v1/runs", self.key(), said(session, text)).await
    }
}

fn ids(sessions: &[Value]) -> Vec<&Value> {
    sessions.iter().map(|session| &session["id"]).collect()
}

async fn a_session_is_private_until_shared_and_private_again(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let member = Member::join(&f, "member@example.com").await?;
    let session = f.owners_session().await?;
    assert_eq!(session["access"], json!({"visibility": "private", "permission": "read", "members": []}));
    let run = expect_status(f.owner_says(&session, "Hello").await?, 201)?;
    let run_path = format!("/v1/runs/{}", string_at(&run, "/id")?);
    let runs_of_session = format!("/v1/runs?session_id={}", string_at(&session, "/id")?);
    // Private: another member does not know it exists.
    assert_error(&member.read(&session).await?, 404, "session.not_found");
    assert_error(&member.say(&session, "Hi").await?, 404, "session.not_found");
    assert!(member.listed().await?.is_empty());
    assert_error(&member.call(Method::GET, &run_path, None).await?, 404, "run.not_found");
    let listed = expect_status(member.call(Method::GET, &runs_of_session, None).await?, 200)?;
    assert_eq!(listed["data"], json!([]));

    let shared = expect_status(f.share(&session, json!({"visibility": "org"})).await?, 200)?;
    assert_eq!(shared, json!({"visibility": "org", "permission": "read", "members": []}));
    let read = expect_status(member.read(&session).await?, 200)?;
    assert_eq!(read["access"], shared);
    assert_eq!(read["messages"][1]["content"], "You said: Hello");
    assert_eq!(ids(&member.listed().await?), [&session["id"]]);
    // The session's runs come with it.
    expect_status(member.call(Method::GET, &run_path, None).await?, 200)?;
    let listed = expect_status(member.call(Method::GET, &runs_of_session, None).await?, 200)?;
    assert_eq!(listed["data"][0]["id"], run["id"]);

    let private = expect_status(f.share(&session, json!({"visibility": "private"})).await?, 200)?;
    assert_eq!(private["visibility"], "private");
    assert_error(&member.read(&session).await?, 404, "session.not_found");
    assert!(member.listed().await?.is_empty());
    assert_error(&member.call(Method::GET, &run_path, None).await?, 404, "run.not_found");
    Ok(())
}

async fn a_read_only_share_reads_but_neither_continues_nor_deletes_nor_shares(
    engine: TestEngine,
) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let member = Member::join(&f, "member@example.com").await?;
    let session = f.owners_session().await?;
    expect_status(f.share(&session, json!({"visibility": "org", "permission": "read"})).await?, 200)?;
    expect_status(member.read(&session).await?, 200)?;
    assert_error(&member.say(&session, "Hi").await?, 403, "session.read_only");
    let path = session_path(&session)?;
    assert_error(&member.call(Method::DELETE, &path, None).await?, 403, "session.creator_only");
    let widen = json!({"permission": "continue"});
    assert_error(&member.share(&session, widen).await?, 403, "session.creator_only");
    // Its runs may be read, not acted on.
    let waiting = expect_status(f.owner_says(&session, WAITING).await?, 201)?;
    let run_path = format!("/v1/runs/{}", string_at(&waiting, "/id")?);
    expect_status(member.call(Method::GET, &run_path, None).await?, 200)?;
    let cancel = member.call(Method::POST, &format!("{run_path}/cancel"), None).await?;
    assert_error(&cancel, 403, "session.read_only");
    let call = string_at(&waiting, "/pending_tool_calls/0/id")?;
    let answer = json!({"tool_outputs": [{"tool_call_id": call, "output": "sunny"}]});
    let answered = member.call(Method::POST, &format!("{run_path}/tool-outputs"), Some(&answer)).await?;
    assert_error(&answered, 403, "session.read_only");
    // The creator still may do all of it.
    expect_status(f.api.post(&format!("{run_path}/cancel"), f.key(), json!({})).await?, 200)?;
    assert_eq!(f.api.delete(&path, f.key()).await?.0, 204);
    Ok(())
}

async fn a_continue_share_takes_runs_from_members_one_at_a_time(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let member = Member::join(&f, "member@example.com").await?;
    let session = f.owners_session().await?;
    let access = json!({"visibility": "org", "permission": "continue"});
    expect_status(f.share(&session, access).await?, 200)?;
    expect_status(f.owner_says(&session, "Hello").await?, 201)?;
    let theirs = expect_status(member.say(&session, "Me too").await?, 201)?;
    assert_eq!(
        (theirs["session_id"].clone(), theirs["user_id"].clone()),
        (session["id"].clone(), json!(member.session.user_id))
    );
    // The member's run started from the owner's turn, and joined the history.
    let read = expect_status(member.read(&session).await?, 200)?;
    let contents: Vec<&Value> =
        read["messages"].as_array().ok_or("no messages")?.iter().map(|m| &m["content"]).collect();
    assert_eq!(contents, ["Hello", "You said: Hello", "Me too", "You said: Me too"]);
    // The owner sees the member's run, in the session's runs too.
    let runs_of_session = format!("/v1/runs?session_id={}", string_at(&session, "/id")?);
    let listed = expect_status(f.api.get(&runs_of_session, f.key()).await?, 200)?;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
    // Still one run at a time, whoever starts it.
    let waiting = expect_status(member.say(&session, WAITING).await?, 201)?;
    assert_error(&f.owner_says(&session, "Owner here").await?, 409, "run.session_busy");
    assert_error(&member.say(&session, "Again").await?, 409, "run.session_busy");
    // The owner may cancel the member's run in their session; then it goes on.
    let cancel = format!("/v1/runs/{}/cancel", string_at(&waiting, "/id")?);
    expect_status(f.api.post(&cancel, f.key(), json!({})).await?, 200)?;
    // A key of the member acts as the member: it continues the session too.
    let key = f.api.mint_key(&member.session, &f.org, &["runs"]).await?;
    let by_key = f.api.post("/v1/runs", Credential::Bearer(&key.key), said(&session, "By key")).await?;
    let by_key = expect_status(by_key, 201)?;
    assert_eq!(by_key["key_id"], json!(key.id));
    let listed = expect_status(f.api.get("/v1/sessions", Credential::Bearer(&key.key)).await?, 200)?;
    assert_eq!(listed["data"][0]["id"], session["id"]);
    // Neither may delete it or change whom it is shared with.
    let path = session_path(&session)?;
    assert_error(&f.api.delete(&path, Credential::Bearer(&key.key)).await?, 403, "session.creator_only");
    assert_error(
        &member.share(&session, json!({"visibility": "private"})).await?,
        403,
        "session.creator_only",
    );
    Ok(())
}

async fn a_session_shared_by_name_is_for_those_named(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let named = Member::join(&f, "named@example.com").await?;
    let other = Member::join(&f, "other@example.com").await?;
    let session = f.owners_session().await?;
    // Named by email, answered by user id.
    let access = json!({"visibility": "members", "permission": "continue", "members": ["named@example.com"]});
    let shared = expect_status(f.share(&session, access).await?, 200)?;
    assert_eq!(shared["members"], json!([named.session.user_id]));
    expect_status(named.read(&session).await?, 200)?;
    expect_status(named.say(&session, "Hi").await?, 201)?;
    assert_eq!(ids(&named.listed().await?), [&session["id"]]);
    assert_error(&other.read(&session).await?, 404, "session.not_found");
    assert_error(&other.say(&session, "Hi").await?, 404, "session.not_found");
    assert!(other.listed().await?.is_empty());
    // Changing only the permission keeps those named; naming others replaces them.
    let read_only = expect_status(f.share(&session, json!({"permission": "read"})).await?, 200)?;
    assert_eq!(read_only["members"], json!([named.session.user_id]));
    assert_error(&named.say(&session, "Again").await?, 403, "session.read_only");
    let others = json!({"members": [other.session.user_id]});
    let swapped = expect_status(f.share(&session, others).await?, 200)?;
    assert_eq!(swapped["members"], json!([other.session.user_id]));
    assert_error(&named.read(&session).await?, 404, "session.not_found");
    expect_status(other.read(&session).await?, 200)?;
    // The list shows each session's access, members included.
    let listed = expect_status(f.api.get("/v1/sessions", f.key()).await?, 200)?;
    assert_eq!(listed["data"][0]["access"], swapped);
    // Leaving the org ends the share.
    let org_members = format!("/v1/orgs/{}/members/{}", f.org, other.session.user_id);
    assert_eq!(f.api.delete(&org_members, f.owner.bearer()).await?.0, 204);
    let read = f.api.get(&session_path(&session)?, other.session.bearer()).await?;
    assert_error(&read, 404, "session.not_found");
    Ok(())
}

async fn access_changes_are_checked(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let session = f.owners_session().await?;
    f.api.register("outsider@example.com").await?;
    let outsider = json!({"visibility": "members", "members": ["outsider@example.com"]});
    let refused = f.share(&session, outsider).await?;
    assert_error(&refused, 422, "session.not_org_member");
    assert_eq!(refused.1["error"]["param"], "members");
    let unknown = json!({"visibility": "members", "members": ["usr_unknown"]});
    assert_error(&f.share(&session, unknown).await?, 422, "session.not_org_member");
    let nobody = json!({"visibility": "members", "members": []});
    assert_error(&f.share(&session, nobody).await?, 422, "request.invalid");
    let unnamed = json!({"visibility": "members"});
    assert_error(&f.share(&session, unnamed).await?, 422, "request.invalid");
    let stray = json!({"visibility": "org", "members": [f.owner.user_id]});
    assert_error(&f.share(&session, stray).await?, 422, "request.invalid");
    assert_error(&f.share(&session, json!({})).await?, 422, "request.invalid");
    let unknown_visibility = f.share(&session, json!({"visibility": "public"})).await?;
    assert_error(&unknown_visibility, 400, "request.malformed");
    assert_error(&f.share(&session, json!({"members": vec!["x"; 101]})).await?, 400, "request.malformed");
    // Nothing changed on the way.
    let read = expect_status(f.api.get(&session_path(&session)?, f.key()).await?, 200)?;
    assert_eq!(read["access"]["visibility"], "private");
    let unknown = f.share(&json!({"id": "ses_unknown"}), json!({"visibility": "org"})).await?;
    assert_error(&unknown, 404, "session.not_found");
    Ok(())
}

async fn another_org_never_sees_a_shared_session(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let session = f.owners_session().await?;
    expect_status(f.share(&session, json!({"visibility": "org", "permission": "continue"})).await?, 200)?;
    let stranger = f.api.register("stranger@example.com").await?;
    let their_org = f.api.create_org(&stranger, "Elsewhere").await?;
    let path = session_path(&session)?;
    assert_error(&f.api.get(&path, stranger.bearer()).await?, 404, "session.not_found");
    let widen = json!({"visibility": "private"});
    let reply = f.api.call(Method::PATCH, &format!("{path}/access"), stranger.bearer(), Some(&widen)).await?;
    assert_error(&reply, 404, "session.not_found");
    assert_error(&f.api.delete(&path, stranger.bearer()).await?, 404, "session.not_found");
    // Not even by naming the session in a run of their own org.
    let org = [("x-switchyard-org", their_org.as_str())];
    let body = said(&session, "Hi");
    let reply =
        f.api.call_with_headers(Method::POST, "/v1/runs", stranger.bearer(), Some(&body), &org).await?;
    assert_error(&reply, 404, "session.not_found");
    let key = f.api.mint_key(&stranger, &their_org, &["runs"]).await?;
    let listed = expect_status(f.api.get("/v1/sessions", Credential::Bearer(&key.key)).await?, 200)?;
    assert_eq!(listed["data"], json!([]));
    Ok(())
}

async fn an_access_change_is_audited(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let member = Member::join(&f, "member@example.com").await?;
    let session = f.owners_session().await?;
    let access =
        json!({"visibility": "members", "permission": "continue", "members": [member.session.user_id]});
    expect_status(f.share(&session, access.clone()).await?, 200)?;
    // The same access again changes nothing, and records nothing.
    expect_status(f.share(&session, access).await?, 200)?;
    let path = format!("/v1/audit?org_id={}&action=session.access_changed", f.org);
    let events = expect_status(f.api.get(&path, f.owner.bearer()).await?, 200)?;
    let events = events["data"].as_array().ok_or("no events")?;
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!((&events[0]["actor_id"], &events[0]["target"]), (&json!(f.owner.user_id), &session["id"]));
    let details = &events[0]["details"];
    assert_eq!(details["visibility"], "members");
    assert_eq!(details["permission"], "continue");
    assert_eq!(details["members"], json!([member.session.user_id]));
    assert!(string_at(details, "/principal")?.starts_with("key_"), "{details}");
    Ok(())
}
