//! Operator HTTP tools in runs, against a service the test starts on
//! 127.0.0.1: the model's arguments arrive as the JSON body with the run's
//! `Idempotency-Key` and the configured headers, the answer reaches the
//! model, and a refused address or an error status is a tool error the run
//! gets past. Configured tools that cannot work stop the server at start.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use poem::web::{Data, Json, Redirect};
use poem::{EndpointExt, Request, Route, handler};
use serde_json::{Value, json};
use switchyard_server::Config;
use switchyard_server::outbound::OutboundConfig;
use switchyard_server::runs::HttpToolConfig;

use crate::support::{
    Api, BoxError, Credential, Session, TestEngine, TestResult, expect_status, on_both_engines, serve_mock,
    start, string_at,
};

on_both_engines!(
    an_http_tool_sends_the_arguments_and_its_answer_reaches_the_model,
    refused_addresses_and_error_answers_are_tool_errors_the_run_gets_past,
    a_tool_that_requires_approval_is_called_once_approved,
    a_call_cut_off_by_a_shutdown_is_made_again_only_when_safe_or_approved,
);

/// The variable the tools' `Authorization` header is read from. Tests may
/// not set variables (the server reads them while other tests run), so it
/// is one cargo sets for every test it runs.
const TOKEN_VAR: &str = "CARGO_PKG_NAME";

/// What the order service was sent.
#[derive(Debug, Clone)]
struct Received {
    idempotency_key: Option<String>,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

#[derive(Default)]
struct Service {
    received: Mutex<Vec<Received>>,
    /// Calls per `Idempotency-Key`.
    per_key: Mutex<HashMap<String, usize>>,
}

#[handler]
fn lookup(request: &Request, Json(body): Json<Value>, service: Data<&Arc<Service>>) -> Json<Value> {
    Json(looked_up(request, &body, &service))
}

/// Notes what the service was sent; the order it answers with.
fn looked_up(request: &Request, body: &Value, service: &Service) -> Value {
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let received = Received {
        idempotency_key: header("idempotency-key"),
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: body.clone(),
    };
    if let Some(key) = &received.idempotency_key {
        *service.per_key.lock().unwrap().entry(key.clone()).or_default() += 1;
    }
    service.received.lock().unwrap().push(received);
    json!({"id": body["id"], "status": "shipped"})
}

/// Like `lookup`, after a while: long enough for a test to stop the server
/// that called it.
#[handler]
async fn slow_lookup(
    request: &Request,
    Json(body): Json<Value>,
    service: Data<&Arc<Service>>,
) -> Json<Value> {
    let answer = looked_up(request, &body, &service);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    Json(answer)
}

#[handler]
fn to_metadata() -> Redirect {
    Redirect::temporary("http://169.254.169.254/latest/meta-data/")
}

#[handler]
fn unavailable() -> poem::Response {
    poem::Response::builder().status(poem::http::StatusCode::SERVICE_UNAVAILABLE).body("orders are down")
}

async fn order_service() -> Result<(String, Arc<Service>), BoxError> {
    let service = Arc::new(Service::default());
    let app = Route::new()
        .at("/lookup", poem::post(lookup))
        .at("/slow", poem::post(slow_lookup))
        .at("/to-metadata", poem::post(to_metadata))
        .at("/unavailable", poem::post(unavailable))
        .data(service.clone());
    Ok((serve_mock(app).await?, service))
}

fn tool(url: String) -> HttpToolConfig {
    HttpToolConfig {
        parameters: json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}),
        idempotent: true,
        timeout_ms: Some(5000),
        headers_env: BTreeMap::from([("Authorization".to_owned(), TOKEN_VAR.to_owned())]),
        ..HttpToolConfig::new(url, "Looks up an order")
    }
}

/// Loopback opened and plain http allowed, as the service the test starts needs.
fn loopback_open(config: &mut Config) {
    config.outbound = OutboundConfig {
        allow_http: true,
        allow: vec!["127.0.0.1/32".to_owned()],
        ..OutboundConfig::default()
    };
}

