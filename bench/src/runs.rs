//! `cargo xtask bench runs`: a 3-step agent run (the built-in `dev` model
//! calls `calculate`, then answers with its result) through `POST /v1/runs`,
//! by one client (the latency of a run) and by 50 concurrent clients (the
//! throughput), on SQLite and on PostgreSQL; each answer is checked to be 201
//! with the run `completed`, and the server's memory and CPU are sampled
//! during each measured part.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use sqlx::{Connection, Executor};

use super::Paths;
use super::doc::{self, Part};
use super::gateway::fresh_dir;
use super::load::{Loader, Outcome, Request};
use super::oha::Figures;
use super::report::{target_line, thousands, times};
use super::server::{self, Server, UNLIMITED_KEY};
use super::usage::{Sampler, Usage};

const WARM_UP: Duration = Duration::from_secs(2);
const RUN: Duration = Duration::from_secs(10);
/// The loads each engine is measured under: one client, then 50.
const LOADS: [usize; 2] = [1, 50];

const BODY: &str = r#"{"messages":[{"role":"user","content":"calculate {\"expression\": \"6 * 7\"}"}],"tools":["calculate"]}"#;

/// The PostgreSQL server (without a database) the bench creates its
/// database on, and drops it from after; trust auth by default.
const POSTGRES_VAR: &str = "SWITCHYARD_BENCH_POSTGRES_URL";
const POSTGRES_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432";

const TARGET_P50_MS: f64 = 5.0;
const TARGET_P99_MS: f64 = 20.0;
const TARGET_RPS: f64 = 500.0;

