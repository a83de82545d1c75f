//! The server publishes the committed contract, not the spec it generates.

use serde_json::Value;
use switchyard_server::contract;

use crate::support::{TestEngine, TestResult, http, start};

#[tokio::test]
async fn serves_the_committed_specs_and_docs() -> TestResult {
    let server = start(TestEngine::Sqlite, |_| {}).await?;

    let json = http().get(server.url("/openapi.json")).send().await?;
    assert!(json.headers()["content-type"].to_str()?.starts_with("application/json"));
    let json = json.text().await?;
    assert_eq!(json, contract::openapi_json()?, "byte-for-byte the committed spec as JSON");
    let committed: Value = serde_yaml::from_str(&std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../openapi/switchyard.yaml"
    ))?)?;
    assert_eq!(serde_json::from_str::<Value>(&json)?, committed);

    let yaml = http().get(server.url("/openapi.yaml")).send().await?.text().await?;
    assert_eq!(yaml, contract::OPENAPI_YAML);
    let asyncapi = http().get(server.url("/asyncapi.yaml")).send().await?.text().await?;
    assert_eq!(asyncapi, contract::ASYNCAPI_YAML);

    let docs = http().get(server.url("/docs")).send().await?;
    assert!(docs.headers()["content-type"].to_str()?.starts_with("text/html"));
    let docs = docs.text().await?;
    assert!(docs.contains(contract::openapi_json()?), "the docs page embeds the committed spec");
    assert!(docs.contains("SwaggerUIBundle"));
    assert!(
        !docs.contains("<script src=\"http") && !docs.contains("<link rel=\"stylesheet\" href=\"http"),
        "no CDN"
    );
    server.stop().await?;
    Ok(())
}

#[test]
fn asyncapi_document_is_valid_asyncapi_3() -> TestResult {
    let schema: Value =
        serde_json::from_str(include_str!("../../../openapi/vendor/asyncapi-3.0.0.schema.json"))?;
    let validator = jsonschema::draft7::new(&schema)?;
    let doc: Value = serde_yaml::from_str(contract::ASYNCAPI_YAML)?;
    let errors: Vec<String> =
        validator.iter_errors(&doc).map(|e| format!("{}: {e}", e.instance_path())).collect();
    assert!(errors.is_empty(), "openapi/asyncapi.yaml is not valid AsyncAPI 3.0:\n{}", errors.join("\n"));

    // The validator is not vacuous: a broken document fails.
    let mut broken = doc.clone();
    broken["info"] = Value::Null;
    assert!(!validator.is_valid(&broken));
    Ok(())
}

#[test]
fn openapi_document_is_valid_openapi_3_0() -> TestResult {
    let schema: Value =
        serde_json::from_str(include_str!("../../../openapi/vendor/openapi-3.0.schema.json"))?;
    let validator = jsonschema::draft4::new(&schema)?;
    let errors: Vec<String> =
        validator.iter_errors(contract::openapi()?).map(|e| format!("{}: {e}", e.instance_path())).collect();
    assert!(errors.is_empty(), "openapi/switchyard.yaml is not valid OpenAPI 3.0:\n{}", errors.join("\n"));
    assert!(contract::openapi()?["openapi"].as_str().is_some_and(|v| v.starts_with("3.0.")));

    let mut broken = contract::openapi()?.clone();
    broken["paths"]["/health"]["get"]["responses"] = Value::Null;
    assert!(!validator.is_valid(&broken));
    Ok(())
}
