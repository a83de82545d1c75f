//! The model gateway: routes from the model names clients send to provider
//! targets, tried in order with backoff until one answers. The providers
//! themselves (OpenAI-compatible, Anthropic, and the built-in `dev`), the
//! wire format, prices and token counting live in the `switchyard-providers`
//! crate; this module builds them from the configuration.
//!
//! `api` is its HTTP surface (the OpenAI-compatible endpoints), `front` the
//! metered call other areas make, `metering` and `ticket` meter each call, and `usage` keeps and reports what calls
//! cost.

pub mod api;
pub mod config;
mod front;
mod metering;
mod ticket;
pub mod usage;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

pub use front::{CallError, ChatAnswer, GatewayDeps, complete};
use futures::StreamExt;
pub use metering::{Budget, Caller, Estimate, Meter, Refusal};
use rand::Rng;
use switchyard_providers::tokens::Tokenizer;
use switchyard_providers::wire::{ChatCompletionRequest, EmbeddingList, EmbeddingRequest};
pub use switchyard_providers::{ChunkEvent, EventStream, Price, Provider, Reply, UpstreamError};
use switchyard_providers::{Timeouts, anthropic, dev, openai};
use tokio::time::Instant;

use crate::gateway::config::{GatewayConfig, PriceConfig, ProviderConfig, ProviderKind, RouteConfig};

impl From<&GatewayConfig> for Timeouts {
    fn from(config: &GatewayConfig) -> Self {
        Self {
            connect: Duration::from_millis(config.connect_timeout_ms),
            first_byte: Duration::from_millis(config.first_byte_timeout_ms),
            idle: Duration::from_millis(config.idle_timeout_ms),
            total: Duration::from_millis(config.total_timeout_ms),
            backoff: Duration::from_millis(config.retry_backoff_ms),
            keepalive: Duration::from_millis(config.stream_keepalive_ms.max(1)),
        }
    }
}

/// A provider and the upstream model one route sends to it.
#[derive(Clone)]
pub struct Target {
    pub provider_name: Arc<str>,
    pub provider: Arc<Provider>,
    pub model: Arc<str>,
    pub price: Price,
}

/// A model name clients send, and its targets in order of preference.
pub struct Route {
    pub name: String,
    pub targets: Vec<Target>,
    /// Unix seconds, reported as the model's `created`.
    pub created: i64,
    /// What counts the route's tokens when a provider reports none.
    pub tokenizer: Tokenizer,
}

impl Route {
    /// The price used to estimate a request before it runs: the dearest target's.
    pub fn estimate_price(&self) -> Price {
        self.targets
            .iter()
            .map(|t| t.price)
            .max_by_key(|p| p.input_micros_per_mtok + p.output_micros_per_mtok)
            .unwrap_or_default()
    }

    /// Whether any of the route's targets may receive `field` (see `switchyard_providers::fields::refused`).
    pub fn passes_through(&self, field: &str) -> bool {
        self.targets.iter().any(|target| target.provider.passes_through(field))
    }

    /// What an image costs at most on any of the route's targets.
    pub fn estimate_image_tokens(&self, detail_low: bool) -> u64 {
        self.targets.iter().map(|t| t.provider.image_rule().tokens(detail_low)).max().unwrap_or(0)
    }
}

/// The gateway's configuration was inconsistent.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InvalidGatewayConfig {
    pub key: String,
    pub reason: String,
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> InvalidGatewayConfig {
    InvalidGatewayConfig { key: key.into(), reason: reason.into() }
}

/// Why a chat or embeddings call failed, once every target was tried.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The provider refused the request itself (a 4xx other than 429).
    #[error("{provider} refused the request: {message}")]
    Rejected { provider: Arc<str>, status: u16, message: String },
    /// Every target failed; the last error is kept.
    #[error("every target of the route failed; last: {last}")]
    Exhausted { last: UpstreamError, provider: Arc<str> },
    #[error("the route's targets did not answer in time")]
    Timeout,
    #[error("{0}")]
    Unsupported(&'static str),
}

/// What answered a call, for usage records and metrics.
pub struct Answered<T> {
    pub value: T,
    pub target: Target,
    /// Time spent waiting on providers, all attempts included.
    pub upstream: Duration,
}

pub struct Gateway {
    routes: HashMap<String, Arc<Route>>,
    /// Route names in configuration order, for `GET /v1/models`.
    order: Vec<String>,
    timeouts: Timeouts,
}

