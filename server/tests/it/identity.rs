//! Accounts, sessions, organizations and API keys over HTTP, on both engines.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{
    Api, BoxError, Credential, PASSWORD, Reply, TestEngine, TestResult, assert_error, audit_actions_of,
    expect_status, expire_api_key, on_both_engines, start, string_at, without_request_id,
};

on_both_engines!(
    registration_normalises_the_email_and_signs_in,
    an_email_is_taken_whatever_the_case_of_its_domain,
    passwords_must_be_8_to_128_uncommon_characters,
    invalid_emails_are_422_naming_the_email,
    login_does_not_reveal_whether_an_email_has_an_account,
    reusing_a_refresh_token_revokes_its_whole_session,
    logout_ends_only_the_current_session,
    tampered_and_forged_access_tokens_are_refused,
    api_keys_are_shown_once_and_work_in_either_header,
    an_api_key_sees_only_its_own_org,
    an_api_key_lists_its_org_whatever_the_page_size,
    api_keys_cannot_manage_api_keys,
    revoked_expired_and_wrong_secret_keys_are_refused,
    api_key_requests_are_validated,
    api_key_lists_paginate_without_duplicates,
    other_users_cannot_see_or_touch_an_org_or_its_keys,
    security_events_are_audited_in_order,
    sessions_list_the_callers_logins_and_end_one_at_a_time,
);

const ME: &str = "/v1/auth/me";

async fn register(api: &Api, email: &str, password: &str) -> Result<Reply, BoxError> {
    api.post("/v1/auth/register", Credential::Anonymous, json!({"email": email, "password": password})).await
}

async fn login(api: &Api, email: &str, password: &str) -> Result<Reply, BoxError> {
    api.post("/v1/auth/login", Credential::Anonymous, json!({"email": email, "password": password})).await
}

async fn refresh(api: &Api, refresh_token: &str) -> Result<Reply, BoxError> {
    api.post("/v1/auth/refresh", Credential::Anonymous, json!({"refresh_token": refresh_token})).await
}

async fn logout(api: &Api, access_token: &str) -> Result<Reply, BoxError> {
    api.call(reqwest::Method::POST, "/v1/auth/logout", Credential::Bearer(access_token), None).await
}

/// The `id`s of the objects in a JSON array, such as a page's `data`.
fn ids(objects: &Value) -> Vec<String> {
    let objects = objects.as_array().map(Vec::as_slice).unwrap_or_default();
    objects.iter().filter_map(|object| object["id"].as_str().map(str::to_owned)).collect()
}

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

async fn api_keys_are_shown_once_and_work_in_either_header(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let org = api.create_org(&ada, "Analytical Engines").await?;

    let body =
        json!({"name": "CI", "scopes": ["runs", "chat", "chat"], "org_id": org, "expires_in_days": 90});
    let created = expect_status(api.post("/v1/api-keys", ada.bearer(), body).await?, 201)?;
    let (id, key) = (string_at(&created, "/id")?, string_at(&created, "/key")?);
    assert!(id.starts_with("key_"), "{created}");
    assert!(key.starts_with(&format!("sy_live_{id}_")), "{created}");
    assert_eq!(created["prefix"], format!("sy_live_{id}"));
    assert_eq!(created["scopes"], json!(["chat", "runs"]));
    assert_eq!(created["org_id"], org.as_str());
    assert!(created["expires_at"].is_string(), "{created}");

    let listed = expect_status(api.get("/v1/api-keys", ada.bearer()).await?, 200)?;
    assert_eq!(ids(&listed["data"]), [id.as_str()]);
    assert_eq!(listed["data"][0]["prefix"], created["prefix"]);
    assert!(listed["data"][0].get("key").is_none(), "{listed}");
    let secret = key.rsplit('_').next().ok_or("a key ends with its secret")?;
    assert!(!listed.to_string().contains(secret), "the list leaks the secret: {listed}");

    for credential in [Credential::Bearer(&key), Credential::ApiKeyHeader(&key)] {
        let me = expect_status(api.get(ME, credential).await?, 200)?;
        assert_eq!(me["user"]["id"], ada.user_id.as_str(), "{credential:?}");
    }
    server.stop().await?;
    Ok(())
}

