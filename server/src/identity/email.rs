//! Email verification and password reset.
//!
//! - A verification code is six random digits, valid for 10 minutes, stored
//!   as a digest salted with the user id, and tolerates five wrong tries; a
//!   new one replaces the old. One is mailed on registration; a resend is
//!   allowed once a minute per account (checked in the database, so replicas
//!   agree).
//! - A reset token is `syp_` and 43 base62 characters (256 bits), stored as a
//!   SHA-256 digest, valid for 30 minutes and once. Requesting one answers the
//!   same whether or not the account exists. Completing one sets the password
//!   (policy enforced), spends the user's other reset tokens and ends every
//!   session; two-factor login stays as it was.
//!
//! Mail is written to the outbox in the same transaction as the code or
//! token, then the delivery task is woken (see [`crate::mail`]).

use std::time::Duration;

use rand::Rng;
use subtle::ConstantTimeEq;

use crate::audit::{self, AuditAction, Entry};
use crate::db::Db;
use crate::identity::accounts::normalize_email;
use crate::identity::passwords;
use crate::identity::store::{Resent, UserRow};
use crate::identity::tokens::digest;
use crate::kernel::context::RequestContext;
use crate::kernel::error::{DomainError, DomainResult};
use crate::kernel::ids::random_base62;
use crate::kernel::principal::Principal;
use crate::mail::{Mailer, render};

pub const VERIFICATION_TTL_SECS: i64 = 10 * 60;
pub const VERIFICATION_MAX_ATTEMPTS: i64 = 5;
pub const RESEND_EVERY_SECS: i64 = 60;
pub const RESET_TTL_SECS: i64 = 30 * 60;

/// Six uniformly random digits, leading zeros kept.
fn verification_code() -> String {
    format!("{:06}", rand::rng().random_range(0..1_000_000u32))
}

/// The stored form of a code: salted with the user id, so equal codes of two
/// users differ at rest.
fn code_digest(user_id: &str, code: &str) -> String {
    digest(&format!("{user_id}:{code}"))
}

/// Issues a fresh code for `user` and queues its mail (on registration).
pub async fn send_verification(db: &Db, mail: &Mailer, user: &UserRow, now: i64) -> DomainResult<()> {
    let code = verification_code();
    let message = render::verification(&user.email, &code, VERIFICATION_TTL_SECS / 60);
    let queued = mail.queue(db, message).await?;
    db.verification_issue(&user.id, &code_digest(&user.id, &code), now + VERIFICATION_TTL_SECS, &queued, now)
        .await?;
    mail.wake();
    Ok(())
}

/// Mails the caller a new code, at most once a minute.
pub async fn resend_verification(
    db: &Db,
    mail: &Mailer,
    principal: &Principal,
    ctx: &RequestContext,
) -> DomainResult<()> {
    principal.require_session()?;
    let user = db.user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
    if user.email_verified {
        return Err(DomainError::EmailAlreadyVerified);
    }
    let code = verification_code();
    let message = render::verification(&user.email, &code, VERIFICATION_TTL_SECS / 60);
    let queued = mail.queue(db, message).await?;
    let now = ctx.now;
    let hash = code_digest(&user.id, &code);
    let not_after = now - RESEND_EVERY_SECS;
    match db
        .verification_resend(&user.id, &hash, now + VERIFICATION_TTL_SECS, not_after, &queued, now)
        .await?
    {
        Resent::Issued => {
            mail.wake();
            Ok(())
        }
        Resent::TooSoon { last_resent_at } => {
            let wait = (last_resent_at + RESEND_EVERY_SECS - now).max(1);
            Err(DomainError::ResendTooSoon(Duration::from_secs(u64::try_from(wait).unwrap_or(1))))
        }
    }
}

/// Marks the caller's address verified with the code mailed to it.
pub async fn verify_email(
    db: &Db,
    principal: &Principal,
    code: &str,
    ctx: &RequestContext,
) -> DomainResult<()> {
    principal.require_session()?;
    let user = db.user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
    if user.email_verified {
        return Err(DomainError::EmailAlreadyVerified);
    }
    let live = db
        .verification_find(&user.id)
        .await?
        .filter(|row| row.expires_at > ctx.now && row.attempts < VERIFICATION_MAX_ATTEMPTS)
        .ok_or(DomainError::InvalidVerificationCode)?;
    let presented = code_digest(&user.id, code.trim());
    if !bool::from(presented.as_bytes().ct_eq(live.code_hash.as_bytes())) {
        db.verification_record_failure(&user.id).await?;
        return Err(DomainError::InvalidVerificationCode);
    }
    if !db.verification_consume(&user.id, &presented, VERIFICATION_MAX_ATTEMPTS, ctx.now).await? {
        return Err(DomainError::InvalidVerificationCode);
    }
    audit::record(db, ctx, Entry::own_account(AuditAction::UserEmailVerified, &user.id)).await
}

/// Mails a reset token if `email` has an account. Answers `Ok` either way,
/// so the caller cannot tell which addresses have accounts.
pub async fn request_password_reset(
    db: &Db,
    mail: &Mailer,
    email: &str,
    ctx: &RequestContext,
) -> DomainResult<()> {
    let Ok(email) = normalize_email(email) else { return Ok(()) };
    let Some(user) = db.user_by_email(&email).await? else { return Ok(()) };
    let token = format!("syp_{}", random_base62(43));
    let message = render::password_reset(&user.email, &token, &mail.reset_link(&token), RESET_TTL_SECS / 60);
    let queued = mail.queue(db, message).await?;
    let now = ctx.now;
    db.password_reset_issue(&digest(&token), &user.id, now + RESET_TTL_SECS, &queued, now).await?;
    mail.wake();
    audit::record(db, ctx, Entry::own_account(AuditAction::UserPasswordResetRequested, &user.id)).await
}

/// Sets a new password with a reset token and ends every session.
pub async fn confirm_password_reset(
    db: &Db,
    token: &str,
    new_password: String,
    ctx: &RequestContext,
) -> DomainResult<()> {
    let hash = digest(token.trim());
    let user_id = db.password_reset_user(&hash, ctx.now).await?.ok_or(DomainError::InvalidResetToken)?;
    passwords::check_policy(&new_password, "new_password")?;
    let password_hash =
        passwords::hash(new_password).await.map_err(|e| DomainError::Internal(e.to_string()))?;
    if !db.password_reset_complete(&hash, &user_id, &password_hash, ctx.now).await? {
        return Err(DomainError::InvalidResetToken);
    }
    audit::record(db, ctx, Entry::own_account(AuditAction::UserPasswordReset, &user_id)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_digits_and_digests_are_salted() {
        for _ in 0..100 {
            let code = verification_code();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        }
        assert_ne!(code_digest("usr_a", "123456"), code_digest("usr_b", "123456"));
    }
}
