//! The model gateway against real upstreams started by the test: fallback to
//! the next target, budgets that hold under concurrent requests, usage rows
//! written by the time the server stops, and upstream streams cancelled when
//! the client goes away.

mod fields;
mod metrics;
mod usage_report;
mod usage_rows;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::StreamExt;
use poem::web::Data;
use poem::{Body, EndpointExt, Response, Route, handler};
use serde_json::{Value, json};
use switchyard_server::Config;
use switchyard_server::db::Db;
use switchyard_server::gateway::config::{
    PriceConfig, ProviderConfig, ProviderKind, RouteConfig, TargetConfig,
};

use crate::support::{
    Api, BoxError, Credential, MintedKey, TestEngine, TestResult, expect_status, on_both_engines, serve_mock,
    start,
};

on_both_engines!(
    a_failing_target_falls_back_to_the_next,
    fifty_concurrent_requests_never_overspend_a_budget,
    usage_is_written_by_the_time_the_server_stops,
    a_client_that_goes_away_cancels_the_upstream_stream,
);

/// What the mock upstream saw.
#[derive(Default)]
struct Seen {
    failing_calls: AtomicUsize,
    working_calls: AtomicUsize,
    /// Set when a never-ending stream's body was dropped: its client left.
    stream_dropped: AtomicBool,
}

#[handler]
fn failing(seen: Data<&Arc<Seen>>) -> Response {
    seen.failing_calls.fetch_add(1, Ordering::SeqCst);
    Response::builder().status(poem::http::StatusCode::SERVICE_UNAVAILABLE).body("overloaded")
}

#[handler]
fn working(seen: Data<&Arc<Seen>>) -> Response {
    seen.working_calls.fetch_add(1, Ordering::SeqCst);
    let completion = json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": "mock-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "from the mock"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    });
    Response::builder().content_type("application/json").body(completion.to_string())
}

/// Marks `seen.stream_dropped` when dropped.
struct DropFlag(Arc<Seen>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.stream_dropped.store(true, Ordering::SeqCst);
    }
}

/// One chunk, then only SSE comments (which a server must write to notice
/// its reader left) until the reader goes away.
#[handler]
fn endless(seen: Data<&Arc<Seen>>) -> Response {
    let flag = DropFlag(seen.clone());
    let first = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},\"finish_reason\":null}]}\n\n";
    let body =
        futures::stream::once(
            async move { Ok::<_, std::io::Error>(bytes::Bytes::from_static(first.as_bytes())) },
        )
        .chain(futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Some((Ok(bytes::Bytes::from_static(b": waiting\n\n")), ()))
        }))
        .map(move |item| {
            let _keep = &flag;
            item
        });
    Response::builder().content_type("text/event-stream").body(Body::from_bytes_stream(body))
}

/// Starts the mock upstream; returns its base address and what it sees.
async fn mock_upstream() -> Result<(String, Arc<Seen>), BoxError> {
    let seen = Arc::new(Seen::default());
    let app = Route::new()
        .at("/failing/v1/chat/completions", poem::post(failing))
        .at("/working/v1/chat/completions", poem::post(working))
        .at("/endless/v1/chat/completions", poem::post(endless))
        .data(seen.clone());
    Ok((serve_mock(app).await?, seen))
}

fn openai(base: &str, path: &str) -> ProviderConfig {
    ProviderConfig {
        kind: ProviderKind::Openai,
        base_url: Some(format!("{base}/{path}/v1")),
        api_key_env: None,
        pass_through: Vec::new(),
        delay_ms: None,
    }
}

fn route(name: &str, targets: &[(&str, &str)]) -> RouteConfig {
    RouteConfig {
        name: name.to_owned(),
        targets: targets
            .iter()
            .map(|(provider, model)| TargetConfig {
                provider: (*provider).to_owned(),
                model: (*model).to_owned(),
            })
            .collect(),
        tokenizer: None,
    }
}

/// Routes over the mock: `fallback` (failing, then working), `endless`, and
/// `dev` on the built-in provider; one USD per million tokens everywhere.
fn configure(config: &mut Config, base: &str) {
    config.providers = BTreeMap::from([
        ("failing".to_owned(), openai(base, "failing")),
        ("working".to_owned(), openai(base, "working")),
        ("endless".to_owned(), openai(base, "endless")),
        (
            "dev".to_owned(),
            ProviderConfig {
                kind: ProviderKind::Dev,
                base_url: None,
                api_key_env: None,
                pass_through: Vec::new(),
                delay_ms: None,
            },
        ),
    ]);
    config.routes = vec![
        route("fallback", &[("failing", "mock-model"), ("working", "mock-model")]),
        route("endless", &[("endless", "mock-model")]),
        route("dev", &[("dev", "dev")]),
    ];
    let price = PriceConfig { input_per_mtok: "1.00".to_owned(), output_per_mtok: "1.00".to_owned() };
    config.prices = BTreeMap::from([("mock-model".to_owned(), price.clone()), ("dev".to_owned(), price)]);
    config.gateway.retry_backoff_ms = 1;
    config.gateway.stream_keepalive_ms = 100;
}

