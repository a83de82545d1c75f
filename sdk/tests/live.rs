//! The generated SDK against a live server: typed successes and a typed error.

use switchyard_sdk::types::{ErrorCode, HealthStatus, ReadyStatus};
use switchyard_sdk::{Credential, Error, connect};
use switchyard_server::harness::{RunningServer, TestDatabase, TestEngine};

#[tokio::test]
async fn calls_the_operational_endpoints() -> Result<(), Box<dyn std::error::Error>> {
    let server = RunningServer::start(TestDatabase::create(TestEngine::Sqlite).await?, |_| {}).await?;
    let client = connect(&server.base_url, Credential::None)?;

    let health = client.health_get().send().await?;
    assert_eq!(health.status, HealthStatus::Ok);

    let ready = client.ready_get().send().await?;
    assert_eq!(ready.status, ReadyStatus::Ready);
    assert!(ready.migrations_applied >= 1);

    let meta = client.meta_get().send().await?;
    assert_eq!(meta.name, "switchyard");
    assert_eq!(meta.version, env!("CARGO_PKG_VERSION"));
    assert!(meta.deployment_id.starts_with("dep_"), "{}", meta.deployment_id);
    assert!(meta.headers().contains_key("x-request-id"));

    server.stop().await?;
    Ok(())
}

#[tokio::test]
async fn reports_errors_as_typed_error_bodies() -> Result<(), Box<dyn std::error::Error>> {
    let database = TestDatabase::create(TestEngine::Sqlite).await?;
    let server = RunningServer::start(database, |config| config.auto_migrate = false).await?;
    let client = connect(&server.base_url, Credential::None)?;

    match client.ready_get().send().await {
        Err(Error::ErrorResponse(response)) => {
            assert_eq!(response.status().as_u16(), 503);
            assert_eq!(response.error.code, ErrorCode::ServerNotReady);
            assert!(response.error.request_id.starts_with("req_"));
            assert_eq!(response.detail, response.error.message);
        }
        other => panic!("expected a typed 503, got {other:?}"),
    }

    server.stop().await?;
    Ok(())
}
