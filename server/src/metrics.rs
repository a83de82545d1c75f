//! Prometheus metrics. Each server owns its registry (not the process-global
//! one) so several servers in one process, as in tests, never collide.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    gateway: GatewayMetrics,
    runs: RunMetrics,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("switchyard".to_owned()), None)?;
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by operation and status."),
            &["operation", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by operation and status.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ]),
            &["operation", "status"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        let gateway = GatewayMetrics::new(&registry)?;
        let runs = RunMetrics::new(&registry)?;
        Ok(Self { registry, requests, latency, gateway, runs })
    }

    pub fn observe_request(&self, operation: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [operation, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency.with_label_values(&labels).observe(elapsed.as_secs_f64());
    }

    /// The model gateway's metrics.
    pub fn gateway(&self) -> &GatewayMetrics {
        &self.gateway
    }

    /// The agent runs' metrics.
    pub fn runs(&self) -> &RunMetrics {
        &self.runs
    }

    /// The registry in Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(err) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(error = %err, "could not encode the metrics");
        }
        // The text format is UTF-8; a stray byte would show, not empty the page.
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Runs started and ended by route (and how they ended), and the steps
/// they took by kind (`model`, `tool`). Cloning is cheap.
#[derive(Clone)]
pub struct RunMetrics {
    started: IntCounterVec,
    finished: IntCounterVec,
    steps: IntCounterVec,
}

impl RunMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let started =
            IntCounterVec::new(Opts::new("runs_started_total", "Agent runs created, by route."), &["route"])?;
        let finished = IntCounterVec::new(
            Opts::new("runs_finished_total", "Agent runs that ended, by route and final status."),
            &["route", "status"],
        )?;
        let steps = IntCounterVec::new(
            Opts::new("run_steps_total", "Steps agent runs journaled, by kind."),
            &["kind"],
        )?;
        for counter in [&started, &finished, &steps] {
            registry.register(Box::new(counter.clone()))?;
        }
        Ok(Self { started, finished, steps })
    }

    pub fn started(&self, route: &str) {
        self.started.with_label_values(&[route]).inc();
    }

    pub fn finished(&self, route: &str, status: &str) {
        self.finished.with_label_values(&[route, status]).inc();
    }

    pub fn step(&self, kind: &str) {
        self.steps.with_label_values(&[kind]).inc();
    }
}

/// Buckets of the gateway's timings: from 0.1 ms, for its own overhead, to
/// a minute, for slow upstream answers.
const GATEWAY_BUCKETS: [f64; 18] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// The `provider` label of a request no target answered.
const NO_PROVIDER: &str = "none";

/// Requests, tokens and cost of the model gateway by route (the model name
/// clients send), provider and status, with its timings and the requests in
/// flight. Cloning is cheap; every clone records into the same metrics.
#[derive(Clone)]
pub struct GatewayMetrics(Arc<GatewayInner>);

struct GatewayInner {
    requests: IntCounterVec,
    tokens: IntCounterVec,
    cost: IntCounterVec,
    upstream: HistogramVec,
    overhead: HistogramVec,
    first_token: HistogramVec,
    in_flight: IntGauge,
}

/// How one admitted gateway request ended.
#[derive(Debug, Clone, Copy)]
pub struct GatewayOutcome<'a> {
    pub route: &'a str,
    /// The provider that answered; `None` when none did.
    pub provider: Option<&'a str>,
    /// The HTTP status; 499 when the client went away first.
    pub status: u16,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Whether the tokens are the provider's report or Switchyard's count
    /// (`reported`, `counted`, …: the usage row's `usage_source`).
    pub usage_source: &'static str,
    pub cost_micro_usd: u64,
    /// Time spent waiting on providers, when one answered.
    pub upstream: Option<Duration>,
    /// Time from the request's start to its answer (a stream's first byte)
    /// minus the time upstream.
    pub overhead: Option<Duration>,
    /// Time from the request's start to a stream's first content or tool
    /// call.
    pub first_token: Option<Duration>,
}

impl GatewayMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(GATEWAY_BUCKETS.to_vec()), labels)
        };
        let inner = GatewayInner {
            requests: IntCounterVec::new(
                Opts::new(
                    "gateway_requests_total",
                    "Admitted gateway requests by route, answering provider (`none` when none did) and status.",
                ),
                &["route", "provider", "status"],
            )?,
            tokens: IntCounterVec::new(
                Opts::new(
                    "gateway_tokens_total",
                    "Tokens used by route, provider, kind (prompt, completion) and usage \
                     (reported by the provider, or estimated by Switchyard's tokenizer).",
                ),
                &["route", "provider", "kind", "usage"],
            )?,
            cost: IntCounterVec::new(
                Opts::new("gateway_cost_micro_usd_total", "Cost of gateway requests in micro-USD."),
                &["route", "provider"],
            )?,
            upstream: histogram(
                "gateway_upstream_seconds",
                "Time spent waiting on providers, fallbacks included; for streams, until the first event.",
                &["route", "provider"],
            )?,
            overhead: histogram(
                "gateway_overhead_seconds",
                "The gateway's own time: until the answer (a stream's first byte) minus the time upstream.",
                &["route"],
            )?,
            first_token: histogram(
                "gateway_time_to_first_token_seconds",
                "Time from a streamed request's start to its first content or tool call.",
                &["route", "provider"],
            )?,
            in_flight: IntGauge::new(
                "gateway_in_flight_requests",
                "Gateway requests admitted and not yet finished (streams until they end).",
            )?,
        };
        registry.register(Box::new(inner.requests.clone()))?;
        registry.register(Box::new(inner.tokens.clone()))?;
        registry.register(Box::new(inner.cost.clone()))?;
        registry.register(Box::new(inner.upstream.clone()))?;
        registry.register(Box::new(inner.overhead.clone()))?;
        registry.register(Box::new(inner.first_token.clone()))?;
        registry.register(Box::new(inner.in_flight.clone()))?;
        Ok(Self(Arc::new(inner)))
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub fn admitted(&self) -> InFlight {
        self.0.in_flight.inc();
        InFlight(self.clone())
    }
}

/// One admitted gateway request: counted in flight while this lives.
pub struct InFlight(GatewayMetrics);

impl InFlight {
    /// Records how the request ended. Call it once; the request stays in
    /// flight until the guard is dropped.
    pub fn finished(&self, outcome: &GatewayOutcome<'_>) {
        let metrics = &self.0.0;
        let route = outcome.route;
        let provider = outcome.provider.unwrap_or(NO_PROVIDER);
        let status = outcome.status.to_string();
        metrics.requests.with_label_values(&[route, provider, status.as_str()]).inc();
        if outcome.provider.is_some() {
            let usage = outcome.usage_source;
            metrics
                .tokens
                .with_label_values(&[route, provider, "prompt", usage])
                .inc_by(outcome.prompt_tokens);
            metrics
                .tokens
                .with_label_values(&[route, provider, "completion", usage])
                .inc_by(outcome.completion_tokens);
            metrics.cost.with_label_values(&[route, provider]).inc_by(outcome.cost_micro_usd);
        }
        if let Some(upstream) = outcome.upstream {
            metrics.upstream.with_label_values(&[route, provider]).observe(upstream.as_secs_f64());
        }
        if let Some(overhead) = outcome.overhead {
            metrics.overhead.with_label_values(&[route]).observe(overhead.as_secs_f64());
        }
        if let Some(first_token) = outcome.first_token {
            metrics.first_token.with_label_values(&[route, provider]).observe(first_token.as_secs_f64());
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.0.in_flight.dec();
    }
}