impl Gateway {
    /// Builds providers, routes and prices from the configuration. With no
    /// provider configured, the built-in `dev` provider serves the model
    /// names `default` and `dev`.
    pub fn from_config(
        providers: &BTreeMap<String, ProviderConfig>,
        routes: &[RouteConfig],
        prices: &BTreeMap<String, PriceConfig>,
        gateway: &GatewayConfig,
    ) -> Result<Self, InvalidGatewayConfig> {
        let timeouts = Timeouts::from(gateway);
        let client = reqwest::Client::builder()
            .connect_timeout(timeouts.connect)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()
            .map_err(|e| invalid("gateway", e.to_string()))?;
        let (providers, routes) = if providers.is_empty() && routes.is_empty() {
            dev_defaults()
        } else {
            (providers.clone(), routes.to_vec())
        };
        let mut built: HashMap<String, Arc<Provider>> = HashMap::new();
        for (name, config) in &providers {
            built.insert(name.clone(), Arc::new(build_provider(name, config, &client)?));
        }
        let mut parsed_prices = HashMap::new();
        for (model, price) in prices {
            parsed_prices.insert(
                model.clone(),
                Price::from_usd_per_mtok(&price.input_per_mtok, &price.output_per_mtok)
                    .map_err(|r| invalid(format!("prices.{model}"), r))?,
            );
        }
        let created = chrono::Utc::now().timestamp();
        let mut table = HashMap::new();
        let mut order = Vec::new();
        for route in &routes {
            if route.name.trim().is_empty() {
                return Err(invalid("routes", "a route has an empty name"));
            }
            if route.targets.is_empty() {
                return Err(invalid(format!("routes.{}", route.name), "needs at least one target"));
            }
            let mut targets = Vec::new();
            for target in &route.targets {
                let provider = built.get(&target.provider).ok_or_else(|| {
                    invalid(
                        format!("routes.{}", route.name),
                        format!("unknown provider {:?}", target.provider),
                    )
                })?;
                targets.push(Target {
                    provider_name: Arc::from(target.provider.as_str()),
                    provider: provider.clone(),
                    model: Arc::from(target.model.as_str()),
                    price: parsed_prices.get(&target.model).copied().unwrap_or_default(),
                });
            }
            let tokenizer = route.tokenizer.unwrap_or_default();
            let entry = Arc::new(Route { name: route.name.clone(), targets, created, tokenizer });
            if table.insert(route.name.clone(), entry).is_some() {
                return Err(invalid("routes", format!("route {:?} is defined twice", route.name)));
            }
            order.push(route.name.clone());
        }
        Ok(Self { routes: table, order, timeouts })
    }

    /// How often a waiting stream sends the client a keep-alive comment.
    pub fn stream_keepalive(&self) -> Duration {
        self.timeouts.keepalive
    }

    pub fn route(&self, model: &str) -> Option<&Arc<Route>> {
        self.routes.get(model)
    }