/// A chat key in a fresh org of a new owner (`owner@example.com`), with
/// `extra` fields on the key request.
pub(crate) async fn chat_key(api: &Api, extra: Value) -> Result<MintedKey, BoxError> {
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Gateway").await?;
    let mut body = json!({"name": "gateway", "scopes": ["chat"], "org_id": org});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    let minted = expect_status(api.post("/v1/api-keys", owner.bearer(), body).await?, 201)?;
    Ok(MintedKey {
        id: minted["id"].as_str().ok_or("no id")?.to_owned(),
        key: minted["key"].as_str().ok_or("no key")?.to_owned(),
    })
}

fn hello(model: &str) -> Value {
    json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "Hello"}]})
}

async fn a_failing_target_falls_back_to_the_next(engine: TestEngine) -> TestResult {
    let (base, seen) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    let key = chat_key(&api, json!({})).await?;
    let answer = expect_status(
        api.post("/v1/chat/completions", Credential::Bearer(&key.key), hello("fallback")).await?,
        200,
    )?;
    assert_eq!(answer["choices"][0]["message"]["content"], "from the mock");
    assert_eq!(seen.failing_calls.load(Ordering::SeqCst), 1);
    assert_eq!(seen.working_calls.load(Ordering::SeqCst), 1);
    Ok(())
}

async fn fifty_concurrent_requests_never_overspend_a_budget(engine: TestEngine) -> TestResult {
    let (base, _) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    // Each request reserves 8 micro-USD (3 prompt + 5 completion tokens) and
    // costs 7 (the dev answer "You said: Hello" is 4 tokens).
    let budget_micros = 100;
    let key = chat_key(&api, json!({"budget_usd": "0.000100"})).await?;
    let calls = (0..50).map(|_| api.post("/v1/chat/completions", Credential::Bearer(&key.key), hello("dev")));
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.map(|(s, _)| s))
        .collect::<Result<_, _>>()?;
    let answered = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!(answered + refused, 50, "{statuses:?}");
    assert!((12..=14).contains(&answered), "{answered} answered: {statuses:?}");
    let database = server.stop().await?;
    let db = Db::connect(&database.url).await?;
    let spent = db.usage_spent_by_key(&key.id).await?;
    db.close().await;
    assert!(spent <= budget_micros, "spent {spent} of {budget_micros}");
    assert_eq!(spent, 7 * answered as i64);
    Ok(())
}

async fn usage_is_written_by_the_time_the_server_stops(engine: TestEngine) -> TestResult {
    let (base, _) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    let key = chat_key(&api, json!({})).await?;
    for _ in 0..3 {
        expect_status(
            api.post("/v1/chat/completions", Credential::Bearer(&key.key), hello("fallback")).await?,
            200,
        )?;
    }
    let database = server.stop().await?;
    let db = Db::connect(&database.url).await?;
    let spent = db.usage_spent_by_key(&key.id).await?;
    db.close().await;
    // 10 prompt and 5 completion tokens a request, at one USD per million tokens.
    assert_eq!(spent, 3 * 15);
    Ok(())
}

async fn a_client_that_goes_away_cancels_the_upstream_stream(engine: TestEngine) -> TestResult {
    let (base, seen) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    let key = chat_key(&api, json!({})).await?;
    let response = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&key.key)
        .json(
            &json!({"model": "endless", "stream": true, "messages": [{"role": "user", "content": "Hello"}]}),
        )
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let first = body.next().await.ok_or("no first chunk")??;
    assert!(String::from_utf8_lossy(&first).contains("\"hi\""));
    assert!(!seen.stream_dropped.load(Ordering::SeqCst));
    drop(body);
    for _ in 0..100 {
        if seen.stream_dropped.load(Ordering::SeqCst) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the upstream stream was still open 5 s after the client went away".into())
}

mod key_cache {
    //! Keys are validated from memory once read, and forgotten at once when
    //! they stop being valid on this server.

    use serde_json::json;
    use switchyard_server::db::Db;

    use crate::support::{
        Api, Credential, TestEngine, TestResult, assert_error, expect_status, on_both_engines, start,
    };

