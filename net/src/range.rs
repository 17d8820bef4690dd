//! The bridge's IPv4 network: the gateway (its first address), the addresses sandboxes may lease,
//! and the check against the networks of the host's interfaces.

use std::collections::HashSet;
use std::net::Ipv4Addr;

/// An IPv4 network (`oz.conf` `bridge_range`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub net: Ipv4Addr,
    pub len: u8,
}

/// An address configured on a host interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAddr {
    pub ifname: String,
    pub addr: Ipv4Addr,
    pub len: u8,
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len)
    }
}

impl Range {
    pub fn parse(s: &str) -> Result<Range, String> {
        oz_profiles::config::parse_ipv4_cidr(s).map(|(net, len)| Range { net, len })
    }

    /// The bridge's own address: the first of the network.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.net) + 1)
    }

    fn broadcast(&self) -> u32 {
        u32::from(self.net) | !mask(self.len)
    }

    pub fn contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a) & mask(self.len) == u32::from(self.net)
    }

    /// Whether the network `addr/len` shares any address with this one.
    pub fn overlaps(&self, addr: Ipv4Addr, len: u8) -> bool {
        let m = mask(self.len.min(len));
        u32::from(addr) & m == u32::from(self.net) & m
    }

    /// The first address that sandboxes may lease and nobody uses: after the gateway, before
    /// the broadcast address.
    pub fn allocate(&self, used: &HashSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        (u32::from(self.gateway()) + 1..self.broadcast()).map(Ipv4Addr::from).find(|a| !used.contains(a))
    }

    /// The first host address (on an interface other than `bridge`) whose network overlaps
    /// this one: the range would make that network unreachable, or be unreachable itself.
    pub fn collision<'a>(&self, host: &'a [HostAddr], bridge: &str) -> Option<&'a HostAddr> {
        host.iter().find(|h| h.ifname != bridge && !h.addr.is_loopback() && self.overlaps(h.addr, h.len))
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn gateway_and_allocation_skip_used_network_and_broadcast() {
        let r = Range::parse("10.9.0.0/29").unwrap();
        assert_eq!(r.gateway(), ip("10.9.0.1"));
        let mut used = HashSet::new();
        assert_eq!(r.allocate(&used), Some(ip("10.9.0.2")));
        used.insert(ip("10.9.0.2"));
        used.insert(ip("10.9.0.4"));
        assert_eq!(r.allocate(&used), Some(ip("10.9.0.3")));
        for a in 3..=6 {
            used.insert(ip(&format!("10.9.0.{a}")));
        }
        assert_eq!(r.allocate(&used), None, ".7 is the broadcast address");
        assert!(r.contains(ip("10.9.0.7")) && !r.contains(ip("10.9.0.8")));
    }

    #[test]
    fn collisions_with_host_networks() {
        let r = Range::parse("10.0.1.0/24").unwrap();
        let h = |ifname: &str, a: &str, len| HostAddr { ifname: ifname.into(), addr: ip(a), len };
        let host = vec![h("lo", "127.0.0.1", 8), h("oz0", "10.0.1.1", 24), h("eth0", "192.168.1.5", 24)];
        assert_eq!(r.collision(&host, "oz0"), None);
        let wide = vec![h("wlan0", "10.0.0.7", 16)];
        assert_eq!(r.collision(&wide, "oz0").map(|h| h.ifname.as_str()), Some("wlan0"));
        let narrow = vec![h("tun0", "10.0.1.200", 30)];
        assert!(r.collision(&narrow, "oz0").is_some());
        assert!(r.collision(&[h("eth1", "10.0.2.1", 24)], "oz0").is_none());
    }
}
