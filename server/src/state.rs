//! [`AppState`]: what every handler and background task can reach. It sits
//! below every area, so areas and the route table can both depend on it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::db::{Db, StoreError};
use crate::gateway::{Gateway, GatewayDeps, Meter};
use crate::idempotency::Idempotency;
use crate::identity::{AuthConfig, KeyCache, KeyUsage, TokenIssuer};
use crate::kernel::clock::Clock;
use crate::kernel::error::{DomainError, DomainResult};
use crate::kernel::ids::random_base62;
use crate::limits::{AbuseLimits, AbuseLimitsConfig};
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::outbound::Outbound;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub started_at: Instant,
    deployment_id: Arc<tokio::sync::OnceCell<String>>,
    auth: AuthConfig,
    token_issuer: Arc<tokio::sync::OnceCell<TokenIssuer>>,
    /// Per-client abuse limits; in-process, so each replica counts its own.
    pub limits: AbuseLimits,
    /// API keys read recently, so validating one reads no database.
    pub keys: KeyCache,
    /// API key uses waiting to be written.
    pub key_usage: KeyUsage,
    /// Outgoing mail: where new messages go, and the delivery task's bell.
    pub mail: Mailer,
    /// Minting API keys needs a verified email address.
    pub require_verified_email: bool,
    /// Routes and providers of the model gateway.
    pub gateway: Arc<Gateway>,
    /// Gateway limits, reservations and usage rows waiting to be written.
    pub meter: Meter,
    /// Prometheus metrics, served at `/metrics`.
    pub metrics: Metrics,
    /// The time every request is stamped with; tests can move it.
    pub clock: Clock,
    /// The first answers of requests sent with an `Idempotency-Key`.
    pub idempotency: Idempotency,
    /// The one way to send a request to a user- or operator-supplied URL.
    pub outbound: Outbound,
    /// The API areas this server serves, as `GET /v1/meta` reports them.
    pub features: Arc<[&'static str]>,
}

/// The settings the state is built with (the rest of the configuration is
/// read by the parts `App::build` starts).
pub struct StateSettings {
    pub auth: AuthConfig,
    pub abuse: AbuseLimitsConfig,
    pub require_verified_email: bool,
}

impl AppState {
    /// The state over an open database, with the settings each part needs.
    pub fn new(
        db: Db,
        settings: StateSettings,
        mail: Mailer,
        gateway: Gateway,
        outbound: Outbound,
        metrics: Metrics,
    ) -> Self {
        let StateSettings { auth, abuse, require_verified_email } = settings;
        let clock = Clock::system();
        Self {
            idempotency: Idempotency::new(db.clone(), clock.clone()),
            db,
            started_at: Instant::now(),
            deployment_id: Arc::default(),
            auth,
            token_issuer: Arc::default(),
            limits: AbuseLimits::in_memory(abuse),
            keys: KeyCache::default(),
            key_usage: KeyUsage::default(),
            mail,
            require_verified_email,
            gateway: Arc::new(gateway),
            meter: Meter::default(),
            outbound,
            metrics,
            clock,
            features: Arc::from(["operations", "identity", "gateway", "runs", "metrics", "docs"]),
        }
    }

    /// The deployment id, read from the database once it has been migrated.
    pub async fn deployment_id(&self) -> Result<&str, StoreError> {
        let id = self.deployment_id.get_or_try_init(|| self.db.deployment_id()).await?;
        Ok(id)
    }

    /// Signs and verifies session tokens. The secret is `auth.jwt_secret`, or
    /// else one generated on first use and kept in the database so every
    /// replica shares it.
    pub async fn token_issuer(&self) -> DomainResult<&TokenIssuer> {
        self.token_issuer
            .get_or_try_init(|| async {
                let secret = match &self.auth.jwt_secret {
                    Some(secret) => secret.clone(),
                    None => self.db.setting_get_or_insert("jwt_secret", &random_base62(64)).await?,
                };
                Ok::<_, DomainError>(TokenIssuer::new(
                    secret.as_bytes(),
                    Duration::from_secs(self.auth.access_token_ttl_secs),
                    Duration::from_secs(self.auth.refresh_token_ttl_days * 86_400),
                ))
            })
            .await
    }

    /// What a metered gateway call made by the server itself needs.
    pub fn gateway_deps(&self) -> GatewayDeps<'_> {
        GatewayDeps {
            gateway: &self.gateway,
            meter: &self.meter,
            db: &self.db,
            metrics: &self.metrics,
            clock: &self.clock,
        }
    }

    /// How long after proving who they are a session may do what needs a
    /// step-up (`identity::step_up`).
    pub fn step_up_window_secs(&self) -> u64 {
        self.auth.reauthentication_window_secs
    }
}