    on_both_engines!(a_warm_key_is_checked_without_the_database, deleting_its_org_or_project_stops_a_key,);

    async fn a_warm_key_is_checked_without_the_database(engine: TestEngine) -> TestResult {
        let server = start(engine, |_| {}).await?;
        let api = Api::new(&server);
        let owner = api.register("owner@example.com").await?;
        let org = api.create_org(&owner, "Cache").await?;
        let key = api.mint_key(&owner, &org, &["chat"]).await?;
        expect_status(api.get("/v1/models", Credential::Bearer(&key.key)).await?, 200)?;
        // Remove the row behind the server's back: a key read from memory
        // still answers, which shows the hot path does not read it again.
        let db = Db::connect(&server.database.url).await?;
        let deleted =
            sqlx::query("DELETE FROM api_keys WHERE id = $1").bind(&key.id).execute(db.pool()).await;
        db.close().await;
        assert_eq!(deleted?.rows_affected(), 1);
        expect_status(api.get("/v1/models", Credential::Bearer(&key.key)).await?, 200)?;
        Ok(())
    }

    async fn deleting_its_org_or_project_stops_a_key(engine: TestEngine) -> TestResult {
        let server = start(engine, |_| {}).await?;
        let api = Api::new(&server);
        let owner = api.register("owner@example.com").await?;
        let org = api.create_org(&owner, "Cache").await?;
        let project = expect_status(
            api.post("/v1/projects", owner.bearer(), json!({"org_id": org, "name": "P"})).await?,
            201,
        )?;
        let project_id = project["id"].as_str().ok_or("no project id")?;
        let body = json!({"name": "narrow", "scopes": ["chat"], "org_id": org, "project_id": project_id});
        let narrow = expect_status(api.post("/v1/api-keys", owner.bearer(), body).await?, 201)?;
        let narrow = narrow["key"].as_str().ok_or("no key")?.to_owned();
        let wide = api.mint_key(&owner, &org, &["chat"]).await?;
        for key in [narrow.as_str(), wide.key.as_str()] {
            expect_status(api.get("/v1/models", Credential::Bearer(key)).await?, 200)?;
        }
        assert_eq!(api.delete(&format!("/v1/projects/{project_id}"), owner.bearer()).await?.0, 204);
        assert_error(&api.get("/v1/models", Credential::Bearer(&narrow)).await?, 401, "auth.invalid_api_key");
        expect_status(api.get("/v1/models", Credential::Bearer(&wide.key)).await?, 200)?;
        assert_eq!(api.delete(&format!("/v1/orgs/{org}"), owner.bearer()).await?.0, 204);
        assert_error(
            &api.get("/v1/models", Credential::Bearer(&wide.key)).await?,
            401,
            "auth.invalid_api_key",
        );
        Ok(())
    }
}

mod daily_caps {
    //! An org's daily spend caps, for the whole org and for each member.

    use reqwest::Method;
    use serde_json::{Value, json};

    use super::{configure, hello, mock_upstream};
    use crate::support::{
        Api, Credential, TestEngine, TestResult, add_member, assert_error, expect_status, on_both_engines,
        start,
    };

    on_both_engines!(org_and_member_daily_caps_stop_spending_until_lifted,);

    async fn chat(api: &Api, key: &str) -> Result<(u16, Value), crate::support::BoxError> {
        api.post("/v1/chat/completions", Credential::Bearer(key), hello("dev")).await
    }

