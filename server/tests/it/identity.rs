//! Accounts, sessions, organizations and API keys over HTTP, on both engines.

use serde_json::{Value, json};

use crate::support::{RunningServer, TestEngine, TestResult, http, on_both_engines, start};

on_both_engines!(register_login_and_me,);

const PASSWORD: &str = "correct horse battery staple";

async fn post(
    server: &RunningServer,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> reqwest::Result<(u16, Value)> {
    let mut req = http().post(server.url(path)).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn register_login_and_me(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let (status, body) =
        post(&server, "/v1/auth/register", None, json!({"email": " Ada@Example.COM ", "password": PASSWORD}))
            .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user"]["email"], "Ada@example.com");
    let (status, body) =
        post(&server, "/v1/auth/login", None, json!({"email": "Ada@example.com", "password": PASSWORD}))
            .await?;
    assert_eq!(status, 200, "{body}");
    server.stop().await?;
    Ok(())
}
