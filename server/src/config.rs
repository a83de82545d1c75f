//! Typed configuration: defaults, then a TOML file, then `SWITCHYARD_*`
//! environment variables, then command-line flags. Unknown keys and bad values
//! fail at start with a message that names the key.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use crate::identity::AuthConfig;
pub use crate::outbound::OutboundConfig;
pub use crate::telemetry::LogFormat;

use crate::gateway::config::{GatewayConfig, PriceConfig, ProviderConfig, RouteConfig};
use crate::http::origin::AllowedOrigins;
pub use crate::http::origin::CorsConfig;
use crate::limits::AbuseLimitsConfig;
use crate::mail::SmtpConfig;
use crate::outbound::Outbound;
use crate::runs::{HttpToolConfig, Policies, PolicyConfig, RunsConfig, ToolRegistry};

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "switchyard.toml";
const ENV_PREFIX: &str = "SWITCHYARD_";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address the HTTP server binds.
    pub listen: SocketAddr,
    /// `sqlite://path` (created if missing) or `postgres://user:pass@host/db`.
    pub database_url: String,
    /// Apply pending migrations at start. With `false`, run `switchyard
    /// migrate` yourself; `/ready` answers 503 until you do.
    pub auto_migrate: bool,
    pub log_format: LogFormat,
    /// A tracing filter such as `info` or `switchyard=debug,sqlx=warn`.
    pub log_level: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a graceful shutdown waits for in-flight requests.
    pub shutdown_grace_secs: u64,
    /// How often expired sessions, tokens, codes, old invitations and
    /// delivered mail are deleted; `0` never (run `switchyard housekeeping`).
    pub housekeeping_interval_secs: u64,
    /// Encrypts what the server must keep readable at rest: the bodies of
    /// undelivered mail, which carry codes and one-time tokens (at least 32
    /// bytes). When unset, one is generated on first start and kept in the
    /// database; set it (e.g. `SWITCHYARD_ENCRYPTION_KEY`) so that a copy of
    /// the database alone does not reveal them.
    pub encryption_key: Option<String>,
    pub auth: AuthConfig,
    /// Per-client limits on sign-up, login and key minting (`[abuse]`).
    pub abuse: AbuseLimitsConfig,
    /// Where users reach this server; reset mails link to
    /// `{public_url}/reset-password?token=…`.
    pub public_url: String,
    /// Minting API keys needs a verified email address.
    pub require_verified_email: bool,
    /// Proxies (addresses or networks such as `10.0.0.0/8`) whose
    /// `X-Forwarded-For` is believed. Empty: the socket peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Deliver mail through this SMTP server (`[smtp]`); without it, mail
    /// stays in the dev outbox that `switchyard outbox` prints.
    pub smtp: Option<SmtpConfig>,
    /// Model providers by name (`[providers.<name>]`). With none, the
    /// built-in `dev` provider serves the models `default` and `dev`.
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Model names clients send and the provider targets behind them (`[[routes]]`).
    pub routes: Vec<RouteConfig>,
    /// USD per million tokens by upstream model (`[prices."<model>"]`).
    pub prices: BTreeMap<String, PriceConfig>,
    /// Upstream timeouts and retries (`[gateway]`).
    pub gateway: GatewayConfig,
    /// How runs are leased and resumed (`[runs]`).
    pub runs: RunsConfig,
    /// The rules for the runs of each route (`[policies.<route>]`).
    pub policies: BTreeMap<String, PolicyConfig>,
    /// What requests to user- and operator-supplied URLs may reach (`[outbound]`).
    pub outbound: OutboundConfig,
    /// The operator's HTTP tools for runs, by name (`[tools.<name>]`).
    pub tools: BTreeMap<String, HttpToolConfig>,
    /// The browser origins that may open WebSockets (`[cors]`).
    pub cors: CorsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            database_url: "sqlite://switchyard.db".to_owned(),
            auto_migrate: true,
            log_format: LogFormat::Pretty,
            log_level: "info".to_owned(),
            max_body_bytes: 1024 * 1024,
            shutdown_grace_secs: 30,
            housekeeping_interval_secs: 3600,
            encryption_key: None,
            auth: AuthConfig::default(),
            abuse: AbuseLimitsConfig::default(),
            public_url: "http://127.0.0.1:8000".to_owned(),
            require_verified_email: false,
            trusted_proxies: Vec::new(),
            smtp: None,
            providers: BTreeMap::new(),
            routes: Vec::new(),
            prices: BTreeMap::new(),
            gateway: GatewayConfig::default(),
            runs: RunsConfig::default(),
            policies: BTreeMap::new(),
            outbound: OutboundConfig::default(),
            tools: BTreeMap::new(),
            cors: CorsConfig::default(),
        }
    }
}

/// Values given on the command line; they win over file and environment.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    #[error("invalid configuration: {key}: {reason}")]
    InvalidValue { key: &'static str, reason: String },
}

