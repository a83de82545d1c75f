//! Two-factor login end to end, with codes computed by an independent RFC 6238
//! implementation (below), not the server's.

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha1::Sha1;

use crate::support::{RunningServer, TestEngine, TestResult, http, on_both_engines, start};

on_both_engines!(
    enable_then_log_in_with_a_code,
    codes_and_recovery_codes_work_once,
    challenges_die_after_five_wrong_codes,
    fifty_parallel_guesses_on_one_challenge_have_at_most_five_checked,
    an_account_takes_ten_second_factor_attempts_across_challenges,
    wrong_passwords_to_disable_count_toward_the_second_factor_lockout,
    recovery_codes_are_not_stored_as_plain_digests,
    disable_needs_password_and_factor_and_ends_sessions,
    setup_and_enable_refuse_out_of_order_calls,
);

const EMAIL: &str = "ada@example.com";
const PASSWORD: &str = "correct horse battery staple";

/// RFC 6238 TOTP (SHA-1, 6 digits, 30 s) for the 30-second `step`.
fn totp(secret_base32: &str, step: u64) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let key = data_encoding::BASE32_NOPAD.decode(secret_base32.trim_end_matches('=').as_bytes())?;
    let mut mac = Hmac::<Sha1>::new_from_slice(&key)?;
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let word =
        u32::from_be_bytes([digest[offset], digest[offset + 1], digest[offset + 2], digest[offset + 3]]);
    Ok(format!("{:06}", (word & 0x7fff_ffff) % 1_000_000))
}

fn current_step() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() / 30)
}

async fn call(
    server: &RunningServer,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Result<(u16, Value), reqwest::Error> {
    let mut req = http().post(server.url(path)).json(&body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

async fn me_status(server: &RunningServer, token: &str) -> Result<u16, reqwest::Error> {
    Ok(http().get(server.url("/v1/auth/me")).bearer_auth(token).send().await?.status().as_u16())
}

fn text(value: &Value) -> Result<&str, &'static str> {
    value.as_str().ok_or("expected a string")
}

/// An account with 2FA on: its secret, the step used to enable, recovery codes.
struct Enabled {
    secret: String,
    step: u64,
    recovery_codes: Vec<String>,
}

async fn register_and_enable(
    server: &RunningServer,
) -> Result<Enabled, Box<dyn std::error::Error + Send + Sync>> {
    let (status, tokens) =
        call(server, "/v1/auth/register", None, json!({"email": EMAIL, "password": PASSWORD})).await?;
    assert_eq!(status, 201, "{tokens}");
    let access = text(&tokens["access_token"])?.to_owned();
    let (status, setup) = call(server, "/v1/auth/2fa/setup", Some(&access), json!({})).await?;
    assert_eq!(status, 200, "{setup}");
    let secret = text(&setup["secret"])?.to_owned();
    assert!(text(&setup["otpauth_url"])?.starts_with("otpauth://totp/"), "{setup}");
    assert!(text(&setup["otpauth_url"])?.contains(&secret));

    let step = current_step();
    let (status, enabled) =
        call(server, "/v1/auth/2fa/enable", Some(&access), json!({"code": totp(&secret, step)?})).await?;
    assert_eq!(status, 200, "{enabled}");
    let recovery_codes: Vec<String> = enabled["recovery_codes"]
        .as_array()
        .ok_or("no codes")?
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect();
    assert_eq!(recovery_codes.len(), 10);

    // Turning 2FA on ends every session, this one included.
    assert_eq!(me_status(server, &access).await?, 401);
    Ok(Enabled { secret, step, recovery_codes })
}

/// Logs in with the password and returns the challenge token.
async fn challenge(server: &RunningServer) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    let (status, body) =
        call(server, "/v1/auth/login", None, json!({"email": EMAIL, "password": PASSWORD})).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["two_factor_required"], true, "{body}");
    assert!(body.get("access_token").is_none(), "no tokens before the second factor: {body}");
    Ok(text(&body["challenge_token"])?.to_owned())
}

async fn enable_then_log_in_with_a_code(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let enabled = register_and_enable(&server).await?;
    let challenge = challenge(&server).await?;
    let code = totp(&enabled.secret, enabled.step + 1)?;
    let (status, tokens) =
        call(&server, "/v1/auth/2fa/login", None, json!({"challenge_token": challenge, "code": code}))
            .await?;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["user"]["two_factor_enabled"], true);
    assert_eq!(me_status(&server, text(&tokens["access_token"])?).await?, 200);

    // The challenge is spent.
    let again = json!({"challenge_token": challenge, "code": totp(&enabled.secret, enabled.step + 1)?});
    let (status, body) = call(&server, "/v1/auth/2fa/login", None, again).await?;
    assert_eq!((status, &body["error"]["code"]), (401, &json!("auth.invalid_challenge")));
    server.stop().await?;
    Ok(())
}