pub const PART: Part = Part {
    name: "runs",
    command: "cargo xtask bench runs",
    heading: "### Latest run",
    intro: "\
## Agent runs

`cargo xtask bench runs` measures a whole agent run through `POST /v1/runs`,
and prints the table below; each run replaces the \"Latest run\" section under
this heading (the gateway's is left as it is).

How it measures:

- **Run**: the user message `calculate {\"expression\": \"6 * 7\"}` with
  `\"tools\": [\"calculate\"]` on the built-in `dev` model, in the
  foreground: three journaled steps (the model calls `calculate`, the
  tool answers 42, the model answers with it), each written to the database
  before the next begins. A good answer is 201 with `status: completed`;
  anything else, or a failed request, is an error.
- **Server**: a release build of `switchyard serve` with no providers
  configured, called with an API key with the `runs` scope; once on SQLite
  (a file), once on PostgreSQL (a database the bench creates on
  `postgres://postgres@127.0.0.1:5432`, or `$SWITCHYARD_BENCH_POSTGRES_URL`,
  and drops afterwards).
- **Load**: clients in the benchmark process (reqwest, on two tokio
  worker threads), each sending the next run as soon as the last answer is
  in and checked; a 2 s warm-up with 50 clients, then 10 s measured with one
  client and 10 s with 50.
- **Figures**: p50 / p90 / p99 of the end-to-end time of the good answers,
  runs completed per second, errors; the server's highest `VmRSS` sampled
  every 50 ms during the measured part and the CPU (`utime + stime`) it
  spent, as a percentage of one core.
- **Caveat**: the clients and the server (and PostgreSQL) share the machine's
  cores; the machine should be otherwise idle.

Targets: a 3-step run's p50 ≤ 5 ms and p99 ≤ 20 ms on SQLite (durable
workflow engines take about 50–100 ms for three steps), and ≥ 500 runs/s on
SQLite; PostgreSQL, a server across a socket, is expected slower and is
reported without a target. The latency targets are read with one client and
the throughput with 50: with 50 clients each waiting for its answer, a run
waits behind the others (Little's law: latency = 50 / runs per second), so a
5 ms p50 at 50 clients would take 10,000 runs/s; the 50-client latency is
shown, as what a run costs at that load.

To come with `/v1/runs/ws`: the client-tool round trip over the WebSocket
(the run waits for a client tool's output and goes on when it arrives), and
the server's RSS with 1,000 sockets waiting.",
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "SQLite",
            Self::Postgres => "PostgreSQL",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The clients' figures and the server's use during the measured part.
type Measured = (Figures, Usage);

/// One engine under one load: its figures, or why it was not measured.
pub struct Row {
    pub engine: Engine,
    pub clients: usize,
    pub measured: Result<Measured, String>,
}

/// Runs the whole benchmark, prints the table and records it in
/// `docs/benchmarks.md`.
pub fn run(paths: &Paths) -> anyhow::Result<()> {
    let load_before = doc::load_average();
    let bin = server::build(&paths.root, &paths.target)?;
    let loader = Loader::new()?;
    let dir = paths.target.join("bench").join("runs");
    let mut rows = Vec::new();
    for engine in [Engine::Sqlite, Engine::Postgres] {
        eprintln!("==> 3-step runs on {}", engine.name());
        let dir = dir.join(engine.dir());
        fresh_dir(&dir)?;
        let measured = match engine {
            Engine::Sqlite => Ok(measure(&bin, &dir, "sqlite://bench.db", &loader)?),
            Engine::Postgres => on_postgres(&loader, |url| measure(&bin, &dir, url, &loader))?,
        };
        for (index, clients) in LOADS.into_iter().enumerate() {
            let measured = measured.as_ref().map(|loads| loads[index]).map_err(Clone::clone);
            eprintln!(
                "    {}: p50 / p90 / p99 ms | runs/s | errors | max RSS MB | % CPU: {}",
                load(clients),
                cells(&measured)
            );
            rows.push(Row { engine, clients, measured });
        }
    }
    doc::record(&PART, &[table(&rows), targets(&rows)], paths, &load_before)
}

/// Starts the server on `database_url`, warms it up and measures it under
/// each of the [`LOADS`].
fn measure(bin: &Path, dir: &Path, database_url: &str, loader: &Loader) -> anyhow::Result<[Measured; 2]> {
    let config = |listen| {
        format!(
            "listen = \"{listen}\"\ndatabase_url = \"{database_url}\"\nlog_level = \"warn\"\n{UNLIMITED_KEY}"
        )
    };
    let server = Server::start_with(bin, dir, config, "runs")?;
    let url = format!("http://{}/v1/runs", server.addr());
    let request = Request { url: &url, api_key: server.api_key(), body: BODY, check: completed };
    report_errors("warm-up", &loader.run(request, LOADS[1], WARM_UP));
    Ok(LOADS.map(|clients| {
        let sampler = Sampler::start(server.pid());
        let outcome = loader.run(request, clients, RUN);
        let usage = sampler.finish();
        report_errors(&load(clients), &outcome);
        (outcome.figures, usage)
    }))
}

/// "1 client", "50 clients".
fn load(clients: usize) -> String {
    if clients == 1 { "1 client".to_owned() } else { format!("{clients} clients") }
}

fn report_errors(part: &str, outcome: &Outcome) {
    if let Some(error) = &outcome.first_error {
        eprintln!("    {part}: {} errors, the first: {error}", outcome.figures.errors);
    }
}

/// A good answer: 201 with the run completed.
fn completed(status: reqwest::StatusCode, body: &[u8]) -> bool {
    status == reqwest::StatusCode::CREATED
        && serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|run| run["status"] == "completed")
}

/// Runs `measure` on a fresh PostgreSQL database, dropped afterwards (after
/// a failure too); not measured when no PostgreSQL answers.
fn on_postgres(
    loader: &Loader,
    measure: impl FnOnce(&str) -> anyhow::Result<[Measured; 2]>,
) -> anyhow::Result<Result<[Measured; 2], String>> {
    let base = std::env::var(POSTGRES_VAR).unwrap_or_else(|_| POSTGRES_DEFAULT.to_owned());
    let base = base.trim_end_matches('/');
    let name = format!("switchyard_bench_runs_{}", std::process::id());
    let admin = format!("{base}/postgres");
    let created = loader.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str()).await?;
        conn.close().await
    });
    if let Err(error) = created {
        return Ok(Err(format!("no PostgreSQL database could be created at {base}: {error}")));
    }
    let measured = measure(&format!("{base}/{name}"));
    let dropped = loader.block_on(async {
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        conn.execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str()).await?;
        conn.close().await
    });
    let measured = measured?;
    dropped.with_context(|| format!("cannot drop the database {name}"))?;
    Ok(Ok(measured))
}

const HEADER: &str = "\
| Engine | 3-step run p50 / p90 / p99 (ms) | Runs/s | Errors | Server max RSS (MB) | Server CPU (% of a core) |
|---|---|---|---|---|---|";

