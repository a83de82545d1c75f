//! The email flows end to end: verification codes and password resets
//! through the dev outbox, and delivery through a real SMTP server (an
//! in-process `mailin-embedded` sink) including a mail-server outage.

use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};
use switchyard_server::db::Db;
use switchyard_server::mail::OutboxRow;
use switchyard_server::mail::{BodyKey, OutboxStatus, SmtpConfig, SmtpTls};

use crate::support::{
    Api, BoxError, Credential, PASSWORD, RunningServer, TestEngine, TestResult, assert_error,
    audit_actions_of, expect_status, on_both_engines, start, string_at, without_request_id, word_after,
};

on_both_engines!(
    registration_mails_a_code_that_verifies_the_address,
    codes_work_once_die_after_five_wrong_tries_and_expire,
    resends_replace_the_code_at_most_once_a_minute,
    password_reset_answers_the_same_for_unknown_addresses,
    password_reset_sets_the_password_once_ends_sessions_and_keeps_two_factor,
    require_verified_email_gates_key_minting,
    mail_reaches_a_real_smtp_server_even_after_an_outage,
    undelivered_mail_keeps_no_code_or_token_in_clear,
    mail_an_earlier_version_queued_in_clear_is_sealed_at_start,
);

const EMAIL: &str = "ada@example.com";
const NEW_PASSWORD: &str = "a brand new passphrase";

/// The newest outbox message to `to`, read straight from the database.
async fn latest_mail(server: &RunningServer, to: &str) -> Result<OutboxRow, BoxError> {
    crate::support::latest_mail(&server.database.url, to).await
}

async fn all_mail(server: &RunningServer) -> Result<Vec<OutboxRow>, BoxError> {
    crate::support::all_mail(&server.database.url).await
}

fn code_in(mail: &OutboxRow) -> Result<String, BoxError> {
    let code = word_after(&mail.body, "code is ")?;
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("not a 6-digit code: {code}").into());
    }
    Ok(code.to_owned())
}

fn token_in(body: &str) -> Result<String, BoxError> {
    Ok(word_after(body, "/reset-password?token=")?.to_owned())
}

async fn verify(api: &Api, access: &str, code: &str) -> Result<(u16, Value), BoxError> {
    api.post("/v1/auth/verify-email", Credential::Bearer(access), json!({"code": code})).await
}

async fn me(api: &Api, access: &str) -> Result<Value, BoxError> {
    expect_status(api.get("/v1/auth/me", Credential::Bearer(access)).await?, 200)
}

async fn registration_mails_a_code_that_verifies_the_address(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register(EMAIL).await?;
    let mail = latest_mail(&server, EMAIL).await?;
    assert_eq!((mail.kind.as_str(), mail.status), ("verification", OutboxStatus::Dev));
    let code = code_in(&mail)?;
    assert!(!mail.subject.contains(&code), "the subject stays in clear at rest: no code in it");
    assert_eq!(me(&api, &ada.access).await?["user"]["email_verified"], false);

    expect_status(verify(&api, &ada.access, &code).await?, 204)?;
    assert_eq!(me(&api, &ada.access).await?["user"]["email_verified"], true);
    assert_error(&verify(&api, &ada.access, &code).await?, 409, "auth.email_already_verified");
    let resend = api.call(Method::POST, "/v1/auth/resend-verification", ada.bearer(), None).await?;
    assert_error(&resend, 409, "auth.email_already_verified");
    assert!(audit_actions_of(&server, &ada.user_id).await?.contains(&"user.email_verified".to_owned()));
    server.stop().await?;
    Ok(())
}

async fn codes_work_once_die_after_five_wrong_tries_and_expire(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register(EMAIL).await?;
    let code = code_in(&latest_mail(&server, EMAIL).await?)?;
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_error(&verify(&api, &ada.access, wrong).await?, 422, "auth.invalid_verification_code");
    }
    assert_error(&verify(&api, &ada.access, &code).await?, 422, "auth.invalid_verification_code");

    // A fresh code starts the count over; once it expires it is refused too.
    let bob = api.register("bob@example.com").await?;
    let code = code_in(&latest_mail(&server, "bob@example.com").await?)?;
    // A code lives 10 minutes.
    server.clock.advance(Duration::from_secs(10 * 60 + 1));
    assert_error(&verify(&api, &bob.access, &code).await?, 422, "auth.invalid_verification_code");
    assert_eq!(me(&api, &bob.access).await?["user"]["email_verified"], false);
    server.stop().await?;
    Ok(())
}

