//! Two-factor login with TOTP (RFC 6238: SHA-1, 6 digits, 30-second steps,
//! one step of skew either way). A code is accepted once: the step it matched
//! must be later than the last accepted one. Recovery codes are single use.
//! Turning 2FA on or off revokes every session of the user.
//!
//! Guessing is bounded twice, with every attempt claimed in the database
//! before its code is checked (so parallel guesses cannot slip past a
//! count): 5 per login challenge, and 10 per account every 15 minutes across
//! challenges, addresses and `disable` calls (wrong passwords there count too).

use totp_rs::{Algorithm, Builder, Secret, Totp};

use crate::audit::{self, AuditAction, Entry};
use crate::db::Db;
use crate::identity::accounts::{SignedIn, sign_in};
use crate::identity::notices;
use crate::identity::notices::Notice;
use crate::identity::tokens::{TokenIssuer, digest, keyed_digest};
use crate::identity::{passwords, step_up};
use crate::kernel::context::RequestContext;
use crate::kernel::error::{DomainError, DomainResult};
use crate::kernel::ids::random_base62;
use crate::kernel::principal::Principal;
use crate::mail::Mailer;

/// How long a password login's challenge stays valid.
pub const CHALLENGE_TTL_SECS: u32 = 300;
/// Codes a challenge takes before it is spent.
const CHALLENGE_MAX_ATTEMPTS: i64 = 5;
/// Second-factor attempts one account has per window, across challenges,
/// addresses and `disable` calls; a right one starts afresh.
pub const SECOND_FACTOR_MAX_ATTEMPTS: i64 = 10;
pub const SECOND_FACTOR_WINDOW_SECS: i64 = 15 * 60;
const RECOVERY_CODE_COUNT: usize = 10;
const ISSUER: &str = "Switchyard";

/// A second factor as presented: a TOTP code or a recovery code.
#[derive(Debug, Clone)]
pub enum Factor {
    Code(String),
    RecoveryCode(String),
}

impl Factor {
    /// Exactly one of the two must be given.
    pub fn from_fields(code: Option<String>, recovery_code: Option<String>) -> DomainResult<Self> {
        match (code, recovery_code) {
            (Some(code), None) => Ok(Self::Code(code)),
            (None, Some(recovery)) => Ok(Self::RecoveryCode(recovery)),
            _ => Err(DomainError::Invalid {
                param: "code",
                message: "send exactly one of `code` and `recovery_code`".to_owned(),
            }),
        }
    }
}

/// What a password login returns when the account has 2FA.
pub struct Challenge {
    pub token: String,
    pub expires_in: u64,
}

fn totp(secret_base32: &str, account: &str) -> DomainResult<Totp> {
    let secret = Secret::try_from_base32(secret_base32).map_err(|e| DomainError::Internal(e.to_string()))?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret)
        .with_issuer(Some(ISSUER))
        .with_account_name(account)
        .build()
        .map_err(|e| DomainError::Internal(e.to_string()))
}

/// The time step `code` matches at `now`, if any.
fn matching_step(totp: &Totp, code: &str, now: i64) -> Option<i64> {
    // Before 1970 no code matches.
    let unix = u64::try_from(now).ok()?;
    totp.check(code.trim(), unix).and_then(|step| i64::try_from(step).ok())
}

/// Starts setup: a new secret, pending until a code from it is confirmed.
/// Needs a recent sign-in or reauthentication (`step_up`).
pub async fn setup(
    db: &Db,
    principal: &Principal,
    step_up_window_secs: u64,
    ctx: &RequestContext,
) -> DomainResult<(String, String)> {
    principal.require_session()?;
    step_up::require_recent(db, principal, step_up_window_secs, ctx.now).await?;
    let user = db.user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
    if user.two_factor_enabled {
        return Err(DomainError::TwoFactorAlreadyEnabled);
    }
    let secret = Secret::generate().to_base32();
    let url = totp(&secret, &user.email)?.to_url().map_err(|e| DomainError::Internal(e.to_string()))?;
    db.totp_set_pending(&user.id, &secret, ctx.now).await?;
    Ok((secret, url))
}

