//! `cargo xtask bench gateway`: what the model gateway adds to a chat
//! completion. Every scenario runs first against the mock upstream directly,
//! then through a release build of the server routing to that mock, each
//! after a warm-up; the server's memory and CPU are sampled during the
//! measured run through it.

use std::path::Path;

use super::Paths;
use super::doc;
use super::mock::Mock;
use super::oha::{self, Load, Oha, Run};
use super::report::{self, Metric, Row};
use super::server::{self, Server};
use super::usage::{Sampler, Usage};

const WARM_UP_SECONDS: u64 = 2;
const RUN_SECONDS: u64 = 10;
/// Connections for fixed-rate runs: enough that none waits for a free one.
const FIXED_RATE_CONNECTIONS: u32 = 32;
/// Connections for maximum-throughput runs.
pub const MAX_CONNECTIONS: u32 = 64;

/// One kind of load: streamed or not, at a fixed rate or as fast as possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    pub stream: bool,
    /// Requests per second; `None` for maximum throughput.
    pub rate: Option<u32>,
    /// Whether the upstream reports usage; without, the gateway counts the
    /// tokens itself (route `silent`).
    pub reported: bool,
}

const fn scenario(stream: bool, rate: Option<u32>) -> Scenario {
    Scenario { stream, rate, reported: true }
}

const SCENARIOS: [Scenario; 8] = [
    scenario(false, Some(200)),
    scenario(false, Some(1_000)),
    scenario(false, None),
    scenario(true, Some(200)),
    scenario(true, Some(1_000)),
    scenario(true, None),
    Scenario { stream: false, rate: Some(1_000), reported: false },
    Scenario { stream: true, rate: Some(1_000), reported: false },
];

impl Scenario {
    fn body(&self) -> &'static str {
        match (self.stream, self.reported) {
            (true, true) => {
                r#"{"model":"default","messages":[{"role":"user","content":"hello"}],"stream":true}"#
            }
            (false, true) => r#"{"model":"default","messages":[{"role":"user","content":"hello"}]}"#,
            (true, false) => {
                r#"{"model":"silent","messages":[{"role":"user","content":"hello"}],"stream":true}"#
            }
            (false, false) => r#"{"model":"silent","messages":[{"role":"user","content":"hello"}]}"#,
        }
    }

    fn load<'a>(&self, url: &'a str, api_key: &'a str) -> Load<'a> {
        Load {
            url,
            api_key,
            body: self.body(),
            connections: if self.rate.is_some() { FIXED_RATE_CONNECTIONS } else { MAX_CONNECTIONS },
            rate: self.rate,
            seconds: RUN_SECONDS,
        }
    }
}

/// Runs the whole benchmark, prints the table and records it in
/// `docs/benchmarks.md`.
pub fn run(paths: &Paths) -> anyhow::Result<()> {
    let load_before = doc::load_average();
    let dir = paths.target.join("bench").join("gateway");
    fresh_dir(&dir)?;
    let install = oha::Install::start(&paths.root, &paths.target)?;
    let bin = server::build(&paths.root, &paths.target)?;
    let oha = install.finish()?;
    let mock = Mock::start()?;
    let server = Server::start(&bin, &dir, mock.addr())?;
    let rows = measure_all(&oha, &mock, &server)?;
    drop(server);
    drop(mock);
    doc::record(&doc::GATEWAY, &[report::table(&rows), report::targets(&rows)], paths, &load_before)
}

/// An empty directory at `dir`, removing what was there.
pub fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(std::fs::create_dir_all(dir)?)
}

fn measure_all(oha: &Oha, mock: &Mock, server: &Server) -> anyhow::Result<Vec<Row>> {
    let through_url = format!("http://{}/v1/chat/completions", server.addr());
    let mut rows = Vec::new();
    for scenario in SCENARIOS {
        let prefix = if scenario.reported { "" } else { "/silent" };
        let direct_url = format!("http://{}{prefix}/v1/chat/completions", mock.addr());
        eprintln!("==> {}", report::label(&scenario, Metric::Whole));
        let direct = warm_run(oha, &scenario.load(&direct_url, server.api_key()))?;
        let (through, usage) = warm_run_sampled(oha, &scenario.load(&through_url, server.api_key()), server)?;
        eprintln!(
            "    direct:  {}\n    through: {}",
            report::brief(&direct.whole),
            report::brief(&through.whole)
        );
        rows.push(Row {
            scenario,
            metric: Metric::Whole,
            direct: direct.whole,
            through: through.whole,
            usage,
        });
        if scenario.stream {
            let (direct, through) = (direct.first_byte, through.first_byte);
            rows.push(Row { scenario, metric: Metric::FirstByte, direct, through, usage });
        }
    }
    Ok(rows)
}

fn warm_up(oha: &Oha, load: &Load) -> anyhow::Result<()> {
    oha.run(&Load { seconds: WARM_UP_SECONDS, ..*load }).map(drop)
}

fn warm_run(oha: &Oha, load: &Load) -> anyhow::Result<Run> {
    warm_up(oha, load)?;
    oha.run(load)
}

/// [`warm_run`], sampling the server during the measured part.
fn warm_run_sampled(oha: &Oha, load: &Load, server: &Server) -> anyhow::Result<(Run, Usage)> {
    warm_up(oha, load)?;
    let sampler = Sampler::start(server.pid());
    let run = oha.run(load)?;
    Ok((run, sampler.finish()))
}
