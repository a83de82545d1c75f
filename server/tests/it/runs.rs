//! Governed agent runs over the `dev` model: each status a run can reach
//! through the API, server and client tools, the limits a run is held to,
//! who may see and act on a run, and answers that race.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Row;
use switchyard_server::db::Db;
use switchyard_server::gateway::config::PriceConfig;

use crate::support::{
    Api, BoxError, Credential, TestEngine, TestResult, add_member, assert_error, expect_status,
    on_both_engines, start, string_at,
};

on_both_engines!(
    a_run_without_tools_completes_with_the_models_answer,
    a_server_tool_runs_and_its_result_goes_back_to_the_model,
    a_client_tool_waits_for_its_output_then_the_run_completes,
    arguments_that_break_a_client_tools_schema_go_back_to_the_model,
    tool_outputs_are_checked_against_what_the_run_waits_for,
    concurrent_answers_to_one_call_apply_once,
    cancelling_is_idempotent_and_final_runs_cannot_be_cancelled,
    a_run_stops_at_max_steps_with_a_code_that_says_so,
    a_run_stops_before_a_model_call_that_could_pass_max_cost,
    a_key_budget_refusal_ends_the_run_with_the_gateways_error,
    a_revoked_key_ends_its_run_at_the_next_step,
    a_background_run_answers_pending_and_completes_later,
    bad_run_requests_are_refused_with_the_field_named,
    runs_are_seen_by_their_creator_and_the_orgs_admins_only,
    lists_filter_by_status_and_page_without_gaps,
    model_calls_are_metered_with_the_run_id,
    a_run_cut_off_by_a_shutdown_is_resumed_by_the_next_server,
    runs_left_behind_are_claimed_once_by_one_of_two_replicas,
    a_run_left_waiting_for_client_tools_ends_after_the_timeout,
    runs_leave_their_steps_in_the_audit_trail,
    runs_are_counted_in_the_metrics,
);

#[tokio::test]
async fn a_lease_renewal_never_stalls_the_transaction_it_waits_for() -> TestResult {
    if !crate::support::engine_available(TestEngine::Postgres) {
        return Ok(());
    }
    a_lease_renewal_waits_beside_the_driver(TestEngine::Postgres).await
}

/// Prices the `dev` model at one micro-USD per prompt token and two per
/// completion token.
fn priced(config: &mut switchyard_server::Config) {
    let price = PriceConfig { input_per_mtok: "1.00".to_owned(), output_per_mtok: "2.00".to_owned() };
    config.prices = BTreeMap::from([("dev".to_owned(), price)]);
}

fn user_says(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

fn weather_tool() -> Value {
    json!({"name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}})
}

fn weather_run() -> Value {
    json!({"messages": [{"role": "user", "content": "get_weather {\"city\": \"Paris\"}"}], "tools": [weather_tool()]})
}

/// A server with an owner, their org and a `*` key.
pub struct Fixture {
    pub api: Api,
    pub server: crate::support::RunningServer,
    pub owner: crate::support::Session,
    pub org: String,
    pub key: String,
}

pub async fn fixture(
    engine: TestEngine,
    configure: impl FnOnce(&mut switchyard_server::Config),
) -> Result<Fixture, BoxError> {
    let server = start(engine, configure).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Runs").await?;
    let key = api.mint_key(&owner, &org, &["*"]).await?.key;
    Ok(Fixture { api, server, owner, org, key })
}

impl Fixture {
    pub fn key(&self) -> Credential<'_> {
        Credential::Bearer(&self.key)
    }

    pub async fn run(&self, body: Value) -> Result<Value, BoxError> {
        expect_status(self.api.post("/v1/runs", self.key(), body).await?, 201)
    }

    async fn answer(&self, run: &Value, output: &str) -> Result<(u16, Value), BoxError> {
        let id = string_at(run, "/id")?;
        let call = string_at(run, "/pending_tool_calls/0/id")?;
        let body = json!({"tool_outputs": [{"tool_call_id": call, "output": output}]});
        self.api.post(&format!("/v1/runs/{id}/tool-outputs"), self.key(), body).await
    }
}

async fn a_run_without_tools_completes_with_the_models_answer(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let run = f.run(user_says("Hello")).await?;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["output"], json!({"role": "assistant", "content": "You said: Hello"}));
    assert_eq!(run["steps"].as_array().map(Vec::len), Some(1));
    assert_eq!(run["steps"][0]["type"], "model");
    assert_eq!(run["usage"], json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}));
    assert_eq!(run["pending_tool_calls"], json!([]));
    assert_eq!(run["error"], Value::Null);
    assert!(run["finished_at"].is_string());
    // Instructions go first, as a system message the model reads.
    let with_instructions =
        json!({"instructions": "Be brief.", "messages": [{"role": "user", "content": "Hi"}]});
    let run = f.run(with_instructions).await?;
    assert_eq!(run["instructions"], "Be brief.");
    assert_eq!(run["usage"]["prompt_tokens"], (1 + 3) + (1 + 1), "the system message is part of the prompt");
    // What was answered is what is read back.
    let id = string_at(&run, "/id")?;
    let read = expect_status(f.api.get(&format!("/v1/runs/{id}"), f.key()).await?, 200)?;
    assert_eq!(read, run);
    Ok(())
}

