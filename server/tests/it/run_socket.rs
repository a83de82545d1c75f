//! The run loop over `GET /v1/runs/ws`: credentials on the upgrade or in
//! the first frame, the browser origin check, client tools answered over
//! the socket, several runs on one connection, idempotent creation, frames
//! the server cannot act on, and a dropped socket that loses nothing.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::runs::{Fixture, fixture};
use crate::support::{BoxError, TestEngine, TestResult, expect_status, on_both_engines, string_at};

on_both_engines!(
    a_client_tool_is_answered_over_the_socket_and_the_run_completes,
    the_credential_may_come_in_the_first_frame,
    a_socket_without_a_credential_is_closed,
    a_dropped_socket_loses_nothing_and_attach_replays_and_goes_on,
    several_runs_share_one_connection,
    a_repeated_idempotency_key_replays_the_run,
    frames_the_server_cannot_act_on_are_answered_with_errors,
    an_approver_decides_over_the_socket,
);

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long a test waits for a frame before it fails.
const FRAME_WITHIN: Duration = Duration::from_secs(10);

fn weather_run() -> Value {
    json!({"messages": [{"role": "user", "content": "get_weather {\"city\": \"Paris\"}"}],
        "tools": [{"name": "get_weather", "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]})
}

fn socket_url(fixture: &Fixture) -> String {
    fixture.server.url("/v1/runs/ws").replacen("http://", "ws://", 1)
}

/// Opens the run loop with `headers` on the upgrade.
async fn connect(fixture: &Fixture, headers: &[(&str, &str)]) -> Result<Socket, BoxError> {
    let mut request = socket_url(fixture).into_client_request()?;
    for (name, value) in headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())?;
        request.headers_mut().insert(name, value.parse()?);
    }
    let (socket, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(socket)
}

/// Opens the run loop with the fixture's key on the upgrade, past `ready`.
async fn connect_with_key(fixture: &Fixture) -> Result<Socket, BoxError> {
    let bearer = format!("Bearer {}", fixture.key);
    let mut socket = connect(fixture, &[("authorization", &bearer)]).await?;
    let ready = receive(&mut socket).await?;
    assert_eq!(ready["type"], "ready", "{ready}");
    Ok(socket)
}

async fn send(socket: &mut Socket, frame: Value) -> TestResult {
    socket.send(Message::text(frame.to_string())).await?;
    Ok(())
}

/// The next JSON frame; control frames are skipped.
async fn receive(socket: &mut Socket) -> Result<Value, BoxError> {
    receive_within(socket, FRAME_WITHIN).await
}

async fn receive_within(socket: &mut Socket, within: Duration) -> Result<Value, BoxError> {
    loop {
        let message = tokio::time::timeout(within, socket.next())
            .await
            .map_err(|_| "no frame came in time")?
            .ok_or("the socket closed")??;
        match message {
            Message::Text(text) => return Ok(serde_json::from_str(&text)?),
            Message::Close(close) => return Err(format!("the server closed the socket: {close:?}").into()),
            _ => {}
        }
    }
}

/// Frames until one of type `kind` (included).
async fn receive_until(socket: &mut Socket, kind: &str) -> Result<Vec<Value>, BoxError> {
    let mut frames = Vec::new();
    loop {
        let frame = receive(socket).await?;
        let done = frame["type"] == kind;
        frames.push(frame);
        if done {
            return Ok(frames);
        }
    }
}

/// How the server closed the socket: its close code.
async fn closed_with(socket: &mut Socket) -> Result<u16, BoxError> {
    loop {
        let message = tokio::time::timeout(FRAME_WITHIN + Duration::from_secs(5), socket.next())
            .await
            .map_err(|_| "the socket stayed open")?;
        match message {
            Some(Ok(Message::Close(Some(close)))) => return Ok(u16::from(close.code)),
            Some(Ok(Message::Close(None))) | None => return Err("closed without a code".into()),
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err.into()),
        }
    }
}

/// The `seq` of each event among `frames`, which must count up by one from `first`.
fn assert_gapless(frames: &[Value], first: i64) -> Result<i64, BoxError> {
    let seqs: Vec<i64> = frames.iter().filter_map(|frame| frame["seq"].as_i64()).collect();
    let expected: Vec<i64> = (first..first + i64::try_from(seqs.len())?).collect();
    assert_eq!(seqs, expected, "event numbers are gapless: {frames:?}");
    Ok(seqs.last().copied().unwrap_or(first - 1))
}

fn pending_call(frames: &[Value]) -> Result<String, BoxError> {
    let call = frames
        .iter()
        .find(|frame| frame["type"] == "tool.call" && frame["executor"] == "client")
        .ok_or("a client tool.call event came")?;
    string_at(call, "/tool_call/id")
}

async fn a_client_tool_is_answered_over_the_socket_and_the_run_completes(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    let mut socket = connect_with_key(&fixture).await?;
    send(&mut socket, json!({"type": "run.create", "ref": "c1", "run": weather_run()})).await?;
    let created = receive(&mut socket).await?;
    assert_eq!(created["type"], "run.created", "{created}");
    assert_eq!(created["ref"], "c1");
    assert_eq!(created["replayed"], false);
    let run_id = string_at(&created, "/run/id")?;
    let waiting = receive_until(&mut socket, "run.requires_action").await?;
    assert!(waiting.iter().all(|frame| frame["run_id"] == run_id.as_str()), "{waiting:?}");
    let last = assert_gapless(&waiting, 1)?;
    let call_id = pending_call(&waiting)?;

    send(
        &mut socket,
        json!({"type": "tool.output", "run_id": run_id, "tool_call_id": call_id,
        "output": "{\"temperature_c\": 18}"}),
    )
    .await?;
    let rest = receive_until(&mut socket, "run.completed").await?;
    assert_gapless(&rest, last + 1)?;
    let result = rest.iter().find(|frame| frame["type"] == "tool.result").ok_or("a tool.result event")?;
    assert_eq!(result["step"]["output"], "{\"temperature_c\": 18}");
    let completed = rest.last().ok_or("run.completed")?;
    assert!(completed["output"]["content"].as_str().is_some_and(|text| !text.is_empty()), "{completed}");

    let run = expect_status(fixture.api.get(&format!("/v1/runs/{run_id}"), fixture.key()).await?, 200)?;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["steps"][1]["output"], "{\"temperature_c\": 18}");
    // The socket's events are the run's events, as HTTP lists them.
    let listed =
        expect_status(fixture.api.get(&format!("/v1/runs/{run_id}/events"), fixture.key()).await?, 200)?;
    let streamed: Vec<Value> = waiting.into_iter().chain(rest).collect();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(streamed.len()));
    assert_eq!(listed["data"], Value::Array(streamed));
    Ok(())
}