    /// Every route, in configuration order.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.order.iter().filter_map(|name| self.routes.get(name))
    }

    /// Sends a chat request to the route's targets in order until one
    /// answers. A stream counts as answered once its first event arrived, so
    /// a failing target never sends the client a partial answer.
    pub async fn chat(
        &self,
        route: &Route,
        request: &ChatCompletionRequest,
    ) -> Result<Answered<Reply>, GatewayError> {
        let started = Instant::now();
        let deadline = started + self.timeouts.total;
        self.with_fallback(route, deadline, |target| async move {
            let reply = target.provider.chat(request, &target.model, &self.timeouts, deadline).await?;
            match reply {
                Reply::Complete { .. } => Ok(reply),
                Reply::Stream(stream) => {
                    first_event_arrived(stream, &self.timeouts, deadline).await.map(Reply::Stream)
                }
            }
        })
        .await
    }

    pub async fn embed(
        &self,
        route: &Route,
        request: &EmbeddingRequest,
    ) -> Result<Answered<EmbeddingList>, GatewayError> {
        let deadline = Instant::now() + self.timeouts.total;
        self.with_fallback(route, deadline, |target| async move {
            target.provider.embed(request, &target.model, &self.timeouts).await
        })
        .await
    }

    async fn with_fallback<'a, T, F, Fut>(
        &'a self,
        route: &'a Route,
        deadline: Instant,
        attempt: F,
    ) -> Result<Answered<T>, GatewayError>
    where
        F: Fn(&'a Target) -> Fut,
        Fut: std::future::Future<Output = Result<T, UpstreamError>>,
    {
        let started = Instant::now();
        let mut last = None;
        for (tried, target) in route.targets.iter().enumerate() {
            if tried > 0 {
                let pause = backoff(self.timeouts.backoff, tried);
                if Instant::now() + pause >= deadline {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
            let outcome = match tokio::time::timeout_at(deadline, attempt(target)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(UpstreamError::Timeout("total")),
            };
            match outcome {
                Ok(value) => {
                    return Ok(Answered { value, target: target.clone(), upstream: started.elapsed() });
                }
                Err(UpstreamError::Unsupported(what)) => return Err(GatewayError::Unsupported(what)),
                Err(err) if !err.is_retryable() => {
                    let UpstreamError::Status { status, message } = err else {
                        return Err(GatewayError::Exhausted {
                            last: err,
                            provider: target.provider_name.clone(),
                        });
                    };
                    return Err(GatewayError::Rejected {
                        provider: target.provider_name.clone(),
                        status,
                        message,
                    });
                }
                Err(err) => {
                    tracing::warn!(route = %route.name, provider = %target.provider_name, error = %err, "target failed");
                    last = Some((err, target.provider_name.clone()));
                }
            }
        }
        match last {
            Some((UpstreamError::Timeout(_), _)) | None => Err(GatewayError::Timeout),
            Some((last, provider)) => Err(GatewayError::Exhausted { last, provider }),
        }
    }
}

/// Waits for a stream's first event within the first-byte timeout and puts
/// it back in front, so failures before any output can still fall back.
async fn first_event_arrived(
    mut stream: EventStream,
    timeouts: &Timeouts,
    deadline: Instant,
) -> Result<EventStream, UpstreamError> {
    let limit = (Instant::now() + timeouts.first_byte).min(deadline);
    match tokio::time::timeout_at(limit, stream.next()).await {
        Err(_) => Err(UpstreamError::Timeout("first byte")),
        Ok(None) => Err(UpstreamError::Protocol("the stream ended before any event".to_owned())),
        Ok(Some(Err(err))) => Err(err),
        Ok(Some(Ok(first))) => Ok(futures::stream::once(async move { Ok(first) }).chain(stream).boxed()),
    }
}

/// Exponential backoff with full jitter: up to `base × 2^(attempt-1)`.
fn backoff(base: Duration, attempt: usize) -> Duration {
    let ceiling = base.saturating_mul(1 << (attempt.min(6) - 1).min(6));
    let millis = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(rand::rng().random_range(millis / 2..=millis.max(1)))
}

fn build_provider(
    name: &str,
    config: &ProviderConfig,
    client: &reqwest::Client,
) -> Result<Provider, InvalidGatewayConfig> {
    let key = match &config.api_key_env {
        Some(var) => Some(std::env::var(var).map_err(|_| {
            invalid(
                format!("providers.{name}.api_key_env"),
                format!("the environment variable {var} is not set"),
            )
        })?),
        None => None,
    };
    let base_url = |default: Option<&str>| {
        let url = config.base_url.as_deref().or(default).ok_or_else(|| {
            invalid(format!("providers.{name}.base_url"), "is required for this kind of provider")
        })?;
        match url::Url::parse(url) {
            Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => {
                Ok(url.trim_end_matches('/').to_owned())
            }
            _ => Err(invalid(format!("providers.{name}.base_url"), "must be an http:// or https:// URL")),
        }
    };
    let pass_through = config.pass_through.clone();
    Ok(match config.kind {
        ProviderKind::Dev if !pass_through.is_empty() => {
            return Err(invalid(
                format!("providers.{name}.pass_through"),
                "the dev provider reads no extra fields",
            ));
        }
        ProviderKind::Dev => {
            Provider::Dev(dev::Dev { delay: Duration::from_millis(config.delay_ms.unwrap_or(0)) })
        }
        _ if config.delay_ms.is_some() => {
            return Err(invalid(format!("providers.{name}.delay_ms"), "only the dev provider takes a delay"));
        }
        ProviderKind::Openai => Provider::OpenAi(
            openai::OpenAi::new(client.clone(), base_url(None)?, key).with_pass_through(pass_through),
        ),
        ProviderKind::Anthropic => Provider::Anthropic(
            anthropic::Anthropic::new(client.clone(), base_url(Some(anthropic::DEFAULT_BASE_URL))?, key)
                .with_pass_through(pass_through),
        ),
    })
}

/// With nothing configured: one `dev` provider behind `default` and `dev`.
fn dev_defaults() -> (BTreeMap<String, ProviderConfig>, Vec<RouteConfig>) {
    let providers = BTreeMap::from([(
        "dev".to_owned(),
        ProviderConfig {
            kind: ProviderKind::Dev,
            base_url: None,
            api_key_env: None,
            pass_through: Vec::new(),
            delay_ms: None,
        },
    )]);
    let route = |name: &str| RouteConfig {
        name: name.to_owned(),
        targets: vec![config::TargetConfig { provider: "dev".to_owned(), model: "dev".to_owned() }],
        tokenizer: None,
    };
    (providers, vec![route("default"), route("dev")])
}
