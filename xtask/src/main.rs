//! Project workflows behind one entry point, `cargo xtask <task>`:
//!
//! - `ci`: everything CI checks, in order, with a summary line;
//! - `spec-check`: the committed spec against the code (the drift check);
//! - `conformance [--engine sqlite|postgres|all]`: replay the spec's examples;
//! - `clients [--suite python|node|all] [--url URL]`: the official `openai` SDKs against a server;
//! - `bench gateway`: what the model gateway adds, as a table in `docs/benchmarks.md`.

mod bench;
mod clients;

use std::process::{Command, ExitCode};
use std::time::Instant;

const POSTGRES_URL_VAR: &str = "SWITCHYARD_TEST_POSTGRES_URL";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = args.split_first().map_or(("help", &[][..]), |(t, r)| (t.as_str(), r));
    let ok = match task {
        "ci" => ci(),
        "spec-check" => spec_check().run(),
        "conformance" => conformance(rest).run(),
        "clients" => clients::run(rest),
        "bench" => bench::run(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | spec-check | conformance [--engine sqlite|postgres|all] | clients \
                 | bench gateway>"
            );
            return ExitCode::from(2);
        }
    };
    if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// One command of a workflow, with the name the summary shows.
struct Step {
    name: &'static str,
    program: &'static str,
    args: Vec<String>,
}

impl Step {
    fn cargo(name: &'static str, args: &[&str]) -> Self {
        Self { name, program: "cargo", args: args.iter().map(|a| (*a).to_owned()).collect() }
    }

    fn run(&self) -> bool {
        eprintln!("\n==> {} ({} {})", self.name, self.program, self.args.join(" "));
        let started = Instant::now();
        let ok = Command::new(self.program).args(&self.args).status().is_ok_and(|s| s.success());
        eprintln!("<== {}: {} in {:.0?}", self.name, if ok { "passed" } else { "FAILED" }, started.elapsed());
        ok
    }
}

fn spec_check() -> Step {
    Step::cargo("spec check", &["test", "--quiet", "-p", "switchyard-server", "--test", "it", "contract::"])
}

fn conformance(args: &[String]) -> Step {
    let mut step = Step::cargo("conformance", &["run", "--quiet", "-p", "switchyard-conformance", "--"]);
    step.args.extend(args.iter().cloned());
    step
}

fn ci() -> bool {
    if std::env::var_os(POSTGRES_URL_VAR).is_none() {
        eprintln!("note: {POSTGRES_URL_VAR} is not set; PostgreSQL tests and conformance will be skipped");
    }
    let steps = [
        Step::cargo("format", &["fmt", "--all", "--check"]),
        Step::cargo("clippy", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]),
        spec_check(),
        // The whole-spec replay runs as its own step next, with its coverage table.
        Step::cargo(
            "tests (SQLite and PostgreSQL)",
            &["test", "--workspace", "--", "--skip", "every_example_in_the_spec_conforms"],
        ),
        conformance(&["--engine".to_owned(), "all".to_owned()]),
        Step::cargo("clients (openai SDKs)", &["run", "--quiet", "-p", "xtask", "--", "clients"]),
        Step::cargo("examples build", &["build", "-p", "switchyard-examples", "--examples"]),
    ];
    let results: Vec<(&str, bool)> = steps.iter().map(|step| (step.name, step.run())).collect();
    let failed: Vec<&str> = results.iter().filter(|(_, ok)| !ok).map(|(name, _)| *name).collect();
    eprintln!("\nci summary:");
    for (name, ok) in &results {
        eprintln!("  {:<32} {}", name, if *ok { "passed" } else { "FAILED" });
    }
    println!("{} passed, {} failed", results.len() - failed.len(), failed.len());
    failed.is_empty()
}
