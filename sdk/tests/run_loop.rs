//! The run loop helper against a live server: client tools answered by
//! handlers, several tools, a handler's error, a failed run, a pause and an
//! attach after the approver, a connection cut mid-run (through a proxy the
//! test controls) that the helper survives with one run and one answer per
//! call, and a refused credential.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use switchyard_sdk::run_loop::{Reconnect, RunEnd, RunEvent, RunLoop, RunLoopError};
use switchyard_sdk::types::{ApiKeyScope, ApprovalDecision, CreateRunRequest, ErrorCode, ResumeRunRequest};
use switchyard_sdk::{Credential, connect};
use switchyard_server::testing::harness::{POSTGRES_URL_VAR, RunningServer, TestDatabase, TestEngine};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

mod support;

use support::BoxError;

type TestResult = Result<(), BoxError>;

/// Declares each `async fn(TestEngine) -> TestResult` as a test on SQLite
/// and one on PostgreSQL, which passes as skipped without
/// `SWITCHYARD_TEST_POSTGRES_URL`.
macro_rules! on_both_engines {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() -> super::TestResult {
                    super::$test(super::TestEngine::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() -> super::TestResult {
                    if std::env::var_os(super::POSTGRES_URL_VAR).is_none() {
                        eprintln!("SKIPPED {} on postgres: {} is not set", stringify!($test), super::POSTGRES_URL_VAR);
                        return Ok(());
                    }
                    super::$test(super::TestEngine::Postgres).await
                }
            )+
        }
    };
}

on_both_engines!(
    a_client_tool_is_answered_and_the_run_completes,
    each_call_goes_to_its_tools_handler,
    a_handlers_error_is_the_tools_output,
    a_failed_run_is_an_error_with_the_servers_code,
    a_paused_run_is_followed_on_after_the_approver,
    a_connection_cut_mid_run_is_replaced_and_nothing_is_done_twice,
    a_bad_credential_is_refused_clearly,
);

/// A server with an owner, an org, and an API key with the `runs` scope.
struct Fixture {
    server: RunningServer,
    key: String,
}

async fn fixture(
    engine: TestEngine,
    configure: impl FnOnce(&mut switchyard_server::Config),
) -> Result<Fixture, BoxError> {
    let server = RunningServer::start(TestDatabase::create(engine).await?, configure).await?;
    let key = support::mint_key(&server.base_url, vec![ApiKeyScope::Runs]).await?;
    Ok(Fixture { server, key })
}

impl Fixture {
    fn credential(&self) -> Credential {
        Credential::Bearer(self.key.clone())
    }

    /// `GET path` with the key, as JSON.
    async fn get(&self, path: &str) -> Result<Value, BoxError> {
        let response =
            reqwest::Client::new().get(self.server.url(path)).bearer_auth(&self.key).send().await?;
        Ok(response.error_for_status()?.json().await?)
    }
}

/// A run whose user message names `tool` with `arguments`, offering each
/// of `tools` as a client tool.
fn run_calling(tool: &str, arguments: Value, tools: &[&str]) -> Result<CreateRunRequest, serde_json::Error> {
    let tools: Vec<Value> = tools
        .iter()
        .map(|name| {
            json!({"name": name, "description": format!("The {name} tool"),
            "parameters": {"type": "object"}})
        })
        .collect();
    serde_json::from_value(json!({
        "messages": [{"role": "user", "content": format!("{tool} {arguments}")}],
        "tools": tools,
    }))
}

fn weather(args: &Value) -> String {
    format!("sunny in {}", args["city"].as_str().unwrap_or("nowhere"))
}

/// The run's steps of type `tool`, as `GET /v1/runs/{id}` lists them.
async fn tool_steps(fixture: &Fixture, run_id: &str) -> Result<Vec<Value>, BoxError> {
    let run = fixture.get(&format!("/v1/runs/{run_id}")).await?;
    let steps = run["steps"].as_array().cloned().unwrap_or_default();
    Ok(steps.into_iter().filter(|step| step["type"] == "tool").collect())
}

fn seqs(events: &[RunEvent]) -> Vec<i64> {
    events.iter().map(RunEvent::seq).collect()
}

