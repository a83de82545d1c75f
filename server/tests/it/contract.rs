//! The committed contract and the code agree (the drift check), and the
//! published files are the committed ones.

use switchyard_server::contract;

/// Fails with one line per difference. The generated spec is written to
/// `target/generated-openapi.json` to help whoever fixes the drift.
#[test]
fn committed_spec_matches_the_code() {
    let report = contract::drift_report();
    if !report.is_empty() {
        let generated = switchyard_server::api::generated_spec();
        let out = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/generated-openapi.json");
        let _ = std::fs::write(out, serde_json::to_string_pretty(&generated).unwrap_or_default());
        panic!(
            "openapi/switchyard.yaml and the code disagree ({} differences; generated spec in target/generated-openapi.json):\n{}",
            report.len(),
            report.join("\n")
        );
    }
}