async fn a_server_tool_runs_and_its_result_goes_back_to_the_model(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let body = json!({"messages": [{"role": "user", "content": "calculate {\"expression\": \"(2 + 3) * 4\"}"}],
        "tools": ["calculate", "current_time"]});
    let run = f.run(body).await?;
    assert_eq!(run["status"], "completed", "{run:#}");
    let steps = run["steps"].as_array().ok_or("no steps")?;
    let kinds: Vec<&str> = steps.iter().filter_map(|s| s["type"].as_str()).collect();
    assert_eq!(kinds, ["model", "tool", "model"]);
    assert_eq!(steps[1]["name"], "calculate");
    assert_eq!(steps[1]["output"], "20");
    assert_eq!(steps[1]["executor"], "server");
    assert_eq!(steps[1]["tool_call_id"], steps[0]["tool_calls"][0]["id"]);
    assert_eq!(run["output"]["content"], "Tool results: calculate: 20");
    // A tool that fails gives the model its error, and the run goes on.
    let body = json!({"messages": [{"role": "user", "content": "calculate {\"expression\": \"1 / 0\"}"}],
        "tools": ["calculate"]});
    let run = f.run(body).await?;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["steps"][1]["is_error"], true);
    let output: Value = serde_json::from_str(run["steps"][1]["output"].as_str().ok_or("no output")?)?;
    assert!(output["error"].as_str().is_some_and(|e| e.contains("no finite value")), "{output}");
    // current_time answers in the zone asked for, from the server's clock.
    let body = json!({"messages": [{"role": "user", "content": "current_time {\"timezone\": \"Asia/Tokyo\"}"}],
        "tools": ["current_time"]});
    let run = f.run(body).await?;
    let output: Value = serde_json::from_str(run["steps"][1]["output"].as_str().ok_or("no output")?)?;
    assert_eq!(output["timezone"], "Asia/Tokyo");
    assert!(output["time"].as_str().is_some_and(|t| t.ends_with("+09:00")), "{output}");
    Ok(())
}

