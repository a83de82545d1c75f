//! A run's events: gapless sequence numbers, resumption after any event as
//! JSON and as server-sent events, and live streams that follow a run to
//! its end.

use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::{
    Api, BoxError, Credential, TestEngine, TestResult, assert_error, expect_status, http, on_both_engines,
    start, string_at,
};

on_both_engines!(
    events_resume_after_every_position,
    a_stream_follows_a_waiting_run_to_its_end,
    a_cancelled_runs_stream_ends_with_its_status,
    only_who_may_see_the_run_reads_its_events,
    events_are_kept_for_a_week_after_the_run_ended,
    a_run_created_with_stream_answers_with_its_events,
    a_streamed_run_that_waits_keeps_its_stream_open_until_it_ends,
);

struct Fixture {
    api: Api,
    base_url: String,
    key: String,
    server: crate::support::RunningServer,
}

async fn fixture(engine: TestEngine) -> Result<Fixture, BoxError> {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Events").await?;
    let key = api.mint_key(&owner, &org, &["*"]).await?.key;
    Ok(Fixture { api, base_url: server.base_url.clone(), key, server })
}

fn waiting_run() -> Value {
    json!({"messages": [{"role": "user", "content": "get_weather {\"city\": \"Paris\"}"}],
        "tools": [{"name": "get_weather", "parameters": {"type": "object"}}]})
}

/// One server-sent event: its `id`, `event` and `data`.
#[derive(Debug, Clone, PartialEq)]
struct Sse {
    id: i64,
    kind: String,
    data: Value,
}

/// The events in `text`, a stream's bytes so far; keep-alive comments are skipped.
fn parse_sse(text: &str) -> Result<Vec<Sse>, BoxError> {
    let mut events = Vec::new();
    for frame in text.split("\n\n").filter(|frame| !frame.trim().is_empty()) {
        let (mut id, mut kind, mut data) = (None, None, None);
        for line in frame.lines() {
            if let Some(value) = line.strip_prefix("id: ") {
                id = Some(value.parse::<i64>()?);
            } else if let Some(value) = line.strip_prefix("event: ") {
                kind = Some(value.to_owned());
            } else if let Some(value) = line.strip_prefix("data: ") {
                data = Some(serde_json::from_str::<Value>(value)?);
            }
        }
        if let (Some(id), Some(kind), Some(data)) = (id, kind, data) {
            events.push(Sse { id, kind, data });
        }
    }
    Ok(events)
}

impl Fixture {
    fn key(&self) -> Credential<'_> {
        Credential::Bearer(&self.key)
    }

    /// Opens the run's event stream, resuming after `last_event_id` when given.
    async fn open_stream(
        &self,
        run_id: &str,
        last_event_id: Option<i64>,
    ) -> Result<reqwest::Response, BoxError> {
        let mut request = http()
            .get(format!("{}/v1/runs/{run_id}/events", self.base_url))
            .bearer_auth(&self.key)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id.to_string());
        }
        let response = request.send().await?;
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"].to_str()?.starts_with("text/event-stream"),
            "{:?}",
            response.headers()
        );
        Ok(response)
    }

    /// The whole stream of a run that has ended.
    async fn read_stream(&self, run_id: &str, last_event_id: Option<i64>) -> Result<Vec<Sse>, BoxError> {
        let response = self.open_stream(run_id, last_event_id).await?;
        let text = tokio::time::timeout(std::time::Duration::from_secs(10), response.text()).await??;
        parse_sse(&text)
    }
}

/// Reads `response`'s stream until `done` holds for the events so far, or it ends.
async fn read_until(
    response: reqwest::Response,
    done: impl Fn(&[Sse]) -> bool,
) -> Result<(Vec<Sse>, futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>), BoxError> {
    let mut stream = response.bytes_stream().boxed();
    let mut text = String::new();
    loop {
        let events = parse_sse(&text)?;
        if done(&events) {
            return Ok((events, stream));
        }
        match tokio::time::timeout(std::time::Duration::from_secs(10), stream.next()).await? {
            Some(chunk) => text.push_str(std::str::from_utf8(&chunk?)?),
            None => return Ok((parse_sse(&text)?, stream)),
        }
    }
}

