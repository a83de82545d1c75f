//! The server under test: the release binary, a config (for the gateway
//! suite, routing the model `default` to the mock upstream), an API key, and
//! the running process, killed when dropped (on failure too).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const READY_WITHIN: Duration = Duration::from_secs(60);
const LOG_FILE: &str = "server.log";

/// Builds `target/release/switchyard` and returns its path.
pub fn build(root: &Path, target_dir: &Path) -> anyhow::Result<PathBuf> {
    eprintln!("==> building the server (release)");
    let built = Command::new("cargo")
        .current_dir(root)
        .args(["build", "--release", "--quiet", "-p", "switchyard-server", "--bin", "switchyard"])
        .status()
        .context("cannot run cargo build")?;
    if !built.success() {
        bail!("cargo build of the server failed");
    }
    Ok(target_dir.join("release").join("switchyard"))
}

/// The running server.
pub struct Server {
    child: Child,
    addr: SocketAddr,
    api_key: String,
}

impl Server {
    /// The gateway suite's server: routes to the mock at `upstream`, a key
    /// with every scope.
    pub fn start(bin: &Path, dir: &Path, upstream: SocketAddr) -> anyhow::Result<Self> {
        Self::start_with(bin, dir, |listen| config(listen, upstream), "*")
    }

    /// Writes the config `config` gives for the address to listen on into
    /// `dir`, mints a key with `scopes`, starts the server and waits until
    /// `/ready` answers 200.
    pub fn start_with(
        bin: &Path,
        dir: &Path,
        config: impl FnOnce(SocketAddr) -> String,
        scopes: &str,
    ) -> anyhow::Result<Self> {
        let addr = free_port()?;
        std::fs::write(dir.join("switchyard.toml"), config(addr))?;
        let api_key = mint_key(bin, dir, scopes)?;
        let log = File::create(dir.join(LOG_FILE))?;
        let child = switchyard(bin, dir)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start the server")?;
        let mut server = Self { child, addr, api_key };
        server.wait_ready(dir)?;
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    fn wait_ready(&mut self, dir: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_WITHIN;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!("the server exited ({status}):\n{}", log_tail(dir));
            }
            if ready_status(self.addr) == Some(200) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("the server was not ready within {READY_WITHIN:?}:\n{}", log_tail(dir))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Best effort: the process may have exited already.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server command, run in `dir` with its config, free of `SWITCHYARD_*`
/// settings from the caller's environment.
fn switchyard(bin: &Path, dir: &Path) -> Command {
    let mut command = Command::new(bin);
    command.current_dir(dir).args(["--config", "switchyard.toml"]);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SWITCHYARD_") {
            command.env_remove(name);
        }
    }
    command
}

fn config(listen: SocketAddr, upstream: SocketAddr) -> String {
    format!(
        r#"listen = "{listen}"
database_url = "sqlite://bench.db"
log_level = "warn"

[providers.mock]
kind = "openai"
base_url = "http://{upstream}/v1"

[[routes]]
name = "default"
targets = [{{ provider = "mock", model = "mock-model" }}]

# The same answers without usage: the gateway counts the tokens.
[providers.silent]
kind = "openai"
base_url = "http://{upstream}/silent/v1"

[[routes]]
name = "silent"
targets = [{{ provider = "silent", model = "mock-model" }}]

[prices."mock-model"]
input_per_mtok = "0.10"
output_per_mtok = "0.40"
{UNLIMITED_KEY}"#
    )
}

/// The end of every bench config: one key sends everything, so its general
/// request limit must not be what is measured.
pub const UNLIMITED_KEY: &str = "
[abuse]
credential = { max = 100000000, window_secs = 60 }
";

/// `switchyard keys create`, which prints the key alone on stdout.
fn mint_key(bin: &Path, dir: &Path, scopes: &str) -> anyhow::Result<String> {
    let output = switchyard(bin, dir)
        .args(["keys", "create", "--org", "bench", "--email", "bench@example.com"])
        .args(["--name", "bench", "--scopes", scopes])
        .output()
        .context("cannot run switchyard keys create")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout.split_whitespace().find(|word| word.starts_with("sy_live_")) {
        Some(key) if output.status.success() => Ok(key.to_owned()),
        _ => bail!("switchyard keys create failed: {}", String::from_utf8_lossy(&output.stderr).trim()),
    }
}

/// A port free now on loopback (the server binds it right after).
fn free_port() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The status of `GET /ready`, or `None` while nothing answers.
fn ready_status(addr: SocketAddr) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET /ready HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(head.get(9..12)?).ok()?.parse().ok()
}

fn log_tail(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join(LOG_FILE)).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