async fn a_client_tool_waits_for_its_output_then_the_run_completes(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let run = f.run(weather_run()).await?;
    assert_eq!(run["status"], "requires_action");
    assert_eq!(run["pending_tool_calls"][0]["name"], "get_weather");
    assert_eq!(run["pending_tool_calls"][0]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(run["finished_at"], Value::Null);
    let done = expect_status(f.answer(&run, "18 C, sunny").await?, 200)?;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"]["content"], "Tool results: get_weather: 18 C, sunny");
    assert_eq!(done["steps"][1]["executor"], "client");
    assert_eq!(done["steps"][1]["output"], "18 C, sunny");
    assert_eq!(done["pending_tool_calls"], json!([]));
    Ok(())
}

async fn arguments_that_break_a_client_tools_schema_go_back_to_the_model(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let body = json!({"messages": [{"role": "user", "content": "get_weather {\"town\": \"Paris\"}"}],
        "tools": [weather_tool()]});
    let run = f.run(body).await?;
    assert_eq!(run["status"], "completed", "the client never sees an invalid call: {run:#}");
    assert_eq!(run["steps"][1]["is_error"], true);
    assert_eq!(run["steps"][1]["executor"], "server");
    let output = run["steps"][1]["output"].as_str().ok_or("no output")?;
    assert!(output.contains("do not match the tool's schema") && output.contains("city"), "{output}");
    Ok(())
}

async fn tool_outputs_are_checked_against_what_the_run_waits_for(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let run = f.run(weather_run()).await?;
    let id = string_at(&run, "/id")?;
    let call = string_at(&run, "/pending_tool_calls/0/id")?;
    let path = format!("/v1/runs/{id}/tool-outputs");
    let send = |body: Value| f.api.post(&path, f.key(), body);
    let unknown = send(json!({"tool_outputs": [{"tool_call_id": "call_nope", "output": "x"}]})).await?;
    assert_error(&unknown, 400, "run.unknown_tool_call");
    let twice = send(json!({"tool_outputs": [{"tool_call_id": call, "output": "a"}, {"tool_call_id": call, "output": "b"}]})).await?;
    assert_error(&twice, 422, "request.invalid");
    let none = send(json!({"tool_outputs": []})).await?;
    assert_error(&none, 400, "request.malformed");
    let huge = send(json!({"tool_outputs": [{"tool_call_id": call, "output": "x".repeat(100_001)}]})).await?;
    assert_error(&huge, 422, "request.invalid");
    // None of that changed the run.
    let unchanged = expect_status(f.api.get(&format!("/v1/runs/{id}"), f.key()).await?, 200)?;
    assert_eq!(unchanged, run);
    expect_status(send(json!({"tool_outputs": [{"tool_call_id": call, "output": "sunny"}]})).await?, 200)?;
    let again = send(json!({"tool_outputs": [{"tool_call_id": call, "output": "sunny"}]})).await?;
    assert_error(&again, 409, "run.not_awaiting_tool_outputs");
    let missing = f
        .api
        .post(
            "/v1/runs/run_01jd3y2k4m6p8r0t2v4x6z8b0c/tool-outputs",
            f.key(),
            json!({"tool_outputs": [{"tool_call_id": call, "output": "sunny"}]}),
        )
        .await?;
    assert_error(&missing, 404, "run.not_found");
    Ok(())
}

async fn concurrent_answers_to_one_call_apply_once(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let run = f.run(weather_run()).await?;
    let answers = (0..10).map(|n| f.answer(&run, if n == 0 { "sunny" } else { "rainy" }));
    let replies = futures::future::join_all(answers).await;
    let mut accepted = 0;
    for reply in replies {
        let (status, body) = reply?;
        match status {
            200 => accepted += 1,
            409 => assert!(
                matches!(
                    body["error"]["code"].as_str(),
                    Some("run.not_awaiting_tool_outputs" | "run.tool_call_already_answered")
                ),
                "{body}"
            ),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(accepted, 1, "one answer wins");
    let id = string_at(&run, "/id")?;
    let done = expect_status(f.api.get(&format!("/v1/runs/{id}"), f.key()).await?, 200)?;
    let tool_steps =
        done["steps"].as_array().ok_or("no steps")?.iter().filter(|s| s["type"] == "tool").count();
    assert_eq!(tool_steps, 1, "the call has one result: {done:#}");
    assert_eq!(done["status"], "completed");
    Ok(())
}

async fn cancelling_is_idempotent_and_final_runs_cannot_be_cancelled(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let run = f.run(weather_run()).await?;
    let id = string_at(&run, "/id")?;
    let cancel = format!("/v1/runs/{id}/cancel");
    let cancelled = expect_status(f.api.call(Method::POST, &cancel, f.key(), None).await?, 200)?;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["pending_tool_calls"], json!([]));
    assert!(cancelled["finished_at"].is_string());
    let again = expect_status(f.api.call(Method::POST, &cancel, f.key(), None).await?, 200)?;
    assert_eq!(again, cancelled, "a second cancel returns the cancelled run");
    assert_error(&f.answer(&run, "late").await?, 409, "run.not_awaiting_tool_outputs");
    let completed = f.run(user_says("Hello")).await?;
    let path = format!("/v1/runs/{}/cancel", string_at(&completed, "/id")?);
    assert_error(&f.api.call(Method::POST, &path, f.key(), None).await?, 409, "run.finished");
    Ok(())
}

async fn a_run_stops_at_max_steps_with_a_code_that_says_so(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let body = json!({"messages": [{"role": "user", "content": "calculate {\"expression\": \"1+1\"}"}],
        "tools": ["calculate"], "max_steps": 2});
    let run = f.run(body).await?;
    assert_eq!(run["status"], "error");
    assert_eq!(run["error"]["code"], "run.max_steps_exceeded");
    assert_eq!(run["error"]["param"], "max_steps");
    assert_eq!(
        run["steps"].as_array().map(Vec::len),
        Some(2),
        "the model call and the tool call fit; the answer does not"
    );
    assert_eq!(run["output"], Value::Null);
    Ok(())
}

async fn a_run_stops_before_a_model_call_that_could_pass_max_cost(engine: TestEngine) -> TestResult {
    let f = fixture(engine, priced).await?;
    let body = json!({"messages": [{"role": "user", "content": "Hello"}], "max_cost_usd": "0.000010"});
    let run = f.run(body).await?;
    assert_eq!(run["status"], "error", "{run:#}");
    assert_eq!(run["error"]["code"], "run.max_cost_exceeded");
    assert_eq!(run["steps"], json!([]), "nothing was spent");
    assert_eq!(run["max_cost_usd"], "0.00001");
    let roomy = json!({"messages": [{"role": "user", "content": "Hello"}], "max_cost_usd": "1.00"});
    let run = f.run(roomy).await?;
    assert_eq!(run["status"], "completed");
    assert_eq!(run["cost_usd"], "0.000011", "3 prompt tokens at 1 and 4 completion tokens at 2 micro-USD");
    Ok(())
}

async fn a_key_budget_refusal_ends_the_run_with_the_gateways_error(engine: TestEngine) -> TestResult {
    let f = fixture(engine, priced).await?;
    let body = json!({"name": "tiny", "scopes": ["runs"], "org_id": f.org, "budget_usd": "0.000001"});
    let tiny =
        string_at(&expect_status(f.api.post("/v1/api-keys", f.owner.bearer(), body).await?, 201)?, "/key")?;
    let run =
        expect_status(f.api.post("/v1/runs", Credential::Bearer(&tiny), user_says("Hello")).await?, 201)?;
    assert_eq!(run["status"], "error");
    assert_eq!(run["error"]["code"], "billing.budget_exceeded");
    assert_eq!(run["error"]["message"], "The key's spend budget would be exceeded");
    Ok(())
}

async fn a_revoked_key_ends_its_run_at_the_next_step(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let minted = f.api.mint_key(&f.owner, &f.org, &["runs"]).await?;
    let run =
        expect_status(f.api.post("/v1/runs", Credential::Bearer(&minted.key), weather_run()).await?, 201)?;
    expect_status(f.api.delete(&format!("/v1/api-keys/{}", minted.id), f.owner.bearer()).await?, 204)?;
    // The owner answers with another credential; the next model call would be the revoked key's.
    let done = expect_status(f.answer(&run, "sunny").await?, 200)?;
    assert_eq!(done["status"], "error");
    assert_eq!(done["error"]["code"], "run.key_revoked");
    Ok(())
}

async fn a_background_run_answers_pending_and_completes_later(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let body = json!({"messages": [{"role": "user", "content": "Hello"}], "background": true, "metadata": {"ticket": 42}});
    let started = expect_status(f.api.post("/v1/runs", f.key(), body).await?, 202)?;
    assert_eq!(started["status"], "pending");
    assert_eq!(started["background"], true);
    assert_eq!(started["metadata"], json!({"ticket": 42}));
    let id = string_at(&started, "/id")?;
    let mut run = Value::Null;
    for _ in 0..100 {
        run = expect_status(f.api.get(&format!("/v1/runs/{id}"), f.key()).await?, 200)?;
        if run["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(run["output"]["content"], "You said: Hello");
    assert_eq!(run["metadata"], json!({"ticket": 42}));
    Ok(())
}

async fn bad_run_requests_are_refused_with_the_field_named(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let refused = |body: Value| f.api.post("/v1/runs", f.key(), body);
    let hello = || json!([{"role": "user", "content": "Hello"}]);
    let cases: Vec<(Value, u16, &str, Option<&str>)> = vec![
        (json!({"messages": []}), 400, "request.malformed", None),
        (json!({"messages": [{"role": "tool", "content": "x"}]}), 400, "request.malformed", None),
        (json!({"messages": hello(), "max_steps": 0}), 400, "request.malformed", None),
        (json!({"messages": hello(), "max_steps": 101}), 400, "request.malformed", None),
        (json!({"messages": hello(), "tools": [42]}), 400, "request.malformed", None),
        (json!({"messages": hello(), "tools": ["browse"]}), 422, "request.invalid", Some("tools")),
        (
            json!({"messages": hello(), "tools": ["calculate", "calculate"]}),
            422,
            "request.invalid",
            Some("tools"),
        ),
        (
            json!({"messages": hello(), "tools": [{"name": "calculate"}]}),
            422,
            "request.invalid",
            Some("tools"),
        ),
        (
            json!({"messages": hello(), "tools": [{"name": "has space"}]}),
            422,
            "request.invalid",
            Some("tools"),
        ),
        (
            json!({"messages": hello(), "tools": [{"name": "x", "parameters": {"type": "nonsense"}}]}),
            422,
            "request.invalid",
            Some("tools"),
        ),
        (
            json!({"messages": hello(), "tools": [{"name": "x", "parameters": {"$ref": "https://example.com/schema.json"}}]}),
            422,
            "request.invalid",
            Some("tools"),
        ),
        (json!({"messages": hello(), "max_cost_usd": "-1"}), 422, "request.invalid", Some("max_cost_usd")),
        (json!({"messages": hello(), "max_cost_usd": "0"}), 422, "request.invalid", Some("max_cost_usd")),
        (
            json!({"messages": hello(), "metadata": {"big": "x".repeat(11 * 1024)}}),
            422,
            "request.invalid",
            Some("metadata"),
        ),
        (
            json!({"messages": [{"role": "user", "content": "x".repeat(100_001)}]}),
            422,
            "request.invalid",
            Some("messages"),
        ),
        (json!({"messages": hello(), "model": "nope"}), 404, "gateway.model_not_found", Some("model")),
    ];
    for (body, status, code, param) in cases {
        let reply = refused(body.clone()).await?;
        assert_eq!((reply.0, reply.1["error"]["code"].as_str()), (status, Some(code)), "{body}: {}", reply.1);
        if let Some(param) = param {
            assert_eq!(reply.1["error"]["param"], param, "{body}");
        }
    }
    let too_many: Vec<Value> = (0..101).map(|_| json!({"role": "user", "content": "x"})).collect();
    assert_error(&refused(json!({"messages": too_many})).await?, 400, "request.malformed");
    // A key limited to other models may not run on this one.
    let body = json!({"name": "dev only", "scopes": ["runs"], "org_id": f.org, "allowed_models": ["dev"]});
    let narrow =
        string_at(&expect_status(f.api.post("/v1/api-keys", f.owner.bearer(), body).await?, 201)?, "/key")?;
    let reply = f.api.post("/v1/runs", Credential::Bearer(&narrow), user_says("Hello")).await?;
    assert_error(&reply, 404, "gateway.model_not_found");
    let reply = f
        .api
        .post("/v1/runs", Credential::Bearer(&narrow), json!({"model": "dev", "messages": hello()}))
        .await?;
    expect_status(reply, 201)?;
    // Nothing refused was stored.
    let listed = expect_status(f.api.get("/v1/runs", f.key()).await?, 200)?;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1));
    Ok(())
}

async fn runs_are_seen_by_their_creator_and_the_orgs_admins_only(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let member = f.api.register("member@example.com").await?;
    add_member(&f.server, &f.org, &member.user_id, "member").await?;
    let admin = f.api.register("admin@example.com").await?;
    add_member(&f.server, &f.org, &admin.user_id, "admin").await?;
    let stranger = f.api.register("stranger@example.com").await?;
    f.api.create_org(&stranger, "Elsewhere").await?;
    let org_header = [("x-switchyard-org", f.org.as_str())];
    let members_run = f
        .api
        .call_with_headers(Method::POST, "/v1/runs", member.bearer(), Some(&weather_run()), &org_header)
        .await?;
    let members_run = expect_status(members_run, 201)?;
    let id = string_at(&members_run, "/id")?;
    let path = format!("/v1/runs/{id}");
    expect_status(f.api.get(&path, member.bearer()).await?, 200)?;
    expect_status(f.api.get(&path, admin.bearer()).await?, 200)?;
    expect_status(f.api.get(&path, f.key()).await?, 200)?;
    assert_error(&f.api.get(&path, stranger.bearer()).await?, 404, "run.not_found");
    let owners_run = f.run(user_says("Hello")).await?;
    let owners_path = format!("/v1/runs/{}", string_at(&owners_run, "/id")?);
    assert_error(&f.api.get(&owners_path, member.bearer()).await?, 404, "run.not_found");
    let cancel_owners = format!("{owners_path}/cancel");
    assert_error(
        &f.api.call(Method::POST, &cancel_owners, member.bearer(), None).await?,
        404,
        "run.not_found",
    );
    // Lists: the member sees their own run, the admin both.
    let listed = |who: &crate::support::Session| {
        let session = who.clone();
        let api = &f.api;
        async move {
            let reply =
                api.call_with_headers(Method::GET, "/v1/runs", session.bearer(), None, &org_header).await?;
            let page = expect_status(reply, 200)?;
            let ids: Vec<String> = page["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect();
            Ok::<_, BoxError>(ids)
        }
    };
    assert_eq!(listed(&member).await?, std::slice::from_ref(&id));
    assert_eq!(listed(&admin).await?.len(), 2);
    let stranger_list =
        f.api.call_with_headers(Method::GET, "/v1/runs", stranger.bearer(), None, &org_header).await?;
    assert_error(&stranger_list, 404, "org.not_found");
    // An admin may stop a member's run.
    let cancelled = f.api.call(Method::POST, &format!("{path}/cancel"), admin.bearer(), None).await?;
    assert_eq!(expect_status(cancelled, 200)?["status"], "cancelled");
    Ok(())
}

async fn lists_filter_by_status_and_page_without_gaps(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let mut made = Vec::new();
    for n in 0..5 {
        let run = if n % 2 == 0 { f.run(user_says("Hello")).await? } else { f.run(weather_run()).await? };
        made.push(string_at(&run, "/id")?);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page =
            expect_status(f.api.get(&format!("/v1/runs?limit=2&cursor={cursor}"), f.key()).await?, 200)?;
        for run in page["data"].as_array().ok_or("no data")? {
            assert!(run["steps"].as_array().is_some_and(|s| !s.is_empty()), "lists carry the steps: {run:#}");
            seen.push(string_at(run, "/id")?);
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen, made, "every run once, oldest first");
    let waiting = expect_status(f.api.get("/v1/runs?status=requires_action", f.key()).await?, 200)?;
    let ids: Vec<&str> =
        waiting["data"].as_array().ok_or("no data")?.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, [made[1].as_str(), made[3].as_str()]);
    assert_error(&f.api.get("/v1/runs?status=lost", f.key()).await?, 400, "request.malformed");
    // A session names the org it lists.
    assert_error(&f.api.get("/v1/runs", f.owner.bearer()).await?, 403, "auth.org_required");
    // By who started them, and since when.
    let other = f.api.mint_key(&f.owner, &f.org, &["runs"]).await?;
    let by_other =
        expect_status(f.api.post("/v1/runs", Credential::Bearer(&other.key), user_says("Hi")).await?, 201)?;
    let listed = expect_status(f.api.get(&format!("/v1/runs?principal={}", other.id), f.key()).await?, 200)?;
    let ids: Vec<&str> =
        listed["data"].as_array().ok_or("no data")?.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, [by_other["id"].as_str().ok_or("no id")?]);
    let by_owner =
        expect_status(f.api.get(&format!("/v1/runs?principal={}", f.owner.user_id), f.key()).await?, 200)?;
    assert_eq!(
        by_owner["data"].as_array().map(Vec::len),
        Some(6),
        "the user's runs, whichever key started them"
    );
    f.server.clock.advance(Duration::from_secs(3600));
    let later = f.run(user_says("Later")).await?;
    let since = (chrono::Utc::now() + chrono::Duration::minutes(30))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let recent = expect_status(f.api.get(&format!("/v1/runs?since={since}"), f.key()).await?, 200)?;
    let ids: Vec<&str> =
        recent["data"].as_array().ok_or("no data")?.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, [later["id"].as_str().ok_or("no id")?]);
    assert_error(&f.api.get("/v1/runs?since=yesterday", f.key()).await?, 400, "request.malformed");
    Ok(())
}

async fn model_calls_are_metered_with_the_run_id(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let body = json!({"messages": [{"role": "user", "content": "calculate {\"expression\": \"2+2\"}"}], "tools": ["calculate"]});
    let run = f.run(body).await?;
    let id = string_at(&run, "/id")?;
    let database = f.server.stop().await?;
    let db = Db::connect(&database.url).await?;
    let rows =
        sqlx::query("SELECT run_id, status, prompt_tokens FROM usage_records ORDER BY occurred_at, id")
            .fetch_all(db.pool())
            .await?;
    db.close().await;
    let metered: Vec<(Option<String>, i64)> = rows
        .iter()
        .map(|row| Ok((row.try_get("run_id")?, row.try_get("status")?)))
        .collect::<Result<_, sqlx::Error>>()?;
    assert_eq!(
        metered,
        [(Some(id.clone()), 200), (Some(id), 200)],
        "two model calls, each a usage row of the run"
    );
    Ok(())
}

/// The driver's last write waits for the audit chain's head (held here by
/// another transaction) while the lease's renewals come due: a renewal
/// waits for the run's row, which that write holds. The write must still go
/// through once the chain is free, rather than the renewal waiting for a
/// write that waits for the renewal.
async fn a_lease_renewal_waits_beside_the_driver(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |config| {
        dev_with_delay(800)(config);
        config.runs.lease_secs = 1;
    })
    .await?;
    let body = json!({"messages": [{"role": "user", "content": "Hello"}], "background": true});
    let id = string_at(&expect_status(f.api.post("/v1/runs", f.key(), body).await?, 202)?, "/id")?;
    let db = Db::connect(&f.server.database.url).await?;
    let mut holder = db.pool().begin().await?;
    sqlx::query("SELECT chain FROM audit_chains FOR UPDATE").fetch_all(&mut *holder).await?;
    // The model answers meanwhile; the run's final write waits for the chain through two renewals.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    holder.rollback().await?;
    let mut run = Value::Null;
    for _ in 0..200 {
        run = expect_status(f.api.get(&format!("/v1/runs/{id}"), f.key()).await?, 200)?;
        if run["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    db.close().await;
    assert_eq!(run["status"], "completed", "{run}");
    Ok(())
}

/// The `default` route on a `dev` model that answers after `delay_ms`, and
/// a resumer that looks every second.
fn dev_with_delay(delay_ms: u64) -> impl FnOnce(&mut switchyard_server::Config) {
    move |config| {
        use switchyard_server::gateway::config::{ProviderConfig, ProviderKind, RouteConfig, TargetConfig};
        let provider = ProviderConfig {
            kind: ProviderKind::Dev,
            base_url: None,
            api_key_env: None,
            pass_through: Vec::new(),
            delay_ms: Some(delay_ms),
        };
        config.providers = BTreeMap::from([("dev".to_owned(), provider)]);
        let target = TargetConfig { provider: "dev".to_owned(), model: "dev".to_owned() };
        config.routes =
            vec![RouteConfig { name: "default".to_owned(), targets: vec![target], tokenizer: None }];
        config.runs.resume_interval_secs = 1;
    }
}

async fn a_run_cut_off_by_a_shutdown_is_resumed_by_the_next_server(engine: TestEngine) -> TestResult {
    let f = fixture(engine, dev_with_delay(1_500)).await?;
    let body = json!({"messages": [{"role": "user", "content": "Hello"}], "background": true});
    let id = string_at(&expect_status(f.api.post("/v1/runs", f.key(), body).await?, 202)?, "/id")?;
    // Wait until the first server is inside the model call, then shut it down.
    for _ in 0..100 {
        let run = expect_status(f.api.get(&format!("/v1/runs/{id}"), f.key()).await?, 200)?;
        if run["status"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Fixture { server, key, .. } = f;
    let database = server.stop().await?;
    let db = Db::connect(&database.url).await?;
    let row = sqlx::query("SELECT status, lease_owner, step_count FROM runs WHERE id = $1")
        .bind(&id)
        .fetch_one(db.pool())
        .await?;
    let (status, owner, steps): (String, Option<String>, i32) =
        (row.try_get("status")?, row.try_get("lease_owner")?, row.try_get("step_count")?);
    db.close().await;
    assert_eq!((status.as_str(), owner, steps), ("running", None, 0), "left running, its lease given up");
    // The next server picks it up at once, without waiting for a lease to run out.
    let next = crate::support::RunningServer::start(database, dev_with_delay(0)).await?;
    let api = Api::new(&next);
    let mut run = Value::Null;
    for _ in 0..200 {
        run = expect_status(api.get(&format!("/v1/runs/{id}"), Credential::Bearer(&key)).await?, 200)?;
        if run["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(run["status"], "completed", "{run:#}");
    assert_eq!(
        run["steps"].as_array().map(Vec::len),
        Some(1),
        "the cut-off model call was made once more, and journaled once"
    );
    let events = expect_status(
        api.get(&format!("/v1/runs/{id}/events?limit=200"), Credential::Bearer(&key)).await?,
        200,
    )?;
    let seqs: Vec<i64> =
        events["data"].as_array().ok_or("no events")?.iter().filter_map(|e| e["seq"].as_i64()).collect();
    assert_eq!(seqs, (1..=i64::try_from(seqs.len())?).collect::<Vec<_>>(), "gapless across the restart");
    let statuses: Vec<&str> =
        events["data"].as_array().ok_or("no events")?.iter().filter_map(|e| e["status"].as_str()).collect();
    assert_eq!(statuses, ["pending", "running", "running", "completed"], "claimed by each server in turn");
    Ok(())
}

async fn runs_left_behind_are_claimed_once_by_one_of_two_replicas(engine: TestEngine) -> TestResult {
    const RUNS: usize = 12;
    let f = fixture(engine, dev_with_delay(1_500)).await?;
    let body = json!({"messages": [{"role": "user", "content": "Hello"}], "background": true});
    let mut ids = Vec::new();
    for _ in 0..RUNS {
        ids.push(string_at(
            &expect_status(f.api.post("/v1/runs", f.key(), body.clone()).await?, 202)?,
            "/id",
        )?);
    }
    // Stop the first server while its drivers are inside their model calls.
    for _ in 0..100 {
        let listed = expect_status(f.api.get("/v1/runs?status=running&limit=100", f.key()).await?, 200)?;
        if listed["data"].as_array().map(Vec::len) == Some(RUNS) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let Fixture { server, key, .. } = f;
    let database = server.stop().await?;
    let shared = database.shared();
    let (first, second) = tokio::try_join!(
        crate::support::RunningServer::start(database, dev_with_delay(50)),
        crate::support::RunningServer::start(shared, dev_with_delay(50)),
    )?;
    let api = Api::new(&first);
    for id in &ids {
        let mut run = Value::Null;
        for _ in 0..400 {
            run = expect_status(api.get(&format!("/v1/runs/{id}"), Credential::Bearer(&key)).await?, 200)?;
            if run["status"] == "completed" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(run["status"], "completed", "{run:#}");
        let events = expect_status(
            api.get(&format!("/v1/runs/{id}/events?limit=200"), Credential::Bearer(&key)).await?,
            200,
        )?;
        let statuses: Vec<&str> = events["data"]
            .as_array()
            .ok_or("no events")?
            .iter()
            .filter_map(|e| e["status"].as_str())
            .collect();
        assert_eq!(
            statuses,
            ["pending", "running", "running", "completed"],
            "one claim after the stop: {id}"
        );
    }
    let database = Db::connect(&first.database.url).await?;
    let owners: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM runs WHERE lease_epoch = 2")
        .fetch_one(database.pool())
        .await?;
    database.close().await;
    assert_eq!(owners, i64::try_from(RUNS)?, "each run claimed by one replica, once");
    drop(second);
    Ok(())
}

async fn a_run_left_waiting_for_client_tools_ends_after_the_timeout(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |config| {
        config.runs.resume_interval_secs = 1;
        config.runs.client_tool_timeout_secs = 60;
    })
    .await?;
    let waiting = f.run(weather_run()).await?;
    let answered_in_time = f.run(weather_run()).await?;
    f.server.clock.advance(Duration::from_secs(30));
    expect_status(f.answer(&answered_in_time, "sunny").await?, 200)?;
    f.server.clock.advance(Duration::from_secs(31));
    let id = string_at(&waiting, "/id")?;
    let mut run = Value::Null;
    for _ in 0..100 {
        run = expect_status(f.api.get(&format!("/v1/runs/{id}"), f.key()).await?, 200)?;
        if run["status"] == "error" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(run["status"], "error", "{run:#}");
    assert_eq!(run["error"]["code"], "run.client_tool_timeout");
    assert_eq!(run["pending_tool_calls"], json!([]));
    assert_error(&f.answer(&waiting, "too late").await?, 409, "run.not_awaiting_tool_outputs");
    let other = expect_status(
        f.api.get(&format!("/v1/runs/{}", string_at(&answered_in_time, "/id")?), f.key()).await?,
        200,
    )?;
    assert_eq!(other["status"], "completed", "a run answered in time is not touched");
    let events = expect_status(f.api.get(&format!("/v1/runs/{id}/events"), f.key()).await?, 200)?;
    let last = events["data"].as_array().and_then(|e| e.last()).ok_or("no events")?;
    assert_eq!(
        (last["type"].as_str(), last["error"]["code"].as_str()),
        (Some("run.failed"), Some("run.client_tool_timeout"))
    );
    // Its end is in the audit trail, written with it, and the chain holds.
    let path = format!("/v1/audit?org_id={}&route=default&limit=200", f.org);
    let trail = expect_status(f.api.get(&path, f.owner.bearer()).await?, 200)?;
    let ends: Vec<&Value> = trail["data"]
        .as_array()
        .ok_or("no data")?
        .iter()
        .filter(|e| e["target"] == id.as_str() && e["action"] == "run.finished")
        .collect();
    assert_eq!(ends.len(), 1, "{trail:#}");
    assert_eq!(ends[0]["details"]["status"], "error");
    assert_eq!(ends[0]["details"]["failure"]["failure"], "client_tool_timeout", "{:#}", ends[0]);
    let verified = expect_status(
        f.api.get(&format!("/v1/audit/verify?org_id={}", f.org), f.owner.bearer()).await?,
        200,
    )?;
    assert_eq!(verified["valid"], true, "{verified}");
    Ok(())
}

async fn runs_leave_their_steps_in_the_audit_trail(engine: TestEngine) -> TestResult {
    use sha2::{Digest, Sha256};
    let f = fixture(engine, |_| {}).await?;
    let body = json!({"messages": [{"role": "user", "content": "calculate {\"expression\": \"2+2\"}"}], "tools": ["calculate"]});
    let run = f.run(body).await?;
    let id = string_at(&run, "/id")?;
    let cancelled = f.run(weather_run()).await?;
    let cancel = format!("/v1/runs/{}/cancel", string_at(&cancelled, "/id")?);
    expect_status(f.api.call(Method::POST, &cancel, f.key(), None).await?, 200)?;
    let path = format!("/v1/audit?org_id={}&route=default&limit=200", f.org);
    let trail = expect_status(f.api.get(&path, f.owner.bearer()).await?, 200)?;
    let of_run: Vec<&Value> = trail["data"]
        .as_array()
        .ok_or("no data")?
        .iter()
        .filter(|e| e["target"] == id.as_str())
        .rev()
        .collect();
    let actions: Vec<&str> = of_run.iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["run.created", "run.tool_called", "run.finished"]);
    assert!(of_run.iter().all(|e| e["route"] == "default" && e["actor_id"] == f.owner.user_id.as_str()));
    let key_id = run["key_id"].as_str().ok_or("no key id")?;
    assert_eq!(of_run[0]["details"]["principal"], key_id);
    let call = &of_run[1]["details"];
    assert_eq!(
        (call["name"].as_str(), call["outcome"].as_str(), call["executor"].as_str()),
        (Some("calculate"), Some("ok"), Some("server"))
    );
    let digest: String =
        Sha256::digest(b"{\"expression\":\"2+2\"}").iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(call["arguments_sha256"], digest.as_str(), "a digest, not the arguments");
    let end = &of_run[2]["details"];
    assert_eq!((end["status"].as_str(), end["steps"].as_u64()), (Some("completed"), Some(3)));
    assert_eq!(end["prompt_tokens"], run["usage"]["prompt_tokens"]);
    let ends: Vec<&str> = trail["data"]
        .as_array()
        .ok_or("no data")?
        .iter()
        .filter(|e| e["action"] == "run.finished")
        .filter_map(|e| e["details"]["status"].as_str())
        .collect();
    assert_eq!(ends, ["cancelled", "completed"], "newest first");
    // Other routes see none of it, and the chain still checks out.
    let other = expect_status(
        f.api.get(&format!("/v1/audit?org_id={}&route=dev", f.org), f.owner.bearer()).await?,
        200,
    )?;
    assert_eq!(other["data"], json!([]));
    let verified = expect_status(
        f.api.get(&format!("/v1/audit/verify?org_id={}", f.org), f.owner.bearer()).await?,
        200,
    )?;
    assert_eq!(verified["valid"], true, "{verified}");
    Ok(())
}

async fn runs_are_counted_in_the_metrics(engine: TestEngine) -> TestResult {
    let f = fixture(engine, |_| {}).await?;
    let body = json!({"messages": [{"role": "user", "content": "calculate {\"expression\": \"2+2\"}"}], "tools": ["calculate"]});
    f.run(body).await?;
    let waiting = f.run(weather_run()).await?;
    let cancel = format!("/v1/runs/{}/cancel", string_at(&waiting, "/id")?);
    expect_status(f.api.call(Method::POST, &cancel, f.key(), None).await?, 200)?;
    let text =
        crate::support::http().get(format!("{}/metrics", f.server.base_url)).send().await?.text().await?;
    for line in [
        "switchyard_runs_started_total{route=\"default\"} 2",
        "switchyard_runs_finished_total{route=\"default\",status=\"completed\"} 1",
        "switchyard_runs_finished_total{route=\"default\",status=\"cancelled\"} 1",
        "switchyard_run_steps_total{kind=\"model\"} 3",
        "switchyard_run_steps_total{kind=\"tool\"} 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from:\n{}",
            text.lines().filter(|l| l.contains("run")).collect::<Vec<_>>().join("\n")
        );
    }
    Ok(())
}
