//! Per-client abuse limits: sign-up, login and key-minting budgets, and the
//! lockout after repeated failed logins, with the rate-limit headers.

use std::net::{Ipv6Addr, SocketAddr};

use serde_json::{Value, json};
use switchyard_server::limits::Limit;

use crate::support::{RunningServer, TestEngine, TestResult, http, on_both_engines, start};

on_both_engines!(
    register_budget_is_enforced_with_headers,
    five_failed_logins_lock_the_account_for_this_client,
    forwarded_addresses_count_only_behind_trusted_proxies,
    every_authenticated_response_carries_the_credential_limit,
    made_up_credentials_count_against_their_address,
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

/// Registers a fresh address at `base_url` as if forwarded for `client`;
/// returns the status.
async fn register_as(base_url: &str, client: &str) -> Result<u16, reqwest::Error> {
    let email = format!("{}@example.com", ulid::Ulid::new().to_string().to_lowercase());
    let response = http()
        .post(format!("{base_url}/v1/auth/register"))
        .header("x-forwarded-for", client)
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await?;
    Ok(response.status().as_u16())
}

async fn forwarded_addresses_count_only_behind_trusted_proxies(engine: TestEngine) -> TestResult {
    // Behind a trusted proxy (the test client is 127.0.0.1), each forwarded
    // client has its own budget: on an IPv4 listener, and on a dual-stack
    // one, where the same peer shows as ::ffff:127.0.0.1.
    let ipv4: SocketAddr = ([127, 0, 0, 1], 0).into();
    let dual_stack: SocketAddr = (Ipv6Addr::UNSPECIFIED, 0).into();
    for listen in [ipv4, dual_stack] {
        let server = start(engine, |config| {
            config.listen = listen;
            config.abuse.register = Limit::per_minute(1);
            config.trusted_proxies = vec!["127.0.0.0/8".to_owned()];
        })
        .await?;
        let base_url = format!("http://127.0.0.1:{}", server.addr.port());
        assert_eq!(register_as(&base_url, "198.51.100.1").await?, 201, "on {listen}");
        assert_eq!(register_as(&base_url, "198.51.100.1").await?, 429, "on {listen}");
        assert_eq!(register_as(&base_url, "198.51.100.2").await?, 201, "on {listen}");
        drop(server.stop().await?);
    }

    // Without trusted proxies the header is ignored: the socket peer counts.
    let server = start(engine, |config| config.abuse.register = Limit::per_minute(1)).await?;
    assert_eq!(register_as(&server.base_url, "198.51.100.1").await?, 201);
    assert_eq!(register_as(&server.base_url, "198.51.100.2").await?, 429);
    server.stop().await?;
    Ok(())
}

async fn every_authenticated_response_carries_the_credential_limit(engine: TestEngine) -> TestResult {
    let server = start(engine, |config| config.abuse.credential = Limit::per_minute(3)).await?;
    let api = crate::support::Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let grace = api.register("grace@example.com").await?;
    let me = |token: &str| http().get(server.url("/v1/auth/me")).bearer_auth(token.to_owned()).send();
    for remaining in [2, 1, 0] {
        let response = me(&ada.access).await?;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit"), Some(3));
        assert_eq!(header(&response, "x-ratelimit-remaining"), Some(remaining));
        assert!(header(&response, "x-ratelimit-reset").is_some_and(|secs| secs <= 60));
    }
    // Errors count and carry the headers too; the fourth request is refused.
    let refused = me(&ada.access).await?;
    assert_eq!(refused.status(), 429);
    assert!(header(&refused, "retry-after").is_some_and(|secs| (1..=60).contains(&secs)));
    let body: Value = refused.json().await?;
    assert_eq!(body["error"]["code"], "rate_limit.exceeded");
    // Another credential has its own budget, and requests without one carry no headers.
    assert_eq!(me(&grace.access).await?.status(), 200);
    // The scheme is read in any case, by authentication and by the limit alike.
    for scheme in ["BEARER", "bearer", "bEaReR"] {
        let response = http()
            .get(server.url("/v1/auth/me"))
            .header("authorization", format!("{scheme} {}", grace.access))
            .send()
            .await?;
        let status = response.status().as_u16();
        let limit = header(&response, "x-ratelimit-limit");
        if status == 200 {
            assert_eq!(limit, Some(3), "{scheme}");
        } else {
            assert_eq!((status, limit), (429, Some(3)), "{scheme}: the limit counted it");
        }
    }
    let anonymous = http().get(server.url("/v1/auth/me")).send().await?;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(header(&anonymous, "x-ratelimit-limit"), None);
    Ok(())
}

async fn made_up_credentials_count_against_their_address(engine: TestEngine) -> TestResult {
    let server = start(engine, |config| config.abuse.credential = Limit::per_minute(5)).await?;
    let api = crate::support::Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let me = |token: String| http().get(server.url("/v1/auth/me")).bearer_auth(token).send();
    // Ada's first request counts against the address; from then on her own.
    assert_eq!(me(ada.access.clone()).await?.status(), 200);
    // Every made-up token shares the address's budget (4 left), so a flood of
    // them is refused instead of each getting a fresh counter.
    let mut statuses = Vec::new();
    for n in 0..6 {
        statuses.push(me(format!("sy_live_key_madeup{n}_secret")).await?.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
    // Ada's own budget is untouched by them.
    let response = me(ada.access.clone()).await?;
    assert_eq!((response.status().as_u16(), header(&response, "x-ratelimit-remaining")), (200, Some(3)));
    server.stop().await?;
    Ok(())
}