async fn resends_replace_the_code_at_most_once_a_minute(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register(EMAIL).await?;
    let first = latest_mail(&server, EMAIL).await?;
    let resent = api.call(Method::POST, "/v1/auth/resend-verification", ada.bearer(), None).await?;
    expect_status(resent, 202)?;
    let second = latest_mail(&server, EMAIL).await?;
    assert_ne!(first.id, second.id);

    let again = reqwest::Client::new()
        .post(server.url("/v1/auth/resend-verification"))
        .bearer_auth(&ada.access)
        .send()
        .await?;
    assert_eq!(again.status().as_u16(), 429);
    let retry_after: u64 = again.headers()["retry-after"].to_str()?.parse()?;
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(latest_mail(&server, EMAIL).await?.id, second.id, "a refused resend mails nothing");

    // The first code was replaced; the second one works.
    let first_code = code_in(&first)?;
    let second_code = code_in(&second)?;
    if first_code != second_code {
        assert_error(&verify(&api, &ada.access, &first_code).await?, 422, "auth.invalid_verification_code");
    }
    expect_status(verify(&api, &ada.access, &second_code).await?, 204)?;
    server.stop().await?;
    Ok(())
}

async fn password_reset_answers_the_same_for_unknown_addresses(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register(EMAIL).await?;
    let before = all_mail(&server).await?.len();
    let known = api.post("/v1/auth/password-reset", Credential::Anonymous, json!({"email": EMAIL})).await?;
    let unknown = api
        .post("/v1/auth/password-reset", Credential::Anonymous, json!({"email": "nobody@example.com"}))
        .await?;
    let malformed = api
        .post("/v1/auth/password-reset", Credential::Anonymous, json!({"email": "not an address"}))
        .await?;
    assert_eq!(known.0, 202, "{}", known.1);
    assert_eq!((known.0, without_request_id(known.1.clone())), (unknown.0, without_request_id(unknown.1)));
    assert_eq!((known.0, without_request_id(known.1)), (malformed.0, without_request_id(malformed.1)));
    // The same answer for every address, but only to a body of the declared
    // shape: an address that is not a string is refused.
    for not_a_string in [json!(-15514720), json!(true), json!(null), json!(["ada@example.com"])] {
        let refused = api
            .post("/v1/auth/password-reset", Credential::Anonymous, json!({"email": not_a_string}))
            .await?;
        assert_error(&refused, 400, "request.malformed");
    }

    let mail = all_mail(&server).await?;
    assert_eq!(mail.len(), before + 1, "only the account's address gets mail");
    assert_eq!((mail[0].recipient.as_str(), mail[0].kind.as_str()), (EMAIL, "password_reset"));
    assert!(
        audit_actions_of(&server, &ada.user_id).await?.contains(&"user.password_reset_requested".to_owned())
    );
    server.stop().await?;
    Ok(())
}

async fn password_reset_sets_the_password_once_ends_sessions_and_keeps_two_factor(
    engine: TestEngine,
) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    let ada = api.register(EMAIL).await?;
    // Two-factor on (which ends the first session), then a 2FA session to be revoked.
    let setup = expect_status(api.call(Method::POST, "/v1/auth/2fa/setup", ada.bearer(), None).await?, 200)?;
    let secret = totp_rs::Secret::try_from_base32(string_at(&setup, "/secret")?)?;
    let totp = totp_rs::Builder::new().with_secret(secret).build()?;
    let enabled =
        api.post("/v1/auth/2fa/enable", ada.bearer(), json!({"code": totp.generate_current().to_string()}));
    let recovery = string_at(&expect_status(enabled.await?, 200)?, "/recovery_codes/0")?;
    let credentials = json!({"email": EMAIL, "password": PASSWORD});
    let challenge =
        expect_status(api.post("/v1/auth/login", Credential::Anonymous, credentials).await?, 200)?;
    let second =
        json!({"challenge_token": string_at(&challenge, "/challenge_token")?, "recovery_code": recovery});
    let tokens = expect_status(api.post("/v1/auth/2fa/login", Credential::Anonymous, second).await?, 200)?;
    let (access, refresh) = (string_at(&tokens, "/access_token")?, string_at(&tokens, "/refresh_token")?);

    expect_status(
        api.post("/v1/auth/password-reset", Credential::Anonymous, json!({"email": EMAIL})).await?,
        202,
    )?;
    let mail = latest_mail(&server, EMAIL).await?;
    let token = token_in(&mail.body)?;
    assert!(token.starts_with("syp_") && token.len() >= 4 + 43, "{token}");
    assert!(mail.body.contains(&format!("\n    {token}\n")), "the token is in the mail on its own too");

    let confirm = |token: &str, password: &str| {
        api.post(
            "/v1/auth/password-reset/confirm",
            Credential::Anonymous,
            json!({"token": token, "new_password": password}),
        )
    };
    assert_error(&confirm(&token, "password123").await?, 422, "auth.weak_password");
    expect_status(confirm(&token, NEW_PASSWORD).await?, 204)?;
    assert_error(&confirm(&token, "yet another passphrase").await?, 401, "auth.invalid_reset_token");
    assert_error(&confirm("syp_NeverIssued", NEW_PASSWORD).await?, 401, "auth.invalid_reset_token");

    // Every session ended; the new password works, the old one does not, and 2FA is still on.
    assert_error(&api.get("/v1/auth/me", Credential::Bearer(&access)).await?, 401, "auth.invalid_token");
    let refreshed = api.post("/v1/auth/refresh", Credential::Anonymous, json!({"refresh_token": refresh}));
    assert_error(&refreshed.await?, 401, "auth.invalid_refresh_token");
    let old =
        api.post("/v1/auth/login", Credential::Anonymous, json!({"email": EMAIL, "password": PASSWORD}));
    assert_error(&old.await?, 401, "auth.invalid_credentials");
    let new =
        api.post("/v1/auth/login", Credential::Anonymous, json!({"email": EMAIL, "password": NEW_PASSWORD}));
    assert_eq!(expect_status(new.await?, 200)?["two_factor_required"], true);

    let actions = audit_actions_of(&server, &ada.user_id).await?;
    for action in ["user.password_reset_requested", "user.password_reset"] {
        assert!(actions.iter().any(|a| a == action), "{action} not in {actions:?}");
    }
    server.stop().await?;
    Ok(())
}

