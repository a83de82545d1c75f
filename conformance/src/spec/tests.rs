//! Reading cases out of a small spec: body-less responses with `x-examples` (inline and
//! through `$ref`), their requests and setup steps, the mistakes that fail a case, and
//! which statuses count as covered.

use anyhow::{Context, anyhow};
use serde_json::{Value, json};

use super::{Case, Expected, Plan, Spec, StepAction};

/// Login answers JSON; logout (through a component response) and key deletion answer 204.
fn doc() -> Value {
    json!({
        "openapi": "3.0.3",
        "paths": {
            "/v1/auth/login": { "post": {
                "operationId": "auth_login",
                "requestBody": { "content": { "application/json": {
                    "examples": { "ok": { "value": { "email": "ada@example.com", "password": "pw" } } },
                } } },
                "responses": { "200": { "description": "Logged in.", "content": { "application/json": {
                    "schema": { "type": "object" },
                    "examples": { "ok": { "value": { "token": "tok_1" }, "x-volatile": ["/token"] } },
                } } } },
            } },
            "/v1/auth/logout": { "post": {
                "operationId": "auth_logout",
                "requestBody": { "content": { "application/json": {
                    "examples": { "everywhere": { "value": { "all_sessions": true } } },
                } } },
                "responses": { "204": { "$ref": "#/components/responses/LoggedOut" } },
            } },
            "/v1/api-keys/{id}": { "delete": {
                "operationId": "api_keys_delete",
                "responses": {
                    "204": { "description": "Deleted.", "x-examples": { "deleted": {
                        "summary": "Deletes a key after logging in and out.",
                        "x-server": { "auto_migrate": true },
                        "x-setup": [
                            { "operation": "auth_login", "example": "ok", "capture": { "token": "/token" } },
                            { "operation": "auth_logout", "example": "logged_out" },
                        ],
                        "x-request": {
                            "path": { "id": "key_1" },
                            "headers": { "Authorization": "Bearer {{token}}" },
                        },
                    } } },
                    "404": { "description": "No such key." },
                },
            } },
        },
        "components": { "responses": { "LoggedOut": {
            "description": "Logged out.",
            "x-examples": { "logged_out": { "summary": "Ends the session." } },
        } } },
    })
}

fn case<'a>(spec: &'a Spec, operation: &str, example: &str) -> anyhow::Result<&'a Case> {
    spec.operations
        .iter()
        .filter(|candidate| candidate.id == operation)
        .flat_map(|operation| &operation.cases)
        .find(|case| case.example == example)
        .with_context(|| format!("no case {operation} `{example}`"))
}

fn plan(case: &Case) -> anyhow::Result<&Plan> {
    case.plan.as_ref().map_err(|problem| anyhow!("case `{}` cannot run: {problem}", case.example))
}

fn problem<'a>(spec: &'a Spec, operation: &str, example: &str) -> anyhow::Result<&'a str> {
    match &case(spec, operation, example)?.plan {
        Ok(_) => Err(anyhow!("{operation} `{example}` was expected to fail")),
        Err(problem) => Ok(problem),
    }
}

fn edited(at: &str, edit: impl FnOnce(&mut Value)) -> anyhow::Result<Spec> {
    let mut doc = doc();
    edit(doc.pointer_mut(at).with_context(|| format!("nothing at {at}"))?);
    Spec::from_document(&doc)
}

#[test]
fn bodyless_responses_read_their_x_examples_inline_and_through_refs() -> anyhow::Result<()> {
    let spec = Spec::from_document(&doc())?;

    let deleted = case(&spec, "api_keys_delete", "deleted")?;
    assert_eq!(deleted.status, 204);
    assert_eq!(deleted.server.get("auto_migrate"), Some(&json!(true)));
    let deleted = plan(deleted)?;
    assert!(matches!(deleted.expected, Expected::Empty));
    assert_eq!(deleted.request.body(), None);
    let steps: Vec<_> = deleted
        .setup
        .iter()
        .map(|step| match step.action {
            StepAction::Request { status, .. } => (step.label.as_str(), status),
            StepAction::Outbox { .. } => (step.label.as_str(), 0),
        })
        .collect();
    assert_eq!(steps, [("auth_login/ok", 200), ("auth_logout/logged_out", 204)]);
    assert!(deleted.setup[1].capture.is_empty());

    // Through `$ref`, and without `x-request`: the operation's first request example is sent.
    let logged_out = case(&spec, "auth_logout", "logged_out")?;
    assert_eq!(logged_out.status, 204);
    let logged_out = plan(logged_out)?;
    assert!(matches!(logged_out.expected, Expected::Empty));
    assert_eq!(logged_out.request.body(), Some(&json!({ "all_sessions": true })));

    let ok = plan(case(&spec, "auth_login", "ok")?)?;
    assert!(matches!(&ok.expected, Expected::Json { volatile, .. } if volatile == &["/token"]));
    Ok(())
}

#[test]
fn bodyless_examples_take_no_value_and_capture_nothing() -> anyhow::Result<()> {
    let spec = edited("/components/responses/LoggedOut/x-examples/logged_out", |example| {
        example["value"] = json!({ "ok": true });
    })?;
    assert!(problem(&spec, "auth_logout", "logged_out")?.contains("takes no `value` or `x-volatile`"));

    let spec =
        edited("/paths/~1v1~1api-keys~1{id}/delete/responses/204/x-examples/deleted/x-setup/1", |step| {
            step["capture"] = json!({ "session": "/session" });
        })?;
    assert_eq!(
        problem(&spec, "api_keys_delete", "deleted")?,
        "x-setup step auth_logout/logged_out: captures session but its 204 response has no body"
    );

    let spec = edited("/paths/~1v1~1auth~1login/post/responses/200", |response| {
        response["x-examples"] = json!({ "stray": {} });
    })?;
    assert!(problem(&spec, "auth_login", "stray")?.contains("only for responses without `content`"));
    plan(case(&spec, "auth_login", "ok")?)?;
    Ok(())
}

#[test]
fn a_bodyless_status_is_covered_only_by_x_examples() -> anyhow::Result<()> {
    let spec = Spec::from_document(&doc())?;
    let missing: Vec<_> = spec
        .operations
        .iter()
        .map(|operation| (operation.id.as_str(), operation.cases.len(), operation.missing_statuses()))
        .collect();
    assert_eq!(
        missing,
        [("auth_login", 1, vec![]), ("auth_logout", 1, vec![]), ("api_keys_delete", 1, vec![404])]
    );

    let spec = edited("/components/responses/LoggedOut", |response| {
        response["x-examples"] = json!({});
    })?;
    let logout = spec.operations.iter().find(|operation| operation.id == "auth_logout");
    assert_eq!(logout.map(|operation| operation.missing_statuses()), Some(vec![204]));
    Ok(())
}

#[test]
fn a_captured_name_cannot_look_like_a_function_call() -> anyhow::Result<()> {
    let spec =
        edited("/paths/~1v1~1api-keys~1{id}/delete/responses/204/x-examples/deleted/x-setup/0", |step| {
            step["capture"] = json!({ "totp:token": "/token" });
        })?;
    assert_eq!(
        problem(&spec, "api_keys_delete", "deleted")?,
        "x-setup step auth_login/ok: cannot capture `totp:token`: `:` in a placeholder calls a function"
    );
    Ok(())
}
