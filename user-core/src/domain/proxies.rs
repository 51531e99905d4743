use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::error::ValidationError;

/// The reverse proxies whose `Forwarded` / `X-Forwarded-For` headers are believed. Empty by
/// default: the client address is then the TCP peer's, and those headers are ignored, so a
/// client cannot choose the address its rate limits count on.
///
/// Behind a proxy, list its addresses or networks: the client address is then the right-most
/// address of the header that is not itself a trusted proxy (RFC 7239 section 5.2; the
/// left-most entries are whatever the client sent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// No trusted proxy.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma-separated list of addresses and CIDR networks, e.g.
    /// `10.0.0.0/8, 192.168.1.7, fd00::/8`. An empty list trusts nobody.
    ///
    /// # Errors
    /// [`ValidationError`] on field `trusted_proxies` naming the entry that does not parse.
    pub fn parse(list: &str) -> Result<Self, ValidationError> {
        list.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map_err(|_| {
                        ValidationError::new(
                            "trusted_proxies",
                            "invalid",
                            format!("{entry:?} is not an IP address or CIDR network"),
                        )
                    })
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer` itself unless it is a trusted proxy; then the right-most
    /// untrusted address of the `Forwarded` header values (if any), else of the
    /// `X-Forwarded-For` values. Values that do not parse end the walk: the last trusted hop
    /// is the client then.
    pub fn client_addr<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl IntoIterator<Item = &'a str>,
        x_forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut hops: Vec<Option<IpAddr>> = forwarded
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(forwarded_for)
            .collect();
        if hops.is_empty() {
            hops = x_forwarded_for
                .into_iter()
                .flat_map(|v| v.split(','))
                .map(|hop| parse_addr(hop.trim()))
                .collect();
        }
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            match hop {
                Some(ip) => {
                    client = canonical(ip);
                    if !self.trusts(client) {
                        break;
                    }
                }
                None => break,
            }
        }
        client
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The `for=` node of one `Forwarded` element (RFC 7239): `for=192.0.2.1`,
/// `for="[2001:db8::1]:4711"`, `for=unknown` (no address).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("for")
            .then(|| parse_addr(value.trim().trim_matches('"')))
            .flatten()
    })
}

/// An address with or without a port: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| s.strip_prefix('[')?.strip_suffix(']')?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn nobody_is_trusted_by_default() {
        let none = TrustedProxies::none();
        let got = none.client_addr(ip("203.0.113.9"), ["for=1.1.1.1"], ["1.1.1.1"]);
        assert_eq!(got, ip("203.0.113.9"), "a client cannot choose its address");
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        let peer = ip("10.1.2.3");
        // The client forged the left-most entry; the proxy appended the real one.
        assert_eq!(
            proxies.client_addr(peer, [], ["6.6.6.6, 198.51.100.4"]),
            ip("198.51.100.4")
        );
        // Two trusted hops.
        assert_eq!(
            proxies.client_addr(peer, [], ["198.51.100.4", "192.168.1.7"]),
            ip("198.51.100.4")
        );
        // An untrusted peer's headers are ignored.
        assert_eq!(
            proxies.client_addr(ip("198.51.100.99"), [], ["1.1.1.1"]),
            ip("198.51.100.99")
        );
        // No header: the proxy itself.
        assert_eq!(proxies.client_addr(peer, [], []), peer);
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(proxies.client_addr(peer, [], ["1.1.1.1, junk"]), peer);
    }

    #[test]
    fn forwarded_wins_and_is_parsed_per_rfc_7239() {
        let proxies = TrustedProxies::parse("10.0.0.1").unwrap();
        let peer = ip("10.0.0.1");
        let forwarded =
            ["for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\""];
        assert_eq!(
            proxies.client_addr(peer, forwarded, ["9.9.9.9"]),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(proxies.client_addr(peer, ["for=unknown"], []), peer);
        assert_eq!(
            proxies.client_addr(ip("::ffff:10.0.0.1"), ["For=198.51.100.1:80"], []),
            ip("198.51.100.1"),
            "mapped peer, port, case"
        );
    }

    #[test]
    fn bad_lists_name_the_entry() {
        let err = TrustedProxies::parse("10.0.0.0/8, nonsense").unwrap_err();
        assert!(err.message.contains("nonsense"), "{err}");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
    }
}
