//! The committed contract: `openapi/switchyard.yaml` and
//! `openapi/asyncapi.yaml`, compiled into the binary. The server publishes
//! these files, not the spec it derives from its code; the drift check
//! (`testing::drift`) proves the two agree.

use std::sync::LazyLock;

use serde_json::Value;

pub const OPENAPI_YAML: &str = include_str!("../../openapi/switchyard.yaml");
pub const ASYNCAPI_YAML: &str = include_str!("../../openapi/asyncapi.yaml");

/// The committed OpenAPI document does not parse: the binary was built from a
/// broken spec, and nothing should be served from it.
#[derive(Debug, Clone, thiserror::Error)]
#[error("openapi/switchyard.yaml does not parse: {0}")]
pub struct UnreadableSpec(String);

/// The committed document and its JSON text, parsed once.
static OPENAPI: LazyLock<Result<(Value, String), UnreadableSpec>> = LazyLock::new(|| {
    let parsed: Value = serde_yaml::from_str(OPENAPI_YAML).map_err(|e| UnreadableSpec(e.to_string()))?;
    let json = serde_json::to_string_pretty(&parsed).map_err(|e| UnreadableSpec(e.to_string()))?;
    Ok((parsed, json))
});

/// The committed OpenAPI document.
pub fn openapi() -> Result<&'static Value, UnreadableSpec> {
    OPENAPI.as_ref().map(|(parsed, _)| parsed).map_err(Clone::clone)
}

/// The committed OpenAPI document serialised as JSON, as `/openapi.json` serves it.
pub fn openapi_json() -> Result<&'static str, UnreadableSpec> {
    OPENAPI.as_ref().map(|(_, json)| json.as_str()).map_err(Clone::clone)
}
