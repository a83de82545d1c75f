//! The committed spec replays cleanly on SQLite (and PostgreSQL when
//! `SWITCHYARD_TEST_POSTGRES_URL` is set); edited copies show that the conventions work and
//! that disagreements fail.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::{Value, json};
use switchyard_conformance::{DEFAULT_SPEC, Engines, Report, run};

#[tokio::test]
async fn every_example_in_the_spec_conforms() -> anyhow::Result<()> {
    let report = run(Path::new(DEFAULT_SPEC), Engines::All).await?;
    assert!(report.passed(), "{report}");
    println!("{report}");
    Ok(())
}

#[tokio::test]
async fn a_wrong_example_and_a_missing_one_fail() -> anyhow::Result<()> {
    let report = run_edited("wrong", |doc| {
        let responses = doc
            .pointer_mut("/paths/~1health/get/responses")
            .and_then(Value::as_object_mut)
            .context("no GET /health responses")?;
        responses.insert("418".to_owned(), json!({ "description": "Never answered." }));
        *pointer(
            doc,
            "/paths/~1health/get/responses/200/content/application~1json/examples/ok/value/status",
        )? = json!("fine");
        Ok(())
    })
    .await?;
    let shown = report.to_string();
    assert!(shown.contains("missing example for health_get 418"), "{shown}");
    assert!(shown.contains(r#"/status: "ok", expected "fine""#), "{shown}");
    assert!(shown.contains("conformance: FAILED"), "{shown}");
    Ok(())
}

#[tokio::test]
async fn setup_steps_capture_values_that_requests_use() -> anyhow::Result<()> {
    let report = run_edited("setup", |doc| {
        let example =
            pointer(doc, "/paths/~1ready/get/responses/200/content/application~1json/examples/ready")?;
        let example = example.as_object_mut().context("the `ready` example is not a map")?;
        example.insert(
            "x-setup".to_owned(),
            json!([{ "operation": "health_get", "example": "ok", "capture": { "status": "/status" } }]),
        );
        example.insert(
            "x-request".to_owned(),
            json!({ "headers": { "X-Request-Id": "probe-{{status}}" }, "query": { "from": "{{status}}" } }),
        );
        Ok(())
    })
    .await?;
    let ready = report
        .runs
        .iter()
        .flat_map(|run| &run.results)
        .find(|result| result.operation_id == "ready_get" && result.example == "ready")
        .context("no result for ready_get `ready`")?;
    assert!(ready.passed(), "{report}");
    Ok(())
}

/// Runs the suite on SQLite against a copy of the committed spec changed by `edit`.
async fn run_edited(
    name: &str,
    edit: impl FnOnce(&mut Value) -> anyhow::Result<()>,
) -> anyhow::Result<Report> {
    let mut doc: Value = serde_yaml::from_str(&std::fs::read_to_string(DEFAULT_SPEC)?)?;
    edit(&mut doc)?;
    let path: PathBuf =
        std::env::temp_dir().join(format!("switchyard-conformance-{name}-{}.yaml", std::process::id()));
    std::fs::write(&path, serde_yaml::to_string(&doc)?)?;
    let report = run(&path, Engines::Sqlite).await;
    std::fs::remove_file(&path)?;
    report
}

fn pointer<'a>(doc: &'a mut Value, at: &str) -> anyhow::Result<&'a mut Value> {
    doc.pointer_mut(at).with_context(|| format!("the spec has nothing at {at}"))
}
