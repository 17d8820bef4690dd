//! What each `networking.sockets` entry becomes: which side listens, on what, and what each
//! accepted connection (or datagram peer) is joined to on the other side. Pure: no sockets.
//!
//! A `client` forwarder listens inside the sandbox and connects on the host; a `server`
//! forwarder listens on the host and connects inside the sandbox. TCP and UDP ends are always
//! on a loopback address (the profile's `destination` may name another loopback address for
//! the host end of a client). Unix ends are, inside the sandbox, the abstract socket named by
//! `destination` (abstract names belong to the sandbox's network namespace, as the original
//! Oz had them); on the host, the filesystem socket `destination` for a client (connected as
//! the sandbox user) and, for a server, a socket oz creates in the sandbox's own forwarder
//! directory, `<proto>-<port>.sock`.

use oz_profiles::profile::{SocketDirection, SocketForward, SocketProto};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

/// Which network namespace an end lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Host,
    Sandbox,
}

/// Stream (spliced) or datagram (relayed packet by packet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stream,
    Datagram,
}

/// One end of a forwarder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Inet(SocketAddr),
    /// An abstract unix socket name (without the leading NUL).
    Abstract(String),
    /// A filesystem unix socket.
    Path(PathBuf),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Inet(a) => write!(f, "{a}"),
            Addr::Abstract(n) => write!(f, "@{n}"),
            Addr::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// One end and the namespace it lives in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct End {
    pub side: Side,
    pub addr: Addr,
}

/// A forwarder: listen on `listen`, join each connection or peer to `connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// For logs and health reports: `client tcp:9050`.
    pub name: String,
    pub kind: Kind,
    pub listen: End,
    pub connect: End,
}

/// Why a `networking.sockets` entry cannot be forwarded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("networking.sockets[{index}].destination: {detail}")]
    Destination { index: usize, detail: String },
    #[error("networking.sockets[{index}].proto: unixpacket forwarding is not supported")]
    Unsupported { index: usize },
}

fn proto_name(p: SocketProto) -> &'static str {
    match p {
        SocketProto::Tcp => "tcp",
        SocketProto::Udp => "udp",
        SocketProto::Unix => "unix",
        SocketProto::Tcp2unix => "tcp2unix",
        SocketProto::Unixgram => "unixgram",
        SocketProto::Unixpacket => "unixpacket",
    }
}

/// The host address a client's TCP/UDP end connects to: loopback only.
fn host_ip(index: usize, dest: Option<&str>) -> Result<IpAddr, PlanError> {
    let Some(d) = dest else { return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)) };
    match d.parse::<IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(ip),
        _ => Err(PlanError::Destination { index, detail: format!("{d} is not a loopback address") }),
    }
}

fn unix_dest(index: usize, s: &SocketForward) -> Result<String, PlanError> {
    match s.destination.as_deref() {
        Some(d) if d.starts_with('/') && !d.contains('\0') => Ok(d.to_string()),
        Some(d) => Err(PlanError::Destination { index, detail: format!("{d} is not an absolute socket path") }),
        None => Err(PlanError::Destination { index, detail: "a unix forwarder needs a destination".into() }),
    }
}

