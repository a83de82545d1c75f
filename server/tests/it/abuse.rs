//! Per-client abuse limits: sign-up, login and key-minting budgets, and the
//! lockout after repeated failed logins, with the rate-limit headers.

use serde_json::{Value, json};
use switchyard_server::limits::Limit;

use crate::support::{RunningServer, TestEngine, TestResult, http, on_both_engines, start};

on_both_engines!(
    register_budget_is_enforced_with_headers,
    five_failed_logins_lock_the_account_for_this_client,
);

const PASSWORD: &str = "correct horse battery staple";

async fn post(server: &RunningServer, path: &str, body: Value) -> reqwest::Result<reqwest::Response> {
    http().post(server.url(path)).json(&body).send().await
}

fn header(resp: &reqwest::Response, name: &str) -> Option<u64> {
    resp.headers().get(name)?.to_str().ok()?.parse().ok()
}

async fn register_budget_is_enforced_with_headers(engine: TestEngine) -> TestResult {
    let server = start(engine, |config| config.abuse.register = Limit::per_minute(2)).await?;
    for n in 0..2 {
        let resp = post(
            &server,
            "/v1/auth/register",
            json!({"email": format!("u{n}@example.com"), "password": PASSWORD}),
        )
        .await?;
        assert_eq!(resp.status(), 201);
    }
    let refused =
        post(&server, "/v1/auth/register", json!({"email": "u3@example.com", "password": PASSWORD})).await?;
    assert_eq!(refused.status(), 429);
    assert_eq!(header(&refused, "x-ratelimit-limit"), Some(2));
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some(0));
    let retry_after = header(&refused, "retry-after").ok_or("no Retry-After")?;
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(header(&refused, "x-ratelimit-reset").is_some());
    let body: Value = refused.json().await?;
    assert_eq!(body["error"]["code"], "rate_limit.exceeded");
    assert_eq!(body["error"]["type"], "rate_limit_error");

    // Other endpoints have their own budgets.
    let login =
        post(&server, "/v1/auth/login", json!({"email": "u0@example.com", "password": PASSWORD})).await?;
    assert_eq!(login.status(), 200);
    server.stop().await?;
    Ok(())
}

async fn five_failed_logins_lock_the_account_for_this_client(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    for email in ["ada@example.com", "grace@example.com"] {
        let resp = post(&server, "/v1/auth/register", json!({"email": email, "password": PASSWORD})).await?;
        assert_eq!(resp.status(), 201);
    }
    for _ in 0..5 {
        let wrong =
            post(&server, "/v1/auth/login", json!({"email": "ada@example.com", "password": "nope nope"}))
                .await?;
        assert_eq!(wrong.status(), 401);
    }
    // Locked now, even with the right password and another spelling of the address.
    let locked =
        post(&server, "/v1/auth/login", json!({"email": "ada@EXAMPLE.com", "password": PASSWORD})).await?;
    assert_eq!(locked.status(), 429);
    assert!(header(&locked, "retry-after").is_some_and(|secs| secs > 0 && secs <= 900));
    let body: Value = locked.json().await?;
    assert_eq!(body["error"]["code"], "auth.too_many_failed_logins");

    // Another account from the same client is unaffected.
    let other =
        post(&server, "/v1/auth/login", json!({"email": "grace@example.com", "password": PASSWORD})).await?;
    assert_eq!(other.status(), 200);
    server.stop().await?;
    Ok(())
}