    async fn org_and_member_daily_caps_stop_spending_until_lifted(engine: TestEngine) -> TestResult {
        let (base, _) = mock_upstream().await?;
        let server = start(engine, |config| configure(config, &base)).await?;
        let api = Api::new(&server);
        let owner = api.register("owner@example.com").await?;
        let org = api.create_org(&owner, "Capped").await?;
        let member = api.register("member@example.com").await?;
        add_member(&server, &org, &member.user_id, "member").await?;
        let owners_key = api.mint_key(&owner, &org, &["chat"]).await?;
        let members_key = api.mint_key(&member, &org, &["chat"]).await?;
        let org_path = format!("/v1/orgs/{org}");

        // Each request reserves 8 micro-USD and costs 7: a 20 micro-USD cap
        // lets two through and refuses the third.
        let caps = json!({"member_daily_cost_cap_usd": "0.000020"});
        let updated =
            expect_status(api.call(Method::PATCH, &org_path, owner.bearer(), Some(&caps)).await?, 200)?;
        assert_eq!(updated["member_daily_cost_cap_usd"], "0.00002");
        for _ in 0..2 {
            expect_status(chat(&api, &owners_key.key).await?, 200)?;
        }
        let refused = chat(&api, &owners_key.key).await?;
        assert_error(&refused, 402, "billing.budget_exceeded");
        assert!(refused.1["error"]["message"].as_str().is_some_and(|m| m.contains("Your daily spend cap")));
        // Another member has a cap of their own.
        expect_status(chat(&api, &members_key.key).await?, 200)?;

        // The org cap counts everyone: 3 requests (21) are spent, 24 allowed.
        let caps = json!({"member_daily_cost_cap_usd": null, "daily_cost_cap_usd": "0.000024"});
        let updated =
            expect_status(api.call(Method::PATCH, &org_path, owner.bearer(), Some(&caps)).await?, 200)?;
        assert_eq!(updated["member_daily_cost_cap_usd"], Value::Null);
        let refused = chat(&api, &members_key.key).await?;
        assert_error(&refused, 402, "billing.budget_exceeded");
        assert!(refused.1["error"]["message"].as_str().is_some_and(|m| m.contains("organization's daily")));

        // Lifting the cap takes effect on the next request.
        expect_status(
            api.call(Method::PATCH, &org_path, owner.bearer(), Some(&json!({"daily_cost_cap_usd": null})))
                .await?,
            200,
        )?;
        expect_status(chat(&api, &members_key.key).await?, 200)?;

        // Members cannot change the caps; bad amounts are named.
        let denied = api
            .call(Method::PATCH, &org_path, member.bearer(), Some(&json!({"daily_cost_cap_usd": "1.00"})))
            .await?;
        assert_error(&denied, 403, "auth.role_denied");
        let bad = api
            .call(Method::PATCH, &org_path, owner.bearer(), Some(&json!({"daily_cost_cap_usd": "-1"})))
            .await?;
        assert_error(&bad, 422, "request.invalid");
        let empty = api.call(Method::PATCH, &org_path, owner.bearer(), Some(&json!({}))).await?;
        assert_error(&empty, 422, "request.invalid");
        Ok(())
    }
}

mod replicas {
    //! Two servers on one PostgreSQL database, as replicas behind a balancer:
    //! a key revoked, a member removed or an org deleted through one is
    //! refused by the other on its very next request, though it had the key
    //! in memory. (Replicas share a PostgreSQL database; SQLite serves one
    //! process.)

    use switchyard_server::testing::harness::RunningServer;

    use crate::support::{
        Api, Credential, TestEngine, TestResult, add_member, assert_error, engine_available, expect_status,
        start,
    };

    #[tokio::test]
    async fn changes_through_one_replica_stop_keys_on_the_other_at_once() -> TestResult {
        if !engine_available(TestEngine::Postgres) {
            return Ok(());
        }
        let one = start(TestEngine::Postgres, |_| {}).await?;
        let other = RunningServer::start(one.database.shared(), |_| {}).await?;
        let (api, elsewhere) = (Api::new(&one), Api::new(&other));
        let owner = api.register("owner@example.com").await?;
        let org = api.create_org(&owner, "Replicated").await?;
        let member = api.register("member@example.com").await?;
        add_member(&one, &org, &member.user_id, "member").await?;
        let revoked = api.mint_key(&owner, &org, &["chat"]).await?;
        let members = api.mint_key(&member, &org, &["chat"]).await?;
        let owners = api.mint_key(&owner, &org, &["chat"]).await?;
        // The other replica reads each key once and keeps it in memory.
        for key in [&revoked, &members, &owners] {
            expect_status(elsewhere.get("/v1/models", Credential::Bearer(&key.key)).await?, 200)?;
        }

        assert_eq!(api.delete(&format!("/v1/api-keys/{}", revoked.id), owner.bearer()).await?.0, 204);
        let refused = elsewhere.get("/v1/models", Credential::Bearer(&revoked.key)).await?;
        assert_error(&refused, 401, "auth.invalid_api_key");

        let path = format!("/v1/orgs/{org}/members/{}", member.user_id);
        assert_eq!(api.delete(&path, owner.bearer()).await?.0, 204);
        let refused = elsewhere.get("/v1/models", Credential::Bearer(&members.key)).await?;
        assert_error(&refused, 401, "auth.invalid_api_key");

        expect_status(elsewhere.get("/v1/models", Credential::Bearer(&owners.key)).await?, 200)?;
        assert_eq!(api.delete(&format!("/v1/orgs/{org}"), owner.bearer()).await?.0, 204);
        let refused = elsewhere.get("/v1/models", Credential::Bearer(&owners.key)).await?;
        assert_error(&refused, 401, "auth.invalid_api_key");
        other.stop().await?;
        one.stop().await?;
        Ok(())
    }
}