/// The plan of entry `index` of `networking.sockets`; `dir` is the sandbox's forwarder
/// directory on the host.
pub fn plan(index: usize, s: &SocketForward, dir: &Path) -> Result<Plan, PlanError> {
    let proto = proto_name(s.proto);
    let dport = s.dport.unwrap_or(s.port);
    let lo = |port| Addr::Inet(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    let host_sock = || Addr::Path(dir.join(format!("{proto}-{}.sock", s.port)));
    let kind = match s.proto {
        SocketProto::Udp | SocketProto::Unixgram => Kind::Datagram,
        SocketProto::Unixpacket => return Err(PlanError::Unsupported { index }),
        _ => Kind::Stream,
    };
    let (sandbox_end, host_end) = match (s.direction, s.proto) {
        (SocketDirection::Client, SocketProto::Tcp | SocketProto::Udp) => {
            let ip = host_ip(index, s.destination.as_deref())?;
            (lo(s.port), Addr::Inet(SocketAddr::new(ip, dport)))
        }
        (SocketDirection::Server, SocketProto::Tcp | SocketProto::Udp) => (lo(dport), lo(s.port)),
        (SocketDirection::Client, SocketProto::Tcp2unix) => (lo(s.port), Addr::Path(unix_dest(index, s)?.into())),
        (SocketDirection::Server, SocketProto::Tcp2unix) => (Addr::Abstract(unix_dest(index, s)?), lo(s.port)),
        (SocketDirection::Client, _) => {
            let d = unix_dest(index, s)?;
            (Addr::Abstract(d.clone()), Addr::Path(d.into()))
        }
        (SocketDirection::Server, _) => (Addr::Abstract(unix_dest(index, s)?), host_sock()),
    };
    let sandbox_end = End { side: Side::Sandbox, addr: sandbox_end };
    let host_end = End { side: Side::Host, addr: host_end };
    Ok(match s.direction {
        SocketDirection::Client => {
            Plan { name: format!("client {proto}:{}", s.port), kind, listen: sandbox_end, connect: host_end }
        }
        SocketDirection::Server => {
            Plan { name: format!("server {proto}:{}", s.port), kind, listen: host_end, connect: sandbox_end }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sock(direction: SocketDirection, proto: SocketProto, dest: Option<&str>) -> SocketForward {
        SocketForward { direction, proto, port: 9050, dport: Some(9150), destination: dest.map(String::from) }
    }

    fn inet(s: &str) -> Addr {
        Addr::Inet(s.parse().unwrap())
    }

    #[test]
    fn client_listens_inside_and_connects_on_the_host() {
        let dir = Path::new("/run/oz/forward/7");
        let p = plan(0, &sock(SocketDirection::Client, SocketProto::Tcp, None), dir).unwrap();
        assert_eq!(p.name, "client tcp:9050");
        assert_eq!(p.listen, End { side: Side::Sandbox, addr: inet("127.0.0.1:9050") });
        assert_eq!(p.connect, End { side: Side::Host, addr: inet("127.0.0.1:9150") });
        let p = plan(0, &sock(SocketDirection::Client, SocketProto::Tcp2unix, Some("/run/t.sock")), dir).unwrap();
        assert_eq!(p.connect.addr, Addr::Path("/run/t.sock".into()));
        let p = plan(0, &sock(SocketDirection::Client, SocketProto::Unixgram, Some("/run/g")), dir).unwrap();
        assert_eq!((p.kind, p.listen.addr), (Kind::Datagram, Addr::Abstract("/run/g".into())));
    }

    #[test]
    fn server_listens_on_host_loopback_or_in_its_own_directory() {
        let dir = Path::new("/run/oz/forward/7");
        let p = plan(0, &sock(SocketDirection::Server, SocketProto::Udp, None), dir).unwrap();
        assert_eq!(p.listen, End { side: Side::Host, addr: inet("127.0.0.1:9050") });
        assert_eq!(p.connect, End { side: Side::Sandbox, addr: inet("127.0.0.1:9150") });
        let p = plan(0, &sock(SocketDirection::Server, SocketProto::Unix, Some("/x")), dir).unwrap();
        assert_eq!(p.listen.addr, Addr::Path("/run/oz/forward/7/unix-9050.sock".into()));
        assert_eq!(p.connect.addr, Addr::Abstract("/x".into()));
    }

    #[test]
    fn host_ends_stay_on_loopback_and_named_paths() {
        let dir = Path::new("/d");
        let e = plan(3, &sock(SocketDirection::Client, SocketProto::Tcp, Some("10.0.0.1")), dir).unwrap_err();
        assert_eq!(e.to_string(), "networking.sockets[3].destination: 10.0.0.1 is not a loopback address");
        assert!(plan(0, &sock(SocketDirection::Client, SocketProto::Tcp, Some("127.0.0.2")), dir).is_ok());
        assert!(plan(0, &sock(SocketDirection::Client, SocketProto::Unix, None), dir).is_err());
        assert!(plan(0, &sock(SocketDirection::Client, SocketProto::Unix, Some("rel")), dir).is_err());
        assert!(plan(0, &sock(SocketDirection::Server, SocketProto::Unixpacket, Some("/x")), dir).is_err());
    }
}
