//! `cargo xtask bench <suite>` (or `cargo run --release -p switchyard-bench --
//! <suite>`): benchmarks that print a markdown table and record it in
//! `docs/benchmarks.md`. Not tests: nothing fails on a slow figure; the tables
//! say which targets were met.
//!
//! - `gateway`: what the model gateway adds to a chat completion, against a
//!   mock upstream, streamed and not, at fixed rates and at full throughput.
//! - `runs`: a 3-step agent run through `POST /v1/runs` by 50 clients, on
//!   SQLite and on PostgreSQL.
//!
//! The suites run from a release build, so the mock upstream and the timing
//! are optimised; a debug build starts the release one.

mod doc;
mod gateway;
mod load;
mod mock;
mod oha;
mod report;
mod runs;
mod server;
mod usage;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const USAGE: &str = "\
usage: cargo xtask bench <suite>

suites:
  gateway   latency, throughput, first stream byte, memory and CPU of the model
            gateway against a mock upstream, direct and through the server;
            writes docs/benchmarks.md
  runs      latency and throughput of a 3-step agent run (dev model, calculate,
            dev model) with 50 clients, memory and CPU, on SQLite and on
            PostgreSQL; writes docs/benchmarks.md";

/// Where the workspace and its build output are.
pub struct Paths {
    pub root: PathBuf,
    pub target: PathBuf,
}

impl Paths {
    fn discover() -> Self {
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = manifest_dir.parent().map_or_else(|| manifest_dir.join(".."), Path::to_path_buf);
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
        Self { root, target }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if run(&args) { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn run(args: &[String]) -> bool {
    match args {
        [suite] if suite == "gateway" => in_release(args, gateway::run),
        [suite] if suite == "runs" => in_release(args, runs::run),
        _ => {
            eprintln!("{USAGE}");
            false
        }
    }
}

/// Runs `bench` here in a release build, or starts the release build with
/// the same arguments.
fn in_release(args: &[String], bench: fn(&Paths) -> anyhow::Result<()>) -> bool {
    let paths = Paths::discover();
    if cfg!(debug_assertions) {
        eprintln!("==> running the benchmark from a release build");
        return Command::new("cargo")
            .current_dir(&paths.root)
            .args(["run", "--release", "--quiet", "-p", "switchyard-bench", "--"])
            .args(args)
            .status()
            .is_ok_and(|status| status.success());
    }
    match bench(&paths) {
        Ok(()) => true,
        Err(err) => {
            eprintln!("bench: {err:#}");
            false
        }
    }
}
