use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;

use crate::error::ValidationError;

/// Which header a trusted proxy writes the client address into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, ...`: what nginx, HAProxy, Traefik and the cloud
    /// load balancers append to. The default.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, lowercase.
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The reverse proxies whose forwarding header is believed. Empty by default: the client
/// address is then the TCP peer's and forwarding headers are ignored, so a client cannot
/// choose the address its rate limits count on.
///
/// Behind a proxy, list its addresses or networks and say which one header it writes (only
/// that one is read: a proxy appends to its own header and passes the other through as the
/// client sent it). The client address is then the right-most address of that header that is
/// not itself a trusted proxy (RFC 7239 section 5.2; the left-most entries are whatever the
/// client sent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

/// At most this many hops of a forwarding header are looked at, from the right.
const MAX_HOPS: usize = 32;

impl TrustedProxies {
    /// No trusted proxy.
    pub fn none() -> Self {
        Self::default()
    }

    /// Parses a comma-separated list of addresses and CIDR networks, e.g.
    /// `10.0.0.0/8, 192.168.1.7, fd00::/8`. An empty list trusts nobody. The header read is
    /// `X-Forwarded-For` (see [`TrustedProxies::with_header`]).
    ///
    /// # Errors
    /// [`ValidationError`] on field `trusted_proxies` naming the entry that does not parse.
    pub fn parse(list: &str) -> Result<Self, ValidationError> {
        let nets = list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                let net = match IpAddr::from_str(entry) {
                    Ok(ip) => Ok(IpNet::from(canonical(ip))),
                    Err(_) => IpNet::from_str(entry),
                };
                net.map_err(|_| {
                    ValidationError::new(
                        "trusted_proxies",
                        "invalid",
                        format!("{entry:?} is not an IP address or CIDR network"),
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            nets,
            header: ForwardedHeader::default(),
        })
    }

    /// Reads `header` instead of `X-Forwarded-For`.
    #[must_use]
    pub fn with_header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// The one header that is read.
    pub fn header(&self) -> ForwardedHeader {
        self.header
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// The client's address: `peer` itself unless it is a trusted proxy; then the right-most
    /// untrusted address in `values`, the values of [`TrustedProxies::header`] in the order
    /// they arrived. A hop that does not parse (or `for=unknown`) ends the walk: the last
    /// trusted hop is the client then. At most 32 hops are looked at.
    pub fn client_addr<'a>(
        &self,
        peer: IpAddr,
        values: impl DoubleEndedIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let header = self.header;
        let hops = values.rev().flat_map(|v| v.rsplit(',')).take(MAX_HOPS);
        let mut client = peer;
        for hop in hops {
            let parsed = match header {
                ForwardedHeader::XForwardedFor => parse_addr(hop.trim()),
                ForwardedHeader::Forwarded => forwarded_for(hop),
            };
            match parsed {
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
        let got = none.client_addr(ip("203.0.113.9"), ["1.1.1.1"].into_iter());
        assert_eq!(got, ip("203.0.113.9"), "a client cannot choose its address");
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse("10.0.0.0/8, 192.168.1.7").unwrap();
        let peer = ip("10.1.2.3");
        let client = |values: &[&str]| proxies.client_addr(peer, values.iter().copied());
        // The client forged the left-most entry; the proxy appended the real one.
        assert_eq!(client(&["6.6.6.6, 198.51.100.4"]), ip("198.51.100.4"));
        // Two trusted hops, over two header lines.
        assert_eq!(client(&["198.51.100.4", "192.168.1.7"]), ip("198.51.100.4"));
        // An untrusted peer's headers are ignored.
        assert_eq!(
            proxies.client_addr(ip("198.51.100.99"), ["1.1.1.1"].into_iter()),
            ip("198.51.100.99")
        );
        // No header: the proxy itself.
        assert_eq!(client(&[]), peer);
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(client(&["1.1.1.1, junk"]), peer);
        // Ports and brackets.
        assert_eq!(client(&["[2001:db8::5]:443"]), ip("2001:db8::5"));
    }

    #[test]
    fn only_the_configured_header_counts() {
        // A client's own `Forwarded` passes an X-Forwarded-For proxy untouched: it must not
        // count, whatever it says.
        let xff = TrustedProxies::parse("10.0.0.1").unwrap();
        assert_eq!(xff.header().name(), "x-forwarded-for");
        let forwarded = xff.clone().with_header(ForwardedHeader::Forwarded);
        assert_eq!(forwarded.header().name(), "forwarded");
        let peer = ip("10.0.0.1");
        let values =
            ["for=192.0.2.60;proto=http;by=203.0.113.43, for=\"[2001:db8:cafe::17]:4711\""];
        assert_eq!(
            forwarded.client_addr(peer, values.into_iter()),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            forwarded.client_addr(peer, ["for=unknown"].into_iter()),
            peer
        );
        assert_eq!(
            forwarded.client_addr(ip("::ffff:10.0.0.1"), ["For=198.51.100.1:80"].into_iter()),
            ip("198.51.100.1"),
            "mapped peer, port, case"
        );
    }

    #[test]
    fn long_headers_are_walked_from_the_right_and_bounded() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let trusted_hops = vec!["10.0.0.2"; 100].join(", ");
        let value = format!("198.51.100.1, {trusted_hops}");
        // 100 trusted hops: the walk stops after 32 and names the last trusted one.
        assert_eq!(
            proxies.client_addr(ip("10.0.0.1"), [value.as_str()].into_iter()),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn mapped_entries_match_ipv4_peers() {
        let proxies = TrustedProxies::parse("::ffff:10.0.0.1").unwrap();
        assert_eq!(
            proxies.client_addr(ip("10.0.0.1"), ["198.51.100.1"].into_iter()),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn bad_lists_name_the_entry() {
        let err = TrustedProxies::parse("10.0.0.0/8, nonsense").unwrap_err();
        assert!(err.message.contains("nonsense"), "{err}");
        assert!(TrustedProxies::parse("").unwrap().is_empty());
        assert!(!TrustedProxies::parse("10.0.0.1").unwrap().is_empty());
        let err = TrustedProxies::parse("10.0.0.0/33").unwrap_err();
        assert!(err.message.contains("10.0.0.0/33"), "{err}");
    }
}