async fn events_resume_after_every_position(engine: TestEngine) -> TestResult {
    let f = fixture(engine).await?;
    let body = json!({"messages": [{"role": "user", "content": "calculate {\"expression\": \"6 * 7\"}"}], "tools": ["calculate"]});
    let run = expect_status(f.api.post("/v1/runs", f.key(), body).await?, 201)?;
    let id = string_at(&run, "/id")?;
    let all = expect_status(f.api.get(&format!("/v1/runs/{id}/events?limit=200"), f.key()).await?, 200)?;
    let events = all["data"].as_array().ok_or("no data")?.clone();
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    let count = i64::try_from(seqs.len())?;
    assert_eq!(seqs, (1..=count).collect::<Vec<_>>(), "numbered from 1 without gaps");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "run.status",
            "message.completed",
            "tool.call",
            "tool.result",
            "message.delta",
            "message.completed",
            "run.status",
            "run.completed"
        ]
    );
    assert!(events.iter().all(|e| e["run_id"] == id.as_str()));
    assert_eq!(events[7]["output"]["content"], "Tool results: calculate: 42");
    for after in 0..=count {
        let page =
            expect_status(f.api.get(&format!("/v1/runs/{id}/events?after={after}"), f.key()).await?, 200)?;
        assert_eq!(
            page["data"].as_array().map(Vec::as_slice),
            Some(&events[usize::try_from(after)?..]),
            "after {after}"
        );
        let streamed = f.read_stream(&id, Some(after)).await?;
        let ids: Vec<i64> = streamed.iter().map(|e| e.id).collect();
        assert_eq!(ids, (after + 1..=count).collect::<Vec<_>>(), "Last-Event-ID {after}");
        for event in &streamed {
            assert_eq!(event.data["type"], event.kind.as_str());
            assert_eq!(event.data, events[usize::try_from(event.id - 1)?], "the stream and the page agree");
        }
    }
    // Pages chain through next_after.
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let page = expect_status(
            f.api.get(&format!("/v1/runs/{id}/events?after={after}&limit=3"), f.key()).await?,
            200,
        )?;
        paged.extend(page["data"].as_array().ok_or("no data")?.iter().cloned());
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => break,
        }
    }
    assert_eq!(paged, events);
    Ok(())
}

async fn a_stream_follows_a_waiting_run_to_its_end(engine: TestEngine) -> TestResult {
    let f = fixture(engine).await?;
    let run = expect_status(f.api.post("/v1/runs", f.key(), waiting_run()).await?, 201)?;
    let id = string_at(&run, "/id")?;
    let call = string_at(&run, "/pending_tool_calls/0/id")?;
    let stream = f.open_stream(&id, None).await?;
    let (replayed, rest) =
        read_until(stream, |events| events.iter().any(|e| e.kind == "run.requires_action")).await?;
    assert_eq!(replayed.last().map(|e| e.data["pending_tool_calls"][0]["id"].clone()), Some(json!(call)));
    // The stream stays open while the run waits; the answer arrives over HTTP.
    let outputs = json!({"tool_outputs": [{"tool_call_id": call, "output": "sunny"}]});
    expect_status(f.api.post(&format!("/v1/runs/{id}/tool-outputs"), f.key(), outputs).await?, 200)?;
    let mut text = String::new();
    let mut rest = rest;
    while let Some(chunk) = tokio::time::timeout(std::time::Duration::from_secs(10), rest.next()).await? {
        text.push_str(std::str::from_utf8(&chunk?)?);
    }
    let mut events = replayed;
    events.extend(parse_sse(&text)?);
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=i64::try_from(ids.len())?).collect::<Vec<_>>(), "nothing missed or repeated");
    let last = events.last().ok_or("no events")?;
    assert_eq!(last.kind, "run.completed", "the stream ends after the run did");
    assert_eq!(last.data["output"]["content"], "Tool results: get_weather: sunny");
    Ok(())
}