async fn the_credential_may_come_in_the_first_frame(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    let mut socket = connect(&fixture, &[]).await?;
    send(&mut socket, json!({"type": "auth", "token": fixture.key})).await?;
    let ready = receive(&mut socket).await?;
    assert_eq!(ready["type"], "ready", "{ready}");
    assert_eq!(ready["user_id"], fixture.owner.user_id.as_str());
    assert!(ready["key_id"].as_str().is_some_and(|id| id.starts_with("key_")), "{ready}");
    assert_eq!(ready["heartbeat_secs"], 20);
    send(&mut socket, json!({"type": "ping", "ref": "p1"})).await?;
    assert_eq!(receive(&mut socket).await?, json!({"type": "pong", "ref": "p1"}));

    // A session token works too, with the org in the frame.
    let mut socket = connect(&fixture, &[]).await?;
    send(&mut socket, json!({"type": "auth", "token": fixture.owner.access, "org": fixture.org})).await?;
    let ready = receive(&mut socket).await?;
    assert_eq!(ready["key_id"], Value::Null, "{ready}");
    send(
        &mut socket,
        json!({"type": "run.create", "run": {"messages": [{"role": "user", "content": "Hello"}]}}),
    )
    .await?;
    let created = receive(&mut socket).await?;
    assert_eq!(created["run"]["org_id"], fixture.org.as_str(), "{created}");
    receive_until(&mut socket, "run.completed").await?;
    Ok(())
}