async fn a_client_tool_is_answered_and_the_run_completes(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = Arc::clone(&seen);
    // A ws:// address works as well as the server's base URL.
    let url = format!("{}/v1/runs/ws", fixture.server.base_url.replacen("http://", "ws://", 1));
    let mut runs = RunLoop::connect(&url, fixture.credential())
        .await?
        .tool("get_weather", |args: Value| async move { Ok::<_, Infallible>(weather(&args)) })
        .on_event(move |event| {
            if let Ok(mut seen) = sink.lock() {
                seen.push(event.kind().to_owned());
            }
        });

    let outcome = runs.run(&run_calling("get_weather", json!({"city": "Paris"}), &["get_weather"])?).await?;
    assert_eq!(outcome.output(), Some("Tool results: get_weather: sunny in Paris"));
    let RunEnd::Completed { usage, .. } = &outcome.end else { return Err("the run completed".into()) };
    assert!(usage.total_tokens > 0, "{usage:?}");
    let expected: Vec<i64> = (1..=i64::try_from(outcome.events.len())?).collect();
    assert_eq!(seqs(&outcome.events), expected, "every event once, in order");
    assert_eq!(outcome.last_seq, *expected.last().ok_or("events")?);
    let kinds: Vec<&str> = outcome.events.iter().map(RunEvent::kind).collect();
    assert_eq!(*seen.lock().map_err(|_| "poisoned")?, kinds, "the callback saw what the outcome lists");
    for kind in ["tool.call", "run.requires_action", "tool.result", "message.delta", "run.completed"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }

    // The server agrees: one tool step, with the handler's output.
    let steps = tool_steps(&fixture, &outcome.run_id).await?;
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0]["output"], "sunny in Paris");
    let listed = fixture.get(&format!("/v1/runs/{}/events", outcome.run_id)).await?;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(outcome.events.len()));
    runs.close().await;
    Ok(())
}

async fn each_call_goes_to_its_tools_handler(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    let calls = Arc::new(Mutex::new(Vec::<String>::new()));
    let (weather_calls, time_calls) = (Arc::clone(&calls), Arc::clone(&calls));
    let mut runs = RunLoop::connect(&fixture.server.base_url, Credential::ApiKey(fixture.key.clone()))
        .await?
        .tool("get_weather", move |args: Value| {
            let calls = Arc::clone(&weather_calls);
            async move {
                calls.lock().map_err(|_| "poisoned")?.push("get_weather".to_owned());
                Ok::<_, &str>(weather(&args))
            }
        })
        .tool("get_time", move |args: Value| {
            let calls = Arc::clone(&time_calls);
            async move {
                calls.lock().map_err(|_| "poisoned")?.push("get_time".to_owned());
                Ok::<_, &str>(format!("noon in {}", args["zone"].as_str().unwrap_or("?")))
            }
        });
    let offered = ["get_weather", "get_time", "get_news"];

    // Several runs, one after another, on one connection.
    let time = runs.run(&run_calling("get_time", json!({"zone": "UTC"}), &offered)?).await?;
    assert_eq!(time.output(), Some("Tool results: get_time: noon in UTC"));
    let paris = runs.run(&run_calling("get_weather", json!({"city": "Oslo"}), &offered)?).await?;
    assert_eq!(paris.output(), Some("Tool results: get_weather: sunny in Oslo"));
    assert_ne!(time.run_id, paris.run_id);
    assert_eq!(*calls.lock().map_err(|_| "poisoned")?, vec!["get_time", "get_weather"]);

    // A declared tool with no handler is answered with an error the model reads.
    let news = runs.run(&run_calling("get_news", json!({}), &offered)?).await?;
    assert_eq!(news.output(), Some("Tool results: get_news: error: this client has no tool named get_news"));

    // A run that calls no tool completes as well.
    let hello: CreateRunRequest =
        serde_json::from_value(json!({"messages": [{"role": "user", "content": "Hello"}]}))?;
    assert_eq!(runs.run(&hello).await?.output(), Some("You said: Hello"));
    assert_eq!(calls.lock().map_err(|_| "poisoned")?.len(), 2);
    Ok(())
}

