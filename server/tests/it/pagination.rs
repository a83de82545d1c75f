//! Every list takes the same `limit` and `cursor`: a page size outside 1 to
//! 200 or no integer at all is a 400 before the handler runs, and a cursor
//! is opaque, checked only by the list that issued it.

use serde_json::json;

use crate::support::{Api, TestEngine, TestResult, assert_error, expect_status, on_both_engines, start};

on_both_engines!(
    every_list_refuses_a_page_size_outside_its_bounds,
    a_page_holds_fifty_items_unless_asked,
    a_cursor_is_checked_by_its_own_list,
);

async fn every_list_refuses_a_page_size_outside_its_bounds(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("ada@example.com").await?;
    let org = api.create_org(&owner, "Analytical Engines").await?;
    let lists = [
        "/v1/auth/sessions?".to_owned(),
        "/v1/auth/security-log?".to_owned(),
        "/v1/orgs?".to_owned(),
        format!("/v1/orgs/{org}/members?"),
        format!("/v1/orgs/{org}/invitations?"),
        "/v1/projects?".to_owned(),
        "/v1/api-keys?".to_owned(),
        format!("/v1/audit?org_id={org}&"),
    ];
    let not_a_number = |why: &str| {
        format!(
            r#"failed to parse "integer(uint32)": {why} (occurred while parsing "optional_integer(uint32)")"#
        )
    };
    let refused = [
        ("0", "verification failed. minimum(1, exclusive: false)".to_owned()),
        ("201", "verification failed. maximum(200, exclusive: false)".to_owned()),
        ("abc", not_a_number("invalid digit found in string")),
        ("-1", not_a_number("invalid digit found in string")),
        ("1.5", not_a_number("invalid digit found in string")),
        ("", not_a_number("cannot parse integer from empty string")),
    ];
    for list in &lists {
        for (limit, reason) in &refused {
            let reply = api.get(&format!("{list}limit={limit}"), owner.bearer()).await?;
            assert_error(&reply, 400, "request.malformed");
            let message = format!("failed to parse parameter `limit`: {reason}");
            assert_eq!(reply.1["error"]["message"], message.as_str(), "{list}limit={limit}");
            assert_eq!(reply.1["detail"], message.as_str());
        }
        for limit in ["1", "200"] {
            expect_status(api.get(&format!("{list}limit={limit}"), owner.bearer()).await?, 200)?;
        }
    }
    server.stop().await?;
    Ok(())
}

async fn a_page_holds_fifty_items_unless_asked(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("ada@example.com").await?;
    for n in 0..51 {
        api.create_org(&owner, &format!("Engine {n}")).await?;
    }
    let page = expect_status(api.get("/v1/orgs", owner.bearer()).await?, 200)?;
    assert_eq!((page["data"].as_array().map(Vec::len), &page["has_more"]), (Some(50), &json!(true)));
    let page = expect_status(api.get("/v1/orgs?limit=200", owner.bearer()).await?, 200)?;
    assert_eq!((page["data"].as_array().map(Vec::len), &page["has_more"]), (Some(51), &json!(false)));
    server.stop().await?;
    Ok(())
}

async fn a_cursor_is_checked_by_its_own_list(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("ada@example.com").await?;
    api.create_org(&owner, "Analytical Engines").await?;

    // The trail's cursors are positions in its chain: anything else is refused.
    let reply = api.get("/v1/auth/security-log?cursor=abc", owner.bearer()).await?;
    assert_error(&reply, 422, "request.invalid");
    assert_eq!(reply.1["error"]["param"], "cursor");
    // Other lists continue after an id: past the last one the page is empty.
    let page = expect_status(api.get("/v1/orgs?cursor=zzz", owner.bearer()).await?, 200)?;
    assert_eq!(page, json!({"data": [], "next_cursor": null, "has_more": false}));
    // An empty cursor is none: the first page, on every list.
    let first = expect_status(api.get("/v1/auth/security-log?cursor=", owner.bearer()).await?, 200)?;
    assert!(!first["data"].as_array().ok_or("a list")?.is_empty(), "{first}");
    let orgs = expect_status(api.get("/v1/orgs?cursor=", owner.bearer()).await?, 200)?;
    assert_eq!(orgs["data"].as_array().map(Vec::len), Some(1), "{orgs}");
    server.stop().await?;
    Ok(())
}
