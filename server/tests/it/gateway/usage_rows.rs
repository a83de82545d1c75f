//! Usage the provider did not report is counted, not recorded as free:
//! upstreams that never send usage, that send it only when asked, that fail
//! mid-stream, and clients that hang up early. In each case the row is
//! marked `estimated`, its completion tokens are the tokenizer's count of
//! what was produced, budgets and token limits see it, and nothing that
//! produced text is recorded as zero.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use poem::web::{Data, Json};
use poem::{Body, EndpointExt, Response, Route, handler};
use serde_json::{Value, json};
use sqlx::Row;
use switchyard_server::Config;
use switchyard_server::db::Db;
use switchyard_server::gateway::config::{
    PriceConfig, ProviderConfig, ProviderKind, RouteConfig, TargetConfig,
};

use super::chat_key;
use crate::support::{
    Api, BoxError, Credential, TestEngine, TestResult, assert_error, expect_status, on_both_engines,
    serve_mock, start,
};

on_both_engines!(
    a_stream_without_usage_is_counted_and_the_client_gets_the_count,
    usage_is_asked_for_and_kept_from_clients_that_did_not_ask,
    a_stream_that_fails_midway_is_charged_for_what_it_produced,
    a_client_that_hangs_up_is_charged_for_what_was_produced,
    answers_and_embeddings_without_usage_are_counted,
    budgets_and_token_limits_see_counted_usage,
    answers_cut_short_meet_budgets_and_token_limits,
    sessions_are_metered_in_the_org_they_name,
);

/// What every mock answer says, one word per chunk in streams.
const ANSWER: &str = "Switchyard counts every token a provider forgets to report, so no answer is free.";

/// The tokenizer's count of `text`, computed apart from the server's code.
fn o200k(text: &str) -> i64 {
    tiktoken_rs::o200k_base_singleton().encode_ordinary(text).len() as i64
}

#[derive(Default)]
struct Seen {
    /// Whether the `asked` upstream was asked for usage, per request.
    asked_for_usage: Mutex<Vec<bool>>,
    /// Chunks the `slow` upstream sent before its reader left.
    slow_chunks: AtomicUsize,
    slow_dropped: AtomicBool,
    /// Streams of the `slow` upstream whose reader left.
    slow_drops: AtomicUsize,
}

fn chunk(content: &str) -> String {
    let chunk = json!({
        "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": "mock-model",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]
    });
    format!("data: {chunk}\n\n")
}

fn words() -> Vec<String> {
    let mut words: Vec<String> = ANSWER.split_inclusive(' ').map(str::to_owned).collect();
    words.insert(0, String::new());
    words
}

fn sse(frames: Vec<String>) -> Response {
    let body =
        futures::stream::iter(frames.into_iter().map(|f| Ok::<_, std::io::Error>(bytes::Bytes::from(f))));
    Response::builder().content_type("text/event-stream").body(Body::from_bytes_stream(body))
}

fn is_stream(request: &Value) -> bool {
    request["stream"].as_bool().unwrap_or(false)
}

/// Never reports usage, as llama.cpp's server and others do in streams.
#[handler]
fn silent_chat(Json(request): Json<Value>) -> Response {
    if is_stream(&request) {
        let mut frames: Vec<String> = words().iter().map(|w| chunk(w)).collect();
        frames.push(format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": "mock-model",
                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        ));
        frames.push("data: [DONE]\n\n".to_owned());
        return sse(frames);
    }
    let completion = json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": "mock-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}]
    });
    Response::builder().content_type("application/json").body(completion.to_string())
}

#[handler]
fn silent_embeddings(Json(request): Json<Value>) -> Response {
    let inputs = request["input"].as_array().map_or(1, Vec::len);
    let data: Vec<Value> = (0..inputs)
        .map(|index| json!({"object": "embedding", "index": index, "embedding": [0.6, 0.8]}))
        .collect();
    let list = json!({"object": "list", "data": data, "model": "mock-model"});
    Response::builder().content_type("application/json").body(list.to_string())
}

