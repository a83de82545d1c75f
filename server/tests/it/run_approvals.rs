//! Governed runs: route policies (`[policies.<route>]`) that make tool
//! calls and final answers wait for an approver, block runs on patterns or
//! tools naming the rule, and cap steps and cost; who may decide on a
//! paused run; the mail, journal, events and audit trail a decision leaves.

use reqwest::Method;
use serde_json::{Value, json};
use switchyard_server::Config;
use switchyard_server::runs::PolicyConfig;

use crate::runs::{Fixture, fixture};
use crate::support::{
    BoxError, Credential, Session, TestEngine, TestResult, add_member, all_mail, assert_error, expect_status,
    on_both_engines, string_at,
};

on_both_engines!(
    a_call_the_policy_names_waits_for_an_approver_then_runs,
    a_rejected_call_tells_the_model_who_rejected_it_and_why,
    only_approvers_decide_and_they_may_read_the_run,
    a_paused_run_mails_its_approvers,
    the_final_answer_waits_when_the_policy_says_so,
    blocked_patterns_and_allowed_tools_block_a_run_naming_the_rule,
    policy_ceilings_cap_steps_and_cost,
    concurrent_decisions_apply_once,
    a_paused_run_can_be_cancelled,
);

const CALCULATE: &str = "calculate {\"expression\": \"6 * 7\"}";

fn calculate_run() -> Value {
    json!({"messages": [{"role": "user", "content": CALCULATE}], "tools": ["calculate"]})
}

fn policy(configure: impl FnOnce(&mut PolicyConfig)) -> impl FnOnce(&mut Config) {
    move |config: &mut Config| {
        let mut policy = PolicyConfig::default();
        configure(&mut policy);
        config.policies.insert("default".to_owned(), policy);
    }
}

fn approve_calculate(policy: &mut PolicyConfig) {
    policy.approval_required_tools = vec!["calculate".to_owned()];
}

impl Fixture {
    async fn decide(&self, run: &Value, who: Credential<'_>, body: Value) -> Result<(u16, Value), BoxError> {
        let id = string_at(run, "/id")?;
        self.api.post(&format!("/v1/runs/{id}/resume"), who, body).await
    }

    async fn member(&self, email: &str, role: &str) -> Result<Session, BoxError> {
        let session = self.api.register(email).await?;
        add_member(&self.server, &self.org, &session.user_id, role).await?;
        Ok(session)
    }

