//! Sessions of runs: a run continues a session from its history, one run at
//! a time; the session's history and totals come from its completed runs;
//! who may see a session; deleting one.

use reqwest::Method;
use serde_json::{Value, json};

use crate::runs::{Fixture, fixture};
use crate::support::{
    BoxError, TestEngine, TestResult, add_member, assert_error, expect_status, on_both_engines, string_at,
};

on_both_engines!(
    runs_continue_a_session_from_its_history,
    a_session_runs_one_run_at_a_time,
    session_requests_are_checked_and_sessions_are_their_creators,
    deleting_a_session_keeps_its_runs,
    runs_stored_before_the_session_message_column_keep_their_history,
);

impl Fixture {
    async fn session(&self) -> Result<Value, BoxError> {
        expect_status(self.api.post("/v1/sessions", self.key(), json!({"title": "Support chat"})).await?, 201)
    }

    async fn say(&self, session: &Value, text: &str) -> Result<(u16, Value), BoxError> {
        let body = json!({"session_id": session["id"], "message": {"role": "user", "content": text}});
        self.api.post("/v1/runs", self.key(), body).await
    }

    async fn read_session(&self, session: &Value) -> Result<Value, BoxError> {
        let id = string_at(session, "/id")?;
        expect_status(self.api.get(&format!("/v1/sessions/{id}"), self.key()).await?, 200)
    }
}

async fn runs_continue_a_session_from_its_history(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let session = f.session().await?;
    assert_eq!(session["title"], "Support chat");
    assert_eq!((session["messages"].clone(), session["run_count"].clone()), (json!([]), json!(0)));
    let first = expect_status(f.say(&session, "Hello").await?, 201)?;
    assert_eq!(first["session_id"], session["id"]);
    assert_eq!(first["output"]["content"], "You said: Hello");
    let second = expect_status(f.say(&session, "Again").await?, 201)?;
    // The second run started from the first one's message and answer.
    assert!(
        second["usage"]["prompt_tokens"].as_u64() > first["usage"]["prompt_tokens"].as_u64(),
        "{first:#} {second:#}"
    );
    let read = f.read_session(&session).await?;
    let history: Vec<(&str, &str)> = read["messages"]
        .as_array()
        .ok_or("no messages")?
        .iter()
        .filter_map(|m| Some((m["role"].as_str()?, m["content"].as_str()?)))
        .collect();
    assert_eq!(
        history,
        [
            ("user", "Hello"),
            ("assistant", "You said: Hello"),
            ("user", "Again"),
            ("assistant", "You said: Again")
        ]
    );
    assert_eq!(read["messages"][0]["run_id"], first["id"]);
    assert_eq!(read["run_count"], 2);
    let total = first["usage"]["total_tokens"].as_u64().unwrap_or(0)
        + second["usage"]["total_tokens"].as_u64().unwrap_or(0);
    assert_eq!(read["usage"]["total_tokens"], total);
    assert_eq!(read["active_run_id"], Value::Null);
    let path = format!("/v1/runs?session_id={}", string_at(&session, "/id")?);
    let listed = expect_status(f.api.get(&path, f.key()).await?, 200)?;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
    // Only completed runs join the history.
    let weather = json!({"session_id": session["id"], "message": {"role": "user", "content": "get_weather {\"city\": \"Oslo\"}"},
        "tools": [{"name": "get_weather"}]});
    let waiting = expect_status(f.api.post("/v1/runs", f.key(), weather).await?, 201)?;
    assert_eq!(waiting["status"], "requires_action");
    let read = f.read_session(&session).await?;
    assert_eq!(read["messages"].as_array().map(Vec::len), Some(4));
    assert_eq!(read["active_run_id"], waiting["id"]);
    Ok(())
}

