//! Accounts and login sessions: register, log in, rotate refresh tokens (a
//! reused token revokes its whole session), log out, change the password,
//! and describe the caller.

use crate::audit::{self, AuditAction, Entry};
use crate::db::Db;
use crate::identity::model::{Membership, Session, User};
use crate::identity::store::UserRow;
use crate::identity::tokens::{TokenIssuer, digest, mint_refresh_token};
use crate::identity::{email, notices, passwords, two_factor};
use crate::kernel::context::RequestContext;
use crate::kernel::error::{DomainError, DomainResult, Resource};
use crate::kernel::ids::new_id;
use crate::kernel::page::Page;
use crate::kernel::principal::Principal;
use crate::mail::Mailer;

pub const MAX_EMAIL_LEN: usize = 254;
pub const MAX_DISPLAY_NAME_LEN: usize = 100;

pub struct Registration {
    pub email: String,
    pub password: String,
    pub display_name: Option<String>,
}

/// A user and a fresh pair of tokens.
pub struct SignedIn {
    pub user: User,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// Trims the address and case-folds its domain; the local part is kept as
/// typed, as mail servers may treat it case-sensitively.
pub fn normalize_email(raw: &str) -> DomainResult<String> {
    let invalid = |message: &str| DomainError::Invalid { param: "email", message: message.to_owned() };
    let email = raw.trim();
    if email.len() > MAX_EMAIL_LEN {
        return Err(invalid("must be at most 254 characters"));
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(|| invalid("must be an email address"))?;
    let well_formed = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if !well_formed {
        return Err(invalid("must be an email address"));
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}

pub async fn register(
    db: &Db,
    issuer: &TokenIssuer,
    mail: &Mailer,
    input: Registration,
    ctx: &RequestContext,
) -> DomainResult<SignedIn> {
    let email = normalize_email(&input.email)?;
    let display_name = input.display_name.map(|name| name.trim().to_owned()).filter(|name| !name.is_empty());
    if display_name.as_ref().is_some_and(|name| name.chars().count() > MAX_DISPLAY_NAME_LEN) {
        return Err(DomainError::Invalid {
            param: "display_name",
            message: "must be at most 100 characters".into(),
        });
    }
    passwords::check_policy(&input.password, "password")?;
    let password_hash =
        passwords::hash(input.password).await.map_err(|e| DomainError::Internal(e.to_string()))?;
    let user = UserRow {
        id: new_id("usr"),
        email,
        display_name,
        password_hash,
        email_verified: false,
        two_factor_enabled: false,
        created_at: ctx.now,
    };
    if !db.user_insert(&user).await? {
        return Err(DomainError::EmailTaken);
    }
    audit::record(db, ctx, Entry::own_account(AuditAction::UserRegistered, &user.id)).await?;
    email::send_verification(db, mail, &user, ctx.now).await?;
    sign_in(db, issuer, user, ctx).await
}

/// A correct password either signs in or, with 2FA on, asks for the second factor.
pub enum LoginOutcome {
    SignedIn(SignedIn),
    TwoFactorRequired(two_factor::Challenge),
}

pub async fn login(
    db: &Db,
    issuer: &TokenIssuer,
    mail: &Mailer,
    email: &str,
    password: String,
    ctx: &RequestContext,
) -> DomainResult<LoginOutcome> {
    // An unparseable address cannot have an account; answer as for a wrong password.
    let user = match normalize_email(email) {
        Ok(email) => db.user_by_email(&email).await?,
        Err(_) => None,
    };
    let verified = passwords::verify(password, user.as_ref().map(|u| u.password_hash.clone())).await;
    match user {
        Some(user) if verified && user.two_factor_enabled => {
            Ok(LoginOutcome::TwoFactorRequired(two_factor::challenge(db, &user.id, ctx.now).await?))
        }
        Some(user) if verified => {
            audit::record(db, ctx, Entry::own_account(AuditAction::UserLogin, &user.id)).await?;
            notices::before_sign_in(db, mail, &user, ctx).await?;
            Ok(LoginOutcome::SignedIn(sign_in(db, issuer, user, ctx).await?))
        }
        other => {
            let actor = other.as_ref().map(|u| u.id.as_str());
            audit::record(
                db,
                ctx,
                Entry {
                    action: AuditAction::UserLoginFailed,
                    actor,
                    org: None,
                    target: actor,
                    route: None,
                    details: None,
                },
            )
            .await?;
            Err(DomainError::InvalidCredentials)
        }
    }
}

/// Spends `refresh_token` and returns a new pair in the same session. A token
/// that was already spent means it leaked: the whole session is revoked.
pub async fn refresh(
    db: &Db,
    issuer: &TokenIssuer,
    refresh_token: &str,
    ctx: &RequestContext,
) -> DomainResult<SignedIn> {
    let old_hash = digest(refresh_token);
    let found = db.refresh_token_find(&old_hash).await?.ok_or(DomainError::InvalidRefreshToken)?;
    let now = ctx.now;
    if found.session_revoked || found.expires_at <= now {
        return Err(DomainError::InvalidRefreshToken);
    }
    if found.spent {
        db.session_revoke(&found.session_id, now).await?;
        return Err(DomainError::RefreshReused);
    }
    let user = db.user_by_id(&found.user_id).await?.ok_or(DomainError::InvalidRefreshToken)?;
    let next = mint_refresh_token();
    let expires_at = now + issuer.refresh_ttl.as_secs() as i64;
    if !db.refresh_token_rotate(&old_hash, &next.digest, &found.session_id, expires_at, now).await? {
        // Lost a race with another use of the same token: that is reuse too.
        db.session_revoke(&found.session_id, now).await?;
        return Err(DomainError::RefreshReused);
    }
    Ok(SignedIn {
        access_token: issuer.access_token(&user.id, &found.session_id, now)?,
        refresh_token: next.plain,
        expires_in: issuer.access_ttl.as_secs(),
        user: user.into(),
    })
}

/// Ends the caller's login session: its refresh and access tokens stop working.
pub async fn logout(db: &Db, principal: &Principal, ctx: &RequestContext) -> DomainResult<()> {
    let session_id = principal.require_session()?;
    db.session_revoke(session_id, ctx.now).await?;
    audit::record(
        db,
        ctx,
        Entry {
            action: AuditAction::UserLogout,
            actor: Some(&principal.user_id),
            org: None,
            target: Some(session_id),
            route: None,
            details: None,
        },
    )
    .await
}

/// The address the login lockout counts the caller's failures under: the
/// same key for a wrong password at login, password change and
/// reauthentication.
pub async fn lockout_account(db: &Db, principal: &Principal) -> DomainResult<String> {
    let user = db.user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
    Ok(user.email)
}

/// Changes the caller's password after checking the current one. Every
/// session of the account ends, the caller's too, and the answer signs them
/// in afresh; API keys and two-factor login stay as they were.
pub async fn password_change(
    db: &Db,
    issuer: &TokenIssuer,
    principal: &Principal,
    current_password: String,
    new_password: String,
    ctx: &RequestContext,
) -> DomainResult<SignedIn> {
    principal.require_session()?;
    let user = db.user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
    if !passwords::verify(current_password, Some(user.password_hash.clone())).await {
        audit::record(db, ctx, Entry::own_account(AuditAction::UserPasswordChangeFailed, &user.id)).await?;
        return Err(DomainError::InvalidCredentials);
    }
    passwords::check_policy(&new_password, "new_password")?;
    let new_hash = passwords::hash(new_password).await.map_err(|e| DomainError::Internal(e.to_string()))?;
    // Changed by a concurrent request since it was read: the current password
    // the caller sent is no longer current.
    if !db.user_change_password(&user.id, &user.password_hash, &new_hash, ctx.now).await? {
        return Err(DomainError::InvalidCredentials);
    }
    audit::record(db, ctx, Entry::own_account(AuditAction::UserPasswordChanged, &user.id)).await?;
    sign_in(db, issuer, user, ctx).await
}

/// The caller's sessions that can still be used, and which one is theirs.
pub async fn session_list(
    db: &Db,
    principal: &Principal,
    cursor: Option<&str>,
    limit: i64,
    now: i64,
) -> DomainResult<(Page<Session>, String)> {
    let current = principal.require_session()?.to_owned();
    let rows = db.sessions_of(&principal.user_id, now, cursor, limit + 1).await?;
    Ok((Page::from_rows(rows, limit, |s| &s.id), current))
}

/// Ends one of the caller's sessions, such as a lost device's; another
/// user's, or one already ended, does not exist for them.
pub async fn session_revoke(
    db: &Db,
    principal: &Principal,
    session_id: &str,
    ctx: &RequestContext,
) -> DomainResult<()> {
    principal.require_session()?;
    if !db.session_revoke_of(&principal.user_id, session_id, ctx.now).await? {
        return Err(DomainError::NotFound(Resource::Session));
    }
    audit::record(
        db,
        ctx,
        Entry {
            action: AuditAction::UserSessionRevoked,
            actor: Some(&principal.user_id),
            org: None,
            target: Some(session_id),
            route: None,
            details: None,
        },
    )
    .await
}

/// The caller and the orgs they belong to.
pub async fn me(db: &Db, principal: &Principal) -> DomainResult<(User, Vec<Membership>)> {
    let user = db.user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
    let mut memberships = db.memberships(&user.id, None, i64::MAX).await?;
    if let Some(org_id) = principal.key_org() {
        memberships.retain(|m| m.org.id == org_id);
    }
    Ok((user.into(), memberships))
}

pub(super) async fn sign_in(
    db: &Db,
    issuer: &TokenIssuer,
    user: UserRow,
    ctx: &RequestContext,
) -> DomainResult<SignedIn> {
    let session_id = new_id("ses");
    let refresh = mint_refresh_token();
    let now = ctx.now;
    let expires_at = now + issuer.refresh_ttl.as_secs() as i64;
    db.session_create(&session_id, &user.id, ctx.ip.as_deref(), &refresh.digest, expires_at, now).await?;
    Ok(SignedIn {
        access_token: issuer.access_token(&user.id, &session_id, now)?,
        refresh_token: refresh.plain,
        expires_in: issuer.access_ttl.as_secs(),
        user: user.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_trimmed_and_domains_case_folded() -> DomainResult<()> {
        assert_eq!(normalize_email("  Ada.Lovelace@Example.COM ")?, "Ada.Lovelace@example.com");
        for bad in ["", "ada", "@example.com", "ada@localhost", "ada@example.", "a da@example.com"] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
        Ok(())
    }
}