    async fn events(&self, run: &Value) -> Result<Vec<String>, BoxError> {
        let id = string_at(run, "/id")?;
        let page = expect_status(self.api.get(&format!("/v1/runs/{id}/events"), self.key()).await?, 200)?;
        Ok(page["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["type"].as_str().map(str::to_owned))
            .collect())
    }
}

fn step_types(run: &Value) -> Vec<&str> {
    run["steps"].as_array().into_iter().flatten().filter_map(|step| step["type"].as_str()).collect()
}

async fn a_call_the_policy_names_waits_for_an_approver_then_runs(engine: TestEngine) -> TestResult {
    let f = fixture(engine, policy(approve_calculate)).await?;
    let paused = f.run(calculate_run()).await?;
    assert_eq!(paused["status"], "paused", "{paused:#}");
    assert_eq!(paused["pending_approval"]["reason"], "tool_approval_required");
    assert_eq!(paused["pending_approval"]["tool_call"]["name"], "calculate");
    assert_eq!(paused["pending_approval"]["output"], Value::Null);
    assert_eq!(paused["finished_at"], Value::Null);
    assert_eq!(step_types(&paused), ["model"], "nothing ran before the decision");
    // A tool not named by the policy runs without one.
    let free = json!({"messages": [{"role": "user", "content": "current_time {\"timezone\": \"UTC\"}"}],
        "tools": ["current_time"]});
    assert_eq!(f.run(free).await?["status"], "completed");

    let approved =
        expect_status(f.decide(&paused, f.owner.bearer(), json!({"decision": "approved"})).await?, 200)?;
    assert_eq!(approved["status"], "completed", "{approved:#}");
    assert_eq!(approved["output"]["content"], "Tool results: calculate: 42");
    assert_eq!(approved["pending_approval"], Value::Null);
    assert_eq!(step_types(&approved), ["model", "approval", "tool", "model"]);
    let decision = &approved["steps"][1];
    assert_eq!(decision["decision"], "approved");
    assert_eq!(decision["paused_for"], "tool_approval_required");
    assert_eq!(decision["approver_id"], f.owner.user_id.as_str());
    assert_eq!(decision["approver_email"], "owner@example.com");
    assert_eq!(decision["tool_call_id"], paused["pending_approval"]["tool_call"]["id"]);
    // A decision is not a step of the run's budget: max_steps counts work.
    assert_eq!(approved["steps"][3]["index"], 3);
    // The first decision wins; a second finds the run no longer paused.
    let again = f.decide(&paused, f.owner.bearer(), json!({"decision": "rejected"})).await?;
    assert_error(&again, 409, "run.not_paused");

    let events = f.events(&approved).await?;
    for wanted in ["run.paused", "approval.decided", "run.completed"] {
        assert!(events.iter().any(|e| e == wanted), "{wanted} in {events:?}");
    }
    let trail_path = format!("/v1/audit?org_id={}&route=default&limit=200", f.org);
    let trail = expect_status(f.api.get(&trail_path, f.owner.bearer()).await?, 200)?;
    let decided: Vec<&Value> = trail["data"]
        .as_array()
        .ok_or("no data")?
        .iter()
        .filter(|e| e["action"] == "run.approval_decided")
        .collect();
    assert_eq!(decided.len(), 1, "{trail:#}");
    assert_eq!(decided[0]["actor_id"], f.owner.user_id.as_str());
    assert_eq!(decided[0]["target"], approved["id"]);
    assert_eq!(decided[0]["details"]["decision"], "approved");
    let verified = expect_status(
        f.api.get(&format!("/v1/audit/verify?org_id={}", f.org), f.owner.bearer()).await?,
        200,
    )?;
    assert_eq!(verified["valid"], true, "{verified:#}");
    Ok(())
}

async fn a_rejected_call_tells_the_model_who_rejected_it_and_why(engine: TestEngine) -> TestResult {
    let f = fixture(engine, policy(approve_calculate)).await?;
    let paused = f.run(calculate_run()).await?;
    let body = json!({"decision": "rejected", "reason": "Not on a Friday"});
    let rejected = expect_status(f.decide(&paused, f.owner.bearer(), body).await?, 200)?;
    assert_eq!(rejected["status"], "completed", "the loop goes on: {rejected:#}");
    assert_eq!(step_types(&rejected), ["model", "approval", "tool", "model"]);
    let tool = &rejected["steps"][2];
    assert_eq!(tool["is_error"], true);
    assert_eq!(
        tool["output"],
        json!({"error": "rejected by owner@example.com: Not on a Friday"}).to_string()
    );
    assert_eq!(rejected["steps"][1]["reason"], "Not on a Friday");
    let content = rejected["output"]["content"].as_str().ok_or("no output")?;
    assert!(content.contains("rejected by owner@example.com: Not on a Friday"), "{content}");
    // Bad decisions are refused before anything is written.
    let other = f.run(calculate_run()).await?;
    let (status, _) = f.decide(&other, f.owner.bearer(), json!({"decision": "maybe"})).await?;
    assert_eq!(status, 400);
    let long = json!({"decision": "rejected", "reason": "x".repeat(1001)});
    assert_eq!(f.decide(&other, f.owner.bearer(), long).await?.0, 400);
    let id = string_at(&other, "/id")?;
    let read = expect_status(f.api.get(&format!("/v1/runs/{id}"), f.key()).await?, 200)?;
    assert_eq!(read["status"], "paused");
    Ok(())
}

async fn only_approvers_decide_and_they_may_read_the_run(engine: TestEngine) -> TestResult {
    let f = fixture(engine, policy(approve_calculate)).await?;
    let approver = f.member("approver@example.com", "member").await?;
    let bystander = f.member("bystander@example.com", "member").await?;
    let admin = f.member("admin@example.com", "admin").await?;
    let stranger = f.api.register("stranger@example.com").await?;
    f.api.create_org(&stranger, "Elsewhere").await?;

    // Approvers must be members, named by id or email.
    let mut body = calculate_run();
    body["approvers"] = json!(["stranger@example.com"]);
    let refused = f.api.post("/v1/runs", f.key(), body).await?;
    assert_error(&refused, 422, "request.invalid");
    assert_eq!(refused.1["error"]["param"], "approvers");
    let mut body = calculate_run();
    body["approvers"] = json!(["approver@EXAMPLE.com", approver.user_id]);
    let paused = f.run(body).await?;
    assert_eq!(paused["approvers"], json!([approver.user_id]), "one approver, named twice");

    let id = string_at(&paused, "/id")?;
    // The approver may read the run, though they did not create it.
    expect_status(f.api.get(&format!("/v1/runs/{id}"), approver.bearer()).await?, 200)?;
    // Others who may see it are told they are not approvers; others still do not see it.
    let approve = json!({"decision": "approved"});
    assert_error(&f.decide(&paused, f.owner.bearer(), approve.clone()).await?, 403, "run.not_an_approver");
    assert_error(&f.decide(&paused, f.key(), approve.clone()).await?, 403, "run.not_an_approver");
    assert_error(&f.decide(&paused, admin.bearer(), approve.clone()).await?, 403, "run.not_an_approver");
    assert_error(&f.decide(&paused, bystander.bearer(), approve.clone()).await?, 404, "run.not_found");
    assert_error(&f.decide(&paused, stranger.bearer(), approve.clone()).await?, 404, "run.not_found");
    let decided = expect_status(f.decide(&paused, approver.bearer(), approve.clone()).await?, 200)?;
    assert_eq!(decided["status"], "completed");
    assert_eq!(decided["steps"][1]["approver_email"], "approver@example.com");

    // A run that names no approver is decided by its org's owners and admins.
    let unnamed = f.run(calculate_run()).await?;
    assert_eq!(unnamed["approvers"], json!([]));
    let decided = expect_status(f.decide(&unnamed, admin.bearer(), approve).await?, 200)?;
    assert_eq!(decided["status"], "completed");
    Ok(())
}

async fn a_paused_run_mails_its_approvers(engine: TestEngine) -> TestResult {
    let f = fixture(
        engine,
        policy(|policy| {
            approve_calculate(policy);
            policy.approvers =
                vec!["policy-approver@example.com".to_owned(), "not-a-member@example.com".to_owned()];
        }),
    )
    .await?;
    let named = f.member("named@example.com", "member").await?;
    let from_policy = f.member("policy-approver@example.com", "member").await?;
    f.member("admin@example.com", "admin").await?;
    let mut body = calculate_run();
    body["approvers"] = json!(["named@example.com"]);
    let paused = f.run(body).await?;
    assert_eq!(paused["approvers"], json!([named.user_id, from_policy.user_id]));
    let id = string_at(&paused, "/id")?;
    let mail = all_mail(&f.server.database.url).await?;
    let mut mailed: Vec<&str> =
        mail.iter().filter(|m| m.kind == "run_approval").map(|m| m.recipient.as_str()).collect();
    mailed.sort_unstable();
    assert_eq!(mailed, ["named@example.com", "policy-approver@example.com"]);
    let message = mail.iter().find(|m| m.kind == "run_approval").ok_or("no mail")?;
    assert!(message.body.contains(&format!("POST /v1/runs/{id}/resume")), "{}", message.body);
    assert!(message.body.contains("calculate"), "{}", message.body);

    // With no approvers at all, the org's owners and admins are mailed.
    let f = fixture(engine, policy(approve_calculate)).await?;
    f.member("admin@example.com", "admin").await?;
    f.member("member@example.com", "member").await?;
    f.run(calculate_run()).await?;
    let mail = all_mail(&f.server.database.url).await?;
    let mut mailed: Vec<&str> =
        mail.iter().filter(|m| m.kind == "run_approval").map(|m| m.recipient.as_str()).collect();
    mailed.sort_unstable();
    assert_eq!(mailed, ["admin@example.com", "owner@example.com"]);
    Ok(())
}

async fn the_final_answer_waits_when_the_policy_says_so(engine: TestEngine) -> TestResult {
    let f = fixture(engine, policy(|policy| policy.approve_output = true)).await?;
    let hello = json!({"messages": [{"role": "user", "content": "Hello"}]});
    let paused = f.run(hello.clone()).await?;
    assert_eq!(paused["status"], "paused");
    assert_eq!(paused["pending_approval"]["reason"], "output_approval_required");
    assert_eq!(paused["pending_approval"]["output"], "You said: Hello");
    assert_eq!(paused["output"], Value::Null, "not the run's output until approved");
    let approved =
        expect_status(f.decide(&paused, f.owner.bearer(), json!({"decision": "approved"})).await?, 200)?;
    assert_eq!(approved["status"], "completed");
    assert_eq!(approved["output"]["content"], "You said: Hello");
    assert_eq!(step_types(&approved), ["model", "approval"]);
    assert_eq!(approved["steps"][1]["tool_call_id"], Value::Null);

    let paused = f.run(hello).await?;
    let body = json!({"decision": "rejected", "reason": "Too curt"});
    let blocked = expect_status(f.decide(&paused, f.owner.bearer(), body).await?, 200)?;
    assert_eq!(blocked["status"], "blocked", "{blocked:#}");
    assert_eq!(blocked["error"]["code"], "run.blocked");
    let message = blocked["error"]["message"].as_str().ok_or("no message")?;
    assert!(message.contains("policies.default.approve_output"), "{message}");
    let why = blocked["error"]["why"].as_str().ok_or("no why")?;
    assert!(why.contains("rejected by owner@example.com: Too curt"), "{why}");
    assert_eq!(blocked["output"], Value::Null);
    assert!(blocked["finished_at"].is_string());
    Ok(())
}

async fn blocked_patterns_and_allowed_tools_block_a_run_naming_the_rule(engine: TestEngine) -> TestResult {
    let f = fixture(
        engine,
        policy(|policy| {
            policy.blocked_patterns = vec!["(?i)password".to_owned(), "^You said: forbidden".to_owned()];
            policy.allowed_tools = Some(vec!["calculate".to_owned(), "get_weather".to_owned()]);
        }),
    )
    .await?;
    // The input: blocked before any model call, nothing spent.
    let blocked = f.run(json!({"messages": [{"role": "user", "content": "my PASSWORD is hunter2"}]})).await?;
    assert_eq!(blocked["status"], "blocked");
    assert_eq!(blocked["error"]["code"], "run.blocked");
    assert_eq!(blocked["error"]["message"], "The run was blocked by policies.default.blocked_patterns[0]");
    assert_eq!(blocked["error"]["why"], "The run's input matches a blocked pattern.");
    assert_eq!(blocked["steps"], json!([]));
    assert_eq!(blocked["usage"]["total_tokens"], 0);
    let instructions =
        json!({"instructions": "The password is swordfish", "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(f.run(instructions).await?["status"], "blocked", "instructions are input too");
    // The output: the model answered, and the answer is withheld.
    let blocked = f.run(json!({"messages": [{"role": "user", "content": "forbidden words"}]})).await?;
    assert_eq!(blocked["status"], "blocked");
    assert_eq!(blocked["error"]["message"], "The run was blocked by policies.default.blocked_patterns[1]");
    assert_eq!(blocked["error"]["why"], "The run's output matches a blocked pattern.");
    assert_eq!(blocked["output"], Value::Null);
    assert_eq!(step_types(&blocked), ["model"]);
    // A tool outside allowed_tools, server or client.
    let timed = json!({"messages": [{"role": "user", "content": "Hi"}], "tools": ["current_time"]});
    let blocked = f.run(timed).await?;
    assert_eq!(blocked["status"], "blocked");
    assert_eq!(blocked["error"]["message"], "The run was blocked by policies.default.allowed_tools");
    let client = json!({"messages": [{"role": "user", "content": "Hi"}], "tools": [{"name": "launch"}]});
    assert_eq!(f.run(client).await?["status"], "blocked");
    // Allowed ones run.
    assert_eq!(f.run(calculate_run()).await?["status"], "completed");
    // Blocked runs are final and in the trail.
    let id = string_at(&blocked, "/id")?;
    let cancel = f.api.call(Method::POST, &format!("/v1/runs/{id}/cancel"), f.key(), None).await?;
    assert_error(&cancel, 409, "run.finished");
    let trail_path = format!("/v1/audit?org_id={}&route=default&limit=200", f.org);
    let trail = expect_status(f.api.get(&trail_path, f.owner.bearer()).await?, 200)?;
    let blocked_ends = trail["data"]
        .as_array()
        .ok_or("no data")?
        .iter()
        .filter(|e| e["action"] == "run.finished" && e["details"]["status"] == "blocked")
        .count();
    assert_eq!(blocked_ends, 5);
    let listed = expect_status(f.api.get("/v1/runs?status=blocked", f.key()).await?, 200)?;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(5));
    Ok(())
}

async fn policy_ceilings_cap_steps_and_cost(engine: TestEngine) -> TestResult {
    let f = fixture(
        engine,
        policy(|policy| {
            policy.max_steps = Some(2);
            policy.max_cost_usd = Some("0.50".to_owned());
        }),
    )
    .await?;
    let hello =
        json!({"messages": [{"role": "user", "content": "Hello"}], "max_steps": 50, "max_cost_usd": "9.00"});
    let run = f.run(hello).await?;
    assert_eq!((run["max_steps"].as_u64(), run["max_cost_usd"].as_str()), (Some(2), Some("0.50")));
    let modest =
        json!({"messages": [{"role": "user", "content": "Hello"}], "max_steps": 1, "max_cost_usd": "0.10"});
    let run = f.run(modest).await?;
    assert_eq!((run["max_steps"].as_u64(), run["max_cost_usd"].as_str()), (Some(1), Some("0.10")));
    // Three steps do not fit in two.
    let run = f.run(calculate_run()).await?;
    assert_eq!(run["status"], "error");
    assert_eq!(run["error"]["code"], "run.max_steps_exceeded");
    Ok(())
}

async fn concurrent_decisions_apply_once(engine: TestEngine) -> TestResult {
    let f = fixture(engine, policy(approve_calculate)).await?;
    let admin = f.member("admin@example.com", "admin").await?;
    let paused = f.run(calculate_run()).await?;
    let approve = json!({"decision": "approved"});
    let reject = json!({"decision": "rejected"});
    let (first, second) =
        tokio::join!(f.decide(&paused, f.owner.bearer(), approve), f.decide(&paused, admin.bearer(), reject));
    let (first, second) = (first?, second?);
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "{first:?} {second:?}");
    let id = string_at(&paused, "/id")?;
    let read = expect_status(f.api.get(&format!("/v1/runs/{id}"), f.key()).await?, 200)?;
    assert_eq!(step_types(&read), ["model", "approval", "tool", "model"], "one decision journaled");
    Ok(())
}

async fn a_paused_run_can_be_cancelled(engine: TestEngine) -> TestResult {
    let f = fixture(engine, policy(approve_calculate)).await?;
    let paused = f.run(calculate_run()).await?;
    let id = string_at(&paused, "/id")?;
    let cancelled = f.api.call(Method::POST, &format!("/v1/runs/{id}/cancel"), f.key(), None).await?;
    let cancelled = expect_status(cancelled, 200)?;
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(cancelled["pending_approval"], Value::Null);
    assert_error(
        &f.decide(&paused, f.owner.bearer(), json!({"decision": "approved"})).await?,
        409,
        "run.not_paused",
    );
    Ok(())
}
