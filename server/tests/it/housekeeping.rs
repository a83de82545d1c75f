//! Housekeeping: a sweep now leaves everything that still works working
//! (spent refresh tokens included, so reuse is still caught), and a sweep
//! after everything expired leaves only what is kept for good.

use serde_json::json;
use switchyard_server::db::{Db, Retention};

use crate::support::{
    Api, BoxError, Credential, RunningServer, TestEngine, TestResult, assert_error, expect_status,
    on_both_engines, start, string_at,
};

on_both_engines!(
    a_sweep_now_keeps_what_still_works,
    a_sweep_after_expiry_deletes_only_what_can_no_longer_matter,
);

async fn sweep(server: &RunningServer, at: i64) -> Result<switchyard_server::db::Swept, BoxError> {
    let db = Db::connect(&server.database.url).await?;
    let swept = db.sweep(at, Retention::default()).await;
    db.close().await;
    Ok(swept?)
}

/// The rows of one table, by a `SELECT COUNT(*)` statement.
async fn count(server: &RunningServer, statement: &'static str) -> Result<i64, BoxError> {
    let db = Db::connect(&server.database.url).await?;
    let counted = sqlx::query_scalar::<_, i64>(statement).fetch_one(db.pool()).await;
    db.close().await;
    Ok(counted?)
}

async fn a_sweep_now_keeps_what_still_works(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let rotated = api.post("/v1/auth/refresh", Credential::Anonymous, json!({"refresh_token": ada.refresh}));
    let rotated = expect_status(rotated.await?, 200)?;
    let reset = api.post("/v1/auth/password-reset", Credential::Anonymous, json!({"email": ada.email}));
    expect_status(reset.await?, 202)?;

    let swept = sweep(&server, chrono::Utc::now().timestamp()).await?;
    assert_eq!(swept.total(), 0, "{swept:?}");
    let access = string_at(&rotated, "/access_token")?;
    expect_status(api.get("/v1/auth/me", Credential::Bearer(&access)).await?, 200)?;
    // The spent token is still known, so presenting it again ends the session.
    let reused = api.post("/v1/auth/refresh", Credential::Anonymous, json!({"refresh_token": ada.refresh}));
    assert_error(&reused.await?, 401, "auth.refresh_reused");
    server.stop().await?;
    Ok(())
}

async fn a_sweep_after_expiry_deletes_only_what_can_no_longer_matter(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let org = api.create_org(&ada, "Analytical Engines").await?;
    let key = api.mint_key(&ada, &org, &["*"]).await?;
    let invite = json!({"email": "grace@example.com", "role": "member"});
    expect_status(api.post(&format!("/v1/orgs/{org}/members"), ada.bearer(), invite).await?, 201)?;
    let reset = api.post("/v1/auth/password-reset", Credential::Anonymous, json!({"email": ada.email}));
    expect_status(reset.await?, 202)?;
    let audit_before = count(&server, "SELECT COUNT(*) FROM audit_events").await?;

    // Past every lifetime (refresh tokens: 30 days; invitations: 7) and
    // every retention (a day for credentials, 30 days for history).
    let later = chrono::Utc::now().timestamp() + 70 * 24 * 3600;
    let swept = sweep(&server, later).await?;
    assert_eq!((swept.sessions, swept.refresh_tokens), (1, 1), "{swept:?}");
    assert_eq!((swept.email_verifications, swept.password_resets, swept.invitations), (1, 1, 1), "{swept:?}");
    for statement in [
        "SELECT COUNT(*) FROM auth_sessions",
        "SELECT COUNT(*) FROM refresh_tokens",
        "SELECT COUNT(*) FROM email_verifications",
        "SELECT COUNT(*) FROM password_resets",
        "SELECT COUNT(*) FROM org_invitations",
    ] {
        assert_eq!(count(&server, statement).await?, 0, "{statement}");
    }
    // Kept: the account, its org, its key (which still works), the audit
    // trail, and the dev outbox.
    assert_eq!(count(&server, "SELECT COUNT(*) FROM users").await?, 1);
    assert_eq!(count(&server, "SELECT COUNT(*) FROM audit_events").await?, audit_before);
    assert!(count(&server, "SELECT COUNT(*) FROM outbox").await? >= 3);
    expect_status(api.get("/v1/auth/me", Credential::Bearer(&key.key)).await?, 200)?;
    assert_eq!(sweep(&server, later).await?.total(), 0, "a second sweep finds nothing");
    server.stop().await?;
    Ok(())
}
