//! `[outbound]`: what requests to user- and operator-supplied URLs may reach,
//! how long they may take and how much they may read.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::kernel::net::parse_networks;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Allow plain `http://` URLs; by default only `https://` is followed.
    pub allow_http: bool,
    /// Addresses and networks (`"10.1.2.0/24"`, `"127.0.0.1"`) reachable
    /// even though a refused range holds them.
    pub allow: Vec<String>,
    /// The largest answer read, in bytes; a longer one is refused.
    pub max_response_bytes: u64,
    /// How long one request may take, redirects and the whole answer
    /// included, when its caller sets no shorter time.
    pub timeout_ms: u64,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self { allow_http: false, allow: Vec::new(), max_response_bytes: 1024 * 1024, timeout_ms: 10_000 }
    }
}

/// A value of `[outbound]` that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct InvalidOutboundConfig {
    pub key: &'static str,
    pub reason: String,
}

impl OutboundConfig {
    /// The `allow` networks, once every value is known to be usable.
    pub fn validate(&self) -> Result<Vec<IpNet>, InvalidOutboundConfig> {
        if self.max_response_bytes == 0 {
            return Err(InvalidOutboundConfig {
                key: "outbound.max_response_bytes",
                reason: "must be positive".to_owned(),
            });
        }
        if self.timeout_ms == 0 {
            return Err(InvalidOutboundConfig {
                key: "outbound.timeout_ms",
                reason: "must be positive".to_owned(),
            });
        }
        parse_networks(&self.allow).map_err(|reason| InvalidOutboundConfig { key: "outbound.allow", reason })
    }
}
