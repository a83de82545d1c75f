//! Every error comes back in the `ErrorBody` envelope with the request id:
//! routing errors, body limits, request parsing errors and panics.

use futures::stream;
use poem::test::TestClient;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, OpenApiService};
use serde_json::{Value, json};
use switchyard_server::metrics::Metrics;

use crate::support::{TestEngine, TestResult, http, start};

/// Checks `body` is the envelope with `code`, stamped with `request_id`.
fn assert_envelope(body: &Value, code: &str, request_id: &str) {
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["request_id"], request_id, "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert_eq!(body["detail"], body["error"]["message"], "{body}");
}

async fn envelope_of(
    resp: reqwest::Response,
) -> Result<(u16, Value, String), Box<dyn std::error::Error + Send + Sync>> {
    let status = resp.status().as_u16();
    let request_id = resp.headers()["x-request-id"].to_str()?.to_owned();
    assert!(resp.headers()["content-type"].to_str()?.starts_with("application/json"));
    Ok((status, resp.json().await?, request_id))
}

#[tokio::test]
async fn routing_errors_use_the_envelope() -> TestResult {
    let server = start(TestEngine::Sqlite, |_| {}).await?;
    let (status, body, id) = envelope_of(http().get(server.url("/v1/no-such-thing")).send().await?).await?;
    assert_eq!(status, 404);
    assert_envelope(&body, "request.not_found", &id);

    let (status, body, id) = envelope_of(http().delete(server.url("/health")).send().await?).await?;
    assert_eq!(status, 405);
    assert_envelope(&body, "request.method_not_allowed", &id);
    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn every_405_names_the_methods_the_path_answers() -> TestResult {
    let server = start(TestEngine::Sqlite, |_| {}).await?;
    let spec: Value = serde_yaml::from_str(switchyard_server::contract::OPENAPI_YAML)?;
    let paths = spec["paths"].as_object().ok_or("the spec has paths")?;
    let methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
    for (template, item) in paths {
        let documented: Vec<&str> =
            methods.into_iter().filter(|method| item.get(method.to_ascii_lowercase()).is_some()).collect();
        let Some(unanswered) = methods.into_iter().find(|method| !documented.contains(method)) else {
            continue;
        };
        // Any value stands in for a path parameter; routing looks no further.
        let path = template.replace('{', "x").replace('}', "");
        let method = reqwest::Method::from_bytes(unanswered.as_bytes())?;
        let resp = http().request(method, server.url(&path)).send().await?;
        let allow = resp.headers().get("allow").map(|v| v.to_str().map(str::to_owned)).transpose()?;
        let (status, body, id) = envelope_of(resp).await?;
        assert_eq!(status, 405, "{unanswered} {path}: {body}");
        assert_envelope(&body, "request.method_not_allowed", &id);
        let mut allowed: Vec<String> = allow
            .ok_or_else(|| format!("{unanswered} {path}: no Allow header"))?
            .split(", ")
            .map(str::to_owned)
            .collect();
        allowed.sort();
        let mut expected: Vec<String> = documented.iter().map(|m| (*m).to_owned()).collect();
        expected.sort();
        assert_eq!(allowed, expected, "{unanswered} {path}");
    }
    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn request_ids_are_honoured_when_well_formed() -> TestResult {
    let server = start(TestEngine::Sqlite, |_| {}).await?;
    let resp = http().get(server.url("/nope")).header("x-request-id", "client-trace-42").send().await?;
    let (_, body, id) = envelope_of(resp).await?;
    assert_eq!(id, "client-trace-42");
    assert_envelope(&body, "request.not_found", "client-trace-42");

    let resp = http().get(server.url("/health")).header("x-request-id", "bad id with spaces").send().await?;
    assert!(resp.headers()["x-request-id"].to_str()?.starts_with("req_"));
    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn oversized_bodies_are_413_whether_declared_or_streamed() -> TestResult {
    let server = start(TestEngine::Sqlite, |config| config.max_body_bytes = 1024).await?;
    let declared = http().post(server.url("/v1/meta")).body(vec![b'x'; 4096]).send().await?;
    let (status, body, id) = envelope_of(declared).await?;
    assert_eq!(status, 413);
    assert_envelope(&body, "request.too_large", &id);

    // Chunked, with no Content-Length: cut off on the bytes actually read.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..8).map(|_| Ok(vec![b'x'; 512])).collect();
    let streamed = http()
        .post(server.url("/v1/meta"))
        .body(reqwest::Body::wrap_stream(stream::iter(chunks)))
        .send()
        .await?;
    assert!(streamed.headers().get("content-length").is_none() || streamed.status() == 413);
    let (status, body, id) = envelope_of(streamed).await?;
    assert_eq!(status, 413);
    assert_envelope(&body, "request.too_large", &id);

    // Under the limit, the request goes on to routing (405: meta is GET-only).
    let small = http().post(server.url("/v1/meta")).body(vec![b'x'; 100]).send().await?;
    assert_eq!(small.status(), 405);
    server.stop().await?;
    Ok(())
}

/// A JSON endpoint and a panicking one behind the real middleware stack, to
/// exercise what the operational endpoints (which take no body) cannot.
struct ProbeApi;

#[derive(Object)]
struct Echo {
    text: String,
}

#[OpenApi]
impl ProbeApi {
    #[oai(path = "/echo", method = "post")]
    async fn echo(&self, body: Json<Echo>) -> Json<Value> {
        Json(json!({ "text": body.0.text }))
    }

    #[oai(path = "/panic", method = "get")]
    async fn panic(&self) -> Json<Value> {
        panic!("probe panic")
    }
}

fn probe_client() -> Result<TestClient<poem::endpoint::BoxEndpoint<'static>>, prometheus::Error> {
    let routes = poem::Route::new().nest("/", OpenApiService::new(ProbeApi, "probe", "1"));
    let limiter = std::sync::Arc::new(switchyard_server::limits::CredentialLimiter::new(
        switchyard_server::limits::Limit::per_minute(100),
        100,
    ));
    Ok(TestClient::new(switchyard_server::http::stack(
        routes,
        1024,
        &Metrics::new()?,
        limiter,
        Default::default(),
        Default::default(),
    )))
}

async fn probe_envelope(resp: poem::test::TestResponse) -> (u16, Value, String) {
    let status = resp.0.status().as_u16();
    let id =
        resp.0.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = resp.0.into_body().into_json::<Value>().await.unwrap_or_default();
    (status, body, id)
}

#[tokio::test]
async fn malformed_json_and_wrong_media_types_use_the_envelope() -> TestResult {
    let client = probe_client()?;
    let ok = client.post("/echo").content_type("application/json").body(r#"{"text":"hi"}"#).send().await;
    ok.assert_status_is_ok();

    let (status, body, id) =
        probe_envelope(client.post("/echo").content_type("application/json").body("{not json").send().await)
            .await;
    assert_eq!(status, 400);
    assert_envelope(&body, "request.malformed", &id);

    let (status, body, id) = probe_envelope(
        client.post("/echo").content_type("application/json").body(r#"{"text": [5]}"#).send().await,
    )
    .await;
    assert_eq!(status, 400);
    assert_envelope(&body, "request.malformed", &id);

    let (status, body, id) =
        probe_envelope(client.post("/echo").content_type("text/plain").body("hi").send().await).await;
    assert_eq!(status, 415);
    assert_envelope(&body, "request.unsupported_media_type", &id);
    Ok(())
}

#[tokio::test]
async fn panics_become_a_logged_500_in_the_envelope() -> TestResult {
    let client = probe_client()?;
    let (status, body, id) = probe_envelope(client.get("/panic").send().await).await;
    assert_eq!(status, 500);
    assert_envelope(&body, "server.internal", &id);
    assert!(!body.to_string().contains("probe panic"), "panic text must not leak: {body}");
    Ok(())
}

/// No store can hold U+0000: it is refused in URLs and JSON bodies alike,
/// on both engines, before any handler runs.
#[tokio::test]
async fn nul_characters_are_refused_wherever_they_are_sent() -> TestResult {
    let server = start(TestEngine::Sqlite, |_| {}).await?;
    let resp = http().get(server.url("/v1/orgs/org_%00")).send().await?;
    let (status, body, id) = envelope_of(resp).await?;
    assert_eq!(status, 400);
    assert_envelope(&body, "request.malformed", &id);
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("NUL")), "{body}");

    let resp = http()
        .post(server.url("/v1/auth/register"))
        .header("content-type", "application/json")
        .body(r#"{"email":"ada@example.com","password":"correct horse battery staple","display_name":"Ada\u0000"}"#)
        .send()
        .await?;
    let (status, body, id) = envelope_of(resp).await?;
    assert_eq!(status, 400);
    assert_envelope(&body, "request.malformed", &id);
    server.stop().await?;
    Ok(())
}
