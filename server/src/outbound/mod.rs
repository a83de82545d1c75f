//! The outbound guard: the one way the server sends a request to a URL that a
//! user or an operator supplied (proxied agents, orders, agent chat, the HTTP
//! tools of runs), so a URL cannot turn the server against the network it
//! stands in.
//!
//! [`Outbound`] is the handle every area shares (one in `AppState`).
//! `policy` judges schemes, user info and IP literal hosts; `ranges` is the
//! table of refused addresses; `resolve` resolves a name once, judges every
//! address it has, and is the HTTP client's only resolver, so connections go
//! only to checked addresses; `send` follows redirects by hand, judging each
//! hop again, and reads answers within a size and a time limit; `error` is
//! the one error callers map; `config` is `[outbound]`.

mod config;
mod error;
mod policy;
mod ranges;
mod resolve;
mod send;

use std::sync::Arc;
use std::time::Duration;

use url::Url;

pub use config::{InvalidOutboundConfig, OutboundConfig};
pub use error::OutboundError;
pub use ranges::{Embedding, Range, Reason};
pub use resolve::{Lookup, LookupFuture, SystemLookup};
pub use send::{MAX_REDIRECTS, OutboundRequest, OutboundResponse};

use policy::{Policy, Target};
use resolve::{CheckedResolver, resolve_checked};

/// The guard, cheap to clone: the policy, the resolver and one HTTP client
/// whose connections all went through them.
#[derive(Clone)]
pub struct Outbound {
    inner: Arc<Inner>,
}

struct Inner {
    policy: Arc<Policy>,
    lookup: Arc<dyn Lookup>,
    client: reqwest::Client,
    max_response_bytes: u64,
    timeout: Duration,
}

impl std::fmt::Debug for Outbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbound")
            .field("policy", &self.inner.policy)
            .field("max_response_bytes", &self.inner.max_response_bytes)
            .field("timeout", &self.inner.timeout)
            .finish_non_exhaustive()
    }
}

impl Outbound {
    /// The guard over the system resolver.
    pub fn new(config: &OutboundConfig) -> Result<Self, InvalidOutboundConfig> {
        Self::with_lookup(config, Arc::new(SystemLookup))
    }

    /// The guard over another source of addresses (a fixed table in tests).
    pub fn with_lookup(
        config: &OutboundConfig,
        lookup: Arc<dyn Lookup>,
    ) -> Result<Self, InvalidOutboundConfig> {
        let allow = config.validate()?;
        let policy = Arc::new(Policy { allow_http: config.allow_http, allow });
        let resolver = CheckedResolver { policy: policy.clone(), lookup: lookup.clone() };
        let client = reqwest::Client::builder()
            .dns_resolver(resolver)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!config.allow_http)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|err| InvalidOutboundConfig { key: "outbound", reason: err.to_string() })?;
        let inner = Inner {
            policy,
            lookup,
            client,
            max_response_bytes: config.max_response_bytes,
            timeout: Duration::from_millis(config.timeout_ms),
        };
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Checks what `url` says by itself, without resolving: the scheme, no
    /// user info, a host, and an IP literal host's address. For
    /// configuration read at start, when DNS may not answer yet.
    pub fn check_url_syntax(&self, url: &Url) -> Result<(), OutboundError> {
        self.inner.policy.target(url).map(|_| ())
    }

    /// Checks `url` as a request to it would be checked, resolving its host
    /// and judging every address: for URLs registered now and called later.
    /// The addresses are judged again when it is called, since DNS answers
    /// change.
    pub async fn check_url(&self, url: &Url) -> Result<(), OutboundError> {
        match self.inner.policy.target(url)? {
            Target::Address(_) => Ok(()),
            Target::Name(host) => {
                resolve_checked(&self.inner.policy, self.inner.lookup.as_ref(), &host).await.map(|_| ())
            }
        }
    }

    /// The configured limit on an answer's size, in bytes.
    pub fn max_response_bytes(&self) -> u64 {
        self.inner.max_response_bytes
    }
}
