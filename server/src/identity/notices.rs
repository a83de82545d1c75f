//! Security notices: the account is mailed (through the outbox) when
//! something happens that an attacker holding a session would do: two-factor
//! login turned on or off, an API key created, a sign-in from an address the
//! account never signed in from.

use crate::db::Db;
use crate::identity::store::UserRow;
use crate::kernel::context::RequestContext;
use crate::kernel::error::DomainResult;
use crate::mail::{Mailer, render};

/// What happened to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    TwoFactorEnabled,
    TwoFactorDisabled,
    KeyCreated { name: String },
    NewAddress,
}

impl Notice {
    fn describe(&self) -> String {
        match self {
            Self::TwoFactorEnabled => "Two-factor login was turned on".to_owned(),
            Self::TwoFactorDisabled => "Two-factor login was turned off".to_owned(),
            Self::KeyCreated { name } => format!("A new API key, {name:?}, was created"),
            Self::NewAddress => "A sign-in".to_owned(),
        }
    }
}

/// Mails `user` about `notice`.
pub async fn notify(
    db: &Db,
    mail: &Mailer,
    user: &UserRow,
    notice: Notice,
    ctx: &RequestContext,
) -> DomainResult<()> {
    let message = render::security_notice(&user.email, &notice.describe(), ctx.ip.as_deref());
    db.outbox_enqueue(&mail.queue(db, message).await?, ctx.now).await?;
    mail.wake();
    Ok(())
}

/// Before a sign-in: mails `user` when it comes from an address none of
/// their earlier sessions came from (the first sign-up is not news).
pub async fn before_sign_in(
    db: &Db,
    mail: &Mailer,
    user: &UserRow,
    ctx: &RequestContext,
) -> DomainResult<()> {
    let Some(ip) = ctx.ip.as_deref() else { return Ok(()) };
    match db.sessions_seen_from(&user.id, ip).await? {
        (true, false) => notify(db, mail, user, Notice::NewAddress, ctx).await,
        _ => Ok(()),
    }
}
