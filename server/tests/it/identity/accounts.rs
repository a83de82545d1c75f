//! Accounts over HTTP on both engines: registration, the password policy,
//! login that reveals nothing, forged tokens, and the audit of it all.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::{ME, login, register};
use crate::support::{
    Api, BoxError, Credential, PASSWORD, TestEngine, TestResult, assert_error, audit_actions_of,
    expect_status, on_both_engines, start, string_at, without_request_id,
};

on_both_engines!(
    registration_normalises_the_email_and_signs_in,
    an_email_is_taken_whatever_the_case_of_its_domain,
    passwords_must_be_8_to_128_uncommon_characters,
    invalid_emails_are_422_naming_the_email,
    login_does_not_reveal_whether_an_email_has_an_account,
    tampered_and_forged_access_tokens_are_refused,
    security_events_are_audited_in_order,
);

async fn registration_normalises_the_email_and_signs_in(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let tokens = expect_status(register(&api, " Ada@Example.COM ", PASSWORD).await?, 201)?;
    assert_eq!(tokens["user"]["email"], "Ada@example.com", "{tokens}");
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert!(string_at(&tokens, "/refresh_token")?.starts_with("syr_"), "{tokens}");

    let me =
        expect_status(api.get(ME, Credential::Bearer(&string_at(&tokens, "/access_token")?)).await?, 200)?;
    assert_eq!(me["user"], tokens["user"]);
    assert_eq!(me["orgs"], json!([]));

    // Logging in folds the domain the same way.
    let signed_in = expect_status(login(&api, "Ada@EXAMPLE.com", PASSWORD).await?, 200)?;
    assert_eq!(signed_in["user"]["id"], tokens["user"]["id"]);
    server.stop().await?;
    Ok(())
}

async fn an_email_is_taken_whatever_the_case_of_its_domain(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    api.register("ada@example.com").await?;
    for email in ["ada@example.com", "ada@EXAMPLE.COM", "  ada@Example.com\t"] {
        let reply = register(&api, email, PASSWORD).await?;
        assert_error(&reply, 409, "auth.email_taken");
        assert_eq!(reply.1["error"]["param"], "email");
    }
    server.stop().await?;
    Ok(())
}

async fn passwords_must_be_8_to_128_uncommon_characters(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (max, too_long) = ("x".repeat(128), "x".repeat(129));
    let refused = [
        ("password123", "common"),
        ("PassWord123", "common in another case"),
        ("7 chars", "too short"),
        (too_long.as_str(), "too long"),
    ];
    for (password, why) in refused {
        let reply = register(&api, "ada@example.com", password).await?;
        assert_error(&reply, 422, "auth.weak_password");
        assert_eq!(reply.1["error"]["param"], "password", "{why}");
    }
    for (email, password) in [("eight@example.com", "8 chars!"), ("long@example.com", max.as_str())] {
        expect_status(register(&api, email, password).await?, 201)?;
    }
    server.stop().await?;
    Ok(())
}

async fn invalid_emails_are_422_naming_the_email(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    for email in ["grace", "", "@example.com", "grace@localhost", "grace@example.", "gr ace@example.com"] {
        let reply = register(&api, email, PASSWORD).await?;
        assert_error(&reply, 422, "request.invalid");
        assert_eq!(reply.1["error"]["param"], "email", "{email:?}");
    }
    server.stop().await?;
    Ok(())
}

async fn login_does_not_reveal_whether_an_email_has_an_account(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    api.register("ada@example.com").await?;
    expect_status(login(&api, "ada@example.com", PASSWORD).await?, 200)?;

    let wrong_password = login(&api, "ada@example.com", "not the password").await?;
    assert_error(&wrong_password, 401, "auth.invalid_credentials");
    let unknown_emails =
        [login(&api, "grace@example.com", PASSWORD).await?, login(&api, "grace", PASSWORD).await?];
    for other in unknown_emails {
        assert_eq!(other.0, wrong_password.0);
        assert_eq!(without_request_id(other.1), without_request_id(wrong_password.1.clone()));
    }
    server.stop().await?;
    Ok(())
}

/// `token` with the first character of its signature changed.
fn with_tampered_signature(token: &str) -> Result<String, BoxError> {
    let (signed, signature) = token.rsplit_once('.').ok_or("an access token has three parts")?;
    let first = signature.chars().next().ok_or("the signature is empty")?;
    let replacement = if first == 'A' { 'B' } else { 'A' };
    Ok(format!("{signed}.{replacement}{}", &signature[first.len_utf8()..]))
}

/// `token`'s claims under an `{"alg":"none","typ":"JWT"}` header, unsigned.
fn with_alg_none(token: &str) -> Result<String, BoxError> {
    const ALG_NONE_HEADER: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0";
    let claims = token.split('.').nth(1).ok_or("an access token has three parts")?;
    Ok(format!("{ALG_NONE_HEADER}.{claims}."))
}

/// `token`'s claims, signed with HS256 under a secret the server never had.
fn resigned_with_another_secret(token: &str) -> Result<String, BoxError> {
    let claims: Value = jsonwebtoken::dangerous::insecure_decode_claims(token)?;
    let key = EncodingKey::from_secret(b"not-the-server-secret-not-the-server-secret");
    Ok(jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)?)
}

async fn tampered_and_forged_access_tokens_are_refused(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let session = api.register("ada@example.com").await?;
    expect_status(api.get(ME, session.bearer()).await?, 200)?;

    let forgeries = [
        ("tampered signature", with_tampered_signature(&session.access)?),
        ("alg none", with_alg_none(&session.access)?),
        ("another secret", resigned_with_another_secret(&session.access)?),
    ];
    for (what, token) in forgeries {
        let (status, body) = api.get(ME, Credential::Bearer(&token)).await?;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("auth.invalid_token")),
            "{what}: {body}"
        );
    }
    server.stop().await?;
    Ok(())
}

async fn security_events_are_audited_in_order(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    api.login("ada@example.com").await?;
    assert_error(&login(&api, "ada@example.com", "not the password").await?, 401, "auth.invalid_credentials");
    let org = api.create_org(&ada, "Analytical Engines").await?;
    let key = api.mint_key(&ada, &org, &["chat"]).await?;
    expect_status(api.delete(&format!("/v1/api-keys/{}", key.id), ada.bearer()).await?, 204)?;

    assert_eq!(
        audit_actions_of(&server, &ada.user_id).await?,
        [
            "user.registered",
            "user.login",
            "user.login_failed",
            "org.created",
            "api_key.created",
            "api_key.revoked"
        ]
    );
    server.stop().await?;
    Ok(())
}
