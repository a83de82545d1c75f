//! Step-up: what could take an account over for good if a session token
//! leaked for a moment (turning on two-factor login with the attacker's
//! authenticator, minting a key that never expires) needs the user to have
//! proved who they are recently, not only a session: signed in, or
//! reauthenticated with `POST /v1/auth/reauthenticate`, within the window
//! (`[auth] reauthentication_window_secs`, 10 minutes by default).
//! Disabling two-factor login and changing the password take the password
//! in the request itself.

use crate::audit::{self, AuditAction, Entry};
use crate::db::Db;
use crate::identity::passwords;
use crate::identity::two_factor;
use crate::identity::two_factor::Factor;
use crate::kernel::context::RequestContext;
use crate::kernel::error::{DomainError, DomainResult};
use crate::kernel::principal::Principal;

/// How the user proves who they are again.
#[derive(Debug, Clone)]
pub enum Proof {
    Password(String),
    Factor(Factor),
}

impl Proof {
    /// Exactly one of the three must be given.
    pub fn from_fields(
        password: Option<String>,
        code: Option<String>,
        recovery_code: Option<String>,
    ) -> DomainResult<Self> {
        match (password, code, recovery_code) {
            (Some(password), None, None) => Ok(Self::Password(password)),
            (None, code, recovery) if code.is_some() != recovery.is_some() => {
                Factor::from_fields(code, recovery).map(Self::Factor)
            }
            _ => Err(DomainError::Invalid {
                param: "password",
                message: "send exactly one of `password`, `code` and `recovery_code`".to_owned(),
            }),
        }
    }
}

/// Refuses unless the caller's session proved who they are within
/// `window_secs` before `now`.
pub async fn require_recent(db: &Db, principal: &Principal, window_secs: u64, now: i64) -> DomainResult<()> {
    let session_id = principal.require_session()?;
    let at = db.session_authenticated_at(session_id).await?.ok_or(DomainError::InvalidToken)?;
    let window = i64::try_from(window_secs).unwrap_or(i64::MAX);
    if now.saturating_sub(at) < window {
        Ok(())
    } else {
        Err(DomainError::ReauthenticationRequired(window_secs))
    }
}

/// Checks the proof and starts the session's step-up window afresh.
pub async fn reauthenticate(
    db: &Db,
    principal: &Principal,
    proof: Proof,
    ctx: &RequestContext,
) -> DomainResult<()> {
    let session_id = principal.require_session()?;
    let user = db.user_by_id(&principal.user_id).await?.ok_or(DomainError::InvalidToken)?;
    match proof {
        Proof::Password(password) => {
            if !passwords::verify(password, Some(user.password_hash.clone())).await {
                audit::record(db, ctx, Entry::own_account(AuditAction::UserReauthenticationFailed, &user.id))
                    .await?;
                return Err(DomainError::InvalidCredentials);
            }
        }
        Proof::Factor(factor) => two_factor::verify_counted(db, &user, &factor, ctx.now).await?,
    }
    db.session_reauthenticated(session_id, ctx.now).await?;
    audit::record(db, ctx, Entry::own_account(AuditAction::UserReauthenticated, &user.id)).await
}
