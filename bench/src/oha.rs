//! The load generator, [oha](https://crates.io/crates/oha): installed into
//! `<target>/tools` on first use, run without its TUI, read through its JSON
//! summary. oha times both the whole response and its first body frame, so
//! one run of a stream gives both figures.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use anyhow::{Context, bail};
use serde_json::Value;

/// A run's figures: p50, p90 and p99 in milliseconds, achieved rate, errors
/// (transport failures and non-2xx answers).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    pub ms: [f64; 3],
    pub rps: f64,
    pub errors: u64,
}

impl Figures {
    /// The time `self` adds over `baseline`, per percentile.
    pub fn added_over(&self, baseline: &Self) -> [f64; 3] {
        [0, 1, 2].map(|i| self.ms[i] - baseline.ms[i])
    }
}

/// One oha run: the whole response, and the first body byte.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Run {
    pub whole: Figures,
    pub first_byte: Figures,
}

/// How to load one URL.
pub struct Load<'a> {
    pub url: &'a str,
    pub api_key: &'a str,
    pub body: &'a str,
    pub connections: u32,
    /// Fixed rate in requests per second (latency measured from each
    /// request's scheduled start); `None` sends as fast as answers come.
    pub rate: Option<u32>,
    pub seconds: u64,
}

/// The installed binary.
pub struct Oha {
    bin: PathBuf,
}

/// oha being made available: a `cargo install` in the background, if it was missing.
pub struct Install {
    bin: PathBuf,
    cargo: Option<Child>,
}

impl Install {
    pub fn start(root: &Path, target_dir: &Path) -> anyhow::Result<Self> {
        let tools = target_dir.join("tools");
        let bin = tools.join("bin").join("oha");
        if bin.is_file() {
            return Ok(Self { bin, cargo: None });
        }
        eprintln!("==> installing oha into {} (once; in the background)", tools.display());
        let cargo = Command::new("cargo")
            .current_dir(root)
            .args(["install", "oha", "--locked", "-j", "1", "--root"])
            .arg(&tools)
            .spawn()
            .context("cannot run cargo install oha")?;
        Ok(Self { bin, cargo: Some(cargo) })
    }

    pub fn finish(self) -> anyhow::Result<Oha> {
        if let Some(mut cargo) = self.cargo
            && !cargo.wait()?.success()
        {
            bail!("cargo install oha failed");
        }
        Ok(Oha { bin: self.bin })
    }
}

impl Oha {
    pub fn run(&self, load: &Load) -> anyhow::Result<Run> {
        let mut command = Command::new(&self.bin);
        command
            .args(["--no-tui", "--output-format", "json", "--wait-ongoing-requests-after-deadline"])
            .args(["-m", "POST", "-T", "application/json"])
            .args(["-z", &format!("{}s", load.seconds), "-c", &load.connections.to_string()])
            .args(["-H", &format!("authorization: Bearer {}", load.api_key), "-d", load.body]);
        if let Some(rate) = load.rate {
            command.args(["-q", &rate.to_string(), "--latency-correction"]);
        }
        let output = command.arg(load.url).output().context("cannot run oha")?;
        if !output.status.success() {
            bail!("oha failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        parse(&output.stdout)
    }
}

fn parse(json: &[u8]) -> anyhow::Result<Run> {
    let report: Value = serde_json::from_slice(json).context("oha's JSON summary")?;
    let rps = report["summary"]["requestsPerSec"].as_f64().context("oha's summary has no requestsPerSec")?;
    let errors = errors(&report);
    let figures = |key: &str| Figures { ms: percentiles_ms(&report[key]), rps, errors };
    Ok(Run { whole: figures("latencyPercentiles"), first_byte: figures("firstBytePercentiles") })
}

/// p50, p90 and p99 of an oha percentile map (seconds), in milliseconds;
/// NaN where missing (no successful request).
fn percentiles_ms(map: &Value) -> [f64; 3] {
    ["p50", "p90", "p99"].map(|key| map[key].as_f64().map_or(f64::NAN, |seconds| seconds * 1e3))
}

/// Failed requests plus answers outside 2xx.
fn errors(report: &Value) -> u64 {
    let count = |value: &Value| value.as_u64().unwrap_or(0);
    let failed: u64 = report["errorDistribution"].as_object().map_or(0, |m| m.values().map(count).sum());
    let refused: u64 = report["statusCodeDistribution"]
        .as_object()
        .map_or(0, |m| m.iter().filter(|(status, _)| !status.starts_with('2')).map(|(_, n)| count(n)).sum());
    failed + refused
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_percentiles_rate_and_errors() {
        let json = br#"{
            "summary": {"requestsPerSec": 999.5},
            "latencyPercentiles": {"p50": 0.001, "p90": 0.002, "p99": 0.004},
            "firstBytePercentiles": {"p50": 0.0005, "p90": null},
            "statusCodeDistribution": {"200": 9000, "401": 2, "503": 1},
            "errorDistribution": {"connection closed": 4}
        }"#;
        let run = parse(json).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(run.whole, Figures { ms: [1.0, 2.0, 4.0], rps: 999.5, errors: 7 });
        assert_eq!(run.first_byte.ms[0], 0.5);
        assert!(run.first_byte.ms[1].is_nan() && run.first_byte.ms[2].is_nan());
    }

    #[test]
    fn added_time_is_per_percentile() {
        let direct = Figures { ms: [1.0, 2.0, 3.0], rps: 0.0, errors: 0 };
        let through = Figures { ms: [1.5, 2.0, 5.0], ..direct };
        assert_eq!(through.added_over(&direct), [0.5, 0.0, 2.0]);
    }
}
