//! The `[smtp]` table and the lettre transport built from it (tokio, rustls).

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::mail::Message;

/// How long one SMTP exchange may take before it counts as a failure.
const SMTP_TIMEOUT: Duration = Duration::from_secs(10);

/// The `[smtp]` table. When present, mail is delivered through this server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default 587 (the submission port).
    #[serde(default = "default_port")]
    pub port: u16,
    /// `none` (plain text; local relays only), `starttls` (default) or `tls`.
    #[serde(default)]
    pub tls: SmtpTls,
    /// Log in with this user name (and the password from `password_env`).
    #[serde(default)]
    pub username: Option<String>,
    /// The name of the environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The sender, such as `Switchyard <no-reply@example.com>`.
    pub from: String,
}

fn default_port() -> u16 {
    587
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    #[default]
    Starttls,
    Tls,
}

/// A configuration value that cannot work; `key` names it within `[smtp]`.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InvalidSmtp {
    pub key: &'static str,
    pub reason: String,
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The message can never be sent as it is (an unusable address).
    #[error("undeliverable: {0}")]
    Permanent(String),
    /// Worth retrying: the server was unreachable, refused or timed out.
    #[error("{0}")]
    Transient(String),
}

impl SmtpConfig {
    /// Checks what serde cannot: a usable sender, and the password's variable.
    pub fn validate(&self) -> Result<(), InvalidSmtp> {
        if self.host.trim().is_empty() {
            return Err(InvalidSmtp { key: "host", reason: "must not be empty".to_owned() });
        }
        self.from
            .parse::<Mailbox>()
            .map_err(|e| InvalidSmtp { key: "from", reason: format!("not a mailbox: {e}") })?;
        if self.username.is_some() != self.password_env.is_some() {
            return Err(InvalidSmtp {
                key: "password_env",
                reason: "set both `username` and `password_env`, or neither".to_owned(),
            });
        }
        Ok(())
    }

    fn password(&self) -> Result<Option<String>, SendError> {
        let Some(var) = &self.password_env else { return Ok(None) };
        std::env::var(var)
            .map(Some)
            .map_err(|_| SendError::Transient(format!("smtp.password_env: ${var} is not set")))
    }
}

/// Sends messages through one SMTP server.
pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpSender {
    pub fn new(config: &SmtpConfig) -> Result<Self, SendError> {
        let transient = |e: lettre::transport::smtp::Error| SendError::Transient(e.to_string());
        let builder = match config.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host),
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host).map_err(transient)?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&config.host).map_err(transient)?,
        };
        let mut builder = builder.port(config.port).timeout(Some(SMTP_TIMEOUT));
        if let (Some(username), Some(password)) = (&config.username, config.password()?) {
            builder = builder.credentials(Credentials::new(username.clone(), password));
        }
        let from = config.from.parse::<Mailbox>().map_err(|e| SendError::Permanent(e.to_string()))?;
        Ok(Self { transport: builder.build(), from })
    }

    pub async fn send(&self, message: &Message) -> Result<(), SendError> {
        let to = message
            .to
            .parse::<Mailbox>()
            .map_err(|e| SendError::Permanent(format!("recipient {}: {e}", message.to)))?;
        let email = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&message.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone())
            .map_err(|e| SendError::Permanent(e.to_string()))?;
        self.transport.send(email).await.map_err(|e| SendError::Transient(e.to_string()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SmtpConfig {
        SmtpConfig {
            host: "smtp.example.com".to_owned(),
            port: 587,
            tls: SmtpTls::Starttls,
            username: None,
            password_env: None,
            from: "Switchyard <no-reply@example.com>".to_owned(),
        }
    }

    #[test]
    fn validation_names_the_key() {
        assert!(config().validate().is_ok());
        let bad_from = SmtpConfig { from: "nobody".to_owned(), ..config() };
        assert_eq!(bad_from.validate().err().map(|e| e.key), Some("from"));
        let half_auth = SmtpConfig { username: Some("ada".to_owned()), ..config() };
        assert_eq!(half_auth.validate().err().map(|e| e.key), Some("password_env"));
    }

    #[test]
    fn reads_the_documented_toml() -> Result<(), toml::de::Error> {
        let parsed: SmtpConfig = toml::from_str(
            "host = \"mail.example.com\"\nport = 465\ntls = \"tls\"\nusername = \"ada\"\n\
             password_env = \"SMTP_PASSWORD\"\nfrom = \"no-reply@example.com\"\n",
        )?;
        assert_eq!((parsed.port, parsed.tls), (465, SmtpTls::Tls));
        assert!(toml::from_str::<SmtpConfig>("host = \"h\"\nfrom = \"a@b.c\"\ntls = \"ssl\"\n").is_err());
        Ok(())
    }
}
