//! Prometheus metrics of the model gateway: requests, tokens and timings by
//! route and provider, and nothing left in flight once streams end.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use serde_json::{Value, json};
use switchyard_server::gateway::config::{ProviderConfig, ProviderKind, RouteConfig, TargetConfig};

use crate::support::{Api, BoxError, Credential, TestEngine, TestResult, expect_status, http, start};

/// A series as `name{label="value",…}` with its labels sorted, so it reads
/// the same whatever order the labels are written in.
fn series(name: &str, labels: &[(&str, &str)]) -> String {
    let mut labels: Vec<String> =
        labels.iter().map(|(label, value)| format!("{label}=\"{value}\"")).collect();
    labels.sort();
    if labels.is_empty() { name.to_owned() } else { format!("{name}{{{}}}", labels.join(",")) }
}

/// The samples of a Prometheus text exposition by [`series`]; label values
/// holding commas or escapes are not expected.
fn samples(text: &str) -> Result<HashMap<String, f64>, BoxError> {
    let mut samples = HashMap::new();
    for line in text.lines().filter(|line| !line.starts_with('#') && !line.trim().is_empty()) {
        let (written, value) = line.rsplit_once(' ').ok_or_else(|| format!("not a sample: {line}"))?;
        let (name, labels) = match written.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (written, ""),
        };
        let labels: Vec<(&str, &str)> = labels
            .split(',')
            .filter_map(|pair| pair.split_once('='))
            .map(|(label, value)| (label, value.trim_matches('"')))
            .collect();
        samples.insert(series(name, &labels), value.parse()?);
    }
    Ok(samples)
}

/// Prompt and completion tokens of a usage object.
fn tokens(usage: &Value) -> Result<(u64, u64), BoxError> {
    let count = |field: &str| usage[field].as_u64().ok_or_else(|| format!("no {field} in {usage}"));
    Ok((count("prompt_tokens")?, count("completion_tokens")?))
}

#[tokio::test]
async fn gateway_requests_tokens_and_timings_are_counted() -> TestResult {
    let server = start(TestEngine::Sqlite, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Metrics").await?;
    let key = api.mint_key(&owner, &org, &["chat"]).await?;
    let messages = json!([{"role": "user", "content": "Hello there, metrics"}]);

    let answer = expect_status(
        api.post(
            "/v1/chat/completions",
            Credential::Bearer(&key.key),
            json!({"model": "default", "messages": messages}),
        )
        .await?,
        200,
    )?;
    let (mut prompt, mut completion) = tokens(&answer["usage"])?;

    let response = http()
        .post(server.url("/v1/chat/completions"))
        .bearer_auth(&key.key)
        .json(&json!({
            "model": "default", "stream": true, "stream_options": {"include_usage": true}, "messages": messages,
        }))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        body.extend_from_slice(&chunk?);
    }
    let body = String::from_utf8(body)?;
    assert!(body.ends_with("data: [DONE]\n\n"), "{body}");
    let usage = body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .find_map(|chunk| chunk.get("usage").filter(|usage| !usage.is_null()).cloned())
        .ok_or("the stream reported no usage")?;
    let (stream_prompt, stream_completion) = tokens(&usage)?;
    prompt += stream_prompt;
    completion += stream_completion;
    assert!(prompt > 0 && completion > 0);

    let text = http().get(server.url("/metrics")).send().await?.error_for_status()?.text().await?;
    let samples = samples(&text)?;
    let at = |name: &str, labels: &[(&str, &str)]| -> Result<f64, BoxError> {
        let series = series(name, labels);
        samples.get(&series).copied().ok_or_else(|| format!("no sample {series} in\n{text}").into())
    };
    let (route, provider) = (("route", "default"), ("provider", "dev"));
    let ok = ("status", "200");
    assert_eq!(at("switchyard_gateway_requests_total", &[route, provider, ok])?, 2.0);
    let reported = ("usage", "reported");
    assert_eq!(
        at("switchyard_gateway_tokens_total", &[route, provider, ("kind", "prompt"), reported])?,
        prompt as f64
    );
    assert_eq!(
        at("switchyard_gateway_tokens_total", &[route, provider, ("kind", "completion"), reported])?,
        completion as f64
    );
    // The built-in provider is free.
    assert_eq!(at("switchyard_gateway_cost_micro_usd_total", &[route, provider])?, 0.0);
    assert_eq!(at("switchyard_gateway_in_flight_requests", &[])?, 0.0);
    assert_eq!(at("switchyard_gateway_upstream_seconds_count", &[route, provider])?, 2.0);
    assert_eq!(at("switchyard_gateway_overhead_seconds_count", &[route])?, 2.0);
    assert_eq!(at("switchyard_gateway_overhead_seconds_bucket", &[route, ("le", "+Inf")])?, 2.0);
    // Only the stream has a first token.
    assert_eq!(at("switchyard_gateway_time_to_first_token_seconds_count", &[route, provider])?, 1.0);
    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn a_request_no_provider_answered_is_counted_without_one() -> TestResult {
    let server = start(TestEngine::Sqlite, |config| {
        // Nothing listens on port 1: every attempt is refused.
        config.providers = BTreeMap::from([(
            "down".to_owned(),
            ProviderConfig {
                kind: ProviderKind::Openai,
                base_url: Some("http://127.0.0.1:1/v1".to_owned()),
                api_key_env: None,
                pass_through: Vec::new(),
                delay_ms: None,
            },
        )]);
        config.routes = vec![RouteConfig {
            name: "broken".to_owned(),
            targets: vec![TargetConfig { provider: "down".to_owned(), model: "m".to_owned() }],
            tokenizer: None,
        }];
        config.gateway.retry_backoff_ms = 1;
    })
    .await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Metrics").await?;
    let key = api.mint_key(&owner, &org, &["chat"]).await?;
    let request = json!({"model": "broken", "messages": [{"role": "user", "content": "Hello"}]});
    let (status, body) = api.post("/v1/chat/completions", Credential::Bearer(&key.key), request).await?;
    assert!(status >= 500, "{status} {body}");

    let text = http().get(server.url("/metrics")).send().await?.error_for_status()?.text().await?;
    let samples = samples(&text)?;
    let status = status.to_string();
    let failed = series(
        "switchyard_gateway_requests_total",
        &[("route", "broken"), ("provider", "none"), ("status", &status)],
    );
    assert_eq!(samples.get(&failed).copied(), Some(1.0), "{failed} in\n{text}");
    assert_eq!(samples.get("switchyard_gateway_in_flight_requests").copied(), Some(0.0), "{text}");
    // Nothing answered: no tokens and no timings.
    for name in ["switchyard_gateway_tokens_total", "switchyard_gateway_upstream_seconds_count"] {
        assert!(!samples.keys().any(|series| series.starts_with(name)), "{name} in\n{text}");
    }
    server.stop().await?;
    Ok(())
}