async fn a_cancelled_runs_stream_ends_with_its_status(engine: TestEngine) -> TestResult {
    let f = fixture(engine).await?;
    let run = expect_status(f.api.post("/v1/runs", f.key(), waiting_run()).await?, 201)?;
    let id = string_at(&run, "/id")?;
    let stream = f.open_stream(&id, None).await?;
    let (_, rest) =
        read_until(stream, |events| events.iter().any(|e| e.kind == "run.requires_action")).await?;
    expect_status(
        f.api.call(reqwest::Method::POST, &format!("/v1/runs/{id}/cancel"), f.key(), None).await?,
        200,
    )?;
    let mut text = String::new();
    let mut rest = rest;
    while let Some(chunk) = tokio::time::timeout(std::time::Duration::from_secs(10), rest.next()).await? {
        text.push_str(std::str::from_utf8(&chunk?)?);
    }
    let tail = parse_sse(&text)?;
    assert_eq!(tail.len(), 1, "{tail:?}");
    assert_eq!(tail[0].kind, "run.status");
    assert_eq!(tail[0].data["status"], "cancelled");
    Ok(())
}

async fn only_who_may_see_the_run_reads_its_events(engine: TestEngine) -> TestResult {
    let f = fixture(engine).await?;
    let run = expect_status(f.api.post("/v1/runs", f.key(), waiting_run()).await?, 201)?;
    let path = format!("/v1/runs/{}/events", string_at(&run, "/id")?);
    let stranger = f.api.register("stranger@example.com").await?;
    f.api.create_org(&stranger, "Elsewhere").await?;
    assert_error(&f.api.get(&path, stranger.bearer()).await?, 404, "run.not_found");
    let stream = http()
        .get(format!("{}{path}", f.base_url))
        .bearer_auth(&stranger.access)
        .header("accept", "text/event-stream");
    assert_eq!(stream.send().await?.status(), 404, "a stream is refused before it starts");
    assert_error(
        &f.api.get("/v1/runs/run_01jd3y2k4m6p8r0t2v4x6z8b0c/events", f.key()).await?,
        404,
        "run.not_found",
    );
    assert_error(&f.api.get(&format!("{path}?after=-1"), f.key()).await?, 400, "request.malformed");
    Ok(())
}

async fn events_are_kept_for_a_week_after_the_run_ended(engine: TestEngine) -> TestResult {
    use switchyard_server::db::{Db, Retention};
    let f = fixture(engine).await?;
    let done = expect_status(
        f.api.post("/v1/runs", f.key(), json!({"messages": [{"role": "user", "content": "Hi"}]})).await?,
        201,
    )?;
    let waiting = expect_status(f.api.post("/v1/runs", f.key(), waiting_run()).await?, 201)?;
    let f = &f;
    let count = |run: &Value| {
        let path = format!("/v1/runs/{}/events", run["id"].as_str().unwrap_or_default());
        async move {
            let page = expect_status(f.api.get(&path, f.key()).await?, 200)?;
            Ok::<_, BoxError>(page["data"].as_array().map_or(0, Vec::len))
        }
    };
    let (done_events, waiting_events) = (count(&done).await?, count(&waiting).await?);
    let db = Db::connect(&f.server.database.url).await?;
    let now = chrono::Utc::now().timestamp();
    let within = db.sweep(now + 6 * 24 * 3600, Retention::default()).await?;
    assert_eq!(within.run_events, 0, "kept for the week");
    let after = db.sweep(now + 8 * 24 * 3600, Retention::default()).await?;
    db.close().await;
    assert_eq!(after.run_events, u64::try_from(done_events)?, "the ended run's events go");
    assert_eq!(count(&done).await?, 0);
    assert_eq!(count(&waiting).await?, waiting_events, "a run that has not ended keeps its events");
    expect_status(f.api.get(&format!("/v1/runs/{}", string_at(&done, "/id")?), f.key()).await?, 200)?;
    Ok(())
}

