//! One log line and one metrics sample per request: method, path, operation,
//! status, latency and request id. Operations are labelled by their spec
//! `operationId`, so metric cardinality stays bounded by the contract.

use std::time::Instant;

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

use crate::metrics::Metrics;

use crate::http::request_id;

/// Label for requests that matched no documented operation (unknown paths,
/// the docs and metrics endpoints).
const UNDOCUMENTED: &str = "undocumented";

pub struct Observe {
    metrics: Metrics,
}

impl Observe {
    pub fn new(metrics: Metrics) -> Self {
        Self { metrics }
    }
}

impl<E: Endpoint> Middleware<E> for Observe {
    type Output = ObserveEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ObserveEndpoint { inner: ep, metrics: self.metrics.clone() }
    }
}

pub struct ObserveEndpoint<E> {
    inner: E,
    metrics: Metrics,
}

impl<E: Endpoint> Endpoint for ObserveEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let resp = self.inner.call(req).await.map(IntoResponse::into_response)?;
        let elapsed = started.elapsed();
        let operation = resp.data::<poem_openapi::OperationId>().map_or(UNDOCUMENTED, |op| op.0);
        let status = resp.status();
        self.metrics.observe_request(operation, status.as_u16(), elapsed);
        tracing::info!(
            target: "switchyard::access",
            %method,
            path,
            operation,
            status = status.as_u16(),
            latency_ms = elapsed.as_micros() as f64 / 1000.0,
            request_id = request_id::current().unwrap_or_default(),
            "request"
        );
        Ok(resp)
    }
}
