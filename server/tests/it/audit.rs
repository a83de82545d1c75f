//! The audit trail over HTTP: an org's events newest first with filters and
//! pages, its hash chain verified on the server and offline, tampering in the
//! database found at the right position, concurrent writers that leave no
//! gap, and events from before the chain chained at start.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchyard_server::db::Db;

use crate::support::{
    Api, BoxError, RunningServer, Session, TestEngine, TestResult, assert_error, expect_status,
    on_both_engines, start, string_at,
};

on_both_engines!(
    the_trail_lists_newest_first_with_filters_and_pages,
    an_exported_trail_verifies_offline,
    verification_names_the_first_tampered_position,
    concurrent_events_extend_one_chain_without_gaps,
    events_from_before_the_chain_are_chained_at_start,
    each_user_reads_only_their_own_security_log,
);

const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An owner with an org, a member added, and a project: four events.
async fn busy_org(api: &Api, database_url: &str) -> Result<(Session, String, Session), BoxError> {
    let owner = api.register("ada@example.com").await?;
    let org = api.create_org(&owner, "Analytical Engines").await?;
    let grace = api.register_verified("grace@example.com", database_url).await?;
    let add = json!({"email": grace.email, "role": "member"});
    expect_status(api.post(&format!("/v1/orgs/{org}/members"), owner.bearer(), add).await?, 201)?;
    let project = json!({"org_id": org, "name": "Difference Engine"});
    expect_status(api.post("/v1/projects", owner.bearer(), project).await?, 201)?;
    let rename = json!({"name": "Analytical Engines Ltd"});
    let path = format!("/v1/orgs/{org}");
    expect_status(api.call(reqwest::Method::PATCH, &path, owner.bearer(), Some(&rename)).await?, 200)?;
    Ok((owner, org, grace))
}

fn actions(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str().map(str::to_owned))
        .collect()
}

async fn verify(api: &Api, owner: &Session, org: &str) -> Result<Value, BoxError> {
    expect_status(api.get(&format!("/v1/audit/verify?org_id={org}"), owner.bearer()).await?, 200)
}

async fn the_trail_lists_newest_first_with_filters_and_pages(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, org, grace) = busy_org(&api, &server.database.url).await?;

    let all = expect_status(api.get(&format!("/v1/audit?org_id={org}"), owner.bearer()).await?, 200)?;
    assert_eq!(actions(&all), ["org.renamed", "project.created", "member.added", "org.created"], "{all}");
    let seqs: Vec<u64> =
        all["data"].as_array().into_iter().flatten().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, [4, 3, 2, 1]);
    assert_eq!(all["data"][1]["org_id"], org.as_str());
    assert_eq!(all["data"][1]["actor_id"], owner.user_id.as_str());

    let added = api.get(&format!("/v1/audit?org_id={org}&action=member.added"), owner.bearer()).await?;
    let added = expect_status(added, 200)?;
    assert_eq!(actions(&added), ["member.added"]);
    assert_eq!(added["data"][0]["target"], grace.user_id.as_str());
    let by_grace = format!("/v1/audit?org_id={org}&principal={}", grace.user_id);
    assert_eq!(
        actions(&expect_status(api.get(&by_grace, owner.bearer()).await?, 200)?),
        Vec::<String>::new()
    );
    let future = format!("/v1/audit?org_id={org}&since=2100-01-01T00:00:00Z");
    assert_eq!(actions(&expect_status(api.get(&future, owner.bearer()).await?, 200)?), Vec::<String>::new());

    // Pages of three, then one: nothing twice, nothing left out.
    let first =
        expect_status(api.get(&format!("/v1/audit?org_id={org}&limit=3"), owner.bearer()).await?, 200)?;
    assert_eq!(first["has_more"], true);
    let cursor = string_at(&first, "/next_cursor")?;
    let rest = api.get(&format!("/v1/audit?org_id={org}&limit=3&cursor={cursor}"), owner.bearer()).await?;
    let rest = expect_status(rest, 200)?;
    assert_eq!(rest["has_more"], false);
    assert_eq!([actions(&first), actions(&rest)].concat(), actions(&all));

    // A member may not read it; a stranger does not learn the org exists.
    assert_error(
        &api.get(&format!("/v1/audit?org_id={org}"), grace.bearer()).await?,
        403,
        "auth.role_denied",
    );
    let stranger = api.register("eve@example.com").await?;
    assert_error(
        &api.get(&format!("/v1/audit?org_id={org}"), stranger.bearer()).await?,
        404,
        "org.not_found",
    );
    server.stop().await?;
    Ok(())
}

async fn an_exported_trail_verifies_offline(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, org, _) = busy_org(&api, &server.database.url).await?;
    let key = api.mint_key(&owner, &org, &["admin"]).await?;
    let page = api.get("/v1/audit", crate::support::Credential::Bearer(&key.key)).await?;
    let page = expect_status(page, 200)?;
    let mut events = page["data"].as_array().cloned().unwrap_or_default();
    events.reverse();
    assert_eq!(events.len(), 5, "four events and the key: {page}");
    // The hash as the spec documents it, computed here independently.
    let mut prev = GENESIS.to_owned();
    for event in &events {
        let occurred =
            chrono::DateTime::parse_from_rfc3339(event["occurred_at"].as_str().unwrap_or_default())?;
        let canonical = json!([
            prev,
            event["seq"],
            event["id"],
            occurred.timestamp(),
            event["actor_id"],
            event["org_id"],
            event["action"],
            event["target"],
            event["ip"],
            event["request_id"],
        ]);
        let hash: String = Sha256::digest(canonical.to_string()).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(event["prev_hash"], prev.as_str(), "{event}");
        assert_eq!(event["hash"], hash.as_str(), "{event}");
        prev = hash;
    }
    let verified = verify(&api, &owner, &org).await?;
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["verified_events"], 5);
    assert_eq!(verified["head_hash"], prev.as_str());
    server.stop().await?;
    Ok(())
}

