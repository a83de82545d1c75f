//! `switchyard-conformance`: replays the spec's examples against live servers, prints the
//! coverage table and exits non-zero when anything fails or is missing.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use switchyard_conformance::{DEFAULT_SPEC, Engines};

#[derive(Parser)]
#[command(about = "Replays every example in the Switchyard OpenAPI spec against live servers")]
struct Args {
    /// The OpenAPI document to replay.
    #[arg(long, default_value = DEFAULT_SPEC)]
    spec: PathBuf,
    /// The databases to run on; `all` skips PostgreSQL when SWITCHYARD_TEST_POSTGRES_URL is unset.
    #[arg(long, value_enum, default_value_t = Engines::All)]
    engine: Engines,
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let args = Args::parse();
    let report = switchyard_conformance::run(&args.spec, args.engine).await?;
    print!("{report}");
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