async fn a_handlers_error_is_the_tools_output(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    let mut runs = RunLoop::connect(&fixture.server.base_url, fixture.credential())
        .await?
        .tool("get_weather", |_args: Value| async move {
            Err::<String, _>(std::io::Error::other("the weather service is down"))
        });
    let outcome = runs.run(&run_calling("get_weather", json!({"city": "Paris"}), &["get_weather"])?).await?;
    assert_eq!(outcome.output(), Some("Tool results: get_weather: error: the weather service is down"));
    let steps = tool_steps(&fixture, &outcome.run_id).await?;
    assert_eq!(steps[0]["output"], "error: the weather service is down");
    Ok(())
}

async fn a_failed_run_is_an_error_with_the_servers_code(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    let mut runs = RunLoop::connect(&fixture.server.base_url, fixture.credential())
        .await?
        .tool("get_weather", |args: Value| async move { Ok::<_, Infallible>(weather(&args)) });
    // One step allowed: the model's answer after the tool output is one too many.
    let mut body = run_calling("get_weather", json!({"city": "Paris"}), &["get_weather"])?;
    body.max_steps = std::num::NonZeroU32::new(1);
    match runs.run(&body).await {
        Err(RunLoopError::RunFailed { run_id, error }) => {
            assert_eq!(error.code, ErrorCode::RunMaxStepsExceeded, "{error:?}");
            let run = fixture.get(&format!("/v1/runs/{run_id}")).await?;
            assert_eq!(run["status"], "error", "{run}");
        }
        other => return Err(format!("expected run.failed, got {other:?}").into()),
    }

    // A frame the server refuses ends the call with its error, not a hang.
    let invalid: CreateRunRequest = serde_json::from_value(
        json!({"messages": [{"role": "user", "content": "hi"}], "max_cost_usd": "lots"}),
    )?;
    match runs.run(&invalid).await {
        Err(RunLoopError::Server(error)) => assert_eq!(error.code, "request.invalid", "{error}"),
        other => return Err(format!("expected a refusal, got {other:?}").into()),
    }
    Ok(())
}

async fn a_paused_run_is_followed_on_after_the_approver(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |config| {
        let policy = switchyard_server::runs::PolicyConfig {
            approval_required_tools: vec!["calculate".to_owned()],
            ..Default::default()
        };
        config.policies.insert("default".to_owned(), policy);
    })
    .await?;
    let mut runs = RunLoop::connect(&fixture.server.base_url, fixture.credential()).await?;
    let body: CreateRunRequest = serde_json::from_value(json!({
        "messages": [{"role": "user", "content": "calculate {\"expression\": \"6 * 7\"}"}],
        "tools": ["calculate"],
    }))?;
    let paused = runs.run(&body).await?;
    let RunEnd::Paused { pending_approval } = &paused.end else { return Err("the run paused".into()) };
    assert_eq!(pending_approval.tool_call.as_ref().map(|call| call.name.as_str()), Some("calculate"));
    assert_eq!(paused.output(), None);

    let client = connect(&fixture.server.base_url, fixture.credential())?;
    let decision = ResumeRunRequest { decision: ApprovalDecision::Approved, reason: None };
    client.run_resume().id(&paused.run_id).body(decision).send().await?;
    let done = runs.attach(&paused.run_id, paused.last_seq).await?;
    assert_eq!(done.output(), Some("Tool results: calculate: 42"));
    assert_eq!(done.events.first().map(RunEvent::seq), Some(paused.last_seq + 1), "only what came after");
    assert!(done.events.iter().any(|event| matches!(event, RunEvent::ApprovalDecided(_))));
    Ok(())
}

/// A TCP proxy to the server whose open connections the test can cut.
struct Proxy {
    url: String,
    accepted: Arc<AtomicUsize>,
    pipes: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
}