/// The results table.
pub fn table(rows: &[Row]) -> String {
    let mut out = HEADER.to_owned();
    for row in rows {
        let name = format!("{} ({})", row.engine.name(), load(row.clients));
        out.push_str(&format!("\n| {name} | {} |", cells(&row.measured)));
    }
    out
}

/// An engine's figures as table cells, after its name.
fn cells(measured: &Result<Measured, String>) -> String {
    match measured {
        Ok((figures, usage)) => format!(
            "{} | {} | {} | {:.1} | {:.0}",
            times(figures.ms, false),
            thousands(figures.rps),
            figures.errors,
            usage.max_rss_mb,
            usage.cpu_percent
        ),
        Err(reason) => format!("not measured: {reason} | | | |"),
    }
}

/// The targets, what was measured against each, and whether it was met.
pub fn targets(rows: &[Row]) -> String {
    let sqlite = |clients| {
        rows.iter()
            .find(|row| row.engine == Engine::Sqlite && row.clients == clients)
            .and_then(|row| row.measured.as_ref().ok())
    };
    let [p50, _, p99] = sqlite(LOADS[0]).map_or([f64::NAN; 3], |(figures, _)| figures.ms);
    let (rps, errors) =
        sqlite(LOADS[1]).map_or((f64::NAN, u64::MAX), |(figures, _)| (figures.rps, figures.errors));
    let mut out = "| Target | Measured | Met |\n|---|---|---|".to_owned();
    out.push_str(&target_line(
        "3-step run p50 ≤ 5 ms (SQLite, 1 client)",
        &format!("{p50:.3} ms"),
        p50 <= TARGET_P50_MS,
    ));
    out.push_str(&target_line(
        "3-step run p99 ≤ 20 ms (SQLite, 1 client)",
        &format!("{p99:.3} ms"),
        p99 <= TARGET_P99_MS,
    ));
    out.push_str(&target_line(
        "≥ 500 runs/s, no errors (SQLite, 50 clients)",
        &format!("{} runs/s, {errors} errors", thousands(rps)),
        rps >= TARGET_RPS && errors == 0,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(ms: [f64; 3], rps: f64, errors: u64) -> Result<Measured, String> {
        Ok((Figures { ms, rps, errors }, Usage { max_rss_mb: 40.0, cpu_percent: 150.0 }))
    }

    #[test]
    fn rows_show_each_engine_or_why_not() {
        let rows = [
            Row { engine: Engine::Sqlite, clients: 50, measured: measured([2.0, 3.0, 9.5], 812.4, 0) },
            Row { engine: Engine::Postgres, clients: 1, measured: Err("no PostgreSQL".to_owned()) },
        ];
        let table = table(&rows);
        assert!(
            table.contains("| SQLite (50 clients) | 2.000 / 3.000 / 9.500 | 812 | 0 | 40.0 | 150 |"),
            "{table}"
        );
        assert!(table.contains("| PostgreSQL (1 client) | not measured: no PostgreSQL | | | | |"), "{table}");
    }

    #[test]
    fn latency_targets_are_held_against_one_client_and_throughput_against_fifty() {
        let rows = [
            Row { engine: Engine::Sqlite, clients: 1, measured: measured([6.0, 9.0, 19.0], 150.0, 0) },
            Row { engine: Engine::Sqlite, clients: 50, measured: measured([90.0, 95.0, 99.0], 700.0, 1) },
            Row { engine: Engine::Postgres, clients: 50, measured: measured([1.0, 1.0, 1.0], 9_000.0, 0) },
        ];
        let targets = targets(&rows);
        assert!(targets.contains("| 6.000 ms | **no** |"), "{targets}");
        assert!(targets.contains("| 19.000 ms | yes |"), "{targets}");
        assert!(targets.contains("| 700 runs/s, 1 errors | **no** |"), "{targets}");
    }

    #[test]
    fn good_answers_are_201_and_completed() {
        use reqwest::StatusCode;
        assert!(completed(StatusCode::CREATED, br#"{"status":"completed"}"#));
        assert!(!completed(StatusCode::CREATED, br#"{"status":"error"}"#));
        assert!(!completed(StatusCode::OK, br#"{"status":"completed"}"#));
        assert!(!completed(StatusCode::CREATED, b"not json"));
    }
}
