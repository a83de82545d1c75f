//! Runs survive a crash: the real `switchyard` binary, 50 background runs on
//! a slow `dev` model that call an operator HTTP tool which is not
//! idempotent (a service the test serves, counting calls per
//! `Idempotency-Key`), `kill -9` while they are half done, and a restart on
//! the same database. Every run completes, or pauses for an approver when the
//! crash left its tool call's outcome unknown; no call is made twice, no
//! journaled model answer is asked for again, and every run's event numbers
//! stay gapless across the restart.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use poem::web::{Data, Json};
use poem::{EndpointExt, Request, handler};
use serde_json::{Value, json};

use crate::support::{
    BoxError, TestDatabase, TestEngine, TestResult, WorkDir, http, on_both_engines, serve_mock, switchyard,
};

on_both_engines!(fifty_background_runs_survive_kill_9);

const RUNS: usize = 50;

/// A `switchyard serve` child, killed with SIGKILL when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Calls per `Idempotency-Key`.
type Calls = Arc<Mutex<HashMap<String, usize>>>;

/// The shipping service: counts the call, then answers after a while.
#[handler]
async fn ship(request: &Request, Json(body): Json<Value>, calls: Data<&Calls>) -> Json<Value> {
    let key = request.headers().get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("none");
    *calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry(key.to_owned()).or_default() += 1;
    tokio::time::sleep(Duration::from_millis(300)).await;
    Json(json!({"shipped": body["id"]}))
}

/// Starts the server and waits until it is ready.
async fn serve(dir: &Path, base: &str) -> Result<Server, BoxError> {
    let child = switchyard(dir, &["serve", "--config", "switchyard.toml"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let server = Server(child);
    for _ in 0..600 {
        if http().get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status() == 200) {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the server did not become ready".into())
}

async fn fifty_background_runs_survive_kill_9(engine: TestEngine) -> TestResult {
    let database = TestDatabase::create(engine).await?;
    let dir = WorkDir::new()?;
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let base = format!("http://127.0.0.1:{port}");
    let calls = Calls::default();
    let service = serve_mock(poem::Route::new().at("/ship", poem::post(ship)).data(calls.clone())).await?;
    // Two model calls of 500 ms and a tool call of 300 ms per run; a lease
    // runs out 2 s after its server died.
    let config = format!(
        "listen = \"127.0.0.1:{port}\"\ndatabase_url = \"{}\"\nlog_level = \"warn\"\n\n\
         [runs]\nlease_secs = 2\nresume_interval_secs = 1\n\n\
         [outbound]\nallow_http = true\nallow = [\"127.0.0.1/32\"]\n\n\
         [tools.ship]\nurl = \"{service}/ship\"\ndescription = \"Ships an order\"\nidempotent = false\n\n\
         [providers.dev]\nkind = \"dev\"\ndelay_ms = 500\n\n\
         [[routes]]\nname = \"default\"\ntargets = [{{ provider = \"dev\", model = \"dev\" }}]\n",
        database.url
    );
    std::fs::write(dir.0.join("switchyard.toml"), config)?;
    let migrated = switchyard(&dir.0, &["migrate", "--database-url", &database.url]).output()?;
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let minted = switchyard(
        &dir.0,
        &[
            "keys",
            "create",
            "--database-url",
            &database.url,
            "--org",
            "Crash",
            "--email",
            "crash@example.com",
            "--name",
            "crash",
            "--scopes",
            "runs",
        ],
    )
    .output()?;
    assert!(minted.status.success(), "{}", String::from_utf8_lossy(&minted.stderr));
    let printed = String::from_utf8(minted.stdout)?;
    let key = printed
        .split_whitespace()
        .find(|word| word.starts_with("sy_live_"))
        .ok_or_else(|| format!("no key printed: {printed}"))?
        .to_owned();

    let first = serve(&dir.0, &base).await?;
    let body = json!({"messages": [{"role": "user", "content": "ship {\"id\": \"ord_1\"}"}],
        "tools": ["ship"], "background": true});
    let mut ids = Vec::new();
    for _ in 0..RUNS {
        let reply = http().post(format!("{base}/v1/runs")).bearer_auth(&key).json(&body).send().await?;
        assert_eq!(reply.status(), 202);
        ids.push(reply.json::<Value>().await?["id"].as_str().ok_or("no id")?.to_owned());
    }
    // Once the newest run has journaled its first model answer, the server
    // dies without a word, with that run (and those just before it) half done.
    let newest = ids.last().ok_or("no runs")?;
    let mut half_done = false;
    for _ in 0..500 {
        let run = http()
            .get(format!("{base}/v1/runs/{newest}"))
            .bearer_auth(&key)
            .send()
            .await?
            .json::<Value>()
            .await?;
        if run["steps"].as_array().is_some_and(|steps| !steps.is_empty()) {
            half_done = run["status"] == "running";
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(half_done, "the newest run was never seen half done");
    drop(first);

    let _second = serve(&dir.0, &base).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut runs = Vec::new();
    for id in &ids {
        let mut run = Value::Null;
        while tokio::time::Instant::now() < deadline {
            let reply = http().get(format!("{base}/v1/runs/{id}")).bearer_auth(&key).send().await?;
            run = reply.json::<Value>().await?;
            if ["completed", "paused", "error"].contains(&run["status"].as_str().unwrap_or_default()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        runs.push(run);
    }
    let (mut resumed, mut unknown) = (0, 0);
    for (id, run) in ids.iter().zip(&runs) {
        let kinds: Vec<&str> =
            run["steps"].as_array().ok_or("no steps")?.iter().filter_map(|s| s["type"].as_str()).collect();
        if run["status"] == "paused" {
            // The crash came during the call: whether it shipped is for a human to say.
            assert_eq!(run["pending_approval"]["reason"], "tool_outcome_unknown", "{id}: {run:#}");
            assert_eq!(kinds, ["model"], "{id}: the call's result was never journaled");
            unknown += 1;
        } else {
            assert_eq!(run["status"], "completed", "{id}: {run:#}");
            assert_eq!(kinds, ["model", "tool", "model"], "{id}: each step journaled once");
            assert_eq!(run["output"]["content"], "Tool results: ship: {\"shipped\":\"ord_1\"}");
        }
        let reply =
            http().get(format!("{base}/v1/runs/{id}/events?limit=200")).bearer_auth(&key).send().await?;
        let events = reply.json::<Value>().await?;
        let seqs: Vec<i64> =
            events["data"].as_array().ok_or("no events")?.iter().filter_map(|e| e["seq"].as_i64()).collect();
        assert_eq!(seqs, (1..=i64::try_from(seqs.len())?).collect::<Vec<_>>(), "{id}: gapless events");
        let claims =
            events["data"].as_array().ok_or("no events")?.iter().filter(|e| e["status"] == "running").count();
        if claims > 1 {
            resumed += 1;
        }
    }
    assert!(resumed > 0, "the restarted server resumed the runs the killed one held");
    let calls = calls.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let twice: Vec<_> = calls.iter().filter(|(_, count)| **count > 1).collect();
    assert!(twice.is_empty(), "no call of a tool that is not idempotent was made twice: {twice:?}");
    let completed = runs.iter().filter(|run| run["status"] == "completed").count();
    // A crash between noting a call and sending it leaves a run asking about a call never made.
    assert!(
        (completed..=completed + unknown).contains(&calls.len()),
        "one call per run that made one: {calls:?}"
    );
    Ok(())
}
