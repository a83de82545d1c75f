//! Who the client is, by address: the socket peer, or, when the peer is a
//! configured trusted proxy, the address it forwarded in `X-Forwarded-For`.
//! Abuse limits and the audit trail count against this address, and
//! [`context`] carries it, with the request's id and time, to what an
//! operation records.

use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use poem::{FromRequest, Request, RequestBody};

use crate::http::request_id;
use crate::kernel::context::RequestContext;
use crate::kernel::net::parse_networks;
use crate::state::AppState;

/// The `trusted_proxies` setting, as request data.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Parses addresses (`10.0.0.7`) and networks (`10.0.0.0/8`).
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        parse_networks(entries).map(|nets| Self(nets.into()))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind `peer`: walking `X-Forwarded-For` from the right,
    /// the first address that is not a trusted proxy. A peer that is not
    /// trusted is the client, whatever it forwarded.
    ///
    /// Addresses are canonical: on a dual-stack listener an IPv4 peer shows
    /// as `::ffff:10.1.2.3`, which is `10.1.2.3` here, so it matches
    /// `10.0.0.0/8` and counts as the IPv4 client it is.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for hop in forwarded_for.iter().flat_map(|header| header.split(',')).rev() {
            let Ok(hop) = hop.trim().parse::<IpAddr>().map(|hop| hop.to_canonical()) else { return client };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

/// The client's address, as [`TrustedProxies::client`] decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

impl ClientAddr {
    pub fn ip(self) -> IpAddr {
        self.0
    }

    /// The client of `req`, for middleware that runs before extractors.
    pub fn of(req: &Request) -> Self {
        let peer = req.remote_addr().as_socket_addr().map_or(IpAddr::from([0, 0, 0, 0]), |addr| addr.ip());
        let Some(proxies) = req.data::<TrustedProxies>() else { return Self(peer.to_canonical()) };
        let forwarded: Vec<&str> =
            req.headers().get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect();
        Self(proxies.client(peer, &forwarded))
    }
}

/// The context of the current request: its client, id and time.
pub fn context(state: &AppState, client: ClientAddr) -> RequestContext {
    RequestContext {
        ip: Some(client.ip().to_string()),
        request_id: request_id::current(),
        now: state.clock.now(),
    }
}

impl<'a> FromRequest<'a> for ClientAddr {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        Ok(Self::of(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(proxies.client(ip("203.0.113.9"), &["198.51.100.1"]), ip("203.0.113.9"));
        assert_eq!(TrustedProxies::default().client(ip("10.0.0.1"), &["198.51.100.1"]), ip("10.0.0.1"));
    }

    #[test]
    fn trusted_proxies_are_skipped_from_the_right() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".to_owned(), "192.0.2.1".to_owned()])
            .unwrap_or_else(|e| panic!("{e}"));
        // A client-supplied first hop is not believed past the first untrusted one.
        let forwarded = ["1.1.1.1, 198.51.100.7", "10.1.2.3"];
        assert_eq!(proxies.client(ip("192.0.2.1"), &forwarded), ip("198.51.100.7"));
        assert_eq!(proxies.client(ip("10.0.0.1"), &[]), ip("10.0.0.1"));
        assert_eq!(proxies.client(ip("10.0.0.1"), &["garbage"]), ip("10.0.0.1"));
    }

    #[test]
    fn mapped_ipv4_addresses_match_ipv4_networks() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".to_owned()]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(proxies.client(ip("::ffff:10.1.2.3"), &["198.51.100.7"]), ip("198.51.100.7"));
        assert_eq!(proxies.client(ip("::ffff:203.0.113.9"), &[]), ip("203.0.113.9"));
        assert_eq!(proxies.client(ip("10.1.2.3"), &["::ffff:198.51.100.8"]), ip("198.51.100.8"));
    }

    #[test]
    fn bad_entries_are_named() {
        assert!(TrustedProxies::parse(&["10.0.0.0/33".to_owned()]).is_err_and(|e| e.contains("10.0.0.0/33")));
    }
}
