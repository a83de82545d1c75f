//! `Idempotency-Key` on `POST /v1/runs`: a retry replays the first answer
//! byte for byte, another request with the key is a conflict, concurrent
//! repeats start one run, keys belong to who sent them, and housekeeping
//! forgets them after their retention; and the front underneath: a repeat
//! waits for the first request, and a failure releases the key.

use std::time::Duration;

use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use switchyard_server::db::{Db, Retention};
use switchyard_server::idempotency::{Answer, Idempotency, IdempotentRequest};
use switchyard_server::kernel::error::DomainError;
use switchyard_server::kernel::principal::{Principal, Via};

use crate::support::{
    Api, BoxError, Credential, RunningServer, TestEngine, TestResult, expect_status, http, on_both_engines,
    start, string_at,
};

on_both_engines!(
    the_same_key_and_body_replay_the_first_answer,
    another_request_with_the_key_is_a_conflict,
    fifty_concurrent_identical_requests_start_one_run,
    two_api_keys_use_the_same_key_independently,
    invalid_keys_are_refused_and_refusals_keep_nothing,
    without_a_key_every_request_starts_a_run,
    keys_are_forgotten_after_their_retention,
    a_repeat_waits_for_the_first_request_then_replays_it,
    a_failed_request_releases_its_key,
);

/// What a `POST /v1/runs` answered: status, `Idempotent-Replayed`, body bytes.
struct Sent {
    status: u16,
    replayed: Option<String>,
    bytes: Vec<u8>,
}

impl Sent {
    fn json(&self) -> Result<Value, BoxError> {
        Ok(serde_json::from_slice(&self.bytes)?)
    }

    fn run_id(&self) -> Result<String, BoxError> {
        string_at(&self.json()?, "/id")
    }

    fn error_code(&self) -> Result<String, BoxError> {
        string_at(&self.json()?, "/error/code")
    }
}

/// Sends `POST /v1/runs` with `bearer`, an optional `Idempotency-Key` (any
/// bytes) and more headers.
async fn post_run(
    server: &RunningServer,
    bearer: &str,
    key: Option<&[u8]>,
    headers: &[(&str, &str)],
    body: &Value,
) -> Result<Sent, BoxError> {
    let mut request = http().post(server.url("/v1/runs")).bearer_auth(bearer).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", HeaderValue::from_bytes(key)?);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|value| value.to_str().map(str::to_owned))
        .transpose()?;
    Ok(Sent { status, replayed, bytes: response.bytes().await?.to_vec() })
}

fn hello() -> Value {
    json!({"messages": [{"role": "user", "content": "Hello"}]})
}

/// A server, an owner with an org, and a `*` key.
async fn fixture(
    engine: TestEngine,
) -> Result<(RunningServer, Api, crate::support::Session, String, String), BoxError> {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let owner = api.register("owner@example.com").await?;
    let org = api.create_org(&owner, "Idempotent").await?;
    let key = api.mint_key(&owner, &org, &["*"]).await?.key;
    Ok((server, api, owner, org, key))
}

async fn run_count(api: &Api, key: &str) -> Result<usize, BoxError> {
    let listed = expect_status(api.get("/v1/runs?limit=100", Credential::Bearer(key)).await?, 200)?;
    listed["data"].as_array().map(Vec::len).ok_or_else(|| "no data in the run list".into())
}