async fn an_api_key_sees_only_its_own_org(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let engines = api.create_org(&ada, "Analytical Engines").await?;
    let looms = api.create_org(&ada, "Jacquard Looms").await?;
    let key = api.mint_key(&ada, &engines, &["*"]).await?;

    let me = expect_status(api.get(ME, ada.bearer()).await?, 200)?;
    assert_eq!(me["orgs"].as_array().map(Vec::len), Some(2), "{me}");

    for credential in [Credential::Bearer(&key.key), Credential::ApiKeyHeader(&key.key)] {
        let me = expect_status(api.get(ME, credential).await?, 200)?;
        assert_eq!(ids(&me["orgs"]), [engines.as_str()], "{credential:?}: {me}");
        let orgs = expect_status(api.get("/v1/orgs", credential).await?, 200)?;
        assert_eq!(ids(&orgs["data"]), [engines.as_str()], "{credential:?}: {orgs}");
        assert_eq!(orgs["has_more"], false);
        expect_status(api.get(&format!("/v1/orgs/{engines}"), credential).await?, 200)?;
        assert_error(&api.get(&format!("/v1/orgs/{looms}"), credential).await?, 404, "org.not_found");
    }
    server.stop().await?;
    Ok(())
}

async fn an_api_key_lists_its_org_whatever_the_page_size(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let mut orgs = Vec::new();
    for name in ["First", "Second", "Third"] {
        orgs.push(api.create_org(&ada, name).await?);
    }
    // Lists run in id order; bind the key to the org listed last.
    let last = orgs.iter().max().ok_or("three orgs were created")?;
    let key = api.mint_key(&ada, last, &["*"]).await?;

    let page = expect_status(api.get("/v1/orgs?limit=1", Credential::Bearer(&key.key)).await?, 200)?;
    assert_eq!(ids(&page["data"]), [last.as_str()], "{page}");
    assert_eq!(page["has_more"], false, "{page}");
    server.stop().await?;
    Ok(())
}

async fn api_keys_cannot_manage_api_keys(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let org = api.create_org(&ada, "Analytical Engines").await?;
    let key = api.mint_key(&ada, &org, &["*"]).await?;
    let as_key = Credential::Bearer(&key.key);

    let mint = json!({"name": "child", "scopes": ["chat"], "org_id": org});
    assert_error(&api.post("/v1/api-keys", as_key, mint).await?, 403, "auth.session_required");
    assert_error(&api.get("/v1/api-keys", as_key).await?, 403, "auth.session_required");
    let own = format!("/v1/api-keys/{}", key.id);
    assert_error(&api.delete(&own, as_key).await?, 403, "auth.session_required");

    // None of that touched the keys.
    let listed = expect_status(api.get("/v1/api-keys", ada.bearer()).await?, 200)?;
    assert_eq!(ids(&listed["data"]), [key.id.as_str()]);
    server.stop().await?;
    Ok(())
}

async fn revoked_expired_and_wrong_secret_keys_are_refused(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let org = api.create_org(&ada, "Analytical Engines").await?;
    let revoked = api.mint_key(&ada, &org, &["*"]).await?;
    let expired = api.mint_key(&ada, &org, &["*"]).await?;
    let kept = api.mint_key(&ada, &org, &["*"]).await?;

    expect_status(api.get(ME, Credential::Bearer(&revoked.key)).await?, 200)?;
    let path = format!("/v1/api-keys/{}", revoked.id);
    assert_eq!(api.delete(&path, ada.bearer()).await?, (204, Value::Null));
    expire_api_key(&server, &expired.id).await?;
    let (prefix, _secret) = kept.key.rsplit_once('_').ok_or("a key ends with its secret")?;
    let wrong_secret = format!("{prefix}_{}", "0".repeat(32));

    for key in [&revoked.key, &expired.key, &wrong_secret] {
        for credential in [Credential::Bearer(key), Credential::ApiKeyHeader(key)] {
            assert_error(&api.get(ME, credential).await?, 401, "auth.invalid_api_key");
        }
    }
    expect_status(api.get(ME, Credential::Bearer(&kept.key)).await?, 200)?;

    // A revoked key is gone from the list and cannot be revoked twice.
    let listed = expect_status(api.get("/v1/api-keys", ada.bearer()).await?, 200)?;
    assert!(!ids(&listed["data"]).contains(&revoked.id), "{listed}");
    assert_error(&api.delete(&path, ada.bearer()).await?, 404, "api_key.not_found");
    server.stop().await?;
    Ok(())
}

