//! The committed contract: `openapi/switchyard.yaml` and
//! `openapi/asyncapi.yaml`, compiled into the binary. The server publishes
//! these files, not the spec it derives from its code; [`drift`] proves the
//! two agree.

pub mod drift;

use std::sync::LazyLock;

pub const OPENAPI_YAML: &str = include_str!("../../../openapi/switchyard.yaml");
pub const ASYNCAPI_YAML: &str = include_str!("../../../openapi/asyncapi.yaml");

/// The committed OpenAPI document as JSON, parsed once.
pub static OPENAPI: LazyLock<serde_json::Value> =
    LazyLock::new(|| serde_yaml::from_str(OPENAPI_YAML).unwrap_or_default());

/// The committed OpenAPI document serialised as JSON, as `/openapi.json` serves it.
pub static OPENAPI_JSON: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&*OPENAPI).unwrap_or_default());

/// Drift between the committed spec and the one generated from the code, one
/// line per difference; empty when they agree.
pub fn drift_report() -> Vec<String> {
    drift::compare(&OPENAPI, &crate::api::generated_spec())
}
