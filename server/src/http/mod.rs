//! The HTTP layer every area's handlers share: the error envelope and the
//! mapping of each layer's errors to it (`error`, `from_domain`), credentials
//! and their resolution to a principal (`credential`), success responses and
//! the hash an `Idempotency-Key` is checked against (`idempotency`), and
//! the spec's tags; and the cross-cutting behaviour applied to every route in
//! one fixed order by [`stack`]: request ids, logs and metrics, the envelope,
//! panic capture, the body size limit and the NUL guard; and the acceptor the
//! server listens with.

pub mod allow;
pub mod body_limit;
pub mod client_addr;
pub mod credential;
pub mod credential_limit;
pub mod envelope;
pub mod error;
pub mod from_domain;
pub mod idempotency;
pub mod listener;
pub mod observe;
pub mod openai_json;
pub mod origin;
pub mod page;
pub mod request_id;
pub mod responses;
mod tags;
pub mod text_guard;
pub mod wire;

pub use responses::Ok200;
pub use tags::ApiTags;

use poem::endpoint::BoxEndpoint;
use poem::middleware::CatchPanic;
use poem::{Endpoint, EndpointExt, IntoEndpoint};

use std::sync::Arc;

use crate::limits::CredentialLimiter;
use crate::metrics::Metrics;

/// Wraps `routes` in the middleware stack every Switchyard route gets.
pub fn stack(
    routes: impl Endpoint + 'static,
    max_body_bytes: usize,
    metrics: &Metrics,
    credential_limiter: Arc<CredentialLimiter>,
    trusted_proxies: client_addr::TrustedProxies,
    allowed_methods: allow::AllowedMethods,
) -> BoxEndpoint<'static> {
    // Outermost last: the request id scopes everything inside it, the log and
    // metrics see the final enveloped status, the per-credential limit
    // refuses before routing and adds its headers to every answer, the
    // envelope sees every error,
    // panics are caught before they escape, bodies are capped before
    // anything parses them, and text no store can hold is refused. The
    // trusted proxies are known to everything, the credential limit included.
    routes
        .with(text_guard::NoNul)
        .with(body_limit::BodyLimit::new(max_body_bytes))
        .with(CatchPanic::new().with_handler(envelope::panic_response))
        .with(envelope::Envelope(Arc::new(allowed_methods)))
        .with(credential_limit::CredentialLimit(credential_limiter))
        .with(observe::Observe::new(metrics.clone()))
        .with(request_id::RequestId)
        .data(trusted_proxies)
        .into_endpoint()
        .map_to_response()
        .boxed()
}