async fn api_key_requests_are_validated(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let org = api.create_org(&ada, "Analytical Engines").await?;
    let mint = |org_id: &str, expires_in_days: u32| {
        let body =
            json!({"name": "CI", "scopes": ["chat"], "org_id": org_id, "expires_in_days": expires_in_days});
        api.post("/v1/api-keys", ada.bearer(), body)
    };

    for days in [0, 3651] {
        let reply = mint(&org, days).await?;
        assert_error(&reply, 422, "request.invalid");
        assert_eq!(reply.1["error"]["param"], "expires_in_days", "{days}");
    }
    for days in [1, 3650] {
        expect_status(mint(&org, days).await?, 201)?;
    }
    assert_error(&mint("org_01jd3xr2c5d8f1g4h7j0k3m6n9", 30).await?, 404, "org.not_found");
    server.stop().await?;
    Ok(())
}

async fn api_key_lists_paginate_without_duplicates(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let org = api.create_org(&ada, "Analytical Engines").await?;
    let mut minted = Vec::new();
    for _ in 0..3 {
        minted.push(api.mint_key(&ada, &org, &["chat"]).await?.id);
    }

    let first = expect_status(api.get("/v1/api-keys?limit=2", ada.bearer()).await?, 200)?;
    assert_eq!(ids(&first["data"]).len(), 2, "{first}");
    assert_eq!(first["has_more"], true, "{first}");
    let cursor = string_at(&first, "/next_cursor")?;
    let cursor: String = url::form_urlencoded::byte_serialize(cursor.as_bytes()).collect();

    let second = api.get(&format!("/v1/api-keys?limit=2&cursor={cursor}"), ada.bearer()).await?;
    let second = expect_status(second, 200)?;
    assert_eq!(ids(&second["data"]).len(), 1, "{second}");
    assert_eq!(second["has_more"], false, "{second}");
    assert_eq!(second["next_cursor"], Value::Null, "{second}");

    let mut seen = [ids(&first["data"]), ids(&second["data"])].concat();
    seen.sort();
    minted.sort();
    assert_eq!(seen, minted, "every key exactly once");
    server.stop().await?;
    Ok(())
}

async fn other_users_cannot_see_or_touch_an_org_or_its_keys(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let adas_org = api.create_org(&ada, "Analytical Engines").await?;
    let adas_key = api.mint_key(&ada, &adas_org, &["*"]).await?;
    let bob = api.register("bob@example.com").await?;
    let bobs_org = api.create_org(&bob, "Difference Engines").await?;

    let not_bobs = api.get(&format!("/v1/orgs/{adas_org}"), bob.bearer()).await?;
    assert_error(&not_bobs, 404, "org.not_found");
    let nonexistent = api.get("/v1/orgs/org_01jd3xr2c5d8f1g4h7j0k3m6n9", bob.bearer()).await?;
    assert_eq!(not_bobs.0, nonexistent.0);
    assert_eq!(without_request_id(not_bobs.1), without_request_id(nonexistent.1));

    let mint = json!({"name": "sneaky", "scopes": ["*"], "org_id": adas_org});
    assert_error(&api.post("/v1/api-keys", bob.bearer(), mint).await?, 404, "org.not_found");
    let adas_key_path = format!("/v1/api-keys/{}", adas_key.id);
    assert_error(&api.delete(&adas_key_path, bob.bearer()).await?, 404, "api_key.not_found");

    let bobs_orgs = expect_status(api.get("/v1/orgs", bob.bearer()).await?, 200)?;
    assert_eq!(ids(&bobs_orgs["data"]), [bobs_org.as_str()]);
    let bobs_keys = expect_status(api.get("/v1/api-keys", bob.bearer()).await?, 200)?;
    assert!(ids(&bobs_keys["data"]).is_empty(), "{bobs_keys}");

    // Ada's key survived Bob's attempt.
    expect_status(api.get(ME, Credential::Bearer(&adas_key.key)).await?, 200)?;
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