async fn owner_key(api: &Api) -> Result<String, BoxError> {
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Orders").await?;
    Ok(api.mint_key(&owner, &org, &["runs"]).await?.key)
}

async fn run(api: &Api, key: &str, tool: &str, text: &str) -> Result<Value, BoxError> {
    let body = json!({"messages": [{"role": "user", "content": text}], "tools": [tool]});
    expect_status(api.post("/v1/runs", Credential::Bearer(key), body).await?, 201)
}

async fn an_http_tool_sends_the_arguments_and_its_answer_reaches_the_model(engine: TestEngine) -> TestResult {
    let (base, service) = order_service().await?;
    let server = start(engine, |config| {
        loopback_open(config);
        config.tools = BTreeMap::from([("lookup_order".to_owned(), tool(format!("{base}/lookup")))]);
    })
    .await?;
    let api = Api::new(&server);
    let key = owner_key(&api).await?;
    let run = run(&api, &key, "lookup_order", "lookup_order {\"id\": \"ord_42\"}").await?;
    assert_eq!(run["status"], "completed", "{run:#}");
    let answer = json!({"id": "ord_42", "status": "shipped"}).to_string();
    assert_eq!(run["steps"][1]["name"], "lookup_order");
    assert_eq!(run["steps"][1]["executor"], "server");
    assert_eq!(run["steps"][1]["output"], answer.as_str());
    assert_eq!(run["output"]["content"], format!("Tool results: lookup_order: {answer}"));

    let run_id = string_at(&run, "/id")?;
    let call_id = string_at(&run, "/steps/1/tool_call_id")?;
    let received = service.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:?}");
    let request = &received[0];
    assert_eq!(request.idempotency_key.as_deref(), Some(format!("{run_id}:{call_id}").as_str()));
    assert_eq!(request.authorization.as_deref(), Some(env!("CARGO_PKG_NAME")));
    assert_eq!(request.content_type.as_deref(), Some("application/json"));
    assert_eq!(request.body, json!({"id": "ord_42"}));
    assert_eq!(service.per_key.lock().unwrap().values().copied().collect::<Vec<_>>(), [1]);

    // Arguments that break the schema never leave the server.
    let run = self::run(&api, &key, "lookup_order", "lookup_order {\"order\": 42}").await?;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["steps"][1]["is_error"], true);
    assert_eq!(service.received.lock().unwrap().len(), 1);
    Ok(())
}

async fn refused_addresses_and_error_answers_are_tool_errors_the_run_gets_past(
    engine: TestEngine,
) -> TestResult {
    let (base, service) = order_service().await?;
    let port = base.rsplit(':').next().ok_or("no port")?.to_owned();
    let server = start(engine, |config| {
        loopback_open(config);
        config.tools = BTreeMap::from([
            // The service sends the call on to the cloud metadata address.
            ("bounce".to_owned(), tool(format!("{base}/to-metadata"))),
            // `localhost` is 127.0.0.1, which is open, and ::1, which is not.
            ("via_localhost".to_owned(), tool(format!("http://localhost:{port}/lookup"))),
            ("down".to_owned(), tool(format!("{base}/unavailable"))),
        ]);
    })
    .await?;
    let api = Api::new(&server);
    let key = owner_key(&api).await?;
    for (name, expected) in [
        ("bounce", "169.254.169.254 may not be reached: link-local"),
        ("via_localhost", "::1 may not be reached: loopback"),
        ("down", "answered 503 Service Unavailable: orders are down"),
    ] {
        let run = run(&api, &key, name, &format!("{name} {{\"id\": \"ord_1\"}}")).await?;
        assert_eq!(run["status"], "completed", "{name}: {run:#}");
        let step = &run["steps"][1];
        assert_eq!(step["is_error"], true, "{name}: {step}");
        let output: Value = serde_json::from_str(step["output"].as_str().ok_or("no output")?)?;
        let error = output["error"].as_str().ok_or("no error")?;
        assert!(error.contains(expected), "{name}: {error}");
        assert!(!error.contains(env!("CARGO_PKG_NAME")), "{name}: the header's value is not shown: {error}");
        assert!(run["output"]["content"].as_str().is_some_and(|text| text.starts_with("Tool results:")));
    }
    assert!(service.received.lock().unwrap().is_empty(), "only the refused and failing tools were called");
    Ok(())
}

