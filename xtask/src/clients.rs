//! `cargo xtask clients`: drive a running server with the official `openai` SDKs.
//!
//! Installs the pinned Python SDK and pytest into `target/clients/venv` (again only
//! when `conformance/clients/python/requirements.txt` changes) and, when `node` and
//! `npm` are on the PATH, the pinned Node SDK into `conformance/clients/node`; builds
//! and starts `switchyard serve` on a free port and a fresh SQLite database, with the
//! built-in `dev` routes and a route `silent` over an upstream that never reports
//! usage (`conformance/clients/upstream/without_usage.py`); runs the suites against
//! it with `SWITCHYARD_URL` and `SWITCHYARD_SILENT_MODEL` set; stops both, passed
//! or not.
//!
//! Options: `--suite python|node|all` (default `all`) and `--url <base URL>` to test a
//! server that is already running instead of starting one.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long the server may take to answer `GET /ready` with 200.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The suites, as the summary names them.
const PYTHON: &str = "python (openai)";
const NODE: &str = "node (openai)";
/// Stamp files record what was installed, so unchanged pins install nothing.
const STAMP: &str = ".switchyard-installed";

pub fn run(args: &[String]) -> bool {
    match Options::parse(args) {
        Ok(options) => run_with(&options),
        Err(err) => {
            eprintln!("clients: {err}");
            eprintln!("usage: cargo xtask clients [--suite python|node|all] [--url http://127.0.0.1:8000]");
            false
        }
    }
}

struct Options {
    python: bool,
    node: bool,
    url: Option<String>,
}

