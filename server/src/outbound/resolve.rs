//! Resolving a name once and judging every address it has: a name with one
//! refused address among its answers is refused whole, and the HTTP client
//! is handed only addresses that were checked, so it never connects to one
//! that was not. `localhost` and `*.localhost` (trailing dot or not) are
//! loopback by definition (RFC 6761) and never asked of DNS.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::error::OutboundError;
use super::policy::Policy;

pub type LookupFuture = Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;

/// Where a name's addresses come from: the system resolver in the server,
/// a fixed table in tests.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: &str) -> LookupFuture;
}

/// The operating system's resolver, through tokio.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> LookupFuture {
        let host = host.to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            Ok(found.map(|addr| addr.ip()).collect())
        })
    }
}

fn is_localhost(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

/// The addresses of `host`, each judged by `policy`: all of them, or the
/// first refusal.
pub async fn resolve_checked(
    policy: &Policy,
    lookup: &dyn Lookup,
    host: &str,
) -> Result<Vec<IpAddr>, OutboundError> {
    let mut addresses = if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        vec![ip]
    } else if is_localhost(host) {
        vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::LOCALHOST)]
    } else {
        lookup
            .lookup(host)
            .await
            .map_err(|err| OutboundError::Resolve { host: host.to_owned(), reason: err.to_string() })?
    };
    addresses.dedup();
    if addresses.is_empty() {
        return Err(OutboundError::Resolve {
            host: host.to_owned(),
            reason: "it has no addresses".to_owned(),
        });
    }
    for ip in &addresses {
        policy.judge(*ip)?;
    }
    Ok(addresses)
}

/// The HTTP client's resolver: [`resolve_checked`], so a connection is only
/// ever opened to an address the policy allowed. A refusal travels inside
/// the client's error and is recovered as the [`OutboundError`] it is.
pub struct CheckedResolver {
    pub policy: Arc<Policy>,
    pub lookup: Arc<dyn Lookup>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let (policy, lookup) = (self.policy.clone(), self.lookup.clone());
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addresses = resolve_checked(&policy, lookup.as_ref(), &host).await?;
            // Port 0: the client puts the URL's port in.
            let addrs: Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::outbound::ranges::Range;

    /// A fake DNS: names to addresses; any other name fails, and asking for
    /// a name it was told never to be asked fails the test.
    struct Table(HashMap<&'static str, Vec<IpAddr>>);

    impl Lookup for Table {
        fn lookup(&self, host: &str) -> LookupFuture {
            assert!(!host.trim_end_matches('.').ends_with("localhost"), "asked DNS for {host}");
            let found = self.0.get(host).cloned();
            Box::pin(async move { found.ok_or_else(|| std::io::Error::other("no such host")) })
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|ip| ip.parse().unwrap()).collect()
    }

    fn table() -> Table {
        Table(HashMap::from([
            ("public.test", ips(&["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])),
            ("mixed.test", ips(&["93.184.215.14", "10.0.0.7", "1.1.1.1"])),
            ("mixed6.test", ips(&["2606:4700::1111", "::ffff:192.168.0.1"])),
            ("internal.test", ips(&["127.0.0.1"])),
            ("empty.test", Vec::new()),
        ]))
    }

    fn open() -> Policy {
        Policy { allow_http: false, allow: Vec::new() }
    }

    #[tokio::test]
    async fn a_name_with_one_refused_address_is_refused_whole() {
        let refused = resolve_checked(&open(), &table(), "mixed.test").await;
        assert!(
            matches!(refused, Err(OutboundError::Refused { address, reason })
                if address == "10.0.0.7".parse::<IpAddr>().unwrap() && reason.range == Range::Private),
            "{refused:?}"
        );
        let refused = resolve_checked(&open(), &table(), "mixed6.test").await;
        assert!(matches!(refused, Err(OutboundError::Refused { .. })), "{refused:?}");
        let allowed = resolve_checked(&open(), &table(), "public.test").await;
        assert_eq!(allowed, Ok(ips(&["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])));
    }

    #[tokio::test]
    async fn exceptions_apply_to_resolved_addresses() {
        let policy = Policy { allow_http: false, allow: vec!["10.0.0.0/24".parse().unwrap()] };
        assert!(resolve_checked(&policy, &table(), "mixed.test").await.is_ok());
        assert!(resolve_checked(&policy, &table(), "internal.test").await.is_err());
    }

    #[tokio::test]
    async fn localhost_names_are_loopback_without_asking_dns() {
        for host in ["localhost", "localhost.", "LocalHost", "api.localhost", "api.localhost."] {
            let refused = resolve_checked(&open(), &table(), host).await;
            let range = match &refused {
                Err(OutboundError::Refused { reason, .. }) => Some(reason.range),
                _ => None,
            };
            assert_eq!(range, Some(Range::Loopback), "{host}: {refused:?}");
        }
        let only_v4 = Policy { allow_http: false, allow: vec!["127.0.0.1/32".parse().unwrap()] };
        assert!(resolve_checked(&only_v4, &table(), "localhost").await.is_err(), "::1 is still refused");
        let both = Policy {
            allow_http: false,
            allow: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
        };
        assert!(resolve_checked(&both, &table(), "localhost.").await.is_ok());
    }

    #[tokio::test]
    async fn names_that_do_not_resolve_say_so() {
        for host in ["nowhere.test", "empty.test"] {
            let failed = resolve_checked(&open(), &table(), host).await;
            assert!(
                matches!(&failed, Err(OutboundError::Resolve { host: named, .. }) if named == host),
                "{failed:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_client_resolver_hands_out_only_checked_addresses() {
        let resolver = CheckedResolver { policy: Arc::new(open()), lookup: Arc::new(table()) };
        let addrs: Vec<SocketAddr> =
            resolver.resolve("public.test".parse().unwrap()).await.unwrap().collect();
        assert_eq!(addrs.len(), 2);
        assert!(addrs.iter().all(|addr| addr.port() == 0));
        let refused = resolver.resolve("mixed.test".parse().unwrap()).await.err().unwrap();
        assert!(refused.downcast_ref::<OutboundError>().is_some(), "{refused}");
    }
}
