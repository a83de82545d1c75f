//! Shared test plumbing: start a server on a fresh database of either engine,
//! and run one test body on both engines.

use reqwest::Method;
use serde_json::{Value, json};
use switchyard_server::Config;
use switchyard_server::db::Db;
use switchyard_server::limits::{AbuseLimitsConfig, Limit};
use switchyard_server::mail::BodyKey;
use switchyard_server::mail::OutboxRow;
pub use switchyard_server::testing::harness::{POSTGRES_URL_VAR, RunningServer, TestDatabase, TestEngine};

pub type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// Starts a server on a new database of `engine`, configured by `configure`.
/// Abuse limits are raised, since every test client shares 127.0.0.1; tests of
/// the limits themselves set their own in `configure`.
pub async fn start(
    engine: TestEngine,
    configure: impl FnOnce(&mut Config),
) -> Result<RunningServer, Box<dyn std::error::Error + Send + Sync>> {
    let database = TestDatabase::create(engine).await?;
    Ok(RunningServer::start(database, |config| {
        let roomy = Limit::per_minute(1_000);
        config.abuse = AbuseLimitsConfig {
            register: roomy,
            login: roomy,
            key_mint: roomy,
            password_reset: roomy,
            ..AbuseLimitsConfig::default()
        };
        configure(config);
    })
    .await?)
}

/// Where a skipped PostgreSQL test is noted, one line per test, when set
/// (`cargo xtask ci` sets it, and fails if any was skipped while
/// `SWITCHYARD_TEST_POSTGRES_URL` is set).
pub const SKIPPED_LOG_VAR: &str = "SWITCHYARD_TEST_SKIPPED_LOG";

/// Whether tests may use `engine`; PostgreSQL needs `SWITCHYARD_TEST_POSTGRES_URL`.
/// A test that cannot run says so on stderr and in the skipped-tests log.
pub fn engine_available(engine: TestEngine) -> bool {
    let available = engine == TestEngine::Sqlite || std::env::var_os(POSTGRES_URL_VAR).is_some();
    if !available {
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        eprintln!("SKIPPED {test} on {}: {POSTGRES_URL_VAR} is not set", engine.name());
        note_skipped(&test);
    }
    available
}

/// Appends `test` to the skipped-tests log, if one is asked for.
fn note_skipped(test: &str) {
    use std::io::Write;
    let Some(log) = std::env::var_os(SKIPPED_LOG_VAR) else { return };
    let noted = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut file| writeln!(file, "{test}"));
    if let Err(error) = noted {
        panic!("cannot note the skipped test in {}: {error}", log.to_string_lossy());
    }
}

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Serves `app` on `127.0.0.1:0` for the rest of the test (a mock upstream,
/// say); returns its base address, `http://127.0.0.1:<port>`.
pub async fn serve_mock(app: impl poem::Endpoint + 'static) -> Result<String, BoxError> {
    use poem::listener::{Acceptor, Listener, TcpListener};
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let addr = acceptor.local_addr().remove(0);
    let addr = addr.as_socket_addr().ok_or("the mock has no socket address")?.to_owned();
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(app));
    Ok(format!("http://{addr}"))
}

/// Declares each listed `async fn(TestEngine) -> TestResult` as a test on
/// SQLite and one on PostgreSQL.
macro_rules! on_both_engines {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() -> $crate::support::TestResult {
                    super::$test($crate::support::TestEngine::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() -> $crate::support::TestResult {
                    if !$crate::support::engine_available($crate::support::TestEngine::Postgres) {
                        return Ok(());
                    }
                    super::$test($crate::support::TestEngine::Postgres).await
                }
            )+
        }
    };
}
pub(crate) use on_both_engines;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A password that passes the policy, shared by every test account.
pub const PASSWORD: &str = "correct horse battery staple";

/// A response's status and JSON body (`null` when it has none).
pub type Reply = (u16, Value);

/// How a request says who is calling.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    Anonymous,
    /// `Authorization: Bearer …`: a session token or an API key.
    Bearer(&'a str),
    /// `X-API-Key: …`.
    ApiKeyHeader(&'a str),
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: String,
    pub email: String,
    pub access: String,
    pub refresh: String,
}

impl Session {
    pub fn bearer(&self) -> Credential<'_> {
        Credential::Bearer(&self.access)
    }
}

