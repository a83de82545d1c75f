//! Changing a password with the current one: every session ends and a new
//! one begins, API keys and two-factor stay, pending reset tokens are spent,
//! and wrong current passwords count toward the account's lockout.

use serde_json::json;

use crate::support::{
    Api, BoxError, Credential, PASSWORD, Reply, TestEngine, TestResult, assert_error, audit_actions_of,
    expect_status, latest_mail, on_both_engines, start, string_at, word_after,
};

on_both_engines!(
    a_new_password_ends_every_session_and_starts_one,
    a_password_change_spends_pending_reset_tokens,
    wrong_current_passwords_are_refused_then_locked_out,
    failed_logins_lock_password_changes_too,
);

const EMAIL: &str = "ada@example.com";
const NEW_PASSWORD: &str = "a brand new passphrase";

async fn change(api: &Api, access: &str, current: &str, new: &str) -> Result<Reply, BoxError> {
    let body = json!({"current_password": current, "new_password": new});
    api.post("/v1/auth/password", Credential::Bearer(access), body).await
}

async fn login(api: &Api, password: &str) -> Result<Reply, BoxError> {
    api.post("/v1/auth/login", Credential::Anonymous, json!({"email": EMAIL, "password": password})).await
}

async fn a_new_password_ends_every_session_and_starts_one(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register(EMAIL).await?;
    let other_device = api.login(EMAIL).await?;
    let org = api.create_org(&ada, "Analytical Engines").await?;
    let key = api.mint_key(&ada, &org, &["*"]).await?;

    assert_error(&change(&api, &ada.access, PASSWORD, "password123").await?, 422, "auth.weak_password");
    let changed = expect_status(change(&api, &ada.access, PASSWORD, NEW_PASSWORD).await?, 200)?;
    assert_eq!(changed["user"]["id"], ada.user_id.as_str());
    let (access, refresh) = (string_at(&changed, "/access_token")?, string_at(&changed, "/refresh_token")?);

    // Both earlier sessions are over, their refresh tokens too.
    for old in [&ada, &other_device] {
        assert_error(&api.get("/v1/auth/me", old.bearer()).await?, 401, "auth.invalid_token");
        let refreshed =
            api.post("/v1/auth/refresh", Credential::Anonymous, json!({"refresh_token": old.refresh}));
        assert_error(&refreshed.await?, 401, "auth.invalid_refresh_token");
    }
    // The new session works and rotates; the API key still works.
    expect_status(api.get("/v1/auth/me", Credential::Bearer(&access)).await?, 200)?;
    let rotated = api.post("/v1/auth/refresh", Credential::Anonymous, json!({"refresh_token": refresh}));
    expect_status(rotated.await?, 200)?;
    expect_status(api.get("/v1/auth/me", Credential::Bearer(&key.key)).await?, 200)?;
    // Only the new password logs in.
    assert_error(&login(&api, PASSWORD).await?, 401, "auth.invalid_credentials");
    expect_status(login(&api, NEW_PASSWORD).await?, 200)?;

    let actions = audit_actions_of(&server, &ada.user_id).await?;
    assert!(actions.iter().any(|a| a == "user.password_changed"), "{actions:?}");
    server.stop().await?;
    Ok(())
}

async fn a_password_change_spends_pending_reset_tokens(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register(EMAIL).await?;
    let reset = api.post("/v1/auth/password-reset", Credential::Anonymous, json!({"email": EMAIL}));
    expect_status(reset.await?, 202)?;
    let mail = latest_mail(&server.database.url, EMAIL).await?;
    let token = word_after(&mail.body, "/reset-password?token=")?;

    expect_status(change(&api, &ada.access, PASSWORD, NEW_PASSWORD).await?, 200)?;
    let confirm = json!({"token": token, "new_password": "somebody else's passphrase"});
    let confirmed = api.post("/v1/auth/password-reset/confirm", Credential::Anonymous, confirm);
    assert_error(&confirmed.await?, 401, "auth.invalid_reset_token");
    expect_status(login(&api, NEW_PASSWORD).await?, 200)?;
    server.stop().await?;
    Ok(())
}

async fn wrong_current_passwords_are_refused_then_locked_out(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register(EMAIL).await?;
    let org = api.create_org(&ada, "Analytical Engines").await?;
    let key = api.mint_key(&ada, &org, &["*"]).await?;
    assert_error(&change(&api, &key.key, PASSWORD, NEW_PASSWORD).await?, 403, "auth.session_required");

    for _ in 0..5 {
        let refused = change(&api, &ada.access, "not the password", NEW_PASSWORD).await?;
        assert_error(&refused, 401, "auth.invalid_credentials");
    }
    // Locked now, even with the right password; the session itself is
    // untouched. Login counts under the same key, so it is locked too.
    let locked = change(&api, &ada.access, PASSWORD, NEW_PASSWORD).await?;
    assert_error(&locked, 429, "auth.too_many_failed_logins");
    expect_status(api.get("/v1/auth/me", ada.bearer()).await?, 200)?;
    assert_error(&login(&api, PASSWORD).await?, 429, "auth.too_many_failed_logins");

    let actions = audit_actions_of(&server, &ada.user_id).await?;
    assert_eq!(actions.iter().filter(|a| *a == "user.password_change_failed").count(), 5, "{actions:?}");
    server.stop().await?;
    Ok(())
}

async fn failed_logins_lock_password_changes_too(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register(EMAIL).await?;
    for _ in 0..5 {
        assert_error(&login(&api, "not the password").await?, 401, "auth.invalid_credentials");
    }
    // One count per account and address: the guesses cannot go on here.
    let locked = change(&api, &ada.access, "another guess", NEW_PASSWORD).await?;
    assert_error(&locked, 429, "auth.too_many_failed_logins");
    server.stop().await?;
    Ok(())
}
