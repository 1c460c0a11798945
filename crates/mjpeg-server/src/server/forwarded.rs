//! The client's address behind a reverse proxy: `X-Forwarded-For` and
//! `Forwarded`, believed only from the proxies named by
//! [`ServerOptions::trusted_proxies`](super::ServerOptions).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// An address or network a reverse proxy connects from: `10.0.0.5`,
/// `10.0.0.0/8`, `::1`, `fd00::/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy {
    net: IpAddr,
    prefix: u8,
}

impl TrustedProxy {
    /// Whether `ip` is in this network (an IPv4 address mapped into IPv6
    /// counts as the IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("{s:?} is not an address or ADDR/PREFIX (e.g. 10.0.0.5, 10.0.0.0/8, ::1)");
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().map_err(|_| bad())?)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| bad())?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return Err(bad());
        }
        Ok(TrustedProxy { net, prefix })
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl serde::Serialize for TrustedProxy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The client of a request that came from `peer`, given the request's
/// `Forwarded` values (preferred, RFC 7239) and `X-Forwarded-For` values:
/// when `peer` is a trusted proxy, the rightmost address in the chain that
/// is not itself a trusted proxy (everything left of it may be made up by
/// the client); else `peer`. An entry that is no address ends the walk at
/// the last trusted hop.
pub(crate) fn client<'a>(
    peer: SocketAddr,
    trusted: &[TrustedProxy],
    forwarded: impl Iterator<Item = &'a [u8]>,
    x_forwarded_for: impl Iterator<Item = &'a [u8]>,
) -> SocketAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|t| t.contains(ip));
    if !is_trusted(peer.ip()) {
        return peer;
    }
    let mut chain: Vec<Option<IpAddr>> = Vec::new();
    for value in forwarded {
        let Ok(value) = std::str::from_utf8(value) else {
            chain.push(None);
            continue;
        };
        for element in value.split(',') {
            let for_ = element.split(';').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
            });
            chain.push(for_.and_then(forwarded_node));
        }
    }
    if chain.is_empty() {
        for value in x_forwarded_for {
            let Ok(value) = std::str::from_utf8(value) else {
                chain.push(None);
                continue;
            };
            chain.extend(value.split(',').map(|a| forwarded_node(a.trim())));
        }
    }
    let mut client = peer;
    for hop in chain.iter().rev() {
        match hop {
            Some(ip) => {
                client = SocketAddr::new(*ip, 0);
                if !is_trusted(*ip) {
                    break;
                }
            }
            None => break,
        }
    }
    client
}

/// [`client`] for a raw request head (the first request of a connection);
/// `peer` if the head is no HTTP/1 request (the HTTP/2 preface).
pub(crate) fn client_of_head(
    peer: SocketAddr,
    trusted: &[TrustedProxy],
    head: &[u8],
) -> SocketAddr {
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return peer;
    }
    let named = |name: &'static str| {
        req.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    client(peer, trusted, named("forwarded"), named("x-forwarded-for"))
}

/// [`client`] for a request that hyper parsed.
pub(crate) fn client_of_request(
    peer: SocketAddr,
    trusted: &[TrustedProxy],
    headers: &axum::http::HeaderMap,
) -> SocketAddr {
    client(
        peer,
        trusted,
        headers.get_all("forwarded").iter().map(|v| v.as_bytes()),
        headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.as_bytes()),
    )
}

/// The address of a `Forwarded` node or an `X-Forwarded-For` entry:
/// `192.0.2.1`, `"[2001:db8::1]:4711"`, `192.0.2.1:80`; `None` for
/// `unknown`, obfuscated names and anything else.
fn forwarded_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    inner.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TrustedProxy {
        s.parse().unwrap()
    }

    fn xff(peer: &str, trusted: &[&str], header: &str) -> String {
        let trusted: Vec<TrustedProxy> = trusted.iter().map(|s| t(s)).collect();
        client(
            peer.parse().unwrap(),
            &trusted,
            std::iter::empty(),
            std::iter::once(header.as_bytes()),
        )
        .ip()
        .to_string()
    }

    #[test]
    fn networks_parse_and_match() {
        assert!(t("10.0.0.0/8").contains("10.1.2.3".parse().unwrap()));
        assert!(!t("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(t("127.0.0.1").contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(t("fd00::/8").contains("fd12::1".parse().unwrap()));
        assert!(t("0.0.0.0/0").contains("8.8.8.8".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::/129", "host", "10.0.0.0/x", "/8"] {
            assert!(bad.parse::<TrustedProxy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let p = "127.0.0.1:5000";
        assert_eq!(xff(p, &["127.0.0.1"], "203.0.113.7"), "203.0.113.7");
        // A client's own made-up entry on the left is ignored.
        assert_eq!(
            xff(p, &["127.0.0.1"], "1.1.1.1, 203.0.113.7"),
            "203.0.113.7"
        );
        // Trusted hops on the right are skipped.
        assert_eq!(
            xff(p, &["127.0.0.1", "10.0.0.0/8"], "203.0.113.7, 10.0.0.2"),
            "203.0.113.7"
        );
        // Not from a trusted proxy: the header is the client's word.
        assert_eq!(xff(p, &["10.0.0.1"], "203.0.113.7"), "127.0.0.1");
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(xff(p, &["127.0.0.1"], "203.0.113.7, junk"), "127.0.0.1");
        let fwd = |h: &str| {
            client(
                p.parse().unwrap(),
                &[t("127.0.0.1")],
                std::iter::once(h.as_bytes()),
                std::iter::once(&b"9.9.9.9"[..]),
            )
            .ip()
            .to_string()
        };
        assert_eq!(
            fwd("for=192.0.2.60;proto=http;by=203.0.113.43"),
            "192.0.2.60"
        );
        assert_eq!(fwd("for=\"[2001:db8:cafe::17]:4711\""), "2001:db8:cafe::17");
        assert_eq!(fwd("for=unknown"), "127.0.0.1");
    }

    /// Whatever the headers say, the answer is the peer or an address
    /// that the headers name, never one to the left of an untrusted hop.
    #[test]
    fn random_chains_never_pass_an_untrusted_hop() {
        let pool = [
            "127.0.0.1",
            "10.0.0.2",
            "203.0.113.7",
            "198.51.100.1",
            "junk",
            "",
        ];
        let trusted = [t("127.0.0.1"), t("10.0.0.0/8")];
        let mut rng = crate::xorshift::XorShift::new(0x853C_49E6_748F_EA9B_u64);
        for _ in 0..20_000 {
            let mut pick = |n: usize| rng.below(n);
            let hops: Vec<&str> = (0..pick(6)).map(|_| pool[pick(pool.len())]).collect();
            let header = hops.join(", ");
            let got = client(
                "127.0.0.1:1".parse().unwrap(),
                &trusted,
                std::iter::empty(),
                std::iter::once(header.as_bytes()),
            )
            .ip();
            // The expected answer, walked by hand.
            let mut want: IpAddr = "127.0.0.1".parse().unwrap();
            for hop in hops.iter().rev() {
                match hop.parse::<IpAddr>() {
                    Ok(ip) => {
                        want = ip;
                        if !trusted.iter().any(|t| t.contains(ip)) {
                            break;
                        }
                    }
                    Err(_) => break,
                }
            }
            assert_eq!(got, want, "{header:?}");
        }
    }
}