/// A freshly minted API key: its id and its full text.
#[derive(Debug, Clone)]
pub struct MintedKey {
    pub id: String,
    pub key: String,
}

/// A small JSON client for one running server.
pub struct Api {
    base_url: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(server: &RunningServer) -> Self {
        Self { base_url: server.base_url.clone(), http: http() }
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        credential: Credential<'_>,
        body: Option<&Value>,
    ) -> Result<Reply, BoxError> {
        self.call_with_headers(method, path, credential, body, &[]).await
    }

    /// [`Api::call`] with more request headers.
    pub async fn call_with_headers(
        &self,
        method: Method,
        path: &str,
        credential: Credential<'_>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, BoxError> {
        let mut request = self.http.request(method, format!("{}{path}", self.base_url));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request = match credential {
            Credential::Anonymous => request,
            Credential::Bearer(token) => request.bearer_auth(token),
            Credential::ApiKeyHeader(key) => request.header("x-api-key", key),
        };
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes)? };
        Ok((status, body))
    }

    pub async fn get(&self, path: &str, credential: Credential<'_>) -> Result<Reply, BoxError> {
        self.call(Method::GET, path, credential, None).await
    }

    pub async fn post(&self, path: &str, credential: Credential<'_>, body: Value) -> Result<Reply, BoxError> {
        self.call(Method::POST, path, credential, Some(&body)).await
    }

    pub async fn delete(&self, path: &str, credential: Credential<'_>) -> Result<Reply, BoxError> {
        self.call(Method::DELETE, path, credential, None).await
    }

    /// Registers `email` with [`PASSWORD`].
    pub async fn register(&self, email: &str) -> Result<Session, BoxError> {
        let reply = self.post(
            "/v1/auth/register",
            Credential::Anonymous,
            json!({"email": email, "password": PASSWORD}),
        );
        session(email, expect_status(reply.await?, 201)?)
    }

    /// Starts another session for an account registered with [`PASSWORD`].
    pub async fn login(&self, email: &str) -> Result<Session, BoxError> {
        let reply =
            self.post("/v1/auth/login", Credential::Anonymous, json!({"email": email, "password": PASSWORD}));
        session(email, expect_status(reply.await?, 200)?)
    }

    /// Registers `email` and verifies it with the mailed code, read from the
    /// outbox of the server's database at `database_url`: an account an org
    /// can add directly.
    pub async fn register_verified(&self, email: &str, database_url: &str) -> Result<Session, BoxError> {
        let session = self.register(email).await?;
        let code = word_after(&latest_mail(database_url, email).await?.body, "code is ")?;
        let verified = self.post("/v1/auth/verify-email", session.bearer(), json!({"code": code})).await?;
        expect_status(verified, 204)?;
        Ok(session)
    }

    /// Creates an org owned by the session's user; returns its id.
    pub async fn create_org(&self, owner: &Session, name: &str) -> Result<String, BoxError> {
        let org = expect_status(self.post("/v1/orgs", owner.bearer(), json!({"name": name})).await?, 201)?;
        string_at(&org, "/id")
    }

    /// Mints a key with `scopes` in `org_id`, with the session of a member.
    pub async fn mint_key(
        &self,
        member: &Session,
        org_id: &str,
        scopes: &[&str],
    ) -> Result<MintedKey, BoxError> {
        let body = json!({"name": "test key", "scopes": scopes, "org_id": org_id});
        let minted = expect_status(self.post("/v1/api-keys", member.bearer(), body).await?, 201)?;
        Ok(MintedKey { id: string_at(&minted, "/id")?, key: string_at(&minted, "/key")? })
    }
}

fn session(email: &str, tokens: Value) -> Result<Session, BoxError> {
    Ok(Session {
        user_id: string_at(&tokens, "/user/id")?,
        email: email.to_owned(),
        access: string_at(&tokens, "/access_token")?,
        refresh: string_at(&tokens, "/refresh_token")?,
    })
}

