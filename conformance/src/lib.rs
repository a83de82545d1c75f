//! Replays every response example of the OpenAPI spec against live Switchyard servers and
//! reports what conforms. This module orchestrates: it picks the engines (run side by side)
//! and runs each case on its own server (with the case's `x-server` settings) and fresh
//! database, a few at a time, reporting them in spec order.
//!
//! The conventions the spec's examples follow are described in `conformance/README.md`.

mod check;
mod outbox;
mod replay;
mod report;
mod schema;
mod servers;
mod spec;
mod totp;
mod upstreams;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use reqwest::Client;
use serde_json::Value;
use switchyard_server::testing::harness::{POSTGRES_URL_VAR, TestEngine};

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
    // The engines run side by side; each runs its cases several at a time.
    let runs = selected.into_iter().map(|engine| {
        let (spec, client) = (&spec, &client);
        async move {
            Ok::<_, anyhow::Error>(EngineRun { engine, results: run_engine(spec, engine, client).await? })
        }
    });
    report.runs = futures::future::try_join_all(runs).await?;
    Ok(report)
}

/// How many cases of one engine replay at once. Every case has its own server and
/// database, so they cannot see each other; the report keeps spec order. A case
/// mostly waits (a fresh database, its migrations, the server's start), so more
/// than the cores: eight replay the PostgreSQL cases in 2 minutes rather than
/// 2.6 on two cores.
const CASES_AT_ONCE: usize = 8;

/// Runs every case on `engine`, each on its own server and fresh database so no case
/// depends on what another left behind; the results come back in spec order.
async fn run_engine(spec: &Spec, engine: TestEngine, client: &Client) -> anyhow::Result<Vec<CaseResult>> {
    let cases = spec
        .operations
        .iter()
        .flat_map(|operation| operation.cases.iter().map(move |case| (operation, case)));
    futures::stream::iter(cases)
        .map(|(operation, case)| run_on_own_server(engine, client, operation, case))
        .buffered(CASES_AT_ONCE)
        .try_collect()
        .await
}

/// Starts a server for `case`, replays it and stops the server.
async fn run_on_own_server(
    engine: TestEngine,
    client: &Client,
    operation: &Operation,
    case: &Case,
) -> anyhow::Result<CaseResult> {
    match servers::start(engine, &case.server).await {
        Ok(server) => {
            let target = replay::Target { base_url: &server.base_url, database_url: &server.database.url };
            let result = run_case(client, &target, operation, case).await;
            server.stop().await.with_context(|| format!("stopping the {} server", engine.name()))?;
            Ok(result)
        }
        Err(reason) => {
            let mut result = CaseResult::unreplayed(operation, case);
            let settings = Value::Object(case.server.clone());
            result.failures.push(format!("starting a server with x-server {settings}: {reason}"));
            Ok(result)
        }
    }
}

async fn run_case(
    client: &Client,
    target: &replay::Target<'_>,
    operation: &Operation,
    case: &Case,
) -> CaseResult {
    let mut result = CaseResult::unreplayed(operation, case);
    let plan = match &case.plan {
        Ok(plan) => plan,
        Err(problem) => {
            result.failures.push(problem.clone());
            return result;
        }
    };
    match replay::replay(client, target, plan).await {
        Ok(reply) => {
            result.replayed = true;
            result.failures = check::check(case, plan, &reply);
        }
        Err(problem) => result.failures.push(problem),
    }
    result
}