async fn a_session_runs_one_run_at_a_time(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let session = f.session().await?;
    let weather = json!({"session_id": session["id"], "message": {"role": "user", "content": "get_weather {\"city\": \"Oslo\"}"},
        "tools": [{"name": "get_weather"}]});
    let waiting = expect_status(f.api.post("/v1/runs", f.key(), weather).await?, 201)?;
    assert_error(&f.say(&session, "Are you there?").await?, 409, "run.session_busy");
    // Many at once: at most one joins.
    let tries = (0..10).map(|n| f.say(&session, if n % 2 == 0 { "a" } else { "b" }));
    let replies = futures::future::join_all(tries).await;
    assert!(replies.iter().all(|reply| matches!(reply, Ok((409, _)))), "{replies:?}");
    let id = string_at(&waiting, "/id")?;
    expect_status(f.api.call(Method::POST, &format!("/v1/runs/{id}/cancel"), f.key(), None).await?, 200)?;
    expect_status(f.say(&session, "Now?").await?, 201)?;
    // Concurrent first runs of a fresh session: exactly one starts.
    let fresh = f.session().await?;
    // (Each would wait for a client tool, so none is over before the others try.)
    let body = json!({"session_id": fresh["id"], "message": {"role": "user", "content": "get_weather {\"city\": \"Oslo\"}"},
        "tools": [{"name": "get_weather"}], "background": true});
    let tries = (0..10).map(|_| f.api.post("/v1/runs", f.key(), body.clone()));
    let replies = futures::future::join_all(tries).await;
    let started = replies.iter().filter(|reply| matches!(reply, Ok((202, _)))).count();
    let busy = replies.iter().filter(|reply| matches!(reply, Ok((409, _)))).count();
    assert_eq!((started, busy), (1, 9), "{replies:?}");
    Ok(())
}

async fn session_requests_are_checked_and_sessions_are_their_creators(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let session = f.session().await?;
    let both = json!({"session_id": session["id"], "message": {"role": "user", "content": "Hi"},
        "messages": [{"role": "user", "content": "Hi"}]});
    assert_error(&f.api.post("/v1/runs", f.key(), both).await?, 422, "request.invalid");
    let no_message = json!({"session_id": session["id"]});
    assert_eq!(f.api.post("/v1/runs", f.key(), no_message).await?.1["error"]["param"], "message");
    let no_session = json!({"message": {"role": "user", "content": "Hi"}});
    assert_eq!(f.api.post("/v1/runs", f.key(), no_session).await?.1["error"]["param"], "session_id");
    let unknown = json!({"session_id": "ses_unknown", "message": {"role": "user", "content": "Hi"}});
    assert_error(&f.api.post("/v1/runs", f.key(), unknown).await?, 404, "session.not_found");
    let long = json!({"title": "x".repeat(201)});
    assert_eq!(f.api.post("/v1/sessions", f.key(), long).await?.0, 400);
    // A member sees their own sessions only; a stranger none.
    let member = f.api.register("member@example.com").await?;
    add_member(&f.server, &f.org, &member.user_id, "member").await?;
    let id = string_at(&session, "/id")?;
    assert_error(&f.api.get(&format!("/v1/sessions/{id}"), member.bearer()).await?, 404, "session.not_found");
    let org_header = [("x-switchyard-org", f.org.as_str())];
    let body = json!({"session_id": id, "message": {"role": "user", "content": "Hi"}});
    let reply =
        f.api.call_with_headers(Method::POST, "/v1/runs", member.bearer(), Some(&body), &org_header).await?;
    assert_error(&reply, 404, "session.not_found");
    let own = f
        .api
        .call_with_headers(Method::POST, "/v1/sessions", member.bearer(), Some(&json!({})), &org_header)
        .await?;
    let own = expect_status(own, 201)?;
    let listed =
        f.api.call_with_headers(Method::GET, "/v1/sessions", member.bearer(), None, &org_header).await?;
    let listed = expect_status(listed, 200)?;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(listed["data"][0]["id"], own["id"]);
    // The owner, an owner of the org, sees both.
    let listed = expect_status(f.api.get("/v1/sessions", f.key()).await?, 200)?;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2));
    Ok(())
}