async fn a_tool_that_requires_approval_is_called_once_approved(engine: TestEngine) -> TestResult {
    let (base, service) = order_service().await?;
    let server = start(engine, |config| {
        loopback_open(config);
        let guarded = HttpToolConfig { requires_approval: true, ..tool(format!("{base}/lookup")) };
        config.tools = BTreeMap::from([("lookup_order".to_owned(), guarded)]);
    })
    .await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Orders").await?;
    let key = api.mint_key(&owner, &org, &["runs"]).await?.key;
    let paused = run(&api, &key, "lookup_order", "lookup_order {\"id\": \"ord_7\"}").await?;
    assert_eq!(paused["status"], "paused", "{paused:#}");
    assert_eq!(paused["pending_approval"]["reason"], "tool_approval_required");
    assert!(service.received.lock().unwrap().is_empty(), "not called before the decision");
    let id = string_at(&paused, "/id")?;
    let decided =
        api.post(&format!("/v1/runs/{id}/resume"), owner.bearer(), json!({"decision": "approved"})).await?;
    let decided = expect_status(decided, 200)?;
    assert_eq!(decided["status"], "completed", "{decided:#}");
    assert_eq!(service.received.lock().unwrap().len(), 1);
    Ok(())
}

/// Starts a background run calling `tool`, waits until the service got the
/// call, and stops the server in the middle of it; then starts the next
/// server on the same database and waits until the run stops again.
async fn cut_off_then_resumed(
    engine: TestEngine,
    idempotent: bool,
    service: &Service,
    base: &str,
) -> Result<(crate::support::RunningServer, Session, Value), BoxError> {
    let configure = |base: String| {
        move |config: &mut Config| {
            loopback_open(config);
            let slow = HttpToolConfig { idempotent, ..tool(format!("{base}/slow")) };
            config.tools = BTreeMap::from([("ship".to_owned(), slow)]);
        }
    };
    let server = start(engine, configure(base.to_owned())).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Orders").await?;
    let key = api.mint_key(&owner, &org, &["runs"]).await?.key;
    let body = json!({"messages": [{"role": "user", "content": "ship {\"id\": \"ord_9\"}"}], "tools": ["ship"],
        "background": true});
    let id =
        string_at(&expect_status(api.post("/v1/runs", Credential::Bearer(&key), body).await?, 202)?, "/id")?;
    for _ in 0..500 {
        if !service.received.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(service.received.lock().unwrap().len(), 1, "the service got the call");
    let database = server.stop().await?;
    let next = crate::support::RunningServer::start(database, configure(base.to_owned())).await?;
    let api = Api::new(&next);
    let mut run = Value::Null;
    for _ in 0..400 {
        run = expect_status(api.get(&format!("/v1/runs/{id}"), owner.bearer()).await?, 200)?;
        if run["status"] != "running" && run["status"] != "pending" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    Ok((next, owner, run))
}

async fn a_call_cut_off_by_a_shutdown_is_made_again_only_when_safe_or_approved(
    engine: TestEngine,
) -> TestResult {
    // An idempotent tool is simply called again, with the same key.
    let (base, service) = order_service().await?;
    let (_server, _, run) = cut_off_then_resumed(engine, true, &service, &base).await?;
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(
        service.per_key.lock().unwrap().values().copied().collect::<Vec<_>>(),
        [2],
        "one key, sent twice"
    );

    // One that is not: the next server asks an approver first.
    let (base, service) = order_service().await?;
    let (server, owner, paused) = cut_off_then_resumed(engine, false, &service, &base).await?;
    assert_eq!(paused["status"], "paused", "{paused:#}");
    assert_eq!(paused["pending_approval"]["reason"], "tool_outcome_unknown");
    assert_eq!(paused["pending_approval"]["tool_call"]["name"], "ship");
    assert_eq!(service.received.lock().unwrap().len(), 1, "not made again on its own");
    let api = Api::new(&server);
    let id = string_at(&paused, "/id")?;
    let rejected = json!({"decision": "rejected", "reason": "it went through"});
    let decided =
        expect_status(api.post(&format!("/v1/runs/{id}/resume"), owner.bearer(), rejected).await?, 200)?;
    assert_eq!(decided["status"], "completed", "{decided:#}");
    let tool = decided["steps"]
        .as_array()
        .ok_or("no steps")?
        .iter()
        .find(|s| s["type"] == "tool")
        .ok_or("no tool")?;
    assert_eq!(tool["is_error"], true);
    let output = tool["output"].as_str().ok_or("no output")?;
    assert!(
        output.contains("whether it took effect is unknown") && output.contains("it went through"),
        "{output}"
    );
    assert_eq!(service.received.lock().unwrap().len(), 1, "rejected: never made again");

    // Approved, it is made again once, with the same key.
    let (base, service) = order_service().await?;
    let (server, owner, paused) = cut_off_then_resumed(engine, false, &service, &base).await?;
    assert_eq!(paused["status"], "paused");
    let api = Api::new(&server);
    let id = string_at(&paused, "/id")?;
    let approved = json!({"decision": "approved"});
    let decided =
        expect_status(api.post(&format!("/v1/runs/{id}/resume"), owner.bearer(), approved).await?, 200)?;
    assert_eq!(decided["status"], "completed", "{decided:#}");
    assert_eq!(service.per_key.lock().unwrap().values().copied().collect::<Vec<_>>(), [2]);
    let mail = crate::support::all_mail(&server.database.url).await?;
    assert!(
        mail.iter()
            .any(|m| m.kind == "run_approval" && m.body.contains("whether to call the tool ship again"))
    );
    Ok(())
}

#[tokio::test]
async fn tools_that_cannot_work_stop_the_server_at_start_naming_the_key() -> TestResult {
    let (base, _) = order_service().await?;
    let clash = tool(format!("{base}/lookup"));
    let unset = HttpToolConfig {
        headers_env: BTreeMap::from([("X-Token".to_owned(), "SWITCHYARD_IT_SURELY_UNSET".to_owned())]),
        ..tool(format!("{base}/lookup"))
    };
    let refused = tool("https://10.1.2.3/lookup".to_owned());
    let bad_schema = HttpToolConfig { parameters: json!({"type": 7}), ..tool(format!("{base}/lookup")) };
    for (name, config, key) in [
        ("calculate", clash, "tools.calculate"),
        ("lookup_order", unset, "tools.lookup_order.headers_env.X-Token"),
        ("internal", refused, "tools.internal.url"),
        ("schema", bad_schema, "tools.schema.parameters"),
    ] {
        let started = start(TestEngine::Sqlite, |server_config| {
            loopback_open(server_config);
            server_config.tools = BTreeMap::from([(name.to_owned(), config)]);
        })
        .await;
        let err = started.err().map(|err| err.to_string()).unwrap_or_default();
        assert!(err.contains(key), "{key}: {err}");
    }
    // Plain http needs `allow_http`.
    let started = start(TestEngine::Sqlite, |config| {
        config.tools = BTreeMap::from([("lookup_order".to_owned(), tool(format!("{base}/lookup")))]);
    })
    .await;
    let err = started.err().map(|err| err.to_string()).unwrap_or_default();
    assert!(err.contains("tools.lookup_order.url") && err.contains("\"http\""), "{err}");
    Ok(())
}