async fn a_socket_without_a_credential_is_closed(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |config| {
        config.cors.allowed_origins = vec!["https://app.example.com".to_owned()];
    })
    .await?;
    // A frame before the credential: an error naming why, then close 4401.
    let mut socket = connect(&fixture, &[]).await?;
    send(&mut socket, json!({"type": "ping"})).await?;
    let error = receive(&mut socket).await?;
    assert_eq!(error["error"]["code"], "auth.missing_credentials", "{error}");
    assert_eq!(closed_with(&mut socket).await?, 4401);

    // A bad credential in the frame.
    let mut socket = connect(&fixture, &[]).await?;
    send(&mut socket, json!({"type": "auth", "token": "sy_live_key_nope_nope"})).await?;
    let error = receive(&mut socket).await?;
    assert_eq!(error["type"], "error");
    assert!(error["error"]["code"].as_str().is_some_and(|code| code.starts_with("auth.")), "{error}");
    assert_eq!(closed_with(&mut socket).await?, 4401);

    // A bad credential on the upgrade is refused before it: 401 in the envelope.
    let refused = connect(&fixture, &[("authorization", "Bearer nope")]).await;
    let Err(err) = refused else { return Err("a bad credential upgraded".into()) };
    assert!(err.to_string().contains("401"), "{err}");

    // A browser page from another origin is refused; a listed one may connect.
    let bearer = format!("Bearer {}", fixture.key);
    let refused =
        connect(&fixture, &[("authorization", &bearer), ("origin", "https://evil.example.com")]).await;
    let Err(err) = refused else { return Err("another origin upgraded".into()) };
    assert!(err.to_string().contains("403"), "{err}");
    let mut socket =
        connect(&fixture, &[("authorization", &bearer), ("origin", "https://app.example.com")]).await?;
    assert_eq!(receive(&mut socket).await?["type"], "ready");

    // Silence: no credential within 10 seconds.
    let mut socket = connect(&fixture, &[]).await?;
    let error = receive_within(&mut socket, Duration::from_secs(20)).await?;
    assert_eq!(error["error"]["code"], "auth.missing_credentials", "{error}");
    assert_eq!(closed_with(&mut socket).await?, 4401);
    Ok(())
}

async fn a_dropped_socket_loses_nothing_and_attach_replays_and_goes_on(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    let mut first = connect_with_key(&fixture).await?;
    send(&mut first, json!({"type": "run.create", "run": weather_run()})).await?;
    let run_id = string_at(&receive(&mut first).await?, "/run/id")?;
    let waiting = receive_until(&mut first, "run.requires_action").await?;
    assert_gapless(&waiting, 1)?;
    // The client saw only the first two events before the connection dropped.
    first.close(None).await?;
    drop(first);

    let run = expect_status(fixture.api.get(&format!("/v1/runs/{run_id}"), fixture.key()).await?, 200)?;
    assert_eq!(run["status"], "requires_action", "the run waits for the client");

    let mut second = connect_with_key(&fixture).await?;
    send(&mut second, json!({"type": "run.attach", "ref": "a1", "run_id": run_id, "after": 2})).await?;
    let attached = receive(&mut second).await?;
    assert_eq!(attached, json!({"type": "run.attached", "ref": "a1", "run_id": run_id, "after": 2}));
    let replayed = receive_until(&mut second, "run.requires_action").await?;
    assert_eq!(replayed.as_slice(), &waiting[2..], "exactly what was missed, as it was sent");
    let call_id = pending_call(&waiting)?;
    send(
        &mut second,
        json!({"type": "tool.output", "run_id": run_id, "tool_call_id": call_id, "output": "sunny"}),
    )
    .await?;
    let rest = receive_until(&mut second, "run.completed").await?;
    assert_gapless(&rest, assert_gapless(&waiting, 1)? + 1)?;

    // Attaching after the end replays the whole run, then nothing more.
    let mut third = connect_with_key(&fixture).await?;
    send(&mut third, json!({"type": "run.attach", "run_id": run_id})).await?;
    assert_eq!(receive(&mut third).await?["type"], "run.attached");
    let all = receive_until(&mut third, "run.completed").await?;
    let expected: Vec<Value> = waiting.into_iter().chain(rest).collect();
    assert_eq!(all, expected);
    send(&mut third, json!({"type": "ping"})).await?;
    assert_eq!(receive(&mut third).await?["type"], "pong", "the follower ended with the run");
    Ok(())
}