async fn codes_and_recovery_codes_work_once(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let enabled = register_and_enable(&server).await?;

    // The code that enabled 2FA cannot log in: it was used in its window.
    let replay =
        json!({"challenge_token": challenge(&server).await?, "code": totp(&enabled.secret, enabled.step)?});
    let (status, body) = call(&server, "/v1/auth/2fa/login", None, replay).await?;
    assert_eq!((status, &body["error"]["code"]), (401, &json!("auth.totp_replayed")), "{body}");

    // A recovery code works once, whatever its case and dashes.
    let recovery = enabled.recovery_codes[0].to_uppercase().replace('-', " ");
    let first = json!({"challenge_token": challenge(&server).await?, "recovery_code": recovery});
    let (status, body) = call(&server, "/v1/auth/2fa/login", None, first).await?;
    assert_eq!(status, 200, "{body}");
    let second =
        json!({"challenge_token": challenge(&server).await?, "recovery_code": enabled.recovery_codes[0]});
    let (status, body) = call(&server, "/v1/auth/2fa/login", None, second).await?;
    assert_eq!((status, &body["error"]["code"]), (401, &json!("auth.invalid_two_factor_code")), "{body}");
    server.stop().await?;
    Ok(())
}

async fn challenges_die_after_five_wrong_codes(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let enabled = register_and_enable(&server).await?;
    let challenge = challenge(&server).await?;
    for _ in 0..5 {
        let wrong = json!({"challenge_token": challenge, "code": "abcdef"});
        let (status, body) = call(&server, "/v1/auth/2fa/login", None, wrong).await?;
        assert_eq!((status, &body["error"]["code"]), (401, &json!("auth.invalid_two_factor_code")), "{body}");
    }
    let right = json!({"challenge_token": challenge, "code": totp(&enabled.secret, enabled.step + 1)?});
    let (status, body) = call(&server, "/v1/auth/2fa/login", None, right).await?;
    assert_eq!((status, &body["error"]["code"]), (401, &json!("auth.invalid_challenge")), "{body}");
    server.stop().await?;
    Ok(())
}

async fn fifty_parallel_guesses_on_one_challenge_have_at_most_five_checked(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    register_and_enable(&server).await?;
    let challenge = challenge(&server).await?;
    let guesses = (0..50).map(|n| {
        let guess = json!({"challenge_token": challenge, "code": format!("{:06}", 100_000 + n)});
        call(&server, "/v1/auth/2fa/login", None, guess)
    });
    let answers = futures::future::join_all(guesses).await;
    let mut checked = 0;
    for answer in answers {
        let (status, body) = answer?;
        match (status, body["error"]["code"].as_str()) {
            (401, Some("auth.invalid_two_factor_code")) => checked += 1,
            (401, Some("auth.invalid_challenge")) => {}
            other => panic!("unexpected answer {other:?}: {body}"),
        }
    }
    assert!(checked <= 5, "{checked} of 50 parallel guesses were checked against the code");
    server.stop().await?;
    Ok(())
}

async fn an_account_takes_ten_second_factor_attempts_across_challenges(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let enabled = register_and_enable(&server).await?;
    // Two challenges (as from two addresses) spend the account's ten attempts.
    for _ in 0..2 {
        let challenge = challenge(&server).await?;
        for _ in 0..5 {
            let wrong = json!({"challenge_token": challenge, "code": "000000"});
            let (status, body) = call(&server, "/v1/auth/2fa/login", None, wrong).await?;
            assert_eq!(status, 401, "{body}");
        }
    }
    // A third challenge is refused, even with the right code.
    let right =
        json!({"challenge_token": challenge(&server).await?, "code": totp(&enabled.secret, current_step())?});
    let (status, body) = call(&server, "/v1/auth/2fa/login", None, right).await?;
    assert_eq!((status, &body["error"]["code"]), (429, &json!("auth.too_many_failed_logins")), "{body}");
    server.stop().await?;
    Ok(())
}

