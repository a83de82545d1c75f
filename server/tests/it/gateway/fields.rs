//! What reaches a provider, and what a request reserves: fields that could
//! change the price are refused unless the operator lets them through, and
//! tool definitions, arguments and images count toward the reservation.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use poem::web::{Data, Json};
use poem::{EndpointExt, Response, Route, handler};
use serde_json::{Value, json};
use switchyard_server::Config;
use switchyard_server::gateway::config::{
    PriceConfig, ProviderConfig, ProviderKind, RouteConfig, TargetConfig,
};

use super::chat_key;
use crate::support::{
    Api, BoxError, Credential, TestEngine, TestResult, assert_error, expect_status, on_both_engines,
    serve_mock, start,
};

on_both_engines!(
    fields_that_change_the_price_are_refused_unless_allowed,
    tool_definitions_arguments_and_images_are_reserved,
);

type Recorded = Arc<Mutex<Vec<Value>>>;

/// Answers every chat request and keeps its body.
#[handler]
fn recording(Json(request): Json<Value>, seen: Data<&Recorded>) -> Response {
    seen.lock().unwrap_or_else(|e| e.into_inner()).push(request);
    let completion = json!({
        "id": "chatcmpl-mock", "object": "chat.completion", "created": 1, "model": "mock-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}
    });
    Response::builder().content_type("application/json").body(completion.to_string())
}

/// Routes `strict` (no extra fields allowed) and `tiered` (its provider lets
/// `service_tier` through), both over the recording mock at ten USD per
/// million tokens.
async fn configure_server(engine: TestEngine) -> Result<(crate::support::RunningServer, Recorded), BoxError> {
    let seen = Recorded::default();
    let base =
        serve_mock(Route::new().at("/v1/chat/completions", poem::post(recording)).data(seen.clone())).await?;
    let server = start(engine, |config: &mut Config| {
        let provider = |pass_through: &[&str]| ProviderConfig {
            kind: ProviderKind::Openai,
            base_url: Some(format!("{base}/v1")),
            api_key_env: None,
            pass_through: pass_through.iter().map(|f| (*f).to_owned()).collect(),
            delay_ms: None,
        };
        config.providers = BTreeMap::from([
            ("strict".to_owned(), provider(&[])),
            ("tiered".to_owned(), provider(&["service_tier"])),
        ]);
        config.routes = ["strict", "tiered"]
            .iter()
            .map(|name| RouteConfig {
                name: (*name).to_owned(),
                targets: vec![TargetConfig { provider: (*name).to_owned(), model: "mock-model".to_owned() }],
                tokenizer: None,
            })
            .collect();
        let price = PriceConfig { input_per_mtok: "10.00".to_owned(), output_per_mtok: "10.00".to_owned() };
        config.prices = BTreeMap::from([("mock-model".to_owned(), price)]);
    })
    .await?;
    Ok((server, seen))
}

fn hello(model: &str, extra: Value) -> Value {
    let mut body =
        json!({"model": model, "max_tokens": 5, "messages": [{"role": "user", "content": "Hello"}]});
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

async fn fields_that_change_the_price_are_refused_unless_allowed(engine: TestEngine) -> TestResult {
    let (server, seen) = configure_server(engine).await?;
    let api = Api::new(&server);
    let key = chat_key(&api, json!({})).await?;
    let chat = |body: Value| api.post("/v1/chat/completions", Credential::Bearer(&key.key), body);
    for (field, value) in [
        ("service_tier", json!("priority")),
        ("store", json!(true)),
        ("plugins", json!([{"id": "web"}])),
        ("models", json!(["openai/gpt-4o", "anthropic/claude-opus-4"])),
        ("provider", json!({"order": ["expensive"]})),
    ] {
        let refused = chat(hello("strict", json!({ field: value }))).await?;
        assert_error(&refused, 400, "gateway.unsupported_parameter");
        assert_eq!(refused.1["error"]["param"], field);
    }
    assert!(
        seen.lock().unwrap_or_else(|e| e.into_inner()).is_empty(),
        "a refused request reached the upstream"
    );

    // Known-safe fields pass; the operator's pass_through opens one more.
    let safe = json!({"parallel_tool_calls": false, "presence_penalty": 0.5, "logprobs": true});
    expect_status(chat(hello("strict", safe.clone())).await?, 200)?;
    expect_status(chat(hello("tiered", json!({"service_tier": "flex"}))).await?, 200)?;
    assert_error(&chat(hello("tiered", json!({"store": true}))).await?, 400, "gateway.unsupported_parameter");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (field, value) in safe.as_object().into_iter().flatten() {
        assert_eq!(&seen[0][field], value);
    }
    assert_eq!(seen[1]["service_tier"], "flex");
    assert_eq!(seen[0]["model"], "mock-model");
    Ok(())
}

async fn tool_definitions_arguments_and_images_are_reserved(engine: TestEngine) -> TestResult {
    let (server, _) = configure_server(engine).await?;
    let api = Api::new(&server);
    // 2,000 micro-USD at 10 a token: room for 200 tokens.
    let key = chat_key(&api, json!({"budget_usd": "0.002"})).await?;
    let chat = |body: Value| api.post("/v1/chat/completions", Credential::Bearer(&key.key), body);
    // A small request reserves 8 tokens and fits.
    expect_status(chat(hello("strict", json!({}))).await?, 200)?;

    // About 800 characters of tool description, 800 of call arguments
    // (200 tokens at 4 characters a token), one image (1,445 tokens by
    // OpenAI's rule): each alone reserves more than the budget has left.
    let description = "Looks a city's weather up. ".repeat(30);
    let tools = json!({"tools": [{"type": "function", "function": {"name": "weather", "description": description,
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]});
    let arguments = json!({"city": "x".repeat(800)}).to_string();
    let call = json!({"messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}
    ]});
    let image = json!({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    ]}]});
    for heavy in [tools, call, image] {
        let refused = chat(hello("strict", heavy.clone())).await?;
        assert_error(&refused, 402, "billing.budget_exceeded");
    }
    // With low detail, the image reserves 85 tokens and fits.
    let low = json!({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
    ]}]});
    expect_status(chat(hello("strict", low)).await?, 200)?;
    Ok(())
}
