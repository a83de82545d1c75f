//! Replays every response example of the OpenAPI spec against live Switchyard servers and
//! reports what conforms. This module orchestrates: it picks the engines, starts one server
//! per distinct `x-server` setting, and runs the cases on it in spec order.
//!
//! The conventions the spec's examples follow are described in `conformance/README.md`.

mod check;
mod replay;
mod report;
mod schema;
mod servers;
mod spec;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Client;
use serde_json::{Map, Value};
use switchyard_server::harness::{POSTGRES_URL_VAR, TestEngine};

pub use report::{CaseResult, EngineRun, OperationRow, Report};

use crate::spec::{Case, Operation, Spec};

/// The committed contract.
pub const DEFAULT_SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/switchyard.yaml");

/// A request that takes longer than this is a failure, not a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Which databases to run the suite on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engines {
    Sqlite,
    /// Needs `SWITCHYARD_TEST_POSTGRES_URL`.
    Postgres,
    /// SQLite, and PostgreSQL when `SWITCHYARD_TEST_POSTGRES_URL` is set.
    All,
}

/// Replays the spec at `spec_path` on the chosen engines. Errors mean the suite could not
/// run (an unreadable spec, a server that would not stop); failing cases are in the report.
pub async fn run(spec_path: &Path, engines: Engines) -> anyhow::Result<Report> {
    let spec = Spec::load(spec_path)?;
    let shown = spec_path.canonicalize().unwrap_or_else(|_| spec_path.to_owned());
    let mut report = Report::new(shown, &spec);
    let postgres_available = std::env::var_os(POSTGRES_URL_VAR).is_some();
    let selected = match engines {
        Engines::Sqlite => vec![TestEngine::Sqlite],
        Engines::Postgres if !postgres_available => bail!("--engine postgres needs {POSTGRES_URL_VAR}"),
        Engines::Postgres => vec![TestEngine::Postgres],
        Engines::All if postgres_available => vec![TestEngine::Sqlite, TestEngine::Postgres],
        Engines::All => {
            report.skipped.push(format!("skipping PostgreSQL: {POSTGRES_URL_VAR} not set"));
            vec![TestEngine::Sqlite]
        }
    };
    let client = Client::builder().timeout(REQUEST_TIMEOUT).build().context("building the HTTP client")?;
    for engine in selected {
        let results = run_engine(&spec, engine, &client).await?;
        report.runs.push(EngineRun { engine, results });
    }
    Ok(report)
}

/// Runs every case on `engine`, one server per distinct `x-server` setting.
async fn run_engine(spec: &Spec, engine: TestEngine, client: &Client) -> anyhow::Result<Vec<CaseResult>> {
    let cases = spec
        .operations
        .iter()
        .flat_map(|operation| operation.cases.iter().map(move |case| (operation, case)));
    let mut groups: Vec<Group<'_>> = Vec::new();
    for (index, (operation, case)) in cases.enumerate() {
        let member = (index, operation, case);
        match groups.iter_mut().find(|group| *group.settings == case.server) {
            Some(group) => group.members.push(member),
            None => groups.push(Group { settings: &case.server, members: vec![member] }),
        }
    }
    let mut results = Vec::new();
    for Group { settings, members } in groups {
        match servers::start(engine, settings).await {
            Ok(server) => {
                for (index, operation, case) in members {
                    results.push((index, run_case(client, &server.base_url, operation, case).await));
                }
                server.stop().await.with_context(|| format!("stopping the {} server", engine.name()))?;
            }
            Err(reason) => {
                let settings = Value::Object(settings.clone());
                for (index, operation, case) in members {
                    let mut result = CaseResult::unreplayed(operation, case);
                    result.failures.push(format!("starting a server with x-server {settings}: {reason}"));
                    results.push((index, result));
                }
            }
        }
    }
    results.sort_by_key(|(index, _)| *index);
    Ok(results.into_iter().map(|(_, result)| result).collect())
}

/// Cases that share a server: their `x-server` settings, and each case with its place in
/// spec order.
struct Group<'a> {
    settings: &'a Map<String, Value>,
    members: Vec<(usize, &'a Operation, &'a Case)>,
}

async fn run_case(client: &Client, base_url: &str, operation: &Operation, case: &Case) -> CaseResult {
    let mut result = CaseResult::unreplayed(operation, case);
    let plan = match &case.plan {
        Ok(plan) => plan,
        Err(problem) => {
            result.failures.push(problem.clone());
            return result;
        }
    };
    match replay::replay(client, base_url, plan).await {
        Ok(reply) => {
            result.replayed = true;
            result.failures = check::check(case, plan, &reply);
        }
        Err(problem) => result.failures.push(problem),
    }
    result
}