async fn several_runs_share_one_connection(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    let mut socket = connect_with_key(&fixture).await?;
    for reference in ["r1", "r2", "r3"] {
        send(&mut socket, json!({"type": "run.create", "ref": reference, "run": weather_run()})).await?;
    }
    let mut runs = std::collections::BTreeMap::new();
    let mut completed = std::collections::BTreeSet::new();
    let mut events: std::collections::BTreeMap<String, Vec<i64>> = std::collections::BTreeMap::new();
    while completed.len() < 3 {
        let frame = receive(&mut socket).await?;
        match frame["type"].as_str() {
            Some("run.created") => {
                runs.insert(string_at(&frame, "/ref")?, string_at(&frame, "/run/id")?);
            }
            Some("tool.call") => {
                let run_id = string_at(&frame, "/run_id")?;
                let call_id = string_at(&frame, "/tool_call/id")?;
                send(
                    &mut socket,
                    json!({"type": "tool.output", "run_id": run_id, "tool_call_id": call_id,
                    "output": format!("weather for {run_id}")}),
                )
                .await?;
            }
            Some("run.completed") => {
                completed.insert(string_at(&frame, "/run_id")?);
            }
            Some("error") => return Err(format!("an error frame: {frame}").into()),
            _ => {}
        }
        if let (Some(run_id), Some(seq)) = (frame["run_id"].as_str(), frame["seq"].as_i64()) {
            events.entry(run_id.to_owned()).or_default().push(seq);
        }
    }
    assert_eq!(runs.len(), 3);
    assert_eq!(completed, runs.values().cloned().collect());
    for (run_id, seqs) in events {
        let expected: Vec<i64> = (1..=i64::try_from(seqs.len())?).collect();
        assert_eq!(seqs, expected, "{run_id}'s events arrive in order, without gaps");
    }
    Ok(())
}

async fn a_repeated_idempotency_key_replays_the_run(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    let mut socket = connect_with_key(&fixture).await?;
    let create = json!({"type": "run.create", "idempotency_key": "order-7", "run": weather_run()});
    send(&mut socket, create.clone()).await?;
    let first = receive(&mut socket).await?;
    let run_id = string_at(&first, "/run/id")?;
    receive_until(&mut socket, "run.requires_action").await?;

    // After a drop, the client cannot know whether its frame arrived: it sends it again.
    let mut again = connect_with_key(&fixture).await?;
    send(&mut again, create).await?;
    let replay = receive(&mut again).await?;
    assert_eq!(replay["type"], "run.created");
    assert_eq!(replay["replayed"], true);
    assert_eq!(replay["run"]["id"], run_id.as_str());
    let replayed = receive_until(&mut again, "run.requires_action").await?;
    assert_gapless(&replayed, 1)?;

    let mut other = json!({"type": "run.create", "idempotency_key": "order-7", "run": weather_run()});
    other["run"]["metadata"] = json!({"changed": true});
    send(&mut again, other).await?;
    let error = receive(&mut again).await?;
    assert_eq!(error["error"]["code"], "idempotency.key_reused", "{error}");

    let runs = expect_status(fixture.api.get("/v1/runs", fixture.key()).await?, 200)?;
    assert_eq!(runs["data"].as_array().map(Vec::len), Some(1), "one run");
    Ok(())
}

