//! `GET /v1/usage`: real gateway traffic (the built-in `dev` provider, priced)
//! summed per model, key, project and day; who sees which rows; the range and
//! parameter checks.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use switchyard_providers::price::format_usd_micros;
use switchyard_server::gateway::config::PriceConfig;

use crate::support::{
    Api, BoxError, Credential, MintedKey, TestEngine, TestResult, add_member, assert_error, expect_status,
    on_both_engines, start, string_at,
};

on_both_engines!(
    reports_sum_real_traffic_per_group,
    members_and_chat_keys_see_only_their_own_usage,
    other_tenants_get_404_and_bad_queries_are_refused,
);

/// One micro-USD per prompt token, two per completion token.
fn priced(config: &mut switchyard_server::Config) {
    let price = PriceConfig { input_per_mtok: "1.00".to_owned(), output_per_mtok: "2.00".to_owned() };
    config.prices = BTreeMap::from([("dev".to_owned(), price)]);
}

/// What one group (or the totals) should hold.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Sums {
    requests: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl Sums {
    fn add(&mut self, other: Sums) {
        self.requests += other.requests;
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
    }

    /// The cost at [`priced`] prices, as the API writes it.
    fn cost_usd(&self) -> String {
        let micros = self.prompt_tokens + 2 * self.completion_tokens;
        format_usd_micros(i64::try_from(micros).unwrap_or(i64::MAX))
    }

    /// Asserts `entry` (a data item or the totals) holds these sums.
    #[track_caller]
    fn assert_in(&self, entry: &Value) {
        let expected = json!({
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "cost_usd": self.cost_usd(),
        });
        for (field, value) in expected.as_object().into_iter().flatten() {
            assert_eq!(&entry[field], value, "{field} in {entry}");
        }
    }
}

/// Sends one chat request with `key` and returns what its usage says.
async fn chat(api: &Api, key: &MintedKey, model: &str, text: &str) -> Result<Sums, BoxError> {
    let body = json!({"model": model, "messages": [{"role": "user", "content": text}]});
    let answer =
        expect_status(api.post("/v1/chat/completions", Credential::Bearer(&key.key), body).await?, 200)?;
    let tokens = |field: &str| answer["usage"][field].as_u64().ok_or(format!("no usage.{field} in {answer}"));
    Ok(Sums {
        requests: 1,
        prompt_tokens: tokens("prompt_tokens")?,
        completion_tokens: tokens("completion_tokens")?,
    })
}

/// `GET /v1/usage?…` as `credential`, expecting 200.
async fn report(api: &Api, credential: Credential<'_>, query: &str) -> Result<Value, BoxError> {
    expect_status(api.get(&format!("/v1/usage?{query}"), credential).await?, 200)
}

/// The groups of a report, in order.
fn groups(report: &Value) -> Vec<Value> {
    report["data"]
        .as_array()
        .map(|data| data.iter().map(|entry| entry["group"].clone()).collect())
        .unwrap_or_default()
}

