//! Outgoing mail. Every message is first written to the `outbox` table (see
//! [`crate::mail::OutboxRow`]), in the same transaction as the state change
//! that caused it; nothing is sent while a request's transaction is open.
//!
//! With an `[smtp]` table configured, rows start `pending` and the supervised
//! [`delivery`] task sends them over SMTP, retrying with backoff until the
//! server accepts them, so a mail-server outage delays mail but never loses it.
//! Without one, rows start `dev` and stay in the table: `switchyard outbox`
//! prints them, so a local user can complete every flow.

mod delivery;
pub mod render;
mod seal;
mod smtp;
mod store;

use std::sync::Arc;

use tokio::sync::{Notify, OnceCell};

pub use delivery::Delivery;
pub use seal::{BodyKey, Unreadable};
pub use smtp::{SmtpConfig, SmtpTls};
pub use store::{OutboxRow, queue_in};

use crate::db::{Db, StoreError};
use crate::kernel::ids::new_id;

/// A rendered message, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub to: String,
    /// What the message is for (`verification`, `password_reset`, `invitation`); for the outbox listing.
    pub kind: &'static str,
    pub subject: String,
    pub body: String,
}

/// A message ready to be written to the outbox: its row id, its body sealed
/// for that row (see [`seal`]), and the status it starts with.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: String,
    pub to: String,
    pub kind: &'static str,
    pub subject: String,
    pub sealed_body: String,
    pub status: OutboxStatus,
}

/// Where new outbox rows go: to SMTP delivery, or to the dev outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxStatus {
    Pending,
    Sent,
    Dev,
    Failed,
}

impl OutboxStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Dev => "dev",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [Self::Pending, Self::Sent, Self::Dev, Self::Failed].into_iter().find(|s| s.as_str() == raw)
    }
}

/// What the domain needs to know about mail, and the bell that wakes the
/// delivery task. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Mailer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    smtp: Option<SmtpConfig>,
    public_url: String,
    /// The configured `encryption_key`; without one, the key kept in the database.
    configured_key: Option<String>,
    body_key: OnceCell<BodyKey>,
    wake: Notify,
}

impl Mailer {
    pub fn new(smtp: Option<SmtpConfig>, public_url: &str, encryption_key: Option<String>) -> Self {
        let public_url = public_url.trim_end_matches('/').to_owned();
        Self {
            inner: Arc::new(Inner {
                smtp,
                public_url,
                configured_key: encryption_key,
                body_key: OnceCell::new(),
                wake: Notify::new(),
            }),
        }
    }

    /// The key outbox bodies are sealed and opened with, loaded once.
    pub async fn body_key(&self, db: &Db) -> Result<&BodyKey, StoreError> {
        self.inner.body_key.get_or_try_init(|| BodyKey::load(db, self.inner.configured_key.as_deref())).await
    }

    /// Seals the bodies of undelivered rows an earlier version wrote in clear;
    /// returns how many it sealed.
    pub async fn seal_clear_bodies(&self, db: &Db) -> Result<usize, StoreError> {
        let key = self.body_key(db).await?;
        let mut sealed = 0;
        for (id, clear) in db.outbox_unsealed(seal::SEALED_PREFIX).await? {
            if db.outbox_seal_body(&id, &clear, &key.seal(&id, &clear)).await? {
                sealed += 1;
            }
        }
        Ok(sealed)
    }

    /// `message` with a fresh outbox id and its body sealed, for the
    /// transaction that queues it.
    pub async fn queue(&self, db: &Db, message: Message) -> Result<Queued, StoreError> {
        let id = new_id("msg");
        let sealed_body = self.body_key(db).await?.seal(&id, &message.body);
        Ok(Queued {
            id,
            to: message.to,
            kind: message.kind,
            subject: message.subject,
            sealed_body,
            status: self.new_message_status(),
        })
    }

    pub fn smtp(&self) -> Option<&SmtpConfig> {
        self.inner.smtp.as_ref()
    }

    /// The status new messages are written with.
    pub fn new_message_status(&self) -> OutboxStatus {
        if self.inner.smtp.is_some() { OutboxStatus::Pending } else { OutboxStatus::Dev }
    }

    /// The link a reset mail carries.
    pub fn reset_link(&self, token: &str) -> String {
        format!("{}/reset-password?token={token}", self.inner.public_url)
    }

    /// The link an invitation mail carries.
    pub fn invitation_link(&self, token: &str) -> String {
        format!("{}/invitations/accept?token={token}", self.inner.public_url)
    }

    /// Tells the delivery task that messages are waiting (after the commit).
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    async fn woken(&self) {
        self.inner.wake.notified().await;
    }
}
