//! What the operator allows: the schemes, and the exceptions to the refused
//! ranges. Judges a URL before anything is sent (scheme, user info, an IP
//! literal host) and each address a name resolves to.

use std::net::IpAddr;

use ipnet::IpNet;
use url::{Host, Url};

use super::error::OutboundError;
use super::ranges;

#[derive(Debug, Clone)]
pub struct Policy {
    pub allow_http: bool,
    /// `[outbound] allow`: networks reachable even inside a refused range.
    pub allow: Vec<IpNet>,
}

/// Where a URL's host leads: an address already known, or a name to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Address(IpAddr),
    Name(String),
}

impl Policy {
    /// Whether `ip` may be reached: outside every refused range, or inside an
    /// `allow` entry (an IPv4-mapped address matches as the IPv4 it is).
    pub fn judge(&self, ip: IpAddr) -> Result<(), OutboundError> {
        let canonical = ip.to_canonical();
        if self.allow.iter().any(|net| net.contains(&ip) || net.contains(&canonical)) {
            return Ok(());
        }
        match ranges::refused(ip) {
            Some(reason) => Err(OutboundError::Refused { address: ip, reason }),
            None => Ok(()),
        }
    }

    /// Checks what a URL says by itself: the scheme, no user info, a host,
    /// and an IP literal host judged here, since the HTTP client connects to
    /// literals without asking the resolver. The `url` crate has already
    /// read every IPv4 spelling (`2130706433`, `0177.0.0.1`, `0x7f.1`,
    /// `127.1`, a trailing dot) as the address it means.
    pub fn target(&self, url: &Url) -> Result<Target, OutboundError> {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            other => return Err(OutboundError::SchemeNotAllowed { scheme: other.to_owned() }),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(OutboundError::UserinfoNotAllowed);
        }
        let target = match url.host() {
            None => return Err(OutboundError::NoHost),
            Some(Host::Ipv4(ip)) => Target::Address(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Target::Address(IpAddr::V6(ip)),
            Some(Host::Domain("")) => return Err(OutboundError::NoHost),
            Some(Host::Domain(name)) => Target::Name(name.to_owned()),
        };
        if let Target::Address(ip) = target {
            self.judge(ip)?;
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::ranges::{Embedding, Range};

    fn policy() -> Policy {
        Policy { allow_http: true, allow: Vec::new() }
    }

    fn refused_range(policy: &Policy, url: &str) -> Option<Range> {
        let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        match policy.target(&parsed) {
            Err(OutboundError::Refused { reason, .. }) => Some(reason.range),
            _ => None,
        }
    }

    #[test]
    fn every_spelling_of_a_refused_address_is_refused() {
        let cases: &[(&str, &str)] = &[
            ("http://127.0.0.1/", "127.0.0.1"),
            ("http://2130706433/", "127.0.0.1"),
            ("http://0177.0.0.1/", "127.0.0.1"),
            ("http://0x7f.1/", "127.0.0.1"),
            ("http://0x7f000001/", "127.0.0.1"),
            ("http://127.1/", "127.0.0.1"),
            ("http://127.0.1/", "127.0.0.1"),
            ("http://127.0.0.1./", "127.0.0.1"),
            ("http://0/", "0.0.0.0"),
            ("http://017700000001/", "127.0.0.1"),
            ("http://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
            ("http://2852039166/", "169.254.169.254"),
            ("http://10.1/", "10.0.0.1"),
            ("https://[::1]/", "::1"),
            ("https://[0:0:0:0:0:0:0:1]/", "::1"),
            ("https://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"),
            ("https://[::ffff:7f00:1]/", "::ffff:127.0.0.1"),
            ("https://[::127.0.0.1]/", "::127.0.0.1"),
            ("https://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1"),
            ("https://[64:ff9b::169.254.169.254]/", "64:ff9b::a9fe:a9fe"),
            ("https://[2002:7f00:1::]/", "2002:7f00:1::"),
            ("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "2001:0:4136:e378:8000:63bf:3fff:fdd2"),
            ("https://[fe80::1]/", "fe80::1"),
            ("https://[fd00::1]:8443/x", "fd00::1"),
        ];
        for &(url, address) in cases {
            let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            match policy().target(&parsed) {
                Err(OutboundError::Refused { address: refused, .. }) => {
                    assert_eq!(refused, address.parse::<IpAddr>().unwrap(), "{url}")
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        assert_eq!(refused_range(&policy(), "http://0x7f.1/"), Some(Range::Loopback));
        assert_eq!(refused_range(&policy(), "https://[2002:7f00:1::]/"), Some(Range::SixToFour));
        assert_eq!(refused_range(&policy(), "https://[2001:0:4136::1]/"), Some(Range::Teredo));
        let mapped = Url::parse("https://[::ffff:7f00:1]/").unwrap();
        let Err(OutboundError::Refused { reason, .. }) = policy().target(&mapped) else { panic!() };
        assert_eq!(reason.embedded, Some((Embedding::Mapped, "127.0.0.1".parse().unwrap())));
    }

    #[test]
    fn names_are_left_to_the_resolver() {
        let url = Url::parse("https://Example.COM./x").unwrap();
        assert_eq!(policy().target(&url), Ok(Target::Name("example.com.".to_owned())));
        let url = Url::parse("https://localhost/").unwrap();
        assert_eq!(policy().target(&url), Ok(Target::Name("localhost".to_owned())));
        let public = Url::parse("https://1.1.1.1/").unwrap();
        assert_eq!(policy().target(&public), Ok(Target::Address("1.1.1.1".parse().unwrap())));
    }

    #[test]
    fn only_https_unless_http_is_allowed() {
        let https_only = Policy { allow_http: false, allow: Vec::new() };
        let http = Url::parse("http://example.com/").unwrap();
        assert_eq!(
            https_only.target(&http),
            Err(OutboundError::SchemeNotAllowed { scheme: "http".to_owned() })
        );
        assert!(policy().target(&http).is_ok());
        for other in
            ["ftp://example.com/", "file:///etc/passwd", "gopher://example.com/", "data:text/plain,x"]
        {
            let url = Url::parse(other).unwrap();
            assert!(matches!(policy().target(&url), Err(OutboundError::SchemeNotAllowed { .. })), "{other}");
        }
    }

    #[test]
    fn user_info_is_refused() {
        for url in ["https://user@example.com/", "https://user:pw@example.com/", "https://:pw@example.com/"] {
            let parsed = Url::parse(url).unwrap();
            assert_eq!(policy().target(&parsed), Err(OutboundError::UserinfoNotAllowed), "{url}");
        }
    }

    #[test]
    fn exceptions_open_exactly_their_networks() {
        let allowing = Policy { allow_http: true, allow: vec!["127.0.0.1/32".parse().unwrap()] };
        for open in
            ["http://127.0.0.1:8080/", "http://2130706433/", "http://127.1/", "https://[::ffff:127.0.0.1]/"]
        {
            assert!(allowing.target(&Url::parse(open).unwrap()).is_ok(), "{open}");
        }
        for closed in ["http://127.0.0.2/", "https://[::1]/", "http://10.0.0.1/"] {
            assert!(refused_range(&allowing, closed).is_some(), "{closed}");
        }
    }
}