async fn reports_sum_real_traffic_per_group(engine: TestEngine) -> TestResult {
    let server = start(engine, priced).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Analytical Engines").await?;
    let project = string_at(
        &expect_status(
            api.post("/v1/projects", owner.bearer(), json!({"org_id": org, "name": "Difference Engine"}))
                .await?,
            201,
        )?,
        "/id",
    )?;
    let plain = api.mint_key(&owner, &org, &["chat"]).await?;
    let narrowed = json!({"name": "narrowed", "scopes": ["chat"], "org_id": org, "project_id": project});
    let narrowed = expect_status(api.post("/v1/api-keys", owner.bearer(), narrowed).await?, 201)?;
    let narrowed = MintedKey { id: string_at(&narrowed, "/id")?, key: string_at(&narrowed, "/key")? };

    let (mut on_default, mut on_dev, mut by_plain, mut by_narrowed) =
        (Sums::default(), Sums::default(), Sums::default(), Sums::default());
    for text in ["Hello", "What is the Analytical Engine?"] {
        let sums = chat(&api, &plain, "default", text).await?;
        on_default.add(sums);
        by_plain.add(sums);
    }
    let sums = chat(&api, &plain, "dev", "Hello from the dev model").await?;
    on_dev.add(sums);
    by_plain.add(sums);
    let sums = chat(&api, &narrowed, "default", "A narrowed hello").await?;
    on_default.add(sums);
    by_narrowed.add(sums);
    let mut all = by_plain;
    all.add(by_narrowed);
    assert!(all.cost_usd() != "0.00", "the prices apply: {all:?}");

    // Read at once: the report writes this replica's pending rows first.
    let by_model = report(&api, owner.bearer(), &format!("org_id={org}&group_by=model")).await?;
    assert_eq!(by_model["object"], "usage_report");
    assert_eq!(by_model["org_id"], org.as_str());
    assert_eq!(by_model["group_by"], "model");
    assert_eq!(groups(&by_model), vec![json!("default"), json!("dev")], "{by_model}");
    on_default.assert_in(&by_model["data"][0]);
    on_dev.assert_in(&by_model["data"][1]);
    all.assert_in(&by_model["totals"]);

    let by_key = report(&api, owner.bearer(), &format!("org_id={org}&group_by=key")).await?;
    let mut keys = [(plain.id.clone(), by_plain), (narrowed.id.clone(), by_narrowed)];
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(groups(&by_key), keys.iter().map(|(id, _)| json!(id)).collect::<Vec<_>>(), "{by_key}");
    keys[0].1.assert_in(&by_key["data"][0]);
    keys[1].1.assert_in(&by_key["data"][1]);
    all.assert_in(&by_key["totals"]);

    // Requests of keys not narrowed to a project have no project: `null`, last.
    let by_project = report(&api, owner.bearer(), &format!("org_id={org}&group_by=project")).await?;
    assert_eq!(groups(&by_project), vec![json!(project), Value::Null], "{by_project}");
    by_narrowed.assert_in(&by_project["data"][0]);
    by_plain.assert_in(&by_project["data"][1]);

    // `day` is the default grouping; a run across midnight sees two days.
    let by_day = report(&api, owner.bearer(), &format!("org_id={org}")).await?;
    assert_eq!(by_day["group_by"], "day");
    let days = groups(&by_day);
    assert!((1..=2).contains(&days.len()), "{by_day}");
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    assert_eq!(days.last(), Some(&json!(today)), "{by_day}");
    all.assert_in(&by_day["totals"]);

    // The default range is the 30 days up to now.
    let from = chrono::DateTime::parse_from_rfc3339(&string_at(&by_day, "/from")?)?;
    let to = chrono::DateTime::parse_from_rfc3339(&string_at(&by_day, "/to")?)?;
    assert_eq!(to - from, chrono::Duration::days(30));
    assert!((to.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds().abs() <= 5, "{by_day}");

    // Filters narrow the report; a range without traffic is empty.
    let one_key =
        report(&api, owner.bearer(), &format!("org_id={org}&key_id={}&group_by=model", plain.id)).await?;
    by_plain.assert_in(&one_key["totals"]);
    let one_project =
        report(&api, owner.bearer(), &format!("org_id={org}&project_id={project}&group_by=key")).await?;
    assert_eq!(groups(&one_project), vec![json!(narrowed.id)]);
    by_narrowed.assert_in(&one_project["totals"]);
    let past = "from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z";
    let empty = report(&api, owner.bearer(), &format!("org_id={org}&{past}")).await?;
    assert_eq!(empty["data"], json!([]));
    Sums::default().assert_in(&empty["totals"]);
    let instant =
        |field: &str| chrono::DateTime::parse_from_rfc3339(empty[field].as_str().unwrap_or_default());
    assert_eq!(instant("from")?, chrono::DateTime::parse_from_rfc3339("2020-01-01T00:00:00Z")?);
    assert_eq!(instant("to")?, chrono::DateTime::parse_from_rfc3339("2020-02-01T00:00:00Z")?);

    // An API key with the `admin` scope sees the whole org, as its owner does.
    let admin_key = api.mint_key(&owner, &org, &["admin"]).await?;
    let seen = report(&api, Credential::ApiKeyHeader(&admin_key.key), "group_by=model").await?;
    assert_eq!(seen["org_id"], org.as_str());
    all.assert_in(&seen["totals"]);
    server.stop().await?;
    Ok(())
}

async fn members_and_chat_keys_see_only_their_own_usage(engine: TestEngine) -> TestResult {
    let server = start(engine, priced).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Analytical Engines").await?;
    let member = api.register("member@example.com").await?;
    add_member(&server, &org, &member.user_id, "member").await?;
    let admin = api.register("admin@example.com").await?;
    add_member(&server, &org, &admin.user_id, "admin").await?;

    let owners_key = api.mint_key(&owner, &org, &["chat"]).await?;
    let owners_other_key = api.mint_key(&owner, &org, &["chat"]).await?;
    let members_key = api.mint_key(&member, &org, &["chat"]).await?;
    let members_admin_key = api.mint_key(&member, &org, &["chat", "admin"]).await?;
    let by_owners_key = chat(&api, &owners_key, "default", "Hello").await?;
    let mut by_owner = by_owners_key;
    by_owner.add(chat(&api, &owners_other_key, "default", "Hello again, engine").await?);
    let by_member = chat(&api, &members_key, "default", "Hello from a member").await?;
    let mut all = by_owner;
    all.add(by_member);

    // Members see their own rows, even with the `admin` scope; admins see all.
    let query = format!("org_id={org}&group_by=key");
    let seen = report(&api, member.bearer(), &query).await?;
    assert_eq!(groups(&seen), vec![json!(members_key.id)], "{seen}");
    by_member.assert_in(&seen["totals"]);
    let seen = report(&api, Credential::Bearer(&members_admin_key.key), "group_by=key").await?;
    by_member.assert_in(&seen["totals"]);
    let seen = report(&api, admin.bearer(), &query).await?;
    all.assert_in(&seen["totals"]);
    // Asking for someone else's key shows nothing rather than failing.
    let seen = report(&api, member.bearer(), &format!("{query}&key_id={}", owners_key.id)).await?;
    assert_eq!(seen["data"], json!([]), "{seen}");

    // A key without the `admin` scope sees only its own requests, in its own org.
    let seen = report(&api, Credential::Bearer(&owners_key.key), "group_by=key").await?;
    assert_eq!((seen["org_id"].as_str(), groups(&seen)), (Some(org.as_str()), vec![json!(owners_key.id)]));
    by_owners_key.assert_in(&seen["totals"]);
    let seen = report(
        &api,
        Credential::Bearer(&owners_key.key),
        &format!("org_id={org}&key_id={}", owners_other_key.id),
    )
    .await?;
    Sums::default().assert_in(&seen["totals"]);

    // Externals, too, see only their own: none here.
    let external = api.register("external@example.com").await?;
    add_member(&server, &org, &external.user_id, "external").await?;
    let seen = report(&api, external.bearer(), &query).await?;
    assert_eq!(seen["data"], json!([]), "{seen}");
    server.stop().await?;
    Ok(())
}

async fn other_tenants_get_404_and_bad_queries_are_refused(engine: TestEngine) -> TestResult {
    let server = start(engine, priced).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Analytical Engines").await?;
    let key = api.mint_key(&owner, &org, &["*"]).await?;
    chat(&api, &key, "default", "Hello").await?;
    let stranger = api.register("stranger@example.com").await?;
    let strangers_org = api.create_org(&stranger, "Elsewhere").await?;

    let get = |query: String, credential| {
        let api = &api;
        async move { api.get(&format!("/v1/usage?{query}"), credential).await }
    };
    assert_error(&get(format!("org_id={org}"), stranger.bearer()).await?, 404, "org.not_found");
    assert_error(&get("org_id=org_nonexistent".to_owned(), stranger.bearer()).await?, 404, "org.not_found");
    // A key acts in its own org only, whatever its scopes.
    let other = format!("org_id={strangers_org}");
    assert_error(&get(other, Credential::Bearer(&key.key)).await?, 404, "org.not_found");
    assert_error(
        &get(format!("org_id={org}"), Credential::Anonymous).await?,
        401,
        "auth.missing_credentials",
    );

    let invalid = |reply: &(u16, Value), param: &str| {
        assert_error(reply, 422, "request.invalid");
        assert_eq!(reply.1["error"]["param"], param, "{}", reply.1);
    };
    invalid(&get(String::new(), owner.bearer()).await?, "org_id");
    let reversed = format!("org_id={org}&from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z");
    invalid(&get(reversed, owner.bearer()).await?, "from");
    let empty = format!("org_id={org}&from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:00Z");
    invalid(&get(empty, owner.bearer()).await?, "from");
    let too_long = format!("org_id={org}&from=2025-01-01T00:00:00Z&to=2026-01-03T00:00:00Z");
    invalid(&get(too_long, owner.bearer()).await?, "from");
    let longest = format!("org_id={org}&from=2025-01-01T00:00:00Z&to=2026-01-02T00:00:00Z");
    expect_status(get(longest, owner.bearer()).await?, 200)?;
    // `from` alone: `to` is still now, so `from` may be at most 366 days ago.
    let long_ago = chrono::Utc::now() - chrono::Duration::days(400);
    let old = format!("org_id={org}&from={}", long_ago.format("%Y-%m-%dT%H:%M:%SZ"));
    invalid(&get(old, owner.bearer()).await?, "from");

    // Malformed parameters are 400, as for every endpoint.
    assert_error(
        &get(format!("org_id={org}&group_by=week"), owner.bearer()).await?,
        400,
        "request.malformed",
    );
    assert_error(
        &get(format!("org_id={org}&from=yesterday"), owner.bearer()).await?,
        400,
        "request.malformed",
    );
    server.stop().await?;
    Ok(())
}
