//! Project workflows behind one entry point, `cargo xtask <task>`:
//!
//! - `ci`: everything CI checks, in order, with a summary line;
//! - `spec-check`: the committed spec against the code (the drift check);
//! - `conformance [--engine sqlite|postgres|all]`: replay the spec's examples;
//! - `clients [--suite python|node|all] [--url URL]`: the official `openai` SDKs against a server;
//! - `bench gateway`: what the model gateway adds, as a table in `docs/benchmarks.md`;
//! - `bench runs`: a 3-step agent run's latency and throughput, likewise.

mod clients;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

const POSTGRES_URL_VAR: &str = "SWITCHYARD_TEST_POSTGRES_URL";
/// Where the integration tests note each PostgreSQL test they skip (see `server/tests/it/support.rs`).
const SKIPPED_LOG_VAR: &str = "SWITCHYARD_TEST_SKIPPED_LOG";
/// What a cold `cargo xtask ci` on two cores may take; past it the summary says so loudly.
const CI_BUDGET: Duration = Duration::from_secs(12 * 60);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = args.split_first().map_or(("help", &[][..]), |(t, r)| (t.as_str(), r));
    let ok = match task {
        "ci" => ci(),
        "spec-check" => spec_check().run(),
        "conformance" => conformance(rest).run(),
        "clients" => clients::run(rest),
        "bench" => bench(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci | spec-check | conformance [--engine sqlite|postgres|all] | clients \
                 | bench gateway|runs>"
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
    env: Vec<(&'static str, std::ffi::OsString)>,
}

impl Step {
    fn cargo(name: &'static str, args: &[&str]) -> Self {
        Self { name, program: "cargo", args: args.iter().map(|a| (*a).to_owned()).collect(), env: Vec::new() }
    }

    /// The step with `var` set to `value` in its environment.
    fn env(mut self, var: &'static str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.env.push((var, value.as_ref().to_owned()));
        self
    }

    fn run(&self) -> bool {
        self.run_timed().0
    }

    /// Runs the step; whether it passed and how long it took.
    fn run_timed(&self) -> (bool, Duration) {
        eprintln!("\n==> {} ({} {})", self.name, self.program, self.args.join(" "));
        let started = Instant::now();
        let ok = Command::new(self.program)
            .args(&self.args)
            .envs(self.env.iter().cloned())
            .status()
            .is_ok_and(|s| s.success());
        let took = started.elapsed();
        eprintln!("<== {}: {} in {}", self.name, if ok { "passed" } else { "FAILED" }, minutes(took));
        (ok, took)
    }
}

/// `4m 07s`.
fn minutes(took: Duration) -> String {
    let secs = took.as_secs();
    format!("{}m {:02}s", secs / 60, secs % 60)
}

/// The conformance suite's test that replays the committed spec on both engines.
const WHOLE_SPEC_REPLAY: &str = "every_example_in_the_spec_conforms";

/// The benchmarks are their own crate (`bench/`), built for release.
fn bench(args: &[String]) -> bool {
    let mut step = Step::cargo("bench", &["run", "--release", "--quiet", "-p", "switchyard-bench", "--"]);
    step.args.extend(args.iter().cloned());
    step.run()
}

/// The environment that makes the build lint the workspace as it compiles
/// it: `clippy-driver` (beside the `cargo` running this) as the compiler of
/// the workspace's crates, with warnings denied. One build then does what
/// `cargo clippy` and a test build did, and the dependencies are compiled
/// once instead of once for each. Empty when there is no `clippy-driver`
/// there: clippy then runs as a step of its own.
fn clippy_in_build() -> Vec<(&'static str, std::ffi::OsString)> {
    let Some(cargo) = std::env::var_os("CARGO") else { return Vec::new() };
    let driver = std::path::Path::new(&cargo).with_file_name("clippy-driver");
    if !driver.is_file() {
        return Vec::new();
    }
    let mut rustflags = std::env::var_os("RUSTFLAGS").unwrap_or_default();
    rustflags.push(" -D warnings");
    vec![("RUSTC_WORKSPACE_WRAPPER", driver.into_os_string()), ("RUSTFLAGS", rustflags)]
}

fn spec_check() -> Step {
    Step::cargo("spec check", &["test", "--quiet", "--workspace", "--test", "it", "contract::"])
}

fn conformance(args: &[String]) -> Step {
    let mut step = Step::cargo("conformance", &["run", "--quiet", "-p", "switchyard-conformance", "--"]);
    step.args.extend(args.iter().cloned());
    step
}

fn ci() -> bool {
    let postgres_expected = std::env::var_os(POSTGRES_URL_VAR).is_some();
    if !postgres_expected {
        eprintln!("note: {POSTGRES_URL_VAR} is not set; PostgreSQL tests and conformance will be skipped");
    }
    let skipped_log = skipped_log_path();
    // A fresh log per run: the tests append to it, the summary reads it.
    let _ = std::fs::remove_file(&skipped_log);
    // Every cargo step selects the whole workspace with its test targets, so Cargo resolves
    // one set of features and compiles each dependency once: a step that selected one
    // package (`-p`, `cargo run`) would resolve other features and rebuild.
    let lints = clippy_in_build();
    let mut steps = vec![Step::cargo("format", &["fmt", "--all", "--check"])];
    if lints.is_empty() {
        steps
            .push(Step::cargo("clippy", &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]));
    }
    steps.extend([
        Step::cargo(
            if lints.is_empty() {
                "build (tests, binaries, examples)"
            } else {
                "clippy and build (tests, binaries, examples)"
            },
            &["test", "--workspace", "--no-run", "--quiet"],
        ),
        spec_check(),
        // The spec check and the whole-spec replay run as their own steps.
        Step::cargo(
            "tests (SQLite and PostgreSQL)",
            &["test", "--workspace", "--", "--skip", "contract::", "--skip", WHOLE_SPEC_REPLAY],
        ),
        Step::cargo(
            "conformance (every example, both engines)",
            &["test", "--workspace", "--test", "suite", "--", "--exact", WHOLE_SPEC_REPLAY, "--nocapture"],
        ),
        Step::cargo("clients (openai SDKs)", &["run", "--quiet", "-p", "xtask", "--", "clients"]),
        Step::cargo("examples build", &["build", "--workspace", "--examples"]),
    ]);
    // Every step builds with the same settings, or Cargo would build the workspace again.
    let steps =
        steps.into_iter().map(|step| lints.iter().fold(step, |step, (var, value)| step.env(var, value)));
    let started = Instant::now();
    let mut results: Vec<(&str, bool, Duration)> = Vec::new();
    for step in steps {
        let name = step.name;
        let (ok, took) = step.env(SKIPPED_LOG_VAR, &skipped_log).run_timed();
        results.push((name, ok, took));
    }
    let total = started.elapsed();

    let skipped = match std::fs::read_to_string(&skipped_log) {
        Ok(log) => log,
        // No test wrote to it: none was skipped.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            eprintln!("cannot read {}: {error}", skipped_log.display());
            return false;
        }
    };
    let skipped: Vec<&str> = skipped.lines().filter(|line| !line.trim().is_empty()).collect();
    eprintln!("\nci summary:");
    for (name, ok, took) in &results {
        eprintln!("  {:<44} {:<7} {:>8}", name, if *ok { "passed" } else { "FAILED" }, minutes(*took));
    }
    eprintln!("  {:<44} {:<7} {:>8}", "total", "", minutes(total));
    if !skipped.is_empty() {
        eprintln!("  {} PostgreSQL test(s) skipped:", skipped.len());
        for test in &skipped {
            eprintln!("    {test}");
        }
    }
    if postgres_expected {
        // With a database to run on, a skipped PostgreSQL test is a failure, not a note.
        let none_skipped = skipped.is_empty();
        eprintln!(
            "  {:<44} {}",
            "no PostgreSQL test skipped",
            if none_skipped { "passed" } else { "FAILED" }
        );
        results.push(("no PostgreSQL test skipped", none_skipped, Duration::ZERO));
    }
    let failed = results.iter().filter(|(_, ok, _)| !ok).count();
    if total > CI_BUDGET {
        eprintln!(
            "\n  !!! OVER BUDGET: {} is past the {} budget for a cold run on two cores !!!",
            minutes(total),
            minutes(CI_BUDGET)
        );
    }
    println!("{} passed, {} failed", results.len() - failed, failed);
    failed == 0
}

/// The skipped-tests log, under the workspace's target directory.
fn skipped_log_path() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| PathBuf::from("target"), PathBuf::from);
    let target = if target.is_absolute() {
        target
    } else {
        std::env::current_dir().map(|dir| dir.join(&target)).unwrap_or(target)
    };
    target.join("postgres-tests-skipped.log")
}