async fn the_same_key_and_body_replay_the_first_answer(engine: TestEngine) -> TestResult {
    let (server, api, _, _, key) = fixture(engine).await?;
    let first = post_run(&server, &key, Some(b"retry-1"), &[], &hello()).await?;
    assert_eq!(first.status, 201);
    assert_eq!(first.replayed, None, "a first answer is not a replay");
    // Spacing and key order are not part of what the request means.
    let reordered: Value =
        serde_json::from_str(r#"{ "messages" : [ {"content":"Hello", "role":"user"} ] }"#)?;
    let again = post_run(&server, &key, Some(b"retry-1"), &[], &reordered).await?;
    assert_eq!(again.status, 201);
    assert_eq!(again.replayed.as_deref(), Some("true"));
    assert_eq!(again.bytes, first.bytes, "the replay is byte for byte the first answer");
    assert_eq!(run_count(&api, &key).await?, 1);
    // A background run replays its 202, still pending as it was answered.
    let background = json!({"messages": [{"role": "user", "content": "Hello"}], "background": true});
    let started = post_run(&server, &key, Some(b"retry-2"), &[], &background).await?;
    assert_eq!(started.status, 202);
    let replayed = post_run(&server, &key, Some(b"retry-2"), &[], &background).await?;
    assert_eq!((replayed.status, replayed.replayed.as_deref()), (202, Some("true")));
    assert_eq!(replayed.bytes, started.bytes);
    assert_eq!(run_count(&api, &key).await?, 2);
    Ok(())
}

async fn another_request_with_the_key_is_a_conflict(engine: TestEngine) -> TestResult {
    let (server, api, owner, org, key) = fixture(engine).await?;
    let first = post_run(&server, &key, Some(b"k"), &[], &hello()).await?;
    assert_eq!(first.status, 201);
    let other = json!({"messages": [{"role": "user", "content": "Goodbye"}]});
    let reused = post_run(&server, &key, Some(b"k"), &[], &other).await?;
    assert_eq!((reused.status, reused.error_code()?), (409, "idempotency.key_reused".to_owned()));
    assert_eq!(string_at(&reused.json()?, "/error/param")?, "Idempotency-Key");
    assert_eq!(run_count(&api, &key).await?, 1);
    // With a session, the organization named is part of the request.
    let second_org = api.create_org(&owner, "Second").await?;
    let in_first =
        post_run(&server, &owner.access, Some(b"s"), &[("X-Switchyard-Org", &org)], &hello()).await?;
    assert_eq!(in_first.status, 201);
    let in_second =
        post_run(&server, &owner.access, Some(b"s"), &[("X-Switchyard-Org", &second_org)], &hello()).await?;
    assert_eq!((in_second.status, in_second.error_code()?), (409, "idempotency.key_reused".to_owned()));
    Ok(())
}

async fn fifty_concurrent_identical_requests_start_one_run(engine: TestEngine) -> TestResult {
    let (server, api, _, _, key) = fixture(engine).await?;
    let body = hello();
    let sends = (0..50).map(|_| post_run(&server, &key, Some(b"burst"), &[], &body));
    let answers = futures::future::join_all(sends).await;
    let mut ids = std::collections::BTreeSet::new();
    let mut replays = 0;
    for answer in answers {
        let answer = answer?;
        assert_eq!(answer.status, 201, "{}", String::from_utf8_lossy(&answer.bytes));
        replays += usize::from(answer.replayed.is_some());
        ids.insert(answer.run_id()?);
    }
    assert_eq!(ids.len(), 1, "every answer names the one run: {ids:?}");
    assert_eq!(replays, 49, "one request started the run, the others replayed it");
    assert_eq!(run_count(&api, &key).await?, 1);
    Ok(())
}

async fn two_api_keys_use_the_same_key_independently(engine: TestEngine) -> TestResult {
    let (server, api, owner, org, key) = fixture(engine).await?;
    let other_key = api.mint_key(&owner, &org, &["*"]).await?.key;
    let mine = post_run(&server, &key, Some(b"shared"), &[], &hello()).await?;
    let theirs = post_run(&server, &other_key, Some(b"shared"), &[], &hello()).await?;
    assert_eq!((mine.status, theirs.status), (201, 201));
    assert_eq!(theirs.replayed, None);
    assert_ne!(mine.run_id()?, theirs.run_id()?);
    // Nor does another body under the other key conflict with the first.
    let other = json!({"messages": [{"role": "user", "content": "Other"}]});
    let third_key = api.mint_key(&owner, &org, &["*"]).await?.key;
    assert_eq!(post_run(&server, &third_key, Some(b"shared"), &[], &other).await?.status, 201);
    Ok(())
}

async fn invalid_keys_are_refused_and_refusals_keep_nothing(engine: TestEngine) -> TestResult {
    let (server, api, _, _, key) = fixture(engine).await?;
    let too_long = "k".repeat(256);
    for bad in [&b""[..], too_long.as_bytes(), "schlüssel".as_bytes(), b"tab\there"] {
        let refused = post_run(&server, &key, Some(bad), &[], &hello()).await?;
        let expected = if bad.contains(&b'\t') { 422 } else { 400 };
        assert_eq!(refused.status, expected, "{:?}: {}", bad, String::from_utf8_lossy(&refused.bytes));
        let message = string_at(&refused.json()?, "/error/message")?;
        assert!(message.contains("Idempotency-Key"), "{message}");
    }
    let twice = post_run(&server, &key, Some(b"one"), &[("Idempotency-Key", "two")], &hello()).await?;
    assert_eq!((twice.status, twice.error_code()?), (400, "request.malformed".to_owned()));
    assert_eq!(run_count(&api, &key).await?, 0, "no refused request started a run");
    let longest = "k".repeat(255);
    assert_eq!(post_run(&server, &key, Some(longest.as_bytes()), &[], &hello()).await?.status, 201);
    // A refused request keeps nothing: its key may be sent again, fixed.
    let unknown_tool = json!({"messages": [{"role": "user", "content": "Hello"}], "tools": ["browse"]});
    assert_eq!(post_run(&server, &key, Some(b"fix-me"), &[], &unknown_tool).await?.status, 422);
    let fixed = post_run(&server, &key, Some(b"fix-me"), &[], &hello()).await?;
    assert_eq!((fixed.status, fixed.replayed), (201, None));
    assert_eq!(run_count(&api, &key).await?, 2);
    Ok(())
}

async fn without_a_key_every_request_starts_a_run(engine: TestEngine) -> TestResult {
    let (server, api, _, _, key) = fixture(engine).await?;
    let first = post_run(&server, &key, None, &[], &hello()).await?;
    let second = post_run(&server, &key, None, &[], &hello()).await?;
    assert_eq!((first.status, second.status), (201, 201));
    assert_eq!((first.replayed.as_deref(), second.replayed.as_deref()), (None, None));
    assert_ne!(first.run_id()?, second.run_id()?);
    assert_eq!(run_count(&api, &key).await?, 2);
    Ok(())
}

async fn keys_are_forgotten_after_their_retention(engine: TestEngine) -> TestResult {
    let (server, api, _, _, key) = fixture(engine).await?;
    let first = post_run(&server, &key, Some(b"daily"), &[], &hello()).await?;
    assert_eq!(first.status, 201);
    let db = Db::connect(&server.database.url).await?;
    let other = json!({"messages": [{"role": "user", "content": "Tomorrow"}]});
    // Within the retention the key holds, sweep or not.
    server.clock.advance(Duration::from_secs(23 * 3600));
    assert_eq!(db.sweep(server.clock.now(), Retention::default()).await?.idempotency_keys, 0);
    assert_eq!(post_run(&server, &key, Some(b"daily"), &[], &other).await?.status, 409);
    // Past it, housekeeping forgets the key and it starts a new run.
    server.clock.advance(Duration::from_secs(3600 + 60));
    assert_eq!(db.sweep(server.clock.now(), Retention::default()).await?.idempotency_keys, 1);
    db.close().await;
    let later = post_run(&server, &key, Some(b"daily"), &[], &other).await?;
    assert_eq!((later.status, later.replayed.as_deref()), (201, None));
    assert_ne!(later.run_id()?, first.run_id()?);
    assert_eq!(run_count(&api, &key).await?, 2);
    Ok(())
}

fn session_request(key: &str, hash: &str) -> Result<IdempotentRequest, BoxError> {
    let principal =
        Principal { user_id: "usr_test".to_owned(), via: Via::Session { session_id: "ses_test".to_owned() } };
    Ok(IdempotentRequest::new(&principal, key, "test_operation", hash.to_owned())?)
}

async fn a_repeat_waits_for_the_first_request_then_replays_it(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let db = Db::connect(&server.database.url).await?;
    let front = Idempotency::new(db.clone(), server.clock.clone());
    let request = session_request("wait", "hash-a")?;
    let (finish, finished) = tokio::sync::oneshot::channel::<()>();
    let first = tokio::spawn({
        let (front, request) = (front.clone(), request.clone());
        async move {
            let work = async move {
                finished.await.map_err(|_| DomainError::Internal("dropped".to_owned()))?;
                Ok(Answer { status: 201, body: "{\"id\":\"first\"}".to_owned() })
            };
            front.once::<DomainError, _>(&request, work).await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // While the first is in progress: a short wait gives up, another request conflicts.
    let impatient = front.clone().with_wait(Duration::from_millis(100));
    let never = async { Err::<Answer, DomainError>(DomainError::Internal("must not run".to_owned())) };
    let gave_up = impatient.once(&request, never).await;
    assert!(matches!(gave_up, Err(DomainError::IdempotencyInProgress(_))), "{gave_up:?}");
    let never = async { Err::<Answer, DomainError>(DomainError::Internal("must not run".to_owned())) };
    let other = front.once(&session_request("wait", "hash-b")?, never).await;
    assert!(matches!(other, Err(DomainError::IdempotencyKeyReused)), "{other:?}");
    // A patient repeat waits for the first to finish and gets its answer.
    let repeat = tokio::spawn({
        let (front, request) = (front.clone(), request.clone());
        async move {
            let never =
                async { Err::<Answer, DomainError>(DomainError::Internal("must not run".to_owned())) };
            front.once(&request, never).await
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    finish.send(()).map_err(|()| "the first request is gone")?;
    let first = first.await??;
    assert!(!first.replayed);
    let repeat = repeat.await??;
    assert!(repeat.replayed);
    assert_eq!(repeat.answer, first.answer);
    db.close().await;
    Ok(())
}

async fn a_failed_request_releases_its_key(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let db = Db::connect(&server.database.url).await?;
    let front = Idempotency::new(db.clone(), server.clock.clone());
    let request = session_request("flaky", "hash")?;
    let failing = async { Err::<Answer, DomainError>(DomainError::Internal("upstream down".to_owned())) };
    assert!(matches!(front.once(&request, failing).await, Err(DomainError::Internal(_))));
    // Nothing was kept, so the retry does the work.
    let working = async { Ok::<_, DomainError>(Answer { status: 201, body: "{}".to_owned() }) };
    let retried = front.once(&request, working).await?;
    assert!(!retried.replayed);
    let never = async { Err::<Answer, DomainError>(DomainError::Internal("must not run".to_owned())) };
    assert!(front.once(&request, never).await?.replayed);
    // A key must be 1 to 255 printable ASCII characters.
    assert!(session_request("", "hash").is_err());
    assert!(session_request("k\u{7f}", "hash").is_err());
    db.close().await;
    Ok(())
}