/// Reports usage only when the request asks for it.
#[handler]
fn asked_chat(Json(request): Json<Value>, seen: Data<&Arc<Seen>>) -> Response {
    let asked = request.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true);
    seen.asked_for_usage.lock().unwrap_or_else(|e| e.into_inner()).push(asked);
    let mut frames: Vec<String> = words().iter().map(|w| chunk(w)).collect();
    if asked {
        frames.push(format!(
            "data: {}\n\n",
            json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 1, "model": "mock-model",
                   "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})
        ));
    }
    frames.push("data: [DONE]\n\n".to_owned());
    sse(frames)
}

/// Sends the first half of the answer, then the connection breaks.
#[handler]
fn broken_chat() -> Response {
    let words = words();
    let half: Vec<String> = words[..words.len() / 2].iter().map(|w| chunk(w)).collect();
    let body = futures::stream::iter(half.into_iter().map(|f| Ok(bytes::Bytes::from(f))))
        .chain(futures::stream::once(async { Err(std::io::Error::other("the upstream fell over")) }));
    Response::builder().content_type("text/event-stream").body(Body::from_bytes_stream(body))
}

struct SlowDropped(Arc<Seen>);

impl Drop for SlowDropped {
    fn drop(&mut self) {
        self.0.slow_dropped.store(true, Ordering::SeqCst);
        self.0.slow_drops.fetch_add(1, Ordering::SeqCst);
    }
}

/// `"word "` every 20 ms until the reader goes away.
#[handler]
fn slow_chat(seen: Data<&Arc<Seen>>) -> Response {
    let seen = seen.clone();
    let flag = SlowDropped(seen.clone());
    let body = futures::stream::unfold(seen, |seen| async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        seen.slow_chunks.fetch_add(1, Ordering::SeqCst);
        Some((Ok::<_, std::io::Error>(bytes::Bytes::from(chunk("word "))), seen))
    })
    .map(move |item| {
        let _keep = &flag;
        item
    });
    Response::builder().content_type("text/event-stream").body(Body::from_bytes_stream(body))
}

async fn mock_upstream() -> Result<(String, Arc<Seen>), BoxError> {
    let seen = Arc::new(Seen::default());
    let app = Route::new()
        .at("/silent/v1/chat/completions", poem::post(silent_chat))
        .at("/silent/v1/embeddings", poem::post(silent_embeddings))
        .at("/asked/v1/chat/completions", poem::post(asked_chat))
        .at("/broken/v1/chat/completions", poem::post(broken_chat))
        .at("/slow/v1/chat/completions", poem::post(slow_chat))
        .data(seen.clone());
    Ok((serve_mock(app).await?, seen))
}

/// One route per mock upstream, named after it; ten USD per million tokens
/// (10 micro-USD a token) in and out.
fn configure(config: &mut Config, base: &str) {
    let names = ["silent", "asked", "broken", "slow"];
    config.providers = names
        .iter()
        .map(|name| {
            let provider = ProviderConfig {
                kind: ProviderKind::Openai,
                base_url: Some(format!("{base}/{name}/v1")),
                api_key_env: None,
                pass_through: Vec::new(),
                delay_ms: None,
            };
            ((*name).to_owned(), provider)
        })
        .collect();
    config.routes = names
        .iter()
        .map(|name| RouteConfig {
            name: (*name).to_owned(),
            targets: vec![TargetConfig { provider: (*name).to_owned(), model: "mock-model".to_owned() }],
            tokenizer: None,
        })
        .collect();
    let price = PriceConfig { input_per_mtok: "10.00".to_owned(), output_per_mtok: "10.00".to_owned() };
    config.prices = BTreeMap::from([("mock-model".to_owned(), price)]);
    config.gateway.stream_keepalive_ms = 100;
}

fn hello(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "Hello there"}]})
}

/// A stream's `data:` payloads, `[DONE]` included.
async fn stream(
    server: &crate::support::RunningServer,
    key: &str,
    body: &Value,
) -> Result<Vec<String>, BoxError> {
    let response = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let text = response.text().await?;
    Ok(text.lines().filter_map(|line| line.strip_prefix("data: ")).map(str::to_owned).collect())
}