impl Proxy {
    async fn to(upstream: std::net::SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let accepted = Arc::new(AtomicUsize::new(0));
        let pipes = Arc::new(Mutex::new(Vec::new()));
        let (count, open) = (Arc::clone(&accepted), Arc::clone(&pipes));
        let acceptor = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let pipe = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                if let Ok(mut open) = open.lock() {
                    open.push(pipe);
                }
            }
        });
        Ok(Self { url, accepted, pipes, acceptor })
    }

    /// Cuts every open connection, both ways, and waits until they are gone.
    async fn cut(&self) {
        let pipes: Vec<JoinHandle<()>> = match self.pipes.lock() {
            Ok(mut open) => open.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for pipe in pipes {
            pipe.abort();
            let _ = pipe.await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

async fn a_connection_cut_mid_run_is_replaced_and_nothing_is_done_twice(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    let proxy = Arc::new(Proxy::to(fixture.server.addr).await?);
    let calls = Arc::new(AtomicUsize::new(0));
    let (cutter, counter) = (Arc::clone(&proxy), Arc::clone(&calls));
    let mut runs = RunLoop::connect(&proxy.url, fixture.credential())
        .await?
        .reconnect(Reconnect { first_delay: std::time::Duration::from_millis(10), ..Reconnect::default() })
        .tool("get_weather", move |args: Value| {
            let (proxy, calls) = (Arc::clone(&cutter), Arc::clone(&counter));
            async move {
                // The connection goes while the call is being answered.
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    proxy.cut().await;
                }
                Ok::<_, Infallible>(weather(&args))
            }
        });

    let outcome = runs.run(&run_calling("get_weather", json!({"city": "Paris"}), &["get_weather"])?).await?;
    assert_eq!(outcome.output(), Some("Tool results: get_weather: sunny in Paris"));
    assert_eq!(calls.load(Ordering::SeqCst), 1, "the handler ran once");
    assert_eq!(proxy.accepted.load(Ordering::SeqCst), 2, "the helper connected again, through the proxy");
    let expected: Vec<i64> = (1..=i64::try_from(outcome.events.len())?).collect();
    assert_eq!(seqs(&outcome.events), expected, "each event once across the two connections");
    let tool_calls = outcome.events.iter().filter(|event| matches!(event, RunEvent::ToolCall(_))).count();
    assert_eq!(tool_calls, 1);

    let listed = fixture.get("/v1/runs").await?;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "one run: {listed}");
    let steps = tool_steps(&fixture, &outcome.run_id).await?;
    assert_eq!(steps.len(), 1, "the call was answered once: {steps:?}");
    assert_eq!(steps[0]["output"], "sunny in Paris");

    // Without reconnects, a cut ends the run loop with a clear error.
    let mut fragile = RunLoop::connect(&proxy.url, fixture.credential())
        .await?
        .reconnect(Reconnect::never())
        .tool("get_weather", {
            let proxy = Arc::clone(&proxy);
            move |_args: Value| {
                let proxy = Arc::clone(&proxy);
                async move {
                    proxy.cut().await;
                    Ok::<_, Infallible>("late".to_owned())
                }
            }
        });
    match fragile.run(&run_calling("get_weather", json!({"city": "Rome"}), &["get_weather"])?).await {
        Err(RunLoopError::Disconnected { attempts: 0, .. }) => Ok(()),
        other => Err(format!("expected Disconnected, got {other:?}").into()),
    }
}

async fn a_bad_credential_is_refused_clearly(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    match RunLoop::connect(&fixture.server.base_url, Credential::Bearer("sy_live_key_nope_nope".to_owned()))
        .await
    {
        Err(RunLoopError::Refused { status: 401, code: Some(code), message }) => {
            assert!(code.starts_with("auth."), "{code}: {message}");
            assert!(!message.is_empty());
        }
        other => return Err(format!("expected a 401 refusal, got {other:?}").into()),
    }
    let missing = RunLoop::connect(&fixture.server.base_url, Credential::None).await;
    assert!(matches!(missing, Err(RunLoopError::MissingCredential)), "{missing:?}");
    let nowhere = RunLoop::connect("ftp://example.com", fixture.credential()).await;
    assert!(matches!(nowhere, Err(RunLoopError::InvalidUrl(_))), "{nowhere:?}");
    Ok(())
}