async fn deleting_a_session_keeps_its_runs(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let session = f.session().await?;
    let run = expect_status(f.say(&session, "Hello").await?, 201)?;
    let id = string_at(&session, "/id")?;
    let (status, _) = f.api.delete(&format!("/v1/sessions/{id}"), f.key()).await?;
    assert_eq!(status, 204);
    assert_error(&f.api.get(&format!("/v1/sessions/{id}"), f.key()).await?, 404, "session.not_found");
    let run_id = string_at(&run, "/id")?;
    let kept = expect_status(f.api.get(&format!("/v1/runs/{run_id}"), f.key()).await?, 200)?;
    assert_eq!((kept["status"].as_str(), kept["session_id"].clone()), (Some("completed"), Value::Null));
    assert_error(&f.say(&session, "Still there?").await?, 404, "session.not_found");
    // A session with a run going is kept.
    let busy = f.session().await?;
    let weather = json!({"session_id": busy["id"], "message": {"role": "user", "content": "get_weather {\"city\": \"Oslo\"}"},
        "tools": [{"name": "get_weather"}]});
    expect_status(f.api.post("/v1/runs", f.key(), weather).await?, 201)?;
    let busy_id = string_at(&busy, "/id")?;
    assert_error(&f.api.delete(&format!("/v1/sessions/{busy_id}"), f.key()).await?, 409, "run.session_busy");
    Ok(())
}

/// Migration 22 moved a run's session message from its spec into a column
/// of its own; runs stored before it keep their place in the history.
async fn runs_stored_before_the_session_message_column_keep_their_history(engine: TestEngine) -> TestResult {
    use switchyard_server::db::Db;
    use switchyard_server::testing::harness::TestDatabase;
    const BEFORE: &str = "20261204000022";
    let database = TestDatabase::create(engine).await?;
    let db = Db::connect(&database.url).await?;
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations").join(engine.name());
    let earlier = std::env::temp_dir().join(format!("switchyard-migrations-{}", ulid::Ulid::new()));
    std::fs::create_dir(&earlier)?;
    for entry in std::fs::read_dir(&all)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().as_ref() < BEFORE {
            std::fs::copy(entry.path(), earlier.join(entry.file_name()))?;
        }
    }
    let migrated = sqlx::migrate::Migrator::new(earlier.as_path()).await?.run(db.pool()).await;
    std::fs::remove_dir_all(&earlier)?;
    migrated?;
    let message = json!({"role": "user", "content": "Where is my order?"});
    let spec = |message: &Value| {
        json!({"messages": [message], "server_tools": [], "client_tools": [], "max_steps": 10,
            "background": false, "session_message": message})
        .to_string()
    };
    for (id, session_id, spec) in
        [("run_old", Some("ses_old"), spec(&message)), ("run_alone", None, spec(&Value::Null))]
    {
        sqlx::query(
            "INSERT INTO runs (id, org_id, user_id, route, status, spec, output, session_id, created_at, updated_at) \
             VALUES ($1, 'org_1', 'usr_1', 'default', 'completed', $2, 'On its way.', $3, 1, 1)",
        )
        .bind(id)
        .bind(spec)
        .bind(session_id)
        .execute(db.pool())
        .await?;
    }
    db.migrate().await?;
    let stored: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT id, session_message FROM runs ORDER BY id").fetch_all(db.pool()).await?;
    db.close().await;
    let stored: Vec<(String, Option<Value>)> = stored
        .into_iter()
        .map(|(id, text)| Ok((id, text.map(|text| serde_json::from_str(&text)).transpose()?)))
        .collect::<Result<_, serde_json::Error>>()?;
    assert_eq!(stored, [("run_alone".to_owned(), None), ("run_old".to_owned(), Some(message))]);
    Ok(())
}