async fn require_verified_email_gates_key_minting(engine: TestEngine) -> TestResult {
    let server = start(engine, |config| config.require_verified_email = true).await?;
    let api = Api::new(&server);
    let ada = api.register(EMAIL).await?;
    let org = api.create_org(&ada, "Analytical Engines").await?;
    let body = json!({"name": "CI", "scopes": ["chat"], "org_id": org});
    assert_error(&api.post("/v1/api-keys", ada.bearer(), body.clone()).await?, 403, "auth.email_unverified");
    let code = code_in(&latest_mail(&server, EMAIL).await?)?;
    expect_status(verify(&api, &ada.access, &code).await?, 204)?;
    expect_status(api.post("/v1/api-keys", ada.bearer(), body).await?, 201)?;
    server.stop().await?;
    Ok(())
}

/// One message as the SMTP sink received it.
#[derive(Debug, Clone)]
struct Received {
    to: Vec<String>,
    data: String,
}

/// A `mailin-embedded` handler that keeps every message it is given.
#[derive(Clone, Default)]
struct Sink {
    received: Arc<Mutex<Vec<Received>>>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl mailin_embedded::Handler for Sink {
    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        to: &[String],
    ) -> mailin_embedded::Response {
        self.to = to.to_vec();
        self.data.clear();
        mailin_embedded::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let message =
            Received { to: std::mem::take(&mut self.to), data: String::from_utf8_lossy(&self.data).into() };
        self.received.lock().unwrap_or_else(PoisonError::into_inner).push(message);
        mailin_embedded::response::OK
    }
}

