//! The committed contract and the code agree (the drift check), and the
//! published files are the committed ones.

use switchyard_server::contract;
use switchyard_server::testing::drift;

/// Fails with one line per difference. The generated spec is written to
/// `target/generated-openapi.json` to help whoever fixes the drift.
#[test]
fn committed_spec_matches_the_code() {
    let report = drift::drift_report().unwrap();
    if !report.is_empty() {
        let generated = switchyard_server::routes::generated_spec().unwrap();
        let out = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/generated-openapi.json");
        std::fs::write(out, serde_json::to_string_pretty(&generated).unwrap()).unwrap();
        panic!(
            "openapi/switchyard.yaml and the code disagree ({} differences; generated spec in target/generated-openapi.json):\n{}",
            report.len(),
            report.join("\n")
        );
    }
}

/// Mutates the committed spec the way a careless edit would and expects the
/// check to name each mismatch.
fn drift_after(mutate: impl FnOnce(&mut serde_json::Value)) -> Vec<String> {
    let mut spec = contract::openapi().unwrap().clone();
    mutate(&mut spec);
    drift::compare(&spec, &switchyard_server::routes::generated_spec().unwrap())
}

#[test]
fn catches_a_missing_status() {
    let report = drift_after(|spec| {
        spec["paths"]["/ready"]["get"]["responses"].as_object_mut().map(|r| r.remove("503"));
    });
    assert!(report.iter().any(|l| l.starts_with("only in code: GET /ready response 503")), "{report:#?}");
}

#[test]
fn catches_a_renamed_operation_id() {
    let report = drift_after(|spec| spec["paths"]["/v1/meta"]["get"]["operationId"] = "meta_read".into());
    assert_eq!(report, vec!["differs: GET /v1/meta operationId: spec has meta_read, code has meta_get"]);
}

#[test]
fn catches_a_changed_field_type() {
    let report = drift_after(|spec| {
        spec["components"]["schemas"]["Health"]["properties"]["uptime_seconds"]["type"] = "string".into();
    });
    assert_eq!(report.len(), 1, "{report:#?}");
    assert!(report[0].starts_with("differs: schema Health"), "{report:#?}");
}

#[test]
fn catches_a_changed_maximum() {
    let report = drift_after(|spec| {
        spec["components"]["schemas"]["Ready"]["properties"]["migrations_applied"]["maximum"] = 1000.into();
    });
    assert_eq!(report.len(), 1, "{report:#?}");
    assert!(report[0].starts_with("differs: schema Ready"), "{report:#?}");
}

#[test]
fn catches_a_missing_response_header_and_added_security() {
    let report = drift_after(|spec| {
        let get = &mut spec["paths"]["/health"]["get"];
        get["responses"]["200"]["headers"] = serde_json::json!({});
        get["security"] = serde_json::json!([{ "BearerAuth": [] }]);
    });
    assert!(
        report.iter().any(|l| l.starts_with("only in code: GET /health response 200 header x-request-id"))
    );
    assert!(report.iter().any(|l| l.starts_with("differs: GET /health security")), "{report:#?}");
}