/// Each usage row: (status, prompt, completion, cost in micro-USD, source).
type UsageLine = (i64, i64, i64, i64, String);

async fn usage_rows(database_url: &str) -> Result<Vec<UsageLine>, BoxError> {
    let db = Db::connect(database_url).await?;
    let rows = sqlx::query(
        "SELECT status, prompt_tokens, completion_tokens, cost_micros, usage_source FROM usage_records \
         ORDER BY occurred_at, id",
    )
    .fetch_all(db.pool())
    .await;
    db.close().await;
    rows?
        .iter()
        .map(|row| {
            Ok((
                row.try_get("status")?,
                row.try_get("prompt_tokens")?,
                row.try_get("completion_tokens")?,
                row.try_get("cost_micros")?,
                row.try_get("usage_source")?,
            ))
        })
        .collect()
}

/// The prompt of [`hello`] counted by OpenAI's rule: 3 to prime the reply, 3
/// per message, the role and the content.
fn hello_prompt() -> i64 {
    3 + 3 + o200k("user") + o200k("Hello there")
}

async fn a_stream_without_usage_is_counted_and_the_client_gets_the_count(engine: TestEngine) -> TestResult {
    let (base, _) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    let key = chat_key(&api, json!({})).await?;

    let mut asking = hello("silent", true);
    asking["stream_options"] = json!({"include_usage": true});
    let events = stream(&server, &key.key, &asking).await?;
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2])?;
    // OpenAI's shape: no choices, the usage, and the stream's id and model.
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["id"], "chatcmpl-mock");
    assert_eq!(usage_chunk["object"], "chat.completion.chunk");
    let completion = o200k(ANSWER);
    assert_eq!(usage_chunk["usage"]["completion_tokens"], completion);
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], hello_prompt());
    assert_eq!(usage_chunk["usage"]["total_tokens"], completion + hello_prompt());

    // Without `include_usage` no usage chunk goes out, and the row is the same.
    let events = stream(&server, &key.key, &hello("silent", true)).await?;
    assert!(events.iter().all(|e| !e.contains("\"usage\"")), "{events:?}");

    let (status, report) = api.get("/v1/usage?group_by=model", Credential::Bearer(&key.key)).await?;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["totals"]["requests"], 2);
    assert_eq!(report["totals"]["estimated_requests"], 2);
    assert_eq!(report["totals"]["completion_tokens"], 2 * completion);

    let metrics = reqwest::get(server.url("/metrics")).await?.text().await?;
    let counted = format!(
        "switchyard_gateway_tokens_total{{kind=\"completion\",provider=\"silent\",route=\"silent\",usage=\"estimated\"}} {}",
        2 * completion
    );
    assert!(metrics.contains(&counted), "no `{counted}` in\n{metrics}");

    let rows = usage_rows(&server.stop().await?.url).await?;
    let expected =
        (200, hello_prompt(), completion, 10 * (hello_prompt() + completion), "estimated".to_owned());
    assert_eq!(rows, vec![expected.clone(), expected]);
    Ok(())
}