impl Options {
    fn parse(args: &[String]) -> Result<Self, String> {
        let mut options = Self { python: true, node: true, url: None };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
            match arg.as_str() {
                "--suite" => match value()?.as_str() {
                    "python" => (options.python, options.node) = (true, false),
                    "node" => (options.python, options.node) = (false, true),
                    "all" => (options.python, options.node) = (true, true),
                    other => return Err(format!("unknown suite `{other}`")),
                },
                "--url" => options.url = Some(value()?.trim_end_matches('/').to_owned()),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(options)
    }
}

/// What became of one suite.
enum Outcome {
    Passed,
    Failed(String),
    Skipped(&'static str),
}

fn run_with(options: &Options) -> bool {
    let root = workspace_root();
    let target = target_dir(&root);
    let clients = root.join("conformance").join("clients");
    let mut outcomes: Vec<(&str, Outcome)> = Vec::new();

    // Install first: a missing toolchain fails before anything is built.
    let python = if options.python {
        match prepare_python(&clients.join("python"), &target.join("clients").join("venv")) {
            Ok(python) => Some(python),
            Err(err) => {
                outcomes.push((PYTHON, Outcome::Failed(err)));
                None
            }
        }
    } else {
        outcomes.push((PYTHON, Outcome::Skipped("not selected")));
        None
    };
    let node = if !options.node {
        outcomes.push((NODE, Outcome::Skipped("not selected")));
        false
    } else if !(available("node") && available("npm")) {
        eprintln!("note: `node` or `npm` is not on the PATH; skipping the Node suite");
        outcomes.push((NODE, Outcome::Skipped("node or npm missing")));
        false
    } else {
        match prepare_node(&clients.join("node")) {
            Ok(()) => true,
            Err(err) => {
                outcomes.push((NODE, Outcome::Failed(err)));
                false
            }
        }
    };

    if python.is_some() || node {
        let server = match &options.url {
            Some(url) => Ok((None, url.clone())),
            None => start_server(&root, &target).map(|server| {
                let url = server.url();
                (Some(server), url)
            }),
        };
        match server {
            Ok((server, url)) => {
                eprintln!("clients: testing {url}");
                if let Some(python) = &python {
                    let outcome = suite(
                        "python",
                        Command::new(python)
                            .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
                            .arg(clients.join("python"))
                            .env("PYTHONDONTWRITEBYTECODE", "1")
                            .env("SWITCHYARD_URL", &url)
                            .envs(silent_route(server.as_ref())),
                    );
                    outcomes.push((PYTHON, outcome));
                }
                if node {
                    let outcome = suite(
                        "node",
                        Command::new("node")
                            .args(["--test", "--test-reporter=spec", "test.mjs"])
                            .current_dir(clients.join("node"))
                            .env("SWITCHYARD_URL", &url)
                            .envs(silent_route(server.as_ref())),
                    );
                    outcomes.push((NODE, outcome));
                }
                if let Some(server) = server {
                    if outcomes.iter().any(|(_, outcome)| matches!(outcome, Outcome::Failed(_))) {
                        server.print_log_tail();
                    }
                }
            }
            Err(err) => {
                eprintln!("clients: {err}");
                if python.is_some() {
                    outcomes.push((PYTHON, Outcome::Failed("no server".to_owned())));
                }
                if node {
                    outcomes.push((NODE, Outcome::Failed("no server".to_owned())));
                }
            }
        }
    }

    // Python first, whatever order setup and skips recorded them in.
    outcomes.sort_by_key(|(name, _)| *name == NODE);
    eprintln!("\nclients summary:");
    for (name, outcome) in &outcomes {
        let status = match outcome {
            Outcome::Passed => "passed".to_owned(),
            Outcome::Failed(why) => format!("FAILED ({why})"),
            Outcome::Skipped(why) => format!("skipped ({why})"),
        };
        eprintln!("  {name:<20} {status}");
    }
    let ran = outcomes.iter().any(|(_, outcome)| !matches!(outcome, Outcome::Skipped(_)));
    ran && !outcomes.iter().any(|(_, outcome)| matches!(outcome, Outcome::Failed(_)))
}

/// Runs one suite, its output going straight to the terminal.
fn suite(name: &str, command: &mut Command) -> Outcome {
    eprintln!("\n==> {name} suite");
    let started = Instant::now();
    let outcome = match command.status() {
        Ok(status) if status.success() => Outcome::Passed,
        Ok(status) => {
            Outcome::Failed(format!("exit {}", status.code().map_or("signal".to_owned(), |c| c.to_string())))
        }
        Err(err) => Outcome::Failed(format!("could not start: {err}")),
    };
    let word = if matches!(outcome, Outcome::Passed) { "passed" } else { "FAILED" };
    eprintln!("<== {name} suite: {word} in {:.0?}", started.elapsed());
    outcome
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root.join(dir),
        None => root.join("target"),
    }
}

/// Whether `program --version` runs.
fn available(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a setup command, naming it when it fails.
fn setup(command: &mut Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    eprintln!("clients: {shown}");
    match command.status() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(format!("{shown} failed ({status})")),
        Err(err) => Err(format!("{shown} could not start: {err}")),
    }
}

/// `true` when `stamp` already holds exactly `wanted`.
fn up_to_date(stamp: &Path, wanted: &str) -> bool {
    fs::read_to_string(stamp).is_ok_and(|installed| installed == wanted)
}

/// The virtualenv's Python, with the pinned requirements installed.
fn prepare_python(suite: &Path, venv: &Path) -> Result<PathBuf, String> {
    let requirements = suite.join("requirements.txt");
    let wanted =
        fs::read_to_string(&requirements).map_err(|e| format!("reading {}: {e}", requirements.display()))?;
    let python =
        if cfg!(windows) { venv.join("Scripts").join("python.exe") } else { venv.join("bin").join("python") };
    if !python.exists() {
        let system = if available("python3") { "python3" } else { "python" };
        setup(Command::new(system).args(["-m", "venv"]).arg(venv))?;
    }
    let stamp = venv.join(STAMP);
    if !up_to_date(&stamp, &wanted) {
        setup(
            Command::new(&python)
                .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r"])
                .arg(&requirements),
        )?;
        fs::write(&stamp, &wanted).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    }
    Ok(python)
}

/// `node_modules` installed from the committed lockfile.
fn prepare_node(suite: &Path) -> Result<(), String> {
    let read = |name: &str| {
        let path = suite.join(name);
        fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))
    };
    let wanted = format!("{}\n{}", read("package.json")?, read("package-lock.json")?);
    let stamp = suite.join("node_modules").join(STAMP);
    if !up_to_date(&stamp, &wanted) {
        setup(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(suite))?;
        fs::write(&stamp, &wanted).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    }
    Ok(())
}

/// The route over the upstream that never reports usage, for the suites
/// (`SWITCHYARD_SILENT_MODEL`); only our own server has one.
fn silent_route(server: Option<&Server>) -> Vec<(&'static str, &'static str)> {
    server.map(|_| vec![("SWITCHYARD_SILENT_MODEL", SILENT_ROUTE)]).unwrap_or_default()
}

/// The route name of the upstream without usage.
const SILENT_ROUTE: &str = "silent";

