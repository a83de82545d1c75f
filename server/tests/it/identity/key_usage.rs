//! API key use is recorded without a write per request, and never lost on a
//! graceful stop.

use serde_json::{Value, json};
use switchyard_server::db::Db;

use crate::support::{TestEngine, TestResult, http, on_both_engines, start};

on_both_engines!(last_use_is_written_by_the_time_the_server_stops,);

async fn last_use_is_written_by_the_time_the_server_stops(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let password = "correct horse battery staple";
    let tokens: Value = http()
        .post(server.url("/v1/auth/register"))
        .json(&json!({"email": "ada@example.com", "password": password}))
        .send()
        .await?
        .json()
        .await?;
    let access = tokens["access_token"].as_str().ok_or("no token")?;
    let org: Value = http()
        .post(server.url("/v1/orgs"))
        .bearer_auth(access)
        .json(&json!({"name": "Engines"}))
        .send()
        .await?
        .json()
        .await?;
    let key: Value = http()
        .post(server.url("/v1/api-keys"))
        .bearer_auth(access)
        .json(&json!({"name": "ci", "scopes": ["chat"], "org_id": org["id"]}))
        .send()
        .await?
        .json()
        .await?;
    let (key_id, secret) = (key["id"].as_str().ok_or("no id")?, key["key"].as_str().ok_or("no key")?);
    assert_eq!(key["last_used_at"], Value::Null);

    let me = http().get(server.url("/v1/auth/me")).header("x-api-key", secret).send().await?;
    assert_eq!(me.status(), 200);

    let db = Db::connect(&server.database.url).await?;
    assert_eq!(
        db.api_key_by_id(key_id).await?.ok_or("no key row")?.key.last_used_at,
        None,
        "no write per request"
    );
    // Keep the database until the end: it is deleted when dropped.
    let _database = server.stop().await?;
    let used = db.api_key_by_id(key_id).await?.ok_or("no key row")?.key.last_used_at;
    assert!(used.is_some(), "the graceful stop wrote the last use");
    db.close().await;
    Ok(())
}
