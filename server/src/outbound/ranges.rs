//! The addresses the server refuses to reach on someone else's behalf: every
//! range that is not the public internet (loopback, private, link-local,
//! shared, documentation, reserved, multicast, …), and IPv6 forms that carry
//! an IPv4 address (mapped, compatible, NAT64), judged by that address.
//! A pure table: operator exceptions are applied by the policy, not here.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Why a range is refused, as an operator reads it in an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    ThisNetwork,
    Private,
    SharedAddressSpace,
    Loopback,
    LinkLocal,
    IetfProtocolAssignments,
    Documentation,
    Benchmarking,
    Multicast,
    Reserved,
    Broadcast,
    Unspecified,
    UniqueLocal,
    SiteLocal,
    SixToFour,
    Teredo,
    Nat64LocalUse,
    DiscardOnly,
}

impl Range {
    pub fn name(self) -> &'static str {
        match self {
            Self::ThisNetwork => "this network",
            Self::Private => "private",
            Self::SharedAddressSpace => "shared address space (carrier-grade NAT)",
            Self::Loopback => "loopback",
            Self::LinkLocal => "link-local",
            Self::IetfProtocolAssignments => "IETF protocol assignments",
            Self::Documentation => "documentation",
            Self::Benchmarking => "benchmarking",
            Self::Multicast => "multicast",
            Self::Reserved => "reserved",
            Self::Broadcast => "broadcast",
            Self::Unspecified => "unspecified",
            Self::UniqueLocal => "unique local",
            Self::SiteLocal => "site-local",
            Self::SixToFour => "6to4",
            Self::Teredo => "Teredo",
            Self::Nat64LocalUse => "local-use NAT64",
            Self::DiscardOnly => "discard-only",
        }
    }
}

/// How an IPv6 address carries the IPv4 address it was judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Embedding {
    /// `::ffff:a.b.c.d`
    Mapped,
    /// `::a.b.c.d` (deprecated, still routed by some stacks)
    Compatible,
    /// `64:ff9b::a.b.c.d`, which a NAT64 gateway forwards to `a.b.c.d`
    Nat64,
}

impl Embedding {
    fn name(self) -> &'static str {
        match self {
            Self::Mapped => "IPv4-mapped",
            Self::Compatible => "IPv4-compatible",
            Self::Nat64 => "NAT64",
        }
    }
}

/// Why one address is refused: the range it (or the IPv4 address it carries)
/// falls in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    pub range: Range,
    pub network: IpNet,
    pub embedded: Option<(Embedding, Ipv4Addr)>,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some((form, inner)) = self.embedded {
            write!(f, "{} address of {inner}, which is ", form.name())?;
        }
        write!(f, "{} ({})", self.range.name(), self.network)
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// Refused IPv4 ranges, the narrowest first where they overlap.
const REFUSED_V4: &[(Ipv4Net, Range)] = &[
    (v4(0, 0, 0, 0, 8), Range::ThisNetwork),
    (v4(10, 0, 0, 0, 8), Range::Private),
    (v4(100, 64, 0, 0, 10), Range::SharedAddressSpace),
    (v4(127, 0, 0, 0, 8), Range::Loopback),
    (v4(169, 254, 0, 0, 16), Range::LinkLocal),
    (v4(172, 16, 0, 0, 12), Range::Private),
    (v4(192, 0, 0, 0, 24), Range::IetfProtocolAssignments),
    (v4(192, 0, 2, 0, 24), Range::Documentation),
    (v4(192, 88, 99, 0, 24), Range::SixToFour),
    (v4(192, 168, 0, 0, 16), Range::Private),
    (v4(198, 18, 0, 0, 15), Range::Benchmarking),
    (v4(198, 51, 100, 0, 24), Range::Documentation),
    (v4(203, 0, 113, 0, 24), Range::Documentation),
    (v4(224, 0, 0, 0, 4), Range::Multicast),
    (v4(255, 255, 255, 255, 32), Range::Broadcast),
    (v4(240, 0, 0, 0, 4), Range::Reserved),
];

