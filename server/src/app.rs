//! Assembles the server: storage, the API routes, the published contract and
//! the middleware stack. `main`, the tests and the conformance suite all start
//! Switchyard through [`App::build`] and [`App::serve`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use poem::endpoint::make_sync;
use poem::listener::{Listener, TcpListener};
use poem::web::{Html, WithContentType};
use poem::{EndpointExt, IntoResponse, Route, Server, get};

use crate::config::Config;
use crate::contract;
use crate::db::{Db, Retention, StoreError};
use crate::gateway::{Gateway, InvalidGatewayConfig};
use crate::http::allow::AllowedMethods;
use crate::http::client_addr::TrustedProxies;
use crate::http::listener::NoDelayAcceptor;
use crate::http::origin::AllowedOrigins;
use crate::kernel::clock::Clock;
use crate::limits::CredentialLimiter;
use crate::mail::{Delivery, Mailer};
use crate::metrics::Metrics;
use crate::outbound::{InvalidOutboundConfig, Outbound};
use crate::runs::api::{SocketSettings, runs_socket};
use crate::runs::{InvalidPolicy, InvalidTool, Policies, Resumer, Runs};
use crate::state::{AppState, StateSettings};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("the docs page no longer embeds the spec where expected; check the poem-openapi version")]
    DocsTemplate,
    #[error("invalid gateway configuration: {0}")]
    Gateway(#[from] InvalidGatewayConfig),
    #[error("invalid outbound configuration: {0}")]
    Outbound(#[from] InvalidOutboundConfig),
    #[error("trusted_proxies: {0}")]
    TrustedProxies(String),
    #[error("cors.allowed_origins: {0}")]
    AllowedOrigins(String),
    #[error(transparent)]
    Spec(#[from] contract::UnreadableSpec),
    #[error(transparent)]
    Tool(#[from] InvalidTool),
    #[error(transparent)]
    Policy(#[from] InvalidPolicy),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

pub struct App {
    config: Config,
    state: AppState,
    runs: Runs,
    metrics: Metrics,
}

impl App {
    /// Connects to the database and, unless `auto_migrate` is off, applies
    /// pending migrations.
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let db = Db::connect(&config.database_url).await?;
        let mail = Mailer::new(config.smtp.clone(), &config.public_url, config.encryption_key.clone());
        if config.auto_migrate {
            db.migrate().await?;
            mail.seal_clear_bodies(&db).await?;
        }
        let metrics = Metrics::new()?;
        let gateway =
            Gateway::from_config(&config.providers, &config.routes, &config.prices, &config.gateway)?;
        let settings = StateSettings {
            auth: config.auth.clone(),
            abuse: config.abuse.clone(),
            require_verified_email: config.require_verified_email,
        };
        let outbound = Outbound::new(&config.outbound)?;
        let state = AppState::new(db, settings, mail, gateway, outbound, metrics.clone());
        let policies = Policies::from_config(&config.policies)?;
        let runs = Runs::new(state.clone(), config.runs.clone(), &config.tools, policies)?;
        Ok(Self { config, state, runs, metrics })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The full HTTP application with its middleware stack.
    pub fn endpoint(&self) -> Result<poem::endpoint::BoxEndpoint<'static>, AppError> {
        let service = crate::routes::service();
        let spec_json = contract::openapi_json()?;
        let docs_html = docs_page(&service, spec_json)?;
        let metrics = self.metrics.clone();
        let routes = Route::new()
            .nest("/", service)
            .at(
                "/metrics",
                make_sync(move |_| {
                    metrics.render().with_content_type("text/plain; version=0.0.4; charset=utf-8")
                }),
            )
            .at("/openapi.json", make_sync(move |_| spec_json.with_content_type("application/json")))
            .at("/openapi.yaml", make_sync(|_| yaml(contract::OPENAPI_YAML)))
            .at("/asyncapi.yaml", make_sync(|_| yaml(contract::ASYNCAPI_YAML)))
            .at("/docs", make_sync(move |_| Html(docs_html.clone())))
            .at("/v1/runs/ws", get(runs_socket));
        let proxies =
            TrustedProxies::parse(&self.config.trusted_proxies).map_err(AppError::TrustedProxies)?;
        let sockets = SocketSettings {
            origins: AllowedOrigins::parse(&self.config.cors).map_err(AppError::AllowedOrigins)?,
            max_frame_bytes: self.config.max_body_bytes,
        };
        let routes = routes.data(self.state.clone()).data(self.runs.clone()).data(sockets);
        let credential_limiter = Arc::new(CredentialLimiter::new(
            self.config.abuse.credential,
            self.config.abuse.max_tracked_keys,
        ));
        let allowed_methods = AllowedMethods::from_spec(contract::openapi()?);
        Ok(crate::http::stack(
            routes,
            self.config.max_body_bytes,
            &self.metrics,
            credential_limiter,
            proxies,
            allowed_methods,
        ))
    }

    /// Binds the configured address (port 0 picks a free one) and returns the
    /// acceptor, whose `local_addr` tells where the server listens.
    pub async fn bind(&self) -> Result<NoDelayAcceptor, AppError> {
        Ok(NoDelayAcceptor(TcpListener::bind(self.config.listen).into_acceptor().await?))
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets in-flight
    /// requests finish for up to `shutdown_grace_secs`, and closes the pool.
    pub async fn serve(
        self,
        acceptor: NoDelayAcceptor,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), AppError> {
        let endpoint = self.endpoint()?;
        let grace = Duration::from_secs(self.config.shutdown_grace_secs);
        let flusher = tokio::spawn(flush_key_usage(self.state.clone()));
        let usage_flusher = tokio::spawn(flush_gateway_usage(self.state.clone()));
        let sweeper = (self.config.housekeeping_interval_secs > 0).then(|| {
            let every = Duration::from_secs(self.config.housekeeping_interval_secs);
            tokio::spawn(sweep_periodically(self.state.db.clone(), self.state.clock.clone(), every))
        });
        let delivery =
            Delivery::spawn(self.state.db.clone(), self.state.mail.clone(), self.state.clock.clone());
        let resumer = Resumer::spawn(self.runs.clone());
        let result = Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(endpoint, shutdown, Some(grace))
            .await;
        flusher.abort();
        usage_flusher.abort();
        resumer.stop();
        self.runs.shut_down().await;
        if let Some(sweeper) = sweeper {
            sweeper.abort();
        }
        if let Some(delivery) = delivery {
            delivery.stop().await;
        }
        // What the last requests did is written before the pool closes.
        if let Err(err) = self.state.key_usage.flush(&self.state.db).await {
            tracing::error!(error = %err, "could not record API key use at shutdown");
        }
        if let Err(err) = self.state.meter.flush(&self.state.db).await {
            tracing::error!(error = %err, "could not record gateway usage at shutdown");
        }
        self.state.db.close().await;
        Ok(result?)
    }
}

/// How often API key uses are written to the database.
const KEY_USAGE_FLUSH_EVERY: Duration = Duration::from_secs(15);

/// Writes API key uses in batches until aborted.
async fn flush_key_usage(state: AppState) {
    let mut tick = tokio::time::interval(KEY_USAGE_FLUSH_EVERY);
    loop {
        tick.tick().await;
        if let Err(err) = state.key_usage.flush(&state.db).await {
            tracing::warn!(error = %err, "could not record API key use; will retry");
        }
    }
}

/// How often gateway usage rows are written.
const GATEWAY_USAGE_FLUSH_EVERY: Duration = Duration::from_secs(2);

/// Writes gateway usage rows in batches until aborted: every
/// [`GATEWAY_USAGE_FLUSH_EVERY`], and sooner when many are waiting, so a
/// busy server holds a bounded number in memory.
async fn flush_gateway_usage(state: AppState) {
    let mut tick = tokio::time::interval(GATEWAY_USAGE_FLUSH_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = state.meter.batch_ready() => {}
        }
        if let Err(err) = state.meter.flush(&state.db).await {
            tracing::warn!(error = %err, "could not record gateway usage; will retry");
        }
    }
}

/// Deletes rows that can no longer matter, every `every`, until aborted.
async fn sweep_periodically(db: Db, clock: Clock, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match db.sweep(clock.now(), Retention::default()).await {
            Ok(swept) if swept.total() > 0 => tracing::info!(?swept, "housekeeping swept expired rows"),
            Ok(_) => {}
            Err(err) => tracing::warn!(error = %err, "housekeeping failed; will retry"),
        }
    }
}

fn yaml(text: &'static str) -> WithContentType<&'static str> {
    text.with_content_type("application/yaml")
}

/// poem-openapi's bundled Swagger UI (no CDN) with the committed spec put in
/// place of the generated one.
fn docs_page(
    service: &poem_openapi::OpenApiService<crate::routes::Apis, ()>,
    spec_json: &str,
) -> Result<String, AppError> {
    let generated = service.spec();
    let html = service.swagger_ui_html();
    if !html.contains(&generated) {
        return Err(AppError::DocsTemplate);
    }
    Ok(html.replacen(&generated, spec_json, 1))
}
