//! The `switchyard` binary itself: zero-config start on SQLite, `config print`,
//! `migrate`, `housekeeping`, `audit verify`, `--version`, bad config, and graceful shutdown on SIGTERM.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::TestResult;

use crate::support::{WorkDir, switchyard};

fn run(cmd: &mut Command) -> std::io::Result<Output> {
    cmd.stdin(Stdio::null()).output()
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[test]
fn version_and_masked_config() -> TestResult {
    let dir = WorkDir::new()?;
    let version = run(&mut switchyard(&dir.0, &["--version"]))?;
    assert!(String::from_utf8(version.stdout)?.contains(switchyard_server::VERSION));

    let printed = run(switchyard(&dir.0, &["config", "print"])
        .env("SWITCHYARD_DATABASE_URL", "postgres://app:hunter2@db.internal/switchyard"))?;
    assert!(printed.status.success());
    let text = String::from_utf8(printed.stdout)?;
    assert!(text.contains("postgres://app:***@db.internal/switchyard"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:8000\""), "{text}");
    Ok(())
}

#[test]
fn bad_config_fails_at_start_naming_the_key() -> TestResult {
    let dir = WorkDir::new()?;
    std::fs::write(dir.0.join("switchyard.toml"), "shutdown_grace_secs = -3\n")?;
    let out = run(&mut switchyard(&dir.0, &["serve"]))?;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr)?;
    assert!(err.contains("shutdown_grace_secs"), "{err}");
    Ok(())
}

#[test]
fn migrate_creates_and_migrates_the_database() -> TestResult {
    let dir = WorkDir::new()?;
    let out = run(&mut switchyard(&dir.0, &["migrate", "--database-url", "sqlite://data.db"]))?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(dir.0.join("data.db").exists());
    Ok(())
}

#[test]
fn housekeeping_sweeps_once_and_reports_what_it_deleted() -> TestResult {
    let dir = WorkDir::new()?;
    let out = run(&mut switchyard(&dir.0, &["housekeeping", "--database-url", "sqlite://data.db"]))?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout)?;
    assert!(text.starts_with("swept 0 rows: 0 sessions"), "{text}");
    Ok(())
}

/// `switchyard serve` with no config starts on SQLite in the working directory,
/// answers, and on SIGTERM drains and exits cleanly.
#[tokio::test]
async fn serve_with_no_config_then_stop_on_sigterm() -> TestResult {
    let dir = WorkDir::new()?;
    let port = free_port()?;
    let child = switchyard(&dir.0, &["serve", "--log-format", "json"])
        .env("SWITCHYARD_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status() == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "server did not become ready");
    assert!(
        dir.0.join("switchyard.db").exists(),
        "embedded SQLite database created in the working directory"
    );
    for path in ["/health", "/v1/meta", "/metrics", "/docs", "/openapi.json"] {
        assert_eq!(client.get(format!("{base}{path}")).send().await?.status(), 200, "{path}");
    }

    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status()?;
    assert!(killed.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    assert!(out.status.success(), "exit status {:?}", out.status);
    let logs = String::from_utf8(out.stderr)?;
    let access = logs
        .lines()
        .find(|line| line.contains("\"operation\":\"health_get\""))
        .ok_or("no JSON access log line for /health")?;
    let line: serde_json::Value = serde_json::from_str(access)?;
    for field in ["method", "path", "status", "latency_ms", "request_id"] {
        assert!(line.get(field).is_some(), "access log lacks {field}: {access}");
    }
    assert!(logs.contains("shutdown signal received"), "{logs}");
    Ok(())
}

/// `switchyard keys create` takes a new user from nothing to a working key.
#[tokio::test]
async fn keys_create_bootstraps_a_working_key() -> TestResult {
    let dir = WorkDir::new()?;
    let args =
        ["keys", "create", "--org", "Acme", "--email", "ops@acme.test", "--name", "boot", "--scopes", "*"];
    let out = run(&mut switchyard(&dir.0, &args))?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let key = String::from_utf8(out.stdout)?.trim().to_owned();
    assert!(key.starts_with("sy_live_key_"), "{key}");
    let notes = String::from_utf8(out.stderr)?;
    assert!(
        notes.contains("created user ops@acme.test") && notes.contains("created organization Acme"),
        "{notes}"
    );

    // Again for the same owner and org: no new user or org, a second key.
    let again = run(&mut switchyard(&dir.0, &args))?;
    assert!(again.status.success());
    assert!(!String::from_utf8(again.stderr)?.contains("created"));

    let port = free_port()?;
    let mut child = switchyard(&dir.0, &["serve"])
        .env("SWITCHYARD_LISTEN", format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut me = None;
    for _ in 0..100 {
        if let Ok(resp) = client.get(format!("{base}/v1/auth/me")).header("x-api-key", &key).send().await {
            me = Some(resp);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    child.wait()?;
    let me = me.ok_or("server did not start")?;
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await?;
    assert_eq!(me["user"]["email"], "ops@acme.test");
    assert_eq!(me["orgs"][0]["name"], "Acme");
    assert_eq!(me["orgs"][0]["role"], "owner");
    Ok(())
}

/// `switchyard audit verify` checks every chain on the host and fails, naming
/// the position, once an event was edited in the database.
#[tokio::test]
async fn audit_verify_finds_an_edited_event() -> TestResult {
    let dir = WorkDir::new()?;
    let args =
        ["keys", "create", "--org", "Acme", "--email", "ops@acme.test", "--name", "boot", "--scopes", "*"];
    assert!(run(&mut switchyard(&dir.0, &args))?.status.success());
    let intact = run(&mut switchyard(&dir.0, &["audit", "verify"]))?;
    let text = String::from_utf8(intact.stdout)?;
    assert!(intact.status.success(), "{text}");
    assert!(text.contains("accounts: intact, 1 events"), "{text}");
    assert!(text.contains(": intact, 2 events"), "the org's creation and its key: {text}");

    let db =
        switchyard_server::db::Db::connect(&format!("sqlite://{}", dir.0.join("switchyard.db").display()))
            .await?;
    let edited =
        sqlx::query("UPDATE audit_events SET action = 'api_key.revoked' WHERE action = 'api_key.created'")
            .execute(db.pool())
            .await;
    db.close().await;
    assert_eq!(edited?.rows_affected(), 1);
    let broken = run(&mut switchyard(&dir.0, &["audit", "verify"]))?;
    let text = String::from_utf8(broken.stdout)?;
    assert!(!broken.status.success(), "{text}");
    assert!(text.contains("BROKEN at event 2"), "{text}");
    Ok(())
}