impl Fixture {
    /// `POST /v1/runs` with `stream: true`: its status, headers and response.
    async fn create_streamed(
        &self,
        mut body: Value,
        idempotency_key: Option<&str>,
    ) -> Result<reqwest::Response, BoxError> {
        body["stream"] = json!(true);
        let mut request =
            http().post(format!("{}/v1/runs", self.base_url)).bearer_auth(&self.key).json(&body);
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await?;
        assert_eq!(response.status(), 201);
        assert!(response.headers()["content-type"].to_str()?.starts_with("text/event-stream"));
        assert!(response.headers().contains_key("x-request-id"));
        Ok(response)
    }
}

async fn a_run_created_with_stream_answers_with_its_events(engine: TestEngine) -> TestResult {
    let f = fixture(engine).await?;
    let body = json!({"messages": [{"role": "user", "content": "calculate {\"expression\": \"6 * 7\"}"}], "tools": ["calculate"]});
    let response = f.create_streamed(body.clone(), Some("streamed-1")).await?;
    assert!(!response.headers().contains_key("idempotent-replayed"));
    let text = tokio::time::timeout(std::time::Duration::from_secs(10), response.text()).await??;
    let events = parse_sse(&text)?;
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, (1..=i64::try_from(ids.len())?).collect::<Vec<_>>(), "every event, from the first");
    assert_eq!(events.last().map(|e| e.kind.as_str()), Some("run.completed"), "{text}");
    assert_eq!(
        events.last().map(|e| e.data["output"]["content"].clone()),
        Some(json!("Tool results: calculate: 42"))
    );
    let id = string_at(&events[0].data, "/run_id")?;
    let listed = expect_status(f.api.get(&format!("/v1/runs/{id}/events"), f.key()).await?, 200)?;
    let streamed: Vec<Value> = events.iter().map(|e| e.data.clone()).collect();
    assert_eq!(listed["data"], Value::Array(streamed), "the stream is the run's events");

    // A retry with the same key streams the same run again; no second run starts.
    let again = f.create_streamed(body, Some("streamed-1")).await?;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let replayed =
        parse_sse(&tokio::time::timeout(std::time::Duration::from_secs(10), again.text()).await??)?;
    assert_eq!(replayed, events);
    let runs = expect_status(f.api.get("/v1/runs", f.key()).await?, 200)?;
    assert_eq!(runs["data"].as_array().map(Vec::len), Some(1));

    // A refused request is answered in the envelope, not as a stream.
    let refused = f.api.post("/v1/runs", f.key(), json!({"messages": [], "stream": true})).await?;
    assert_error(&refused, 400, "request.malformed");
    Ok(())
}

async fn a_streamed_run_that_waits_keeps_its_stream_open_until_it_ends(engine: TestEngine) -> TestResult {
    let f = fixture(engine).await?;
    let response = f.create_streamed(waiting_run(), None).await?;
    let (waiting, rest) =
        read_until(response, |events| events.iter().any(|e| e.kind == "run.requires_action")).await?;
    let action = waiting.last().ok_or("run.requires_action")?;
    let id = string_at(&action.data, "/run_id")?;
    let call = string_at(&action.data, "/pending_tool_calls/0/id")?;
    let outputs = json!({"tool_outputs": [{"tool_call_id": call, "output": "sunny"}]});
    expect_status(f.api.post(&format!("/v1/runs/{id}/tool-outputs"), f.key(), outputs).await?, 200)?;
    let mut text = String::new();
    let mut rest = rest;
    while let Some(chunk) = tokio::time::timeout(std::time::Duration::from_secs(10), rest.next()).await? {
        text.push_str(std::str::from_utf8(&chunk?)?);
    }
    let after = parse_sse(&text)?;
    assert_eq!(after.first().map(|e| e.id), waiting.last().map(|e| e.id + 1), "no gap, no repeat");
    assert_eq!(after.last().map(|e| e.kind.as_str()), Some("run.completed"));
    Ok(())
}
