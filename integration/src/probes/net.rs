//! Network: host loopback, host abstract unix sockets, raw and packet sockets, host interfaces.

use super::{io_errno, need, sys, verdict, Ctx, Outcome, Probe};
use std::time::Duration;

pub(super) fn probes() -> Vec<Probe> {
    vec![
        Probe { name: "loopback-tcp", run: loopback_tcp },
        Probe { name: "abstract-unix", run: abstract_unix },
        Probe {
            name: "raw-socket",
            run: |_| socket_probe("AF_INET SOCK_RAW", libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP),
        },
        Probe {
            name: "packet-socket",
            run: |_| socket_probe("AF_PACKET SOCK_RAW", libc::AF_PACKET, libc::SOCK_RAW, 0),
        },
        Probe { name: "net-interfaces", run: net_interfaces },
    ]
}

fn loopback_tcp(ctx: &Ctx) -> Outcome {
    let port = match need(ctx, "tcp-port") {
        Ok(p) => p,
        Err(o) => return o,
    };
    let addr = match format!("127.0.0.1:{port}").parse() {
        Ok(a) => a,
        Err(_) => return Outcome::NotApplicable(format!("bad --tcp-port {port}")),
    };
    match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
        Ok(_) => Outcome::Escape(format!("connected to host 127.0.0.1:{port}")),
        Err(e) => Outcome::Blocked(format!("connect 127.0.0.1:{port}: {}", io_errno(&e))),
    }
}

fn abstract_unix(ctx: &Ctx) -> Outcome {
    use std::os::linux::net::SocketAddrExt;
    let name = match need(ctx, "abstract") {
        Ok(n) => n,
        Err(o) => return o,
    };
    let addr = match std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()) {
        Ok(a) => a,
        Err(e) => return Outcome::NotApplicable(format!("bad abstract name: {e}")),
    };
    match std::os::unix::net::UnixStream::connect_addr(&addr) {
        Ok(_) => Outcome::Escape(format!("connected to host abstract socket @{name}")),
        Err(e) => Outcome::Blocked(format!("connect @{name}: {}", io_errno(&e))),
    }
}

fn socket_probe(what: &str, domain: i32, ty: i32, proto: i32) -> Outcome {
    // SAFETY: socket takes no pointers; the fd is closed.
    let r = sys(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) } as libc::c_long);
    if let Ok(fd) = r {
        // SAFETY: our fd.
        unsafe { libc::close(fd as i32) };
    }
    verdict(&format!("socket({what})"), r)
}

fn net_interfaces(_: &Ctx) -> Outcome {
    let text = match std::fs::read_to_string("/proc/net/dev") {
        Ok(t) => t,
        Err(e) => return Outcome::Blocked(format!("read /proc/net/dev: {}", io_errno(&e))),
    };
    let names: Vec<&str> =
        text.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).filter(|n| *n != "lo").collect();
    if names.is_empty() {
        Outcome::Blocked("only lo".into())
    } else {
        Outcome::Escape(format!("interfaces {}", names.join(" ")))
    }
}