/// Confirms setup with a current code and returns fresh recovery codes.
/// Needs a recent sign-in or reauthentication (`step_up`).
pub async fn enable(
    db: &Db,
    mail: &Mailer,
    principal: &Principal,
    code: &str,
    step_up_window_secs: u64,
    ctx: &RequestContext,
) -> DomainResult<Vec<String>> {
    principal.require_session()?;
    step_up::require_recent(db, principal, step_up_window_secs, ctx.now).await?;
    let user = db.user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
    if user.two_factor_enabled {
        return Err(DomainError::TwoFactorAlreadyEnabled);
    }
    let pending = db.totp_state(&user.id).await?.pending_secret.ok_or(DomainError::TwoFactorSetupRequired)?;
    let step = matching_step(&totp(&pending, &user.email)?, code, ctx.now)
        .ok_or(DomainError::InvalidTwoFactorCode)?;
    let codes: Vec<String> = (0..RECOVERY_CODE_COUNT).map(|_| recovery_code()).collect();
    let key = recovery_key(db).await?;
    let hashes: Vec<String> =
        codes.iter().map(|code| keyed_digest(key.as_bytes(), &normalize_recovery(code))).collect();
    db.totp_enable(&user.id, &pending, step, &hashes, ctx.now).await?;
    audit::record(db, ctx, Entry::own_account(AuditAction::UserTwoFactorEnabled, &user.id)).await?;
    notices::notify(db, mail, &user, Notice::TwoFactorEnabled, ctx).await?;
    Ok(codes)
}

/// Turns 2FA off; needs the password and a second factor.
pub async fn disable(
    db: &Db,
    mail: &Mailer,
    principal: &Principal,
    password: String,
    factor: Factor,
    ctx: &RequestContext,
) -> DomainResult<()> {
    principal.require_session()?;
    let user = db.user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
    if !user.two_factor_enabled {
        return Err(DomainError::TwoFactorNotEnabled);
    }
    // A wrong password counts as a failed attempt as much as a wrong code.
    claim_second_factor_attempt(db, &user.id, ctx.now).await?;
    if !passwords::verify(password, Some(user.password_hash.clone())).await {
        return Err(DomainError::InvalidCredentials);
    }
    verify_factor(db, &user.id, &user.email, &factor, ctx.now).await?;
    db.second_factor_succeeded(&user.id).await?;
    db.totp_disable(&user.id, ctx.now).await?;
    audit::record(db, ctx, Entry::own_account(AuditAction::UserTwoFactorDisabled, &user.id)).await?;
    notices::notify(db, mail, &user, Notice::TwoFactorDisabled, ctx).await
}

/// Hands out a challenge after a correct password on a 2FA account.
pub async fn challenge(db: &Db, user_id: &str, now: i64) -> DomainResult<Challenge> {
    let token = format!("syc_{}", random_base62(43));
    db.challenge_create(&digest(&token), user_id, now + i64::from(CHALLENGE_TTL_SECS)).await?;
    Ok(Challenge { token, expires_in: u64::from(CHALLENGE_TTL_SECS) })
}

/// Completes a login with the challenge and a second factor.
pub async fn login(
    db: &Db,
    issuer: &TokenIssuer,
    mail: &Mailer,
    challenge_token: &str,
    factor: Factor,
    ctx: &RequestContext,
) -> DomainResult<SignedIn> {
    let hash = digest(challenge_token);
    let user_id = db
        .challenge_claim_attempt(&hash, ctx.now, CHALLENGE_MAX_ATTEMPTS)
        .await?
        .ok_or(DomainError::InvalidChallenge)?;
    claim_second_factor_attempt(db, &user_id, ctx.now).await?;
    let user = db.user_by_id(&user_id).await?.ok_or(DomainError::InvalidChallenge)?;
    if let Err(err) = verify_factor(db, &user.id, &user.email, &factor, ctx.now).await {
        audit::record(db, ctx, Entry::own_account(AuditAction::UserLoginFailed, &user.id)).await?;
        return Err(err);
    }
    db.second_factor_succeeded(&user.id).await?;
    if !db.challenge_consume(&hash, ctx.now).await? {
        return Err(DomainError::InvalidChallenge);
    }
    audit::record(db, ctx, Entry::own_account(AuditAction::UserLogin, &user.id)).await?;
    notices::before_sign_in(db, mail, &user, ctx).await?;
    sign_in(db, issuer, user, ctx).await
}