impl Config {
    /// Loads the effective configuration. `file` is the `--config` path; when
    /// absent, `switchyard.toml` is read if it exists.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match file {
            Some(path) if !path.exists() => return Err(ConfigError::MissingFile(path.to_owned())),
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new(DEFAULT_CONFIG_FILE).exists() => {
                figment = figment.merge(Toml::file_exact(DEFAULT_CONFIG_FILE));
            }
            None => {}
        }
        figment = figment
            .merge(Env::prefixed(ENV_PREFIX).filter(is_config_variable).split("__"))
            .merge(Serialized::defaults(overrides));
        let config: Self = figment.extract().map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types alone cannot.
    fn validate(&self) -> Result<(), ConfigError> {
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| ConfigError::InvalidValue { key: "log_level", reason: e.to_string() })?;
        crate::db::Engine::from_url(&self.database_url)
            .map_err(|e| ConfigError::InvalidValue { key: "database_url", reason: e.to_string() })?;
        if self.auth.jwt_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(ConfigError::InvalidValue {
                key: "auth.jwt_secret",
                reason: "must be at least 32 bytes".to_owned(),
            });
        }
        if self.encryption_key.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(ConfigError::InvalidValue {
                key: "encryption_key",
                reason: "must be at least 32 bytes".to_owned(),
            });
        }
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_days == 0 {
            return Err(ConfigError::InvalidValue {
                key: "auth",
                reason: "token lifetimes must be positive".to_owned(),
            });
        }
        match url::Url::parse(&self.public_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return Err(ConfigError::InvalidValue {
                    key: "public_url",
                    reason: "must be an http:// or https:// URL".to_owned(),
                });
            }
        }
        if let Some(smtp) = &self.smtp {
            smtp.validate()
                .map_err(|invalid| ConfigError::InvalidValue { key: "smtp", reason: invalid.to_string() })?;
        }
        self.abuse
            .validate()
            .map_err(|invalid| ConfigError::InvalidValue { key: invalid.key, reason: invalid.reason })?;
        let gateway =
            crate::gateway::Gateway::from_config(&self.providers, &self.routes, &self.prices, &self.gateway)
                .map_err(|invalid| ConfigError::InvalidValue {
                    key: "gateway",
                    reason: invalid.to_string(),
                })?;
        let policies = Policies::from_config(&self.policies)
            .map_err(|invalid| ConfigError::InvalidValue { key: "policies", reason: invalid.to_string() })?;
        if let Some(route) = policies.routes().find(|route| gateway.route(route).is_none()) {
            return Err(ConfigError::InvalidValue {
                key: "policies",
                reason: format!("policies.{route}: there is no route {route:?}"),
            });
        }
        let outbound = Outbound::new(&self.outbound)
            .map_err(|invalid| ConfigError::InvalidValue { key: invalid.key, reason: invalid.reason })?;
        ToolRegistry::with_http_tools(&self.tools, &outbound)
            .map_err(|invalid| ConfigError::InvalidValue { key: "tools", reason: invalid.to_string() })?;
        AllowedOrigins::parse(&self.cors)
            .map_err(|reason| ConfigError::InvalidValue { key: "cors.allowed_origins", reason })?;
        crate::http::client_addr::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|reason| ConfigError::InvalidValue { key: "trusted_proxies", reason })?;
        if self.max_body_bytes == 0 {
            return Err(ConfigError::InvalidValue {
                key: "max_body_bytes",
                reason: "must be positive".to_owned(),
            });
        }
        Ok(())
    }

    /// The configuration as TOML with secrets masked, for `config print`.
    pub fn to_masked_toml(&self) -> Result<String, toml::ser::Error> {
        let mut shown = self.clone();
        shown.database_url = mask_url_password(&self.database_url);
        if shown.auth.jwt_secret.is_some() {
            shown.auth.jwt_secret = Some("***".to_owned());
        }
        if shown.encryption_key.is_some() {
            shown.encryption_key = Some("***".to_owned());
        }
        toml::to_string_pretty(&shown)
    }
}

/// `SWITCHYARD_CONFIG` names the file rather than a key, and `SWITCHYARD_TEST_*`
/// belong to the test suites; neither is configuration.
fn is_config_variable(key: &figment::value::UncasedStr) -> bool {
    key != "config" && !key.as_str().to_ascii_lowercase().starts_with("test_")
}

/// Replaces the password in a database URL with `***`.
pub fn mask_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => raw.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_database_passwords() {
        assert_eq!(
            mask_url_password("postgres://app:s3cret@db:5432/switchyard"),
            "postgres://app:***@db:5432/switchyard"
        );
        assert_eq!(mask_url_password("sqlite://switchyard.db"), "sqlite://switchyard.db");
    }

    #[test]
    fn masked_toml_never_contains_the_password() {
        let config =
            Config { database_url: "postgres://app:s3cret@db/switchyard".to_owned(), ..Config::default() };
        let shown = config.to_masked_toml().unwrap();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("database_url"), "{shown}");
    }
}
