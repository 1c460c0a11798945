//! Open connections per client address, for
//! [`ServerOptions::max_connections_per_address`](super::ServerOptions).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// The count of places taken per client, shared by every listener.
#[derive(Clone)]
pub(super) struct PerAddress {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    limit: usize,
    ipv6_prefix: u8,
}

/// One place in [`PerAddress`], given back when dropped.
pub(super) struct AddressSlot {
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl PerAddress {
    /// At most `limit` places per client (0: no limit), where IPv6 clients
    /// that share their first `ipv6_prefix` bits are one client.
    pub(super) fn new(limit: usize, ipv6_prefix: u8) -> PerAddress {
        PerAddress {
            open: Arc::default(),
            limit,
            ipv6_prefix: ipv6_prefix.min(128),
        }
    }

    /// A place for `peer`, or `None` if its client has the most it may.
    /// Connections without an address (Unix sockets) and a limit of 0 are
    /// not counted.
    pub(super) fn take(&self, peer: Option<SocketAddr>) -> Option<Option<AddressSlot>> {
        let Some(peer) = peer.filter(|_| self.limit > 0) else {
            return Some(None);
        };
        let ip = self.client(peer.ip());
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.limit {
            return None;
        }
        *n += 1;
        Some(Some(AddressSlot {
            open: self.open.clone(),
            ip,
        }))
    }

    /// The key a client is counted under. An IPv4 client on an IPv6 socket
    /// is the same host as on IPv4. An IPv6 host is usually given a whole
    /// /64 and can pick any address in it, so counting exact addresses would
    /// let one host take every place; it is counted by its prefix.
    fn client(&self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.ipv6_prefix))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
            v4 => v4,
        }
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_come_back() {
        let p = PerAddress::new(2, 64);
        let a: SocketAddr = "10.0.0.1:5".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:6".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:5".parse().unwrap();
        let s1 = p.take(Some(a)).unwrap();
        let s2 = p.take(Some(mapped)).unwrap();
        assert!(p.take(Some(a)).is_none(), "the third from one host");
        assert!(
            p.take(Some(b)).unwrap().is_some(),
            "another host is not limited"
        );
        assert!(p.take(None).unwrap().is_none(), "no address, not counted");
        drop(s1);
        assert!(p.take(Some(a)).is_some());
        drop(s2);
        assert!(p.open.lock().unwrap().is_empty());
        assert!(PerAddress::new(0, 64).take(Some(a)).unwrap().is_none());
    }

    #[test]
    fn ipv6_clients_are_counted_by_prefix() {
        let at = |s: &str| Some(SocketAddr::new(s.parse().unwrap(), 1));
        let p = PerAddress::new(2, 64);
        let _a = p.take(at("2001:db8:1:2::1")).unwrap();
        let _b = p.take(at("2001:db8:1:2:ffff::9")).unwrap();
        assert!(
            p.take(at("2001:db8:1:2:1234::1")).is_none(),
            "a third address of the same /64"
        );
        assert!(p.take(at("2001:db8:1:3::1")).unwrap().is_some());
        // Exact addresses when asked for, and everything as one at /0.
        let exact = PerAddress::new(1, 128);
        let _c = exact.take(at("2001:db8::1")).unwrap();
        assert!(exact.take(at("2001:db8::2")).unwrap().is_some());
        let all = PerAddress::new(1, 0);
        let _d = all.take(at("2001:db8::1")).unwrap();
        assert!(all.take(at("fe80::2")).is_none());
    }
}