/// Checks a second factor of a signed-in user, as one of the account's
/// counted attempts: for reauthentication.
pub(super) async fn verify_counted(
    db: &Db,
    user: &crate::identity::store::UserRow,
    factor: &Factor,
    now: i64,
) -> DomainResult<()> {
    if !user.two_factor_enabled {
        return Err(DomainError::TwoFactorNotEnabled);
    }
    claim_second_factor_attempt(db, &user.id, now).await?;
    verify_factor(db, &user.id, &user.email, factor, now).await?;
    db.second_factor_succeeded(&user.id).await?;
    Ok(())
}

/// Claims one of the account's second-factor attempts, or refuses while
/// they are spent.
async fn claim_second_factor_attempt(db: &Db, user_id: &str, now: i64) -> DomainResult<()> {
    let claimed = db
        .second_factor_claim_attempt(user_id, now, SECOND_FACTOR_MAX_ATTEMPTS, SECOND_FACTOR_WINDOW_SECS)
        .await?;
    claimed.map_err(|started| {
        let left = (started + SECOND_FACTOR_WINDOW_SECS - now).max(1);
        DomainError::TooManySecondFactorAttempts(std::time::Duration::from_secs(left.unsigned_abs()))
    })
}

async fn verify_factor(db: &Db, user_id: &str, email: &str, factor: &Factor, now: i64) -> DomainResult<()> {
    match factor {
        Factor::Code(code) => {
            let secret = db.totp_state(user_id).await?.secret.ok_or(DomainError::TwoFactorNotEnabled)?;
            let step =
                matching_step(&totp(&secret, email)?, code, now).ok_or(DomainError::InvalidTwoFactorCode)?;
            if !db.totp_accept_step(user_id, step).await? {
                return Err(DomainError::TotpReplayed);
            }
            Ok(())
        }
        Factor::RecoveryCode(code) => {
            let normalized = normalize_recovery(code);
            let key = recovery_key(db).await?;
            // Codes issued before they were keyed are plain digests.
            if db.recovery_code_use(user_id, &keyed_digest(key.as_bytes(), &normalized), now).await?
                || db.recovery_code_use(user_id, &digest(&normalized), now).await?
            {
                Ok(())
            } else {
                Err(DomainError::InvalidTwoFactorCode)
            }
        }
    }
}

/// The server's key for recovery-code digests, made on first use and kept
/// in the database so every replica shares it.
async fn recovery_key(db: &Db) -> DomainResult<String> {
    Ok(db.setting_get_or_insert("recovery_code_key", &random_base62(64)).await?)
}

/// A recovery code: ten lowercase alphanumeric characters (about 51 bits)
/// in two groups, `xxxxx-xxxxx`.
fn recovery_code() -> String {
    let raw = random_base62(10).to_lowercase();
    format!("{}-{}", &raw[..5], &raw[5..])
}

/// Recovery codes are compared without dashes, spaces or case.
fn normalize_recovery(code: &str) -> String {
    code.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_lowercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_two_groups_and_normalize() {
        let code = recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(code.as_bytes()[5], b'-');
        assert_eq!(normalize_recovery(&code.to_uppercase().replace('-', " ")), code.replace('-', ""));
    }

    #[test]
    fn exactly_one_factor_is_required() {
        assert!(Factor::from_fields(Some("123456".into()), None).is_ok());
        assert!(Factor::from_fields(None, Some("abcde-fghij".into())).is_ok());
        assert!(Factor::from_fields(None, None).is_err());
        assert!(Factor::from_fields(Some("1".into()), Some("2".into())).is_err());
    }

    #[test]
    fn codes_match_their_step_and_neighbours_only() -> DomainResult<()> {
        let secret = Secret::generate().to_base32();
        let totp = totp(&secret, "ada@example.com")?;
        let (now, unix) = (1_800_000_000_i64, 1_800_000_000_u64);
        let current = totp.generate(unix).to_string();
        assert_eq!(matching_step(&totp, &current, now), Some(now / 30));
        let far = totp.generate(unix - 300).to_string();
        assert_eq!(matching_step(&totp, &far, now), None);
        assert_eq!(matching_step(&totp, &current, now + 300), None);
        Ok(())
    }
}