impl Sink {
    /// Serves SMTP on `listener` on a thread of its own, for the rest of the test process.
    fn serve(&self, listener: TcpListener) {
        let mut server = mailin_embedded::Server::new(self.clone());
        server.with_name("sink.test").with_tcp_listener(listener);
        std::thread::spawn(move || {
            if let Err(err) = server.serve() {
                eprintln!("SMTP sink stopped: {err}");
            }
        });
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Polls `check` until it gives `Some`, for at most `within`.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> Result<T, BoxError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, BoxError>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check().await? {
            return Ok(found);
        }
        if Instant::now() > deadline {
            return Err(format!("timed out waiting for {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Quoted-printable bodies wrap long lines with `=\r\n`; join them back.
fn unwrapped(data: &str) -> String {
    data.replace("=\r\n", "").replace("=3D", "=")
}

async fn mail_reaches_a_real_smtp_server_even_after_an_outage(engine: TestEngine) -> TestResult {
    // A free port with nothing listening on it yet: the mail server is down.
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let smtp = SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port,
        tls: SmtpTls::None,
        username: None,
        password_env: None,
        from: "Switchyard <no-reply@switchyard.test>".to_owned(),
    };
    let server = start(engine, |config| {
        config.smtp = Some(smtp);
        config.public_url = "https://switchyard.example".to_owned();
    })
    .await?;
    let api = Api::new(&server);
    api.register(EMAIL).await?;
    let failed = eventually(Duration::from_secs(10), "a failed delivery attempt", || async {
        let mail = latest_mail(&server, EMAIL).await?;
        Ok((mail.attempts > 0).then_some(mail))
    })
    .await?;
    assert_eq!(failed.status, OutboxStatus::Pending, "kept for a retry: {:?}", failed.last_error);
    let code = code_in(&failed)?;

    // The mail server comes up; the retry delivers the code, then a reset mail follows.
    let sink = Sink::default();
    sink.serve(TcpListener::bind(("127.0.0.1", port))?);
    eventually(Duration::from_secs(30), "the verification mail", || async {
        Ok(sink.received().iter().any(|m| m.data.contains(&code)).then_some(()))
    })
    .await?;
    expect_status(
        api.post("/v1/auth/password-reset", Credential::Anonymous, json!({"email": EMAIL})).await?,
        202,
    )?;
    let reset = eventually(Duration::from_secs(15), "the reset mail", || async {
        Ok(sink.received().into_iter().find(|m| unwrapped(&m.data).contains("/reset-password?token=")))
    })
    .await?;
    assert_eq!(reset.to, [EMAIL]);
    let data = unwrapped(&reset.data);
    assert!(data.contains("From: Switchyard <no-reply@switchyard.test>"), "{data}");
    let token = token_in(&data)?;
    assert!(data.contains(&format!("https://switchyard.example/reset-password?token={token}")), "{data}");

    // Delivered rows are marked sent, and their codes and tokens are not kept.
    let rows = eventually(Duration::from_secs(5), "both rows marked sent", || async {
        let rows = all_mail(&server).await?;
        Ok(rows.iter().all(|row| row.status == OutboxStatus::Sent).then_some(rows))
    })
    .await?;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|row| !row.body.contains(&code) && !row.body.contains(&token)));
    // The token the mail carried works.
    let confirmed = api.post(
        "/v1/auth/password-reset/confirm",
        Credential::Anonymous,
        json!({"token": token, "new_password": NEW_PASSWORD}),
    );
    expect_status(confirmed.await?, 204)?;
    server.stop().await?;
    Ok(())
}

const ENCRYPTION_KEY: &str = "an encryption key of at least 32 bytes";

async fn undelivered_mail_keeps_no_code_or_token_in_clear(engine: TestEngine) -> TestResult {
    let server = start(engine, |config| config.encryption_key = Some(ENCRYPTION_KEY.to_owned())).await?;
    let api = Api::new(&server);
    let ada = api.register(EMAIL).await?;
    let reset = api.post("/v1/auth/password-reset", Credential::Anonymous, json!({"email": EMAIL}));
    expect_status(reset.await?, 202)?;
    let org = api.create_org(&ada, "Engines").await?;
    let invite = json!({"email": "grace@example.com", "role": "member"});
    expect_status(api.post(&format!("/v1/orgs/{org}/members"), ada.bearer(), invite).await?, 201)?;

    let db = Db::connect(&server.database.url).await?;
    let stored = db.outbox_list(100).await;
    let generated = BodyKey::load(&db, None).await;
    db.close().await;
    let (stored, generated) = (stored?, generated?);
    let key = BodyKey::derive(ENCRYPTION_KEY);
    let mut secrets = Vec::new();
    for row in &stored {
        let body = key.open(&row.id, &row.body)?;
        let secret = match row.kind.as_str() {
            "verification" => word_after(&body, "code is ")?,
            "password_reset" => word_after(&body, "/reset-password?token=")?,
            "invitation" => word_after(&body, "/invitations/accept?token=")?,
            _ => continue,
        };
        assert!(
            !row.body.contains(&secret) && !row.subject.contains(&secret),
            "{} in clear: {row:?}",
            row.kind
        );
        assert!(
            generated.open(&row.id, &row.body).is_err(),
            "sealed with the configured key, not one kept in the database"
        );
        secrets.push(row.kind.clone());
    }
    secrets.sort();
    assert_eq!(secrets, ["invitation", "password_reset", "verification"]);
    server.stop().await?;
    Ok(())
}

async fn mail_an_earlier_version_queued_in_clear_is_sealed_at_start(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let api = Api::new(&server);
    api.register(EMAIL).await?;
    let mail = latest_mail(&server, EMAIL).await?;
    let database = server.stop().await?;

    // What a version before sealing left behind: the body in clear.
    let db = Db::connect(&database.url).await?;
    let cleared = sqlx::query("UPDATE outbox SET body = $1 WHERE id = $2")
        .bind(&mail.body)
        .bind(&mail.id)
        .execute(db.pool())
        .await;
    db.close().await;
    assert_eq!(cleared?.rows_affected(), 1);

    let server = RunningServer::start(database, |_| {}).await?;
    let db = Db::connect(&server.database.url).await?;
    let stored = db.outbox_latest_to(EMAIL).await;
    let key = BodyKey::load(&db, None).await;
    db.close().await;
    let stored = stored?.ok_or("the mail is gone")?;
    assert_ne!(stored.body, mail.body, "sealed at start");
    assert_eq!(key?.open(&stored.id, &stored.body)?, mail.body, "and nothing lost");
    server.stop().await?;
    Ok(())
}