/// Refused IPv6 ranges, after `::`, `::1` and the forms that embed IPv4.
const REFUSED_V6: &[(Ipv6Net, Range)] = &[
    (v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48), Range::Nat64LocalUse),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), Range::DiscardOnly),
    (v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32), Range::Teredo),
    (v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48), Range::Benchmarking),
    (v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32), Range::Documentation),
    (v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16), Range::SixToFour),
    (v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7), Range::UniqueLocal),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), Range::LinkLocal),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), Range::SiteLocal),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), Range::Multicast),
];

const UNSPECIFIED_V6: Ipv6Net = v6([0, 0, 0, 0, 0, 0, 0, 0], 128);
const LOOPBACK_V6: Ipv6Net = v6([0, 0, 0, 0, 0, 0, 0, 1], 128);
const MAPPED: Ipv6Net = v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96);
const COMPATIBLE: Ipv6Net = v6([0, 0, 0, 0, 0, 0, 0, 0], 96);
const NAT64: Ipv6Net = v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
/// Global unicast: all of IPv6 that IANA hands out; the rest is reserved.
const GLOBAL_UNICAST: Ipv6Net = v6([0x2000, 0, 0, 0, 0, 0, 0, 0], 3);

/// Why `ip` is refused, or `None` for a public address.
pub fn refused(ip: IpAddr) -> Option<Reason> {
    match ip {
        IpAddr::V4(ip) => refused_v4(ip),
        IpAddr::V6(ip) => refused_v6(ip),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<Reason> {
    REFUSED_V4.iter().find(|(net, _)| net.contains(&ip)).map(|&(net, range)| Reason {
        range,
        network: IpNet::V4(net),
        embedded: None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<Reason> {
    let plain = |net: Ipv6Net, range| Some(Reason { range, network: IpNet::V6(net), embedded: None });
    if ip == UNSPECIFIED_V6.addr() {
        return plain(UNSPECIFIED_V6, Range::Unspecified);
    }
    if ip == LOOPBACK_V6.addr() {
        return plain(LOOPBACK_V6, Range::Loopback);
    }
    for (net, form) in
        [(MAPPED, Embedding::Mapped), (COMPATIBLE, Embedding::Compatible), (NAT64, Embedding::Nat64)]
    {
        if net.contains(&ip) {
            let [.., a, b, c, d] = ip.octets();
            let inner = Ipv4Addr::new(a, b, c, d);
            return refused_v4(inner).map(|reason| Reason { embedded: Some((form, inner)), ..reason });
        }
    }
    if let Some(&(net, range)) = REFUSED_V6.iter().find(|(net, _)| net.contains(&ip)) {
        return plain(net, range);
    }
    if !GLOBAL_UNICAST.contains(&ip) {
        // Named by the eighth of the address space it is in (`4000::/3`).
        let block = Ipv6Net::new(ip, GLOBAL_UNICAST.prefix_len()).map_or(GLOBAL_UNICAST, |net| net.trunc());
        return plain(block, Range::Reserved);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn every_refused_range_is_refused_with_its_name() {
        let cases: &[(&str, Range)] = &[
            ("0.0.0.0", Range::ThisNetwork),
            ("0.255.255.255", Range::ThisNetwork),
            ("10.0.0.1", Range::Private),
            ("10.255.255.255", Range::Private),
            ("172.16.0.1", Range::Private),
            ("172.31.255.254", Range::Private),
            ("192.168.1.1", Range::Private),
            ("100.64.0.1", Range::SharedAddressSpace),
            ("100.127.255.254", Range::SharedAddressSpace),
            ("127.0.0.1", Range::Loopback),
            ("127.255.0.9", Range::Loopback),
            ("169.254.169.254", Range::LinkLocal),
            ("192.0.0.8", Range::IetfProtocolAssignments),
            ("192.0.2.10", Range::Documentation),
            ("198.51.100.7", Range::Documentation),
            ("203.0.113.200", Range::Documentation),
            ("192.88.99.1", Range::SixToFour),
            ("198.18.0.1", Range::Benchmarking),
            ("198.19.255.255", Range::Benchmarking),
            ("224.0.0.1", Range::Multicast),
            ("239.255.255.250", Range::Multicast),
            ("240.0.0.1", Range::Reserved),
            ("254.1.2.3", Range::Reserved),
            ("255.255.255.255", Range::Broadcast),
            ("::", Range::Unspecified),
            ("::1", Range::Loopback),
            ("fc00::1", Range::UniqueLocal),
            ("fd12:3456::1", Range::UniqueLocal),
            ("fe80::1", Range::LinkLocal),
            ("febf::1", Range::LinkLocal),
            ("fec0::1", Range::SiteLocal),
            ("ff02::1", Range::Multicast),
            ("2001:db8::1", Range::Documentation),
            ("2002:7f00:1::1", Range::SixToFour),
            ("2002:808:808::1", Range::SixToFour),
            ("2001:0:4136:e378::1", Range::Teredo),
            ("2001:2::1", Range::Benchmarking),
            ("64:ff9b:1::a00:1", Range::Nat64LocalUse),
            ("100::1", Range::DiscardOnly),
            ("4000::1", Range::Reserved),
            ("::2:0:0:1", Range::Reserved),
            ("e000::1", Range::Reserved),
        ];
        for &(text, range) in cases {
            let reason = refused(ip(text)).unwrap_or_else(|| panic!("{text} was not refused"));
            assert_eq!(reason.range, range, "{text}: {reason}");
            assert!(reason.network.contains(&ip(text)), "{text} is not in {}", reason.network);
            assert_eq!(reason.embedded, None, "{text}");
        }
    }

    #[test]
    fn ipv6_forms_of_ipv4_are_judged_by_the_ipv4_they_carry() {
        let cases: &[(&str, Embedding, &str, Range)] = &[
            ("::ffff:127.0.0.1", Embedding::Mapped, "127.0.0.1", Range::Loopback),
            ("::ffff:7f00:1", Embedding::Mapped, "127.0.0.1", Range::Loopback),
            ("::ffff:10.0.0.1", Embedding::Mapped, "10.0.0.1", Range::Private),
            ("::ffff:169.254.169.254", Embedding::Mapped, "169.254.169.254", Range::LinkLocal),
            ("::127.0.0.1", Embedding::Compatible, "127.0.0.1", Range::Loopback),
            ("::7f00:1", Embedding::Compatible, "127.0.0.1", Range::Loopback),
            ("::0.0.0.2", Embedding::Compatible, "0.0.0.2", Range::ThisNetwork),
            ("64:ff9b::127.0.0.1", Embedding::Nat64, "127.0.0.1", Range::Loopback),
            ("64:ff9b::a9fe:a9fe", Embedding::Nat64, "169.254.169.254", Range::LinkLocal),
            ("64:ff9b::c0a8:101", Embedding::Nat64, "192.168.1.1", Range::Private),
        ];
        for &(text, form, inner, range) in cases {
            let reason = refused(ip(text)).unwrap_or_else(|| panic!("{text} was not refused"));
            assert_eq!(reason.range, range, "{text}: {reason}");
            assert_eq!(reason.embedded, Some((form, inner.parse().unwrap())), "{text}");
            assert!(reason.to_string().contains(inner), "{text}: {reason}");
        }
        // The same forms of a public address are that public address.
        for public in ["::ffff:8.8.8.8", "::8.8.8.8", "64:ff9b::808:808"] {
            assert_eq!(refused(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.255",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001:81c::200e",
            "2001:4860:4860::8888",
            "2003::1",
        ] {
            assert_eq!(refused(ip(public)), None, "{public}");
        }
    }

    #[test]
    fn reasons_name_the_range_and_network() {
        let reason = refused(ip("10.1.2.3")).unwrap();
        assert_eq!(reason.to_string(), "private (10.0.0.0/8)");
        let reason = refused(ip("::ffff:127.0.0.1")).unwrap();
        assert_eq!(reason.to_string(), "IPv4-mapped address of 127.0.0.1, which is loopback (127.0.0.0/8)");
    }
}