/// Runs one statement against the server's database.
async fn tamper(server: &RunningServer, sql: &str, org: &str, seq: i64) -> TestResult {
    let db = Db::connect(&server.database.url).await?;
    let done = sqlx::query(sql).bind(org).bind(seq).execute(db.pool()).await;
    db.close().await;
    assert_eq!(done?.rows_affected(), 1, "{sql}");
    Ok(())
}

async fn verification_names_the_first_tampered_position(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let (owner, org, _) = busy_org(&api, &server.database.url).await?;
    assert_eq!(verify(&api, &owner, &org).await?["broken_at_seq"], Value::Null);

    // An edited event breaks the chain where it stands.
    tamper(
        &server,
        "UPDATE audit_events SET action = 'project.renamed' WHERE chain = $1 AND seq = $2",
        &org,
        3,
    )
    .await?;
    let edited = verify(&api, &owner, &org).await?;
    assert_eq!(
        (edited["valid"].clone(), edited["broken_at_seq"].clone()),
        (json!(false), json!(3)),
        "{edited}"
    );
    assert_eq!(edited["verified_events"], 2);

    // A removed last event: the head no longer matches what is stored.
    let (owner2, org2) = {
        let owner2 = api.register("charles@example.com").await?;
        let org2 = api.create_org(&owner2, "Difference Engines").await?;
        let project = json!({"org_id": org2, "name": "Mill"});
        expect_status(api.post("/v1/projects", owner2.bearer(), project).await?, 201)?;
        (owner2, org2)
    };
    tamper(&server, "DELETE FROM audit_events WHERE chain = $1 AND seq = $2", &org2, 2).await?;
    let removed = verify(&api, &owner2, &org2).await?;
    assert_eq!(removed["broken_at_seq"], 2, "{removed}");
    assert_eq!(removed["verified_events"], 1);
    server.stop().await?;
    Ok(())
}

async fn concurrent_events_extend_one_chain_without_gaps(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("ada@example.com").await?;
    let org = api.create_org(&owner, "Analytical Engines").await?;
    let creations = (0..20).map(|n| {
        let body = json!({"org_id": org, "name": format!("Project {n}")});
        api.post("/v1/projects", owner.bearer(), body)
    });
    for created in futures::future::join_all(creations).await {
        expect_status(created?, 201)?;
    }
    let verified = verify(&api, &owner, &org).await?;
    assert_eq!(verified["valid"], true, "{verified}");
    assert_eq!(verified["verified_events"], 21);
    server.stop().await?;
    Ok(())
}

async fn events_from_before_the_chain_are_chained_at_start(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("ada@example.com").await?;
    let org = api.create_org(&owner, "Analytical Engines").await?;
    // An event as rows were written before chaining: no chain, position or hashes.
    let db = Db::connect(&server.database.url).await?;
    let inserted = sqlx::query(
        "INSERT INTO audit_events (id, occurred_at, actor_id, org_id, action, target) \
         VALUES ('evt_legacy', 1, $1, $2, 'member.added', $1)",
    )
    .bind(&owner.user_id)
    .bind(&org)
    .execute(db.pool())
    .await;
    let migrated = match inserted {
        Ok(_) => db.migrate().await.map_err(BoxError::from),
        Err(err) => Err(err.into()),
    };
    db.close().await;
    migrated?;

    let page = expect_status(api.get(&format!("/v1/audit?org_id={org}"), owner.bearer()).await?, 200)?;
    assert_eq!(actions(&page), ["member.added", "org.created"]);
    assert_eq!(page["data"][0]["id"], "evt_legacy");
    assert_eq!(page["data"][0]["seq"], 2);
    let verified = verify(&api, &owner, &org).await?;
    assert_eq!((verified["valid"].clone(), verified["verified_events"].clone()), (json!(true), json!(2)));
    server.stop().await?;
    Ok(())
}

async fn each_user_reads_only_their_own_security_log(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register("ada@example.com").await?;
    let wrong = json!({"email": "ada@example.com", "password": "not the password"});
    assert_error(
        &api.post("/v1/auth/login", crate::support::Credential::Anonymous, wrong).await?,
        401,
        "auth.invalid_credentials",
    );
    let grace = api.register("grace@example.com").await?;
    api.create_org(&ada, "Analytical Engines").await?;

    let log = expect_status(api.get("/v1/auth/security-log", ada.bearer()).await?, 200)?;
    // Newest first; the org's creation is in the org's trail, not here.
    assert_eq!(actions(&log), ["user.login_failed", "user.registered"], "{log}");
    assert_eq!(log["data"][0]["org_id"], Value::Null);
    assert_eq!(log["data"][0]["ip"], "127.0.0.1");
    let graces = expect_status(api.get("/v1/auth/security-log", grace.bearer()).await?, 200)?;
    assert_eq!(actions(&graces), ["user.registered"]);
    assert_eq!(graces["data"][0]["actor_id"], grace.user_id.as_str());

    let first = expect_status(api.get("/v1/auth/security-log?limit=1", ada.bearer()).await?, 200)?;
    let cursor = string_at(&first, "/next_cursor")?;
    let rest = api.get(&format!("/v1/auth/security-log?limit=1&cursor={cursor}"), ada.bearer()).await?;
    assert_eq!(actions(&expect_status(rest, 200)?), ["user.registered"]);
    server.stop().await?;
    Ok(())
}
