//! [`OutboundError`]: every way a request through the guard can fail, named
//! so that each caller maps it once (a tool error for the model, a 502 for a
//! proxied call, a 422 for a URL refused at registration).

use std::net::IpAddr;

use super::ranges::Reason;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The host is, or resolves to, an address in a refused range that no
    /// `[outbound] allow` entry opens.
    #[error("{address} may not be reached: {reason}")]
    Refused { address: IpAddr, reason: Reason },
    #[error("the scheme {scheme:?} is not allowed; only https (and http where the operator allows it)")]
    SchemeNotAllowed { scheme: String },
    #[error("URLs with a user name or password are not allowed")]
    UserinfoNotAllowed,
    #[error("the URL has no host")]
    NoHost,
    #[error("{host} could not be resolved: {reason}")]
    Resolve { host: String, reason: String },
    #[error("more than {max} redirects")]
    TooManyRedirects { max: usize },
    #[error("a redirect pointed at {location:?}, which is not a URL")]
    BadRedirect { location: String },
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("no complete answer within {after_ms} ms")]
    Timeout { after_ms: u64 },
    #[error("could not connect: {0}")]
    Connect(String),
    /// The request could not be sent or its answer not read.
    #[error("the request failed: {0}")]
    Request(String),
}

impl OutboundError {
    /// The guard's own error when the resolver refused the connection (it
    /// travels inside reqwest's), else reqwest's error described without the
    /// URL, whose query may carry a secret.
    pub(super) fn from_reqwest(err: reqwest::Error) -> Self {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
        while let Some(current) = source {
            if let Some(own) = current.downcast_ref::<OutboundError>() {
                return own.clone();
            }
            source = current.source();
        }
        let is_connect = err.is_connect();
        let err = err.without_url();
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(current) = source {
            text.push_str(": ");
            text.push_str(&current.to_string());
            source = current.source();
        }
        if is_connect { Self::Connect(text) } else { Self::Request(text) }
    }
}