async fn usage_is_asked_for_and_kept_from_clients_that_did_not_ask(engine: TestEngine) -> TestResult {
    let (base, seen) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    let key = chat_key(&api, json!({})).await?;
    let events = stream(&server, &key.key, &hello("asked", true)).await?;
    assert!(events.iter().all(|e| !e.contains("\"usage\"")), "{events:?}");
    let mut asking = hello("asked", true);
    asking["stream_options"] = json!({"include_usage": true});
    let events = stream(&server, &key.key, &asking).await?;
    let usage_chunk: Value = serde_json::from_str(&events[events.len() - 2])?;
    assert_eq!(
        usage_chunk["usage"],
        json!({"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
    );
    assert_eq!(*seen.asked_for_usage.lock().unwrap_or_else(|e| e.into_inner()), vec![true, true]);
    let rows = usage_rows(&server.stop().await?.url).await?;
    let reported = (200, 11, 7, 180, "reported".to_owned());
    assert_eq!(rows, vec![reported.clone(), reported]);
    Ok(())
}

async fn a_stream_that_fails_midway_is_charged_for_what_it_produced(engine: TestEngine) -> TestResult {
    let (base, _) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    let key = chat_key(&api, json!({})).await?;
    let events = stream(&server, &key.key, &hello("broken", true)).await?;
    let last: Value =
        serde_json::from_str(events.last().ok_or("no events")?).map_err(|e| format!("{e}: {events:?}"))?;
    assert_eq!(last["error"]["code"], "gateway.upstream_error");
    let words = words();
    let produced: String = words[..words.len() / 2].concat();
    let rows = usage_rows(&server.stop().await?.url).await?;
    let (status, prompt, completion, cost, source) = rows.first().cloned().ok_or("no usage row")?;
    assert_eq!((status, source.as_str()), (502, "estimated"));
    assert_eq!((prompt, completion), (hello_prompt(), o200k(&produced)));
    assert!(completion > 0 && cost == 10 * (prompt + completion));
    Ok(())
}

async fn a_client_that_hangs_up_is_charged_for_what_was_produced(engine: TestEngine) -> TestResult {
    let (base, seen) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    let key = chat_key(&api, json!({})).await?;
    let response = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&key.key)
        .json(&hello("slow", true))
        .send()
        .await?;
    let mut body = response.bytes_stream();
    let mut received = String::new();
    while received.matches("\"word \"").count() < 6 {
        received.push_str(&String::from_utf8_lossy(&body.next().await.ok_or("the stream ended")??));
    }
    let read = received.matches("\"word \"").count();
    drop(body);
    for _ in 0..100 {
        if seen.slow_dropped.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.slow_dropped.load(Ordering::SeqCst), "the upstream stream stayed open");
    let sent = seen.slow_chunks.load(Ordering::SeqCst);
    let rows = usage_rows(&server.stop().await?.url).await?;
    let (status, prompt, completion, _, source) = rows.first().cloned().ok_or("no usage row")?;
    assert_eq!((status, source.as_str(), prompt), (499, "estimated", hello_prompt()));
    // Everything the client read, and at most what the upstream sent.
    let tokens_of = |chunks: usize| o200k(&"word ".repeat(chunks));
    assert!(
        (tokens_of(read)..=tokens_of(sent)).contains(&completion),
        "{completion} tokens recorded; the client read {read} chunks, the upstream sent {sent}"
    );
    Ok(())
}

async fn answers_and_embeddings_without_usage_are_counted(engine: TestEngine) -> TestResult {
    let (base, _) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    let key = chat_key(&api, json!({})).await?;
    let answer = expect_status(
        api.post("/v1/chat/completions", Credential::Bearer(&key.key), hello("silent", false)).await?,
        200,
    )?;
    assert_eq!(answer["choices"][0]["message"]["content"], ANSWER);
    let completion = o200k(ANSWER);
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": hello_prompt(), "completion_tokens": completion,
               "total_tokens": hello_prompt() + completion})
    );
    let inputs = ["the first text to embed", "and a second one"];
    let list = expect_status(
        api.post("/v1/embeddings", Credential::Bearer(&key.key), json!({"model": "silent", "input": inputs}))
            .await?,
        200,
    )?;
    let embedded = o200k(inputs[0]) + o200k(inputs[1]);
    assert_eq!(list["usage"], json!({"prompt_tokens": embedded, "total_tokens": embedded}));
    let rows = usage_rows(&server.stop().await?.url).await?;
    assert_eq!(
        rows,
        vec![
            (200, hello_prompt(), completion, 10 * (hello_prompt() + completion), "estimated".to_owned()),
            (200, embedded, 0, 10 * embedded, "estimated".to_owned()),
        ]
    );
    Ok(())
}

