//! resolv.conf: the host's name servers (where the sandbox's DNS forwarder sends queries) and
//! the sandbox's own file, which points at that forwarder.

use std::net::{IpAddr, SocketAddr};

/// Where the sandbox's resolver listens, inside the sandbox's network namespace.
pub const SANDBOX_RESOLVER: &str = "127.0.0.1";

/// What the host's resolv.conf says: name servers (port 53) and the search list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostResolv {
    pub servers: Vec<SocketAddr>,
    pub search: Vec<String>,
}

/// Parse resolv.conf text. Comments start with `#` or `;`; `domain` and `search` both set the
/// search list (the last one wins, as in glibc); without any `nameserver` the resolver is
/// 127.0.0.1, as glibc assumes.
pub fn parse(text: &str) -> HostResolv {
    let mut out = HostResolv::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => {
                // A scoped IPv6 address (fe80::1%eth0) is not reachable from elsewhere anyway.
                if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                    out.servers.push(SocketAddr::new(ip, 53));
                }
            }
            Some("search") | Some("domain") => out.search = words.map(str::to_string).collect(),
            _ => {}
        }
    }
    if out.servers.is_empty() {
        out.servers.push(SocketAddr::from(([127, 0, 0, 1], 53)));
    }
    out
}

/// The sandbox's /etc/resolv.conf: the forwarder, and the host's search list.
pub fn sandbox_file(host: &HostResolv) -> String {
    let mut s = format!("# written by oz: the sandbox's DNS forwarder\nnameserver {SANDBOX_RESOLVER}\n");
    if !host.search.is_empty() {
        s.push_str(&format!("search {}\n", host.search.join(" ")));
    }
    s
}

/// The host's resolv.conf (empty when it cannot be read: 127.0.0.1 then).
pub fn host() -> HostResolv {
    parse(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_search_and_comments() {
        let r = parse(
            "# generated\nnameserver 127.0.0.53 # stub\n; old\nnameserver ::1\nnameserver bogus\n\
             domain a.example\nsearch b.example c.example\noptions edns0 trust-ad\n",
        );
        assert_eq!(r.servers, vec!["127.0.0.53:53".parse().unwrap(), "[::1]:53".parse().unwrap()]);
        assert_eq!(r.search, vec!["b.example", "c.example"]);
        let f = sandbox_file(&r);
        assert_eq!(f.lines().filter(|l| l.starts_with("nameserver")).collect::<Vec<_>>(), ["nameserver 127.0.0.1"]);
        assert!(f.contains("search b.example c.example\n"));
    }

    #[test]
    fn no_nameserver_means_localhost() {
        assert_eq!(parse("").servers, vec!["127.0.0.1:53".parse().unwrap()]);
        assert!(!sandbox_file(&parse("")).contains("search"));
    }
}
