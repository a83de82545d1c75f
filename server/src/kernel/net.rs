//! IP networks as the configuration writes them (`10.0.0.0/8`, or a bare
//! address for one host), parsed once for every setting that lists them.

use std::net::IpAddr;

use ipnet::IpNet;

/// Parses addresses (`10.0.0.7`, one host) and networks (`10.0.0.0/8`); the
/// error names the entry that is neither.
pub fn parse_networks(entries: &[String]) -> Result<Vec<IpNet>, String> {
    entries
        .iter()
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{entry:?} is not an IP address or network"))
        })
        .collect()
}