async fn budgets_and_token_limits_see_counted_usage(engine: TestEngine) -> TestResult {
    let (base, _) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    let answer_cost = 10 * (hello_prompt() + o200k(ANSWER));
    // A request reserves 12 tokens (4 of prompt, by the estimate, and its 8
    // completion tokens: 120 micro-USD) and costs about 270 once counted, so
    // a 1,000 micro-USD budget answers four, then refuses; had the answers
    // been free, it never would.
    let reserved = 10 * (4 + 8);
    let mut small = hello("silent", true);
    small["max_tokens"] = json!(8);
    let budgeted = chat_key(&api, json!({"budget_usd": "0.001000"})).await?;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = reqwest::Client::new()
            .post(server.url("/v1/chat/completions"))
            .bearer_auth(&budgeted.key)
            .json(&small)
            .send()
            .await?;
        statuses.push(response.status().as_u16());
        response.bytes().await?;
    }
    let answered = statuses.iter().take_while(|s| **s == 200).count() as i64;
    assert_eq!(answered, (1_000 - reserved) / answer_cost + 1, "{statuses:?} at {answer_cost} a request");
    assert!(statuses[answered as usize..].iter().all(|s| *s == 402), "{statuses:?}");

    // A 100 tokens-per-minute key: a request needs room for its 12 reserved
    // tokens and leaves about 27 counted ones in the window, so the fifth is
    // refused.
    let owner = api.login("owner@example.com").await?;
    let org = expect_status(api.get("/v1/orgs", owner.bearer()).await?, 200)?;
    let org_id = org["data"][0]["id"].as_str().ok_or("no org")?;
    let body = json!({"name": "tpm", "scopes": ["chat"], "org_id": org_id, "tpm_limit": 100});
    let limited = expect_status(api.post("/v1/api-keys", owner.bearer(), body).await?, 201)?;
    let limited = limited["key"].as_str().ok_or("no key")?.to_owned();
    let mut answered = 0;
    let refused = loop {
        let reply = api.post("/v1/chat/completions", Credential::Bearer(&limited), {
            let mut body = hello("silent", false);
            body["max_tokens"] = json!(8);
            body
        });
        let reply = reply.await?;
        if reply.0 != 200 || answered == 10 {
            break reply;
        }
        answered += 1;
    };
    assert_error(&refused, 429, "rate_limit.exceeded");
    let per_request = hello_prompt() + o200k(ANSWER);
    assert_eq!(answered, (100 - (4 + 8)) / per_request + 1, "{per_request} tokens a request");

    let rows = usage_rows(&server.stop().await?.url).await?;
    assert!(rows.iter().filter(|row| row.0 == 200).all(|row| row.2 > 0 && row.4 == "estimated"), "{rows:?}");
    Ok(())
}

/// How an answer without usage ends.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The upstream fails half-way.
    UpstreamFails,
    /// The client reads six chunks and hangs up.
    ClientLeaves,
}

