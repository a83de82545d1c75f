//! API keys over HTTP on both engines: shown once, either header, their org
//! only, revocation and expiry, validation and pagination.

use std::time::Duration;

use serde_json::{Value, json};

use super::{ME, ids};
use crate::support::{
    Api, Credential, TestEngine, TestResult, assert_error, expect_status, on_both_engines, start, string_at,
    without_request_id,
};

on_both_engines!(
    api_keys_are_shown_once_and_work_in_either_header,
    an_api_key_sees_only_its_own_org,
    an_api_key_lists_its_org_whatever_the_page_size,
    api_keys_cannot_manage_api_keys,
    revoked_expired_and_wrong_secret_keys_are_refused,
    api_key_requests_are_validated,
    api_key_lists_paginate_without_duplicates,
    other_users_cannot_see_or_touch_an_org_or_its_keys,
);

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
    let day_long = json!({"name": "a day", "scopes": ["*"], "org_id": org, "expires_in_days": 1});
    let expired = expect_status(api.post("/v1/api-keys", ada.bearer(), day_long).await?, 201)?;
    let expired = string_at(&expired, "/key")?;
    let kept = api.mint_key(&ada, &org, &["*"]).await?;

    expect_status(api.get(ME, Credential::Bearer(&revoked.key)).await?, 200)?;
    expect_status(api.get(ME, Credential::Bearer(&expired)).await?, 200)?;
    let path = format!("/v1/api-keys/{}", revoked.id);
    assert_eq!(api.delete(&path, ada.bearer()).await?, (204, Value::Null));
    server.clock.advance(Duration::from_secs(86_400 + 60));
    // The session's access token expired with the day; a new sign-in.
    let ada = api.login("ada@example.com").await?;
    let (prefix, _secret) = kept.key.rsplit_once('_').ok_or("a key ends with its secret")?;
    let wrong_secret = format!("{prefix}_{}", "0".repeat(32));

    for key in [&revoked.key, &expired, &wrong_secret] {
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
