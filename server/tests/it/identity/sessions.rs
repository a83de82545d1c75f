//! Sessions over HTTP on both engines: refresh rotation and reuse, logout,
//! and the list of the caller's logins.

use std::time::Duration;

use serde_json::{Value, json};

use super::{ME, logout, refresh};
use crate::support::{
    Api, Credential, TestEngine, TestResult, assert_error, expect_status, on_both_engines, start, string_at,
};

on_both_engines!(
    reusing_a_refresh_token_revokes_its_whole_session,
    logout_ends_only_the_current_session,
    sessions_list_the_callers_logins_and_end_one_at_a_time,
    access_tokens_expire_and_refresh_tokens_outlive_them,
);

async fn access_tokens_expire_and_refresh_tokens_outlive_them(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    // Fifteen minutes, and the five seconds of leeway for clocks apart.
    server.clock.advance(Duration::from_secs(15 * 60));
    expect_status(api.get(ME, ada.bearer()).await?, 200)?;
    server.clock.advance(Duration::from_secs(6));
    assert_error(&api.get(ME, ada.bearer()).await?, 401, "auth.invalid_token");

    let renewed = expect_status(refresh(&api, &ada.refresh).await?, 200)?;
    let access = string_at(&renewed, "/access_token")?;
    expect_status(api.get(ME, Credential::Bearer(&access)).await?, 200)?;
    // Thirty days on, the refresh token has expired too.
    server.clock.advance(Duration::from_secs(30 * 86_400 + 1));
    let later = string_at(&renewed, "/refresh_token")?;
    assert_error(&refresh(&api, &later).await?, 401, "auth.invalid_refresh_token");
    server.stop().await?;
    Ok(())
}

async fn reusing_a_refresh_token_revokes_its_whole_session(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let first = api.register("ada@example.com").await?;
    let elsewhere = api.login("ada@example.com").await?;

    let rotated = expect_status(refresh(&api, &first.refresh).await?, 200)?;
    let (new_access, new_refresh) =
        (string_at(&rotated, "/access_token")?, string_at(&rotated, "/refresh_token")?);
    assert_ne!(new_refresh, first.refresh);
    assert_eq!(rotated["user"]["id"], first.user_id.as_str());
    expect_status(api.get(ME, Credential::Bearer(&new_access)).await?, 200)?;

    // The spent token again: it leaked, so the whole family goes.
    assert_error(&refresh(&api, &first.refresh).await?, 401, "auth.refresh_reused");
    assert_error(&refresh(&api, &new_refresh).await?, 401, "auth.invalid_refresh_token");
    for access in [&first.access, &new_access] {
        assert_error(&api.get(ME, Credential::Bearer(access)).await?, 401, "auth.invalid_token");
    }

    // The user's other session is a different family.
    expect_status(api.get(ME, elsewhere.bearer()).await?, 200)?;
    expect_status(refresh(&api, &elsewhere.refresh).await?, 200)?;
    server.stop().await?;
    Ok(())
}

async fn logout_ends_only_the_current_session(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let leaving = api.register("ada@example.com").await?;
    let staying = api.login("ada@example.com").await?;

    assert_eq!(logout(&api, &leaving.access).await?, (204, Value::Null));
    assert_error(&api.get(ME, leaving.bearer()).await?, 401, "auth.invalid_token");
    assert_error(&refresh(&api, &leaving.refresh).await?, 401, "auth.invalid_refresh_token");
    assert_error(&logout(&api, &leaving.access).await?, 401, "auth.invalid_token");

    expect_status(api.get(ME, staying.bearer()).await?, 200)?;
    expect_status(refresh(&api, &staying.refresh).await?, 200)?;
    server.stop().await?;
    Ok(())
}

async fn sessions_list_the_callers_logins_and_end_one_at_a_time(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let laptop = api.register("ada@example.com").await?;
    let phone = api.login("ada@example.com").await?;
    let grace = api.register("grace@example.com").await?;

    let listed = expect_status(api.get("/v1/auth/sessions", laptop.bearer()).await?, 200)?;
    let sessions = listed["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(sessions.len(), 2, "{listed}");
    assert_eq!((sessions[0]["current"].clone(), sessions[1]["current"].clone()), (json!(true), json!(false)));
    assert_eq!(sessions[0]["ip"], "127.0.0.1");
    assert_eq!(sessions[1]["refreshed_at"], Value::Null);
    let phone_session = string_at(&sessions[1], "/id")?;

    // Refreshing shows on the session; a page of one says more follow.
    let rotated =
        api.post("/v1/auth/refresh", Credential::Anonymous, json!({"refresh_token": phone.refresh}));
    let rotated = expect_status(rotated.await?, 200)?;
    let first = expect_status(api.get("/v1/auth/sessions?limit=1", laptop.bearer()).await?, 200)?;
    assert_eq!(first["has_more"], true);
    let cursor = string_at(&first, "/next_cursor")?;
    let rest = api.get(&format!("/v1/auth/sessions?limit=1&cursor={cursor}"), laptop.bearer()).await?;
    let rest = expect_status(rest, 200)?;
    assert_eq!(rest["data"][0]["id"], phone_session.as_str());
    assert!(rest["data"][0]["refreshed_at"].is_string(), "{rest}");

    // Another user cannot end it, or learn it exists.
    let path = format!("/v1/auth/sessions/{phone_session}");
    assert_error(&api.delete(&path, grace.bearer()).await?, 404, "auth.session_not_found");
    // Its owner can: the phone's tokens stop working, the laptop's do not.
    assert_eq!(api.delete(&path, laptop.bearer()).await?.0, 204);
    let phone_access = string_at(&rotated, "/access_token")?;
    assert_error(&api.get(ME, Credential::Bearer(&phone_access)).await?, 401, "auth.invalid_token");
    let refresh = api.post(
        "/v1/auth/refresh",
        Credential::Anonymous,
        json!({"refresh_token": string_at(&rotated, "/refresh_token")?}),
    );
    assert_error(&refresh.await?, 401, "auth.invalid_refresh_token");
    expect_status(api.get(ME, laptop.bearer()).await?, 200)?;
    assert_error(&api.delete(&path, laptop.bearer()).await?, 404, "auth.session_not_found");
    let listed = expect_status(api.get("/v1/auth/sessions", laptop.bearer()).await?, 200)?;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    let actions = crate::support::audit_actions_of(&server, &laptop.user_id).await?;
    assert!(actions.iter().any(|a| a == "user.session_revoked"), "{actions:?}");
    server.stop().await?;
    Ok(())
}