/// The body of `reply` if it has `status`; an error naming both otherwise.
/// The newest outbox message to `to` in the database at `database_url`, its
/// body opened with the key the server generated there.
pub async fn latest_mail(database_url: &str, to: &str) -> Result<OutboxRow, BoxError> {
    let db = Db::connect(database_url).await?;
    let row = db.outbox_latest_to(to).await;
    let key = BodyKey::load(&db, None).await;
    db.close().await;
    let mut row = row?.ok_or_else(|| format!("no mail to {to}"))?;
    row.body = key?.open(&row.id, &row.body)?;
    Ok(row)
}

/// The newest 100 outbox messages in the database at `database_url`, bodies opened.
pub async fn all_mail(database_url: &str) -> Result<Vec<OutboxRow>, BoxError> {
    let db = Db::connect(database_url).await?;
    let rows = db.outbox_list(100).await;
    let key = BodyKey::load(&db, None).await;
    db.close().await;
    let key = key?;
    let mut rows = rows?;
    for row in &mut rows {
        row.body = key.open(&row.id, &row.body)?;
    }
    Ok(rows)
}

/// The text after `marker` in `body`, up to the next whitespace.
pub fn word_after(body: &str, marker: &str) -> Result<String, BoxError> {
    let start = body.find(marker).ok_or_else(|| format!("no `{marker}` in {body}"))? + marker.len();
    Ok(body[start..].split_whitespace().next().unwrap_or_default().to_owned())
}

pub fn expect_status((status, body): Reply, expected: u16) -> Result<Value, BoxError> {
    if status == expected {
        Ok(body)
    } else {
        Err(format!("expected {expected}, got {status}: {body}").into())
    }
}

/// The string at JSON `pointer` in `value`.
pub fn string_at(value: &Value, pointer: &str) -> Result<String, BoxError> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| BoxError::from(format!("no string at {pointer} in {value}")))
}

/// Asserts `reply` is the error envelope with `status` and `code`.
#[track_caller]
pub fn assert_error(reply: &Reply, status: u16, code: &str) {
    let (actual, body) = reply;
    assert_eq!((*actual, body["error"]["code"].as_str()), (status, Some(code)), "{body}");
}

/// An error body with its per-request `request_id` taken out, for comparing two errors.
pub fn without_request_id(mut body: Value) -> Value {
    if let Some(error) = body.get_mut("error").and_then(Value::as_object_mut) {
        error.remove("request_id");
    }
    body
}

/// Adds a user to an org with `role` directly in the database, bypassing the API.
pub async fn add_member(server: &RunningServer, org_id: &str, user_id: &str, role: &str) -> TestResult {
    let db = Db::connect(&server.database.url).await?;
    let inserted =
        sqlx::query("INSERT INTO org_members (org_id, user_id, role, created_at) VALUES ($1, $2, $3, $4)")
            .bind(org_id)
            .bind(user_id)
            .bind(role)
            .bind(chrono::Utc::now().timestamp())
            .execute(db.pool())
            .await;
    db.close().await;
    changed_one_row(inserted?.rows_affected())
}

fn changed_one_row(rows: u64) -> TestResult {
    if rows == 1 { Ok(()) } else { Err(format!("expected to change 1 row, changed {rows}").into()) }
}

/// The audit actions recorded for `user_id`, oldest first.
pub async fn audit_actions_of(server: &RunningServer, user_id: &str) -> Result<Vec<String>, BoxError> {
    let db = Db::connect(&server.database.url).await?;
    let actions = db.audit_actions_of(user_id).await;
    db.close().await;
    Ok(actions?)
}

/// The `switchyard` binary this test run built.
pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A fresh, empty working directory, removed afterwards.
pub struct WorkDir(pub std::path::PathBuf);

impl WorkDir {
    pub fn new() -> std::io::Result<Self> {
        let dir = std::env::temp_dir().join(format!("switchyard-test-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir)?;
        Ok(Self(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the binary in `dir` with a clean `SWITCHYARD_*` environment.
pub fn switchyard(dir: &std::path::Path, args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(dir).args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SWITCHYARD_") {
            cmd.env_remove(key);
        }
    }
    cmd
}