async fn wrong_passwords_to_disable_count_toward_the_second_factor_lockout(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let enabled = register_and_enable(&server).await?;
    let login =
        json!({"challenge_token": challenge(&server).await?, "recovery_code": enabled.recovery_codes[0]});
    let (_, tokens) = call(&server, "/v1/auth/2fa/login", None, login).await?;
    let access = text(&tokens["access_token"])?.to_owned();
    for n in 0..10 {
        let wrong = if n % 2 == 0 {
            json!({"password": "not the password", "recovery_code": enabled.recovery_codes[1]})
        } else {
            json!({"password": PASSWORD, "code": "000000"})
        };
        let (status, body) = call(&server, "/v1/auth/2fa/disable", Some(&access), wrong).await?;
        assert_eq!(status, 401, "{body}");
    }
    let right = json!({"password": PASSWORD, "recovery_code": enabled.recovery_codes[1]});
    let (status, body) = call(&server, "/v1/auth/2fa/disable", Some(&access), right).await?;
    assert_eq!((status, &body["error"]["code"]), (429, &json!("auth.too_many_failed_logins")), "{body}");
    server.stop().await?;
    Ok(())
}

async fn disable_needs_password_and_factor_and_ends_sessions(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let enabled = register_and_enable(&server).await?;
    let login =
        json!({"challenge_token": challenge(&server).await?, "recovery_code": enabled.recovery_codes[1]});
    let (_, tokens) = call(&server, "/v1/auth/2fa/login", None, login).await?;
    let access = text(&tokens["access_token"])?.to_owned();

    let wrong_password = json!({"password": "not the password", "recovery_code": enabled.recovery_codes[2]});
    let (status, _) = call(&server, "/v1/auth/2fa/disable", Some(&access), wrong_password).await?;
    assert_eq!(status, 401);
    let (status, body) =
        call(&server, "/v1/auth/2fa/disable", Some(&access), json!({"password": PASSWORD})).await?;
    assert_eq!((status, &body["error"]["param"]), (422, &json!("code")), "{body}");

    let disable = json!({"password": PASSWORD, "code": totp(&enabled.secret, enabled.step + 1)?});
    let (status, body) = call(&server, "/v1/auth/2fa/disable", Some(&access), disable).await?;
    assert_eq!(status, 204, "{body}");
    assert_eq!(me_status(&server, &access).await?, 401, "disabling ends every session");

    let (status, body) =
        call(&server, "/v1/auth/login", None, json!({"email": EMAIL, "password": PASSWORD})).await?;
    assert_eq!(status, 200);
    assert_eq!(body["user"]["two_factor_enabled"], false, "a plain login again: {body}");
    server.stop().await?;
    Ok(())
}

async fn setup_and_enable_refuse_out_of_order_calls(engine: TestEngine) -> TestResult {
    let server = start(engine, |_| {}).await?;
    let (_, tokens) =
        call(&server, "/v1/auth/register", None, json!({"email": EMAIL, "password": PASSWORD})).await?;
    let access = text(&tokens["access_token"])?.to_owned();
    let (status, body) =
        call(&server, "/v1/auth/2fa/enable", Some(&access), json!({"code": "123456"})).await?;
    assert_eq!((status, &body["error"]["code"]), (409, &json!("auth.two_factor_setup_required")));
    let (status, body) =
        call(&server, "/v1/auth/2fa/disable", Some(&access), json!({"password": PASSWORD, "code": "123456"}))
            .await?;
    assert_eq!((status, &body["error"]["code"]), (409, &json!("auth.two_factor_not_enabled")));
    server.stop().await?;
    Ok(())
}

#[test]
fn totp_matches_the_rfc_6238_vector_truncated_to_six_digits() -> TestResult {
    // RFC 6238 Appendix B, SHA-1, T = 59 s: 94287082 → last six digits 287082.
    let secret = data_encoding::BASE32_NOPAD.encode(b"12345678901234567890");
    assert_eq!(totp(&secret, 59 / 30)?, "287082");
    Ok(())
}

async fn recovery_codes_are_not_stored_as_plain_digests(engine: TestEngine) -> TestResult {
    use sha2::{Digest, Sha256};
    let server = start(engine, |_| {}).await?;
    let enabled = register_and_enable(&server).await?;
    let db = switchyard_server::db::Db::connect(&server.database.url).await?;
    let stored: Result<Vec<String>, _> =
        sqlx::query_scalar("SELECT code_hash FROM recovery_codes").fetch_all(db.pool()).await;
    db.close().await;
    let stored = stored?;
    assert_eq!(stored.len(), enabled.recovery_codes.len());
    for code in &enabled.recovery_codes {
        let normalized: String = code.chars().filter(char::is_ascii_alphanumeric).collect();
        let plain: String =
            Sha256::digest(normalized.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
        assert!(!stored.contains(&plain), "a recovery code is stored as its plain SHA-256");
    }
    // They still work, once.
    let login =
        json!({"challenge_token": challenge(&server).await?, "recovery_code": enabled.recovery_codes[3]});
    assert_eq!(call(&server, "/v1/auth/2fa/login", None, login).await?.0, 200);
    server.stop().await?;
    Ok(())
}