/// One streamed request ended as `cut`; its status. A client that leaves
/// waits until the upstream saw it go, so the request is settled.
async fn cut_request(
    server: &crate::support::RunningServer,
    seen: &Seen,
    key: &str,
    cut: Cut,
) -> Result<u16, BoxError> {
    let model = match cut {
        Cut::UpstreamFails => "broken",
        Cut::ClientLeaves => "slow",
    };
    let mut body = hello(model, true);
    body["max_tokens"] = json!(8);
    let response = reqwest::Client::new()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await?;
    let status = response.status().as_u16();
    if status != 200 {
        return Ok(status);
    }
    match cut {
        Cut::UpstreamFails => drop(response.bytes().await?),
        Cut::ClientLeaves => {
            let drops = seen.slow_drops.load(Ordering::SeqCst);
            let mut stream = response.bytes_stream();
            let mut received = String::new();
            while received.matches("\"word \"").count() < 6 {
                received.push_str(&String::from_utf8_lossy(&stream.next().await.ok_or("the stream ended")??));
            }
            drop(stream);
            for _ in 0..100 {
                if seen.slow_drops.load(Ordering::SeqCst) > drops {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    Ok(status)
}

async fn answers_cut_short_meet_budgets_and_token_limits(engine: TestEngine) -> TestResult {
    let (base, seen) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Metered").await?;
    for cut in [Cut::UpstreamFails, Cut::ClientLeaves] {
        // Each request reserves 120 micro-USD (12 tokens) and is charged
        // about 150 to 200 (15 to 20 tokens) once counted: a 1,000 micro-USD
        // budget and a 100 tokens-per-minute limit each stop it within ten
        // requests. Charged nothing, neither ever would.
        for (limit, refusal) in [(json!({"budget_usd": "0.001"}), 402), (json!({"tpm_limit": 100}), 429)] {
            let mut body = json!({"name": "cut", "scopes": ["chat"], "org_id": org});
            if let (Some(body), Some(limit)) = (body.as_object_mut(), limit.as_object()) {
                body.extend(limit.clone());
            }
            let key = expect_status(api.post("/v1/api-keys", owner.bearer(), body).await?, 201)?;
            let key = key["key"].as_str().ok_or("no key")?.to_owned();
            let mut statuses = Vec::new();
            while statuses.len() < 10 && statuses.last() != Some(&refusal) {
                statuses.push(cut_request(&server, &seen, &key, cut).await?);
            }
            let answered = statuses.iter().filter(|s| **s == 200).count();
            assert!(
                statuses.last() == Some(&refusal) && (2..10).contains(&answered),
                "{cut:?} with {limit}: {statuses:?}"
            );
        }
    }
    let rows = usage_rows(&server.stop().await?.url).await?;
    let answered: Vec<_> = rows.iter().filter(|row| row.0 == 502 || row.0 == 499).collect();
    assert!(!answered.is_empty());
    assert!(answered.iter().all(|row| row.2 > 0 && row.4 == "estimated"), "{rows:?}");
    Ok(())
}

/// A chat request with a session token, naming `org` in `X-Switchyard-Org`.
async fn session_chat(
    api: &Api,
    token: String,
    org: Option<String>,
) -> Result<crate::support::Reply, BoxError> {
    let headers: Vec<(&str, &str)> = org.iter().map(|org| ("x-switchyard-org", org.as_str())).collect();
    let mut body = hello("silent", false);
    body["max_tokens"] = json!(8);
    api.call_with_headers(
        reqwest::Method::POST,
        "/v1/chat/completions",
        Credential::Bearer(&token),
        Some(&body),
        &headers,
    )
    .await
}

async fn sessions_are_metered_in_the_org_they_name(engine: TestEngine) -> TestResult {
    let (base, _) = mock_upstream().await?;
    let server = start(engine, |config| configure(config, &base)).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let chat = |org: Option<String>| session_chat(&api, owner.access.clone(), org);
    // A new account with no organization cannot spend unattributed.
    assert_error(&chat(None).await?, 403, "auth.org_required");
    let org = api.create_org(&owner, "Metered").await?;
    assert_error(&chat(None).await?, 403, "auth.org_required");
    let stranger = api.register("stranger@example.com").await?;
    let strangers_org = api.create_org(&stranger, "Elsewhere").await?;
    assert_error(&chat(Some(strangers_org.clone())).await?, 404, "org.not_found");

    // Named, the session is metered as the member, under the member's cap:
    // the first answer costs about 270 micro-USD, the second would pass 300.
    let caps = json!({"member_daily_cost_cap_usd": "0.000300"});
    let path = format!("/v1/orgs/{org}");
    expect_status(api.call(reqwest::Method::PATCH, &path, owner.bearer(), Some(&caps)).await?, 200)?;
    expect_status(chat(Some(org.clone())).await?, 200)?;
    assert_error(&chat(Some(org.clone())).await?, 402, "billing.budget_exceeded");
    let report = expect_status(api.get(&format!("/v1/usage?org_id={org}"), owner.bearer()).await?, 200)?;
    assert_eq!(report["totals"]["requests"], 1);

    let database = server.stop().await?;
    let db = Db::connect(&database.url).await?;
    let rows = sqlx::query("SELECT org_id, user_id, key_id FROM usage_records").fetch_all(db.pool()).await;
    db.close().await;
    let rows = rows?;
    assert_eq!(rows.len(), 1, "refused requests leave no usage row");
    let org_id: Option<String> = rows[0].try_get("org_id")?;
    let user_id: String = rows[0].try_get("user_id")?;
    let key_id: Option<String> = rows[0].try_get("key_id")?;
    assert_eq!(
        (org_id.as_deref(), user_id.as_str(), key_id),
        (Some(org.as_str()), owner.user_id.as_str(), None)
    );
    Ok(())
}