/// Our own server's configuration: the built-in `dev` provider behind
/// `default` and `dev`, as with no configuration, and [`SILENT_ROUTE`] over
/// `conformance/clients/upstream/without_usage.py` at `upstream`.
fn server_config(upstream: SocketAddr) -> String {
    format!(
        "[providers.dev]\nkind = \"dev\"\n\n\
         [providers.silent]\nkind = \"openai\"\nbase_url = \"http://{upstream}/v1\"\n\n\
         [[routes]]\nname = \"default\"\ntargets = [{{ provider = \"dev\", model = \"dev\" }}]\n\n\
         [[routes]]\nname = \"dev\"\ntargets = [{{ provider = \"dev\", model = \"dev\" }}]\n\n\
         [[routes]]\nname = \"{SILENT_ROUTE}\"\ntargets = [{{ provider = \"silent\", model = \"silent-model\" }}]\n"
    )
}

/// A `switchyard serve` of our own and the upstream it routes `silent` to,
/// both stopped, and their files removed, when dropped.
struct Server {
    child: Child,
    upstream: Child,
    address: SocketAddr,
    dir: PathBuf,
}

impl Server {
    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn print_log_tail(&self) {
        let log = fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        if lines.is_empty() {
            return;
        }
        eprintln!("\nlast lines of the server's log:");
        for line in &lines[lines.len().saturating_sub(40)..] {
            eprintln!("  {line}");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = self.upstream.kill();
        let _ = self.upstream.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn start_server(root: &Path, target: &Path) -> Result<Server, String> {
    eprintln!("\n==> build the server");
    setup(
        Command::new("cargo")
            // The workspace with its tests, as `cargo xtask ci` builds it: the same
            // features, so the binary the tests built is reused, not rebuilt.
            .args(["build", "--workspace", "--bins", "--tests"])
            .current_dir(root),
    )?;
    let binary = target.join("debug").join(format!("switchyard{}", std::env::consts::EXE_SUFFIX));
    let dir = target.join("clients").join(format!("run-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let log =
        fs::File::create(dir.join("server.log")).map_err(|e| format!("creating the server log: {e}"))?;
    let log_err = log.try_clone().map_err(|e| format!("opening the server log: {e}"))?;
    let upstream = start_upstream(root)?;
    let upstream_address = upstream.1;
    let mut upstream = upstream.0;
    let config = dir.join("switchyard.toml");
    if let Err(err) = fs::write(&config, server_config(upstream_address)) {
        let _ = upstream.kill();
        return Err(format!("writing {}: {err}", config.display()));
    }
    let address = free_port()?;
    let database = format!("sqlite://{}", dir.join("clients.db").display());
    let spawned = Command::new(&binary)
        .args(["serve", "--listen", &address.to_string(), "--database-url", &database])
        .arg("--config")
        .arg(&config)
        .current_dir(&dir)
        .env("SWITCHYARD_LOG_LEVEL", "warn")
        .env_remove("SWITCHYARD_CONFIG")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn();
    let child = match spawned {
        Ok(child) => child,
        Err(err) => {
            let _ = upstream.kill();
            return Err(format!("starting {}: {err}", binary.display()));
        }
    };
    let mut server = Server { child, upstream, address, dir };
    eprintln!("clients: started {} on {address}", binary.display());
    let started = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        if let Ok(Some(status)) = server.child.try_wait() {
            server.print_log_tail();
            return Err(format!("the server exited before it was ready ({status})"));
        }
        if ready(address) {
            return Ok(server);
        }
        sleep(Duration::from_millis(200));
    }
    server.print_log_tail();
    Err(format!("the server did not answer GET /ready with 200 within {READY_TIMEOUT:?}"))
}

/// Starts `conformance/clients/upstream/without_usage.py` (standard library
/// only) on a free port and waits until it listens.
fn start_upstream(root: &Path) -> Result<(Child, SocketAddr), String> {
    let script = root.join("conformance").join("clients").join("upstream").join("without_usage.py");
    let address = free_port()?;
    let python = if available("python3") { "python3" } else { "python" };
    let mut child = Command::new(python)
        .arg(&script)
        .arg(address.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", script.display()))?;
    let started = Instant::now();
    while started.elapsed() < READY_TIMEOUT {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return Ok((child, address));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{} exited before it listened ({status})", script.display()));
        }
        sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    Err(format!("{} did not listen within {READY_TIMEOUT:?}", script.display()))
}

/// A port nobody listens on now: bind port 0 and let it go.
fn free_port() -> Result<SocketAddr, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("finding a free port: {e}"))
}

/// Whether `GET /ready` answers 200.
fn ready(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = format!("GET /ready HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