async fn frames_the_server_cannot_act_on_are_answered_with_errors(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |_| {}).await?;
    let mut socket = connect_with_key(&fixture).await?;
    let code_of = |frame: &Value| frame["error"]["code"].as_str().unwrap_or_default().to_owned();

    socket.send(Message::text("{not json")).await?;
    assert_eq!(code_of(&receive(&mut socket).await?), "request.malformed");
    send(&mut socket, json!({"type": "run.explode", "ref": "x1"})).await?;
    let error = receive(&mut socket).await?;
    assert_eq!((code_of(&error), error["ref"].clone()), ("request.malformed".to_owned(), json!("x1")));
    socket.send(Message::binary(vec![1, 2, 3])).await?;
    assert_eq!(code_of(&receive(&mut socket).await?), "request.malformed");
    send(&mut socket, json!({"type": "run.create", "ref": "c1", "run": {"messages": "hello"}})).await?;
    let error = receive(&mut socket).await?;
    assert_eq!((code_of(&error), error["ref"].clone()), ("request.malformed".to_owned(), json!("c1")));
    send(&mut socket, json!({"type": "run.create", "run": {"messages": [{"role": "user", "content": "hi"}], "max_cost_usd": "lots"}}))
        .await?;
    assert_eq!(code_of(&receive(&mut socket).await?), "request.invalid");
    send(&mut socket, json!({"type": "run.attach", "run_id": "run_nope"})).await?;
    let error = receive(&mut socket).await?;
    assert_eq!((code_of(&error), error["run_id"].clone()), ("run.not_found".to_owned(), json!("run_nope")));
    assert!(error["error"]["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{error}");

    send(&mut socket, json!({"type": "run.create", "run": weather_run()})).await?;
    let run_id = string_at(&receive(&mut socket).await?, "/run/id")?;
    let waiting = receive_until(&mut socket, "run.requires_action").await?;
    send(
        &mut socket,
        json!({"type": "tool.output", "run_id": run_id, "tool_call_id": "call_nope", "output": "x"}),
    )
    .await?;
    assert_eq!(code_of(&receive(&mut socket).await?), "run.unknown_tool_call");
    let call_id = pending_call(&waiting)?;
    let answer =
        json!({"type": "tool.output", "ref": "o1", "run_id": run_id, "tool_call_id": call_id, "output": "x"});
    send(&mut socket, answer.clone()).await?;
    send(&mut socket, answer).await?;
    let mut frames = receive_until(&mut socket, "run.completed").await?;
    // The answer to the second output may come after the run's last event: a ping fences it.
    send(&mut socket, json!({"type": "ping"})).await?;
    frames.extend(receive_until(&mut socket, "pong").await?);
    let mut errors: Vec<Value> = Vec::new();
    frames.retain(|frame| {
        let error = frame["type"] == "error";
        if error {
            errors.push(frame.clone());
        }
        !error && frame["type"] != "pong"
    });
    // The second answer may arrive before or after the run went on.
    assert_eq!(errors.len(), 1, "{errors:?}");
    let code = code_of(&errors[0]);
    assert!(code == "run.tool_call_already_answered" || code == "run.not_awaiting_tool_outputs", "{code}");
    assert_eq!(errors[0]["ref"], "o1");

    // Another org's run is not found.
    let stranger = fixture.api.register("stranger@example.com").await?;
    let other_org = fixture.api.create_org(&stranger, "Elsewhere").await?;
    let other_key = fixture.api.mint_key(&stranger, &other_org, &["*"]).await?.key;
    let bearer = format!("Bearer {other_key}");
    let mut outsider = connect(&fixture, &[("authorization", &bearer)]).await?;
    receive(&mut outsider).await?;
    send(&mut outsider, json!({"type": "run.attach", "run_id": run_id})).await?;
    assert_eq!(code_of(&receive(&mut outsider).await?), "run.not_found");
    send(&mut outsider, json!({"type": "run.cancel", "run_id": run_id})).await?;
    assert_eq!(code_of(&receive(&mut outsider).await?), "run.not_found");

    // A key without the runs scope.
    let chat_key = fixture.api.mint_key(&fixture.owner, &fixture.org, &["chat"]).await?.key;
    let bearer = format!("Bearer {chat_key}");
    let mut chat_only = connect(&fixture, &[("authorization", &bearer)]).await?;
    receive(&mut chat_only).await?;
    send(&mut chat_only, json!({"type": "run.create", "run": weather_run()})).await?;
    assert_eq!(code_of(&receive(&mut chat_only).await?), "auth.scope_denied");
    Ok(())
}

async fn an_approver_decides_over_the_socket(engine: TestEngine) -> TestResult {
    let fixture = fixture(engine, |config| {
        let policy = switchyard_server::runs::PolicyConfig {
            approval_required_tools: vec!["calculate".to_owned()],
            ..Default::default()
        };
        config.policies.insert("default".to_owned(), policy);
    })
    .await?;
    let mut socket = connect_with_key(&fixture).await?;
    let run = json!({"messages": [{"role": "user", "content": "calculate {\"expression\": \"6 * 7\"}"}],
        "tools": ["calculate"]});
    send(&mut socket, json!({"type": "run.create", "run": run})).await?;
    let run_id = string_at(&receive(&mut socket).await?, "/run/id")?;
    let paused = receive_until(&mut socket, "run.paused").await?;
    assert_eq!(
        paused.last().map(|frame| frame["pending_approval"]["reason"].clone()),
        Some(json!("tool_approval_required"))
    );
    send(
        &mut socket,
        json!({"type": "approval", "run_id": run_id, "decision": "approved", "reason": "fine"}),
    )
    .await?;
    let rest = receive_until(&mut socket, "run.completed").await?;
    let decided = rest.iter().find(|frame| frame["type"] == "approval.decided").ok_or("approval.decided")?;
    assert_eq!(decided["step"]["decision"], "approved");
    let result = rest.iter().find(|frame| frame["type"] == "tool.result").ok_or("tool.result")?;
    assert_eq!(result["step"]["output"], "42");
    send(&mut socket, json!({"type": "approval", "run_id": run_id, "decision": "approved"})).await?;
    assert_eq!(receive(&mut socket).await?["error"]["code"], "run.not_paused");
    Ok(())
}
