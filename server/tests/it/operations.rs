//! `/health`, `/ready` and `/v1/meta` on a live server, on both engines.

use serde_json::Value;
use switchyard_server::db::Db;

use crate::support::{TestEngine, TestResult, http, on_both_engines, start};

on_both_engines!(
    health_ready_and_meta_answer,
    ready_is_503_until_migrations_are_applied,
    meta_needs_a_migrated_database,
    metrics_count_requests_by_operation_and_status,
);

async fn health_ready_and_meta_answer(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    for (path, expected) in [("/health", "ok"), ("/ready", "ready")] {
        let resp = http().get(server.url(path)).send().await?;
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.headers()["x-request-id"].to_str()?.starts_with("req_"));
        assert!(resp.headers()["content-type"].to_str()?.starts_with("application/json"));
        let body: Value = resp.json().await?;
        assert_eq!(body["status"], expected, "{path}: {body}");
    }
    let meta: Value = http().get(server.url("/v1/meta")).send().await?.error_for_status()?.json().await?;
    assert_eq!(meta["name"], "switchyard");
    assert_eq!(meta["version"], switchyard_server::VERSION);
    assert!(meta["deployment_id"].as_str().is_some_and(|id| id.starts_with("dep_")), "{meta}");
    assert!(meta["features"].as_array().is_some_and(|f| f.contains(&Value::from("operations"))), "{meta}");
    server.stop().await?;
    Ok(())
}

async fn ready_is_503_until_migrations_are_applied(engine: TestEngine) -> TestResult {
    let server = start(engine, |config| config.auto_migrate = false).await?;
    let resp = http().get(server.url("/ready")).send().await?;
    assert_eq!(resp.status(), 503);
    let request_id = resp.headers()["x-request-id"].to_str()?.to_owned();
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "server.not_ready");
    assert_eq!(body["error"]["request_id"], request_id.as_str());
    assert!(body["error"]["fix"].as_str().is_some_and(|fix| fix.contains("switchyard migrate")), "{body}");

    // The health probe does not depend on the database.
    assert_eq!(http().get(server.url("/health")).send().await?.status(), 200);

    // Migrating from outside (as `switchyard migrate` does) makes it ready.
    let db = Db::connect(&server.database.url).await?;
    db.migrate().await?;
    db.close().await;
    assert_eq!(http().get(server.url("/ready")).send().await?.status(), 200);
    server.stop().await?;
    Ok(())
}

async fn meta_needs_a_migrated_database(engine: TestEngine) -> TestResult {
    let server = start(engine, |config| config.auto_migrate = false).await?;
    let resp = http().get(server.url("/v1/meta")).send().await?;
    assert_eq!(resp.status(), 503);
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "server.not_ready");
    server.stop().await?;
    Ok(())
}

async fn metrics_count_requests_by_operation_and_status(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    http().get(server.url("/health")).send().await?;
    http().get(server.url("/health")).send().await?;
    http().get(server.url("/nope")).send().await?;
    let resp = http().get(server.url("/metrics")).send().await?;
    assert!(resp.headers()["content-type"].to_str()?.starts_with("text/plain"));
    let text = resp.text().await?;
    assert!(
        text.contains(r#"switchyard_http_requests_total{operation="health_get",status="200"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"switchyard_http_requests_total{operation="undocumented",status="404"} 1"#),
        "{text}"
    );
    assert!(text.contains(
        r#"switchyard_http_request_duration_seconds_bucket{operation="health_get",status="200",le="#
    ));
    server.stop().await?;
    Ok(())
}
