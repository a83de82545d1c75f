//! Step-up: a session that signed in (or reauthenticated) longer ago than
//! the window may not turn on two-factor login or mint API keys until it
//! proves who it is again, with the password or a second factor; and the
//! account is mailed when such things happen.

use std::time::Duration;

use serde_json::json;

use crate::support::{
    Api, PASSWORD, RunningServer, TestEngine, TestResult, assert_error, expect_status, on_both_engines, start,
};

on_both_engines!(
    an_old_session_must_reauthenticate_before_taking_the_account_over,
    wrong_passwords_to_reauthenticate_count_toward_the_lockout,
    the_account_is_mailed_about_new_keys_and_sign_ins_from_new_addresses,
);

async fn an_old_session_must_reauthenticate_before_taking_the_account_over(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let org = api.create_org(&ada, "Engines").await?;
    let mint =
        || api.post("/v1/api-keys", ada.bearer(), json!({"name": "k", "scopes": ["*"], "org_id": org}));
    // Fresh from sign-up, the session may.
    expect_status(mint().await?, 201)?;

    // Past the ten-minute window, and short of the access token's fifteen.
    server.clock.advance(Duration::from_secs(11 * 60));
    let refused = mint().await?;
    assert_error(&refused, 403, "auth.reauthentication_required");
    assert_error(
        &api.post("/v1/auth/2fa/setup", ada.bearer(), json!({})).await?,
        403,
        "auth.reauthentication_required",
    );
    let enable = api.post("/v1/auth/2fa/enable", ada.bearer(), json!({"code": "123456"})).await?;
    assert_error(&enable, 403, "auth.reauthentication_required");
    // Reading the session is still fine: only the takeover paths are gated.
    expect_status(api.get("/v1/auth/me", ada.bearer()).await?, 200)?;

    let wrong = api.post("/v1/auth/reauthenticate", ada.bearer(), json!({"password": "not it"})).await?;
    assert_error(&wrong, 401, "auth.invalid_credentials");
    assert_error(&mint().await?, 403, "auth.reauthentication_required");
    let both = json!({"password": PASSWORD, "code": "123456"});
    assert_error(&api.post("/v1/auth/reauthenticate", ada.bearer(), both).await?, 422, "request.invalid");
    let proven = api.post("/v1/auth/reauthenticate", ada.bearer(), json!({"password": PASSWORD})).await?;
    assert_eq!(proven.0, 204, "{}", proven.1);
    expect_status(mint().await?, 201)?;
    expect_status(api.post("/v1/auth/2fa/setup", ada.bearer(), json!({})).await?, 200)?;
    server.stop().await?;
    Ok(())
}

async fn wrong_passwords_to_reauthenticate_count_toward_the_lockout(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    for _ in 0..5 {
        let wrong = api.post("/v1/auth/reauthenticate", ada.bearer(), json!({"password": "not it"})).await?;
        assert_error(&wrong, 401, "auth.invalid_credentials");
    }
    let right = api.post("/v1/auth/reauthenticate", ada.bearer(), json!({"password": PASSWORD})).await?;
    assert_error(&right, 429, "auth.too_many_failed_logins");
    server.stop().await?;
    Ok(())
}

/// The subjects of the security notices mailed to `to`, oldest first.
async fn notices_to(server: &RunningServer, to: &str) -> Result<Vec<String>, crate::support::BoxError> {
    let mut subjects: Vec<(i64, String, String)> = crate::support::all_mail(&server.database.url)
        .await?
        .into_iter()
        .filter(|row| row.recipient == to && row.kind == "security_notice")
        .map(|row| (row.created_at, row.id, row.subject))
        .collect();
    subjects.sort();
    Ok(subjects.into_iter().map(|(_, _, subject)| subject).collect())
}

async fn the_account_is_mailed_about_new_keys_and_sign_ins_from_new_addresses(
    engine: TestEngine,
) -> TestResult {
    let server = start(engine, |config| config.trusted_proxies = vec!["127.0.0.0/8".to_owned()]).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    assert!(notices_to(&server, &ada.email).await?.is_empty(), "signing up is not news");
    let org = api.create_org(&ada, "Engines").await?;
    api.mint_key(&ada, &org, &["chat"]).await?;
    let login_from = |address: &'static str| {
        reqwest::Client::new()
            .post(server.url("/v1/auth/login"))
            .header("x-forwarded-for", address)
            .json(&json!({"email": "ada@example.com", "password": PASSWORD}))
            .send()
    };
    for address in ["198.51.100.7", "198.51.100.7", "203.0.113.9"] {
        assert_eq!(login_from(address).await?.status(), 200);
    }
    let notices = notices_to(&server, &ada.email).await?;
    assert_eq!(
        notices,
        [
            "Switchyard security notice: A new API key, \"test key\", was created",
            "Switchyard security notice: A sign-in",
            "Switchyard security notice: A sign-in",
        ],
        "one notice per new address, none for a known one"
    );
    let latest = crate::support::latest_mail(&server.database.url, &ada.email).await?;
    assert!(latest.body.contains("from 203.0.113.9"), "{}", latest.body);
    server.stop().await?;
    Ok(())
}
