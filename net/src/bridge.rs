//! Attaching a sandbox to the bridge and releasing it again, under the lease lock:
//!
//! attach: parse the range; resolve the firewall's host names; read the host's addresses and
//! refuse a range that overlaps one of them; create and address the bridge if needed; lease the
//! first free address (file first, so a crash leaves something to clean); create the veth pair
//! with the sandbox's end in its namespace; configure that end (eth0, address, default route);
//! the first lease of a bridge turns forwarding on (recording the old value), writes the
//! NetworkManager file and looks for other firewalls; finally the table is replaced.
//!
//! release: delete the veth pair, drop the lease, then either replace the table without it or,
//! for the last lease, delete the table and the bridge and restore forwarding.

use crate::lease::{self, BridgeState, Endpoint, Lease, Lock, Rule};
use crate::nft::{self, Ruleset};
use crate::range::Range;
use crate::rtnl::{self, BridgeFailure};
use oz_profiles::profile::FirewallRule;
use std::collections::HashSet;
use std::net::{Ipv4Addr, ToSocketAddrs};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("oz.conf bridge_range \"{value}\": {reason}")]
    Range { value: String, reason: String },
    #[error("oz.conf bridge_range {range} collides with {addr}/{len} on {ifname} (choose another bridge_range)")]
    Collision { range: String, ifname: String, addr: Ipv4Addr, len: u8 },
    #[error("oz.conf bridge_range {0}: no free address left")]
    Exhausted(String),
    #[error(
        "oz.conf bridge_name {bridge}: the kernel cannot create a bridge ({detail}; is the bridge module available?)"
    )]
    NoBridgeSupport { bridge: String, detail: String },
    #[error("oz.conf bridge_name {0}: a link of that name exists and is not a bridge")]
    NotABridge(String),
    #[error("the kernel cannot create a veth pair ({0}; is the veth module available?)")]
    NoVethSupport(String),
    #[error("firewall dst_host \"{host}\": {detail}")]
    Firewall { host: String, detail: String },
    #[error("networking.vpn: {0}")]
    Vpn(String),
    #[error("netlink: {op}: {detail}")]
    Netlink { op: &'static str, detail: String },
    #[error("nftables: {0}")]
    Nft(String),
    #[error("{op} {}: {source}", path.display())]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
}

fn io(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NetError {
    let path = path.to_path_buf();
    move |source| NetError::Io { op, path, source }
}

fn netlink(op: &'static str) -> impl Fn(rtnetlink::Error) -> NetError {
    move |e| NetError::Netlink { op, detail: e.to_string() }
}

fn connect(e: std::io::Error) -> NetError {
    NetError::Netlink { op: "connect", detail: e.to_string() }
}

/// What a bridged sandbox asks for.
pub struct AttachRequest<'a> {
    pub state_dir: &'a Path,
    pub bridge: &'a str,
    pub range: &'a str,
    pub nm_ignore_file: &'a Path,
    pub sandbox_id: u64,
    pub firewall: &'a [FirewallRule],
    /// A VPN's servers: then the only destinations the sandbox has on the bridge.
    pub vpn: &'a [crate::openvpn::Remote],
}

/// A sandbox on the bridge.
#[derive(Debug, Clone)]
pub struct Attached {
    pub lease: Lease,
    pub gateway: Ipv4Addr,
    /// For the log: resolved firewall hosts, other firewalls found, NetworkManager.
    pub notes: Vec<String>,
}

/// Resolve the profile's firewall rules: `a.b.c.d`, `a.b.c.d/len`, or a host name (each of its
/// IPv4 addresses). Returns the rules and, for the log, what each name resolved to.
pub fn resolve_rules(rules: &[FirewallRule]) -> Result<(Vec<Rule>, Vec<String>), NetError> {
    let mut out = Vec::new();
    let mut notes = Vec::new();
    for r in rules {
        let host = r.dst_host.trim();
        let err = |detail: String| NetError::Firewall { host: host.to_string(), detail };
        let nets: Vec<(Ipv4Addr, u8)> = if let Some((a, l)) = host.split_once('/') {
            let addr: Ipv4Addr = a.parse().map_err(|_| err(format!("\"{a}\" is not an IPv4 address")))?;
            let len: u8 = l.parse().ok().filter(|l| *l <= 32).ok_or_else(|| err(format!("bad prefix \"{l}\"")))?;
            vec![(addr, len)]
        } else if let Ok(addr) = host.parse::<Ipv4Addr>() {
            vec![(addr, 32)]
        } else {
            let addrs = ipv4_of(host, 0).map_err(err)?;
            notes.push(format!("firewall: {host} resolved to {}", list(&addrs)));
            addrs.into_iter().map(|a| (a, 32)).collect()
        };
        for (net, len) in nets {
            let masked = if len == 0 { 0 } else { u32::from(net) & (u32::MAX << (32 - len)) };
            let net = Ipv4Addr::from(masked);
            out.push(Rule { allow: r.whitelist, host: host.to_string(), net, len, port: r.dst_port });
        }
    }
    Ok((out, notes))
}

/// The IPv4 addresses of `host` (a name is resolved by the host's resolver).
fn ipv4_of(host: &str, port: u16) -> Result<Vec<Ipv4Addr>, String> {
    let addrs: Vec<Ipv4Addr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve: {e}"))?
        .filter_map(|a| match a.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    match addrs.is_empty() {
        true => Err("no IPv4 address".into()),
        false => Ok(addrs),
    }
}

fn list(addrs: &[Ipv4Addr]) -> String {
    addrs.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The VPN servers' IPv4 addresses (names resolved now, and logged).
fn resolve_remotes(remotes: &[crate::openvpn::Remote], notes: &mut Vec<String>) -> Result<Vec<Endpoint>, NetError> {
    let mut out = Vec::new();
    for r in remotes {
        let addrs = ipv4_of(&r.host, r.port).map_err(|e| NetError::Vpn(format!("remote {}: {e}", r.host)))?;
        notes.push(format!("vpn: remote {} {} {} -> {}", r.host, r.port, r.proto, list(&addrs)));
        out.extend(addrs.into_iter().map(|addr| Endpoint { addr, port: r.port, proto: r.proto.clone() }));
    }
    Ok(out)
}

/// A fresh name for a sandbox's host-side veth (`ozv` + 8 hex digits); its peer adds `p`.
fn veth_name() -> String {
    let mut b = [0u8; 4];
    // SAFETY: getrandom writes at most 4 bytes into our buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), b.len(), 0) };
    let v = if n == 4 {
        u32::from_ne_bytes(b)
    } else {
        std::process::id() ^ (std::time::UNIX_EPOCH.elapsed().map_or(0, |d| d.subsec_nanos()))
    };
    format!("ozv{v:08x}")
}

/// Put sandbox `req.sandbox_id` (whose network namespace is `netns`) on the bridge.
pub fn attach(req: &AttachRequest<'_>, netns: BorrowedFd<'_>) -> Result<Attached, NetError> {
    let range = Range::parse(req.range).map_err(|reason| NetError::Range { value: req.range.into(), reason })?;
    let (rules, mut notes) = resolve_rules(req.firewall)?;
    let vpn = resolve_remotes(req.vpn, &mut notes)?;
    let _lock = Lock::take(req.state_dir).map_err(io("lock", &lease::dir(req.state_dir)))?;
    let host = rtnl::run(None, |h| async move { rtnl::host_addresses(&h).await })
        .map_err(connect)?
        .map_err(netlink("list addresses"))?;
    if let Some(c) = range.collision(&host, req.bridge) {
        return Err(NetError::Collision {
            range: range.to_string(),
            ifname: c.ifname.clone(),
            addr: c.addr,
            len: c.len,
        });
    }
    let (gw, len, bridge) = (range.gateway(), range.len, req.bridge.to_string());
    let made = rtnl::run(None, |h| async move { rtnl::ensure_bridge(&h, &bridge, gw, len).await }).map_err(connect)?;
    let bridge_index = match made {
        Ok((index, _)) => index,
        Err(BridgeFailure::NotABridge) => return Err(NetError::NotABridge(req.bridge.into())),
        Err(BridgeFailure::Netlink(e)) if rtnl::errno(&e) == Some(libc::EOPNOTSUPP) => {
            return Err(NetError::NoBridgeSupport { bridge: req.bridge.into(), detail: e.to_string() })
        }
        Err(BridgeFailure::Netlink(e)) => return Err(netlink("create the bridge")(e)),
    };
    let leases = lease::all(req.state_dir);
    let mut used: HashSet<Ipv4Addr> = leases.iter().map(|l| l.address).collect();
    used.extend(host.iter().map(|h| h.addr));
    let address = range.allocate(&used).ok_or_else(|| NetError::Exhausted(range.to_string()))?;
    let lease = Lease {
        sandbox_id: req.sandbox_id,
        agent_pid: std::process::id(),
        bridge: req.bridge.into(),
        range: range.to_string(),
        veth: veth_name(),
        address,
        rules,
        vpn,
    };
    let path = lease::lease_path(req.state_dir, req.sandbox_id);
    lease::store(&path, &lease).map_err(io("write", &path))?;
    let done = plug(req, &lease, bridge_index, gw, netns).and_then(|mut n| {
        notes.append(&mut n);
        apply_table(req.state_dir, &lease.bridge, range)
    });
    if let Err(e) = done {
        let _ = release_locked(req.state_dir, req.sandbox_id);
        return Err(e);
    }
    Ok(Attached { lease, gateway: gw, notes })
}

/// The veth pair, the sandbox's end, and the first lease's host changes.
fn plug(
    req: &AttachRequest<'_>,
    lease: &Lease,
    bridge: u32,
    gw: Ipv4Addr,
    netns: BorrowedFd<'_>,
) -> Result<Vec<String>, NetError> {
    let (host, peer) = (lease.veth.clone(), format!("{}p", lease.veth));
    let peer2 = peer.clone();
    rtnl::run(None, |h| async move { rtnl::add_veth(&h, &host, &peer2, bridge, netns).await })
        .map_err(connect)?
        .map_err(|e| match rtnl::errno(&e) {
            Some(libc::EOPNOTSUPP) => NetError::NoVethSupport(e.to_string()),
            _ => netlink("create the veth pair")(e),
        })?;
    let (addr, len) = (lease.address, Range::parse(&lease.range).map_or(24, |r| r.len));
    rtnl::run(Some(netns), |h| async move { rtnl::configure_peer(&h, &peer, addr, len, gw).await })
        .map_err(connect)?
        .map_err(netlink("configure eth0 in the sandbox"))?;
    first_lease_setup(req)
}

/// Forwarding, NetworkManager and the check for other firewalls, once per bridge.
fn first_lease_setup(req: &AttachRequest<'_>) -> Result<Vec<String>, NetError> {
    let state_path = lease::bridge_state_path(req.state_dir, req.bridge);
    if lease::load::<BridgeState>(&state_path).map_err(io("read", &state_path))?.is_some() {
        return Ok(Vec::new());
    }
    let mut notes = Vec::new();
    let mut state = BridgeState { bridge: req.bridge.into(), ..Default::default() };
    let before = std::fs::read_to_string(IP_FORWARD).map_err(io("read", Path::new(IP_FORWARD)))?;
    if before.trim() == "0" {
        std::fs::write(IP_FORWARD, "1").map_err(io("write", Path::new(IP_FORWARD)))?;
        state.ip_forward_before = Some(before.trim().to_string());
    }
    match req.nm_ignore_file.parent() {
        Some(dir) if dir.is_dir() && !req.nm_ignore_file.exists() => {
            let text = format!(
                "# written by oz while its bridge exists\n[keyfile]\nunmanaged-devices=interface-name:{};interface-name:ozv*\n",
                req.bridge
            );
            std::fs::write(req.nm_ignore_file, text).map_err(io("write", req.nm_ignore_file))?;
            state.nm_file = Some(req.nm_ignore_file.to_path_buf());
        }
        _ => {}
    }
    notes.extend(host_checks(req.bridge, req.nm_ignore_file));
    lease::store(&state_path, &state).map_err(io("write", &state_path))?;
    Ok(notes)
}

/// What may keep bridged sandboxes off the network on this host, for the daemon to say at
/// start: other firewalls (below) and a NetworkManager that was not told to leave the bridge
/// alone.
pub fn host_checks(bridge: &str, nm_ignore_file: &Path) -> Vec<String> {
    let mut out = other_firewalls(&nft::table_name(bridge));
    let nm_dir = nm_ignore_file.parent().unwrap_or(Path::new("/"));
    if Path::new("/run/NetworkManager").is_dir() && !nm_dir.is_dir() {
        out.push(format!(
            "NetworkManager runs but {} does not exist: it may manage bridge {bridge} (oz.conf nm_ignore_file)",
            nm_dir.display()
        ));
    }
    out
}

/// Firewalls of others whose policy may drop the bridge's forwarded traffic.
pub fn other_firewalls(ours: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rs) = nft::list_ruleset() {
        for c in nft::dropping_forward_chains(&rs, ours) {
            out.push(format!("{c} drops forwarded traffic by default: sandboxes on the bridge may have no network"));
        }
    }
    let legacy = std::fs::read_to_string("/proc/net/ip_tables_names").unwrap_or_default();
    if legacy.lines().any(|l| l.trim() == "filter") {
        let policy = std::process::Command::new("iptables-legacy").args(["-S", "FORWARD"]).output();
        let drops = policy.map_or(true, |o| String::from_utf8_lossy(&o.stdout).contains("-P FORWARD DROP"));
        if drops {
            out.push(
                "iptables-legacy filter table is loaded and its FORWARD chain may drop the bridge's traffic".into(),
            );
        }
    }
    out
}

/// Replace the bridge's table with one built from its current leases.
fn apply_table(state_dir: &Path, bridge: &str, range: Range) -> Result<(), NetError> {
    let leases: Vec<Lease> = lease::all(state_dir).into_iter().filter(|l| l.bridge == bridge).collect();
    let state: Option<BridgeState> = lease::load(&lease::bridge_state_path(state_dir, bridge)).ok().flatten();
    let guard = state.is_some_and(|s| s.ip_forward_before.is_some());
    let rs = Ruleset { bridge, range, guard_forwarding: guard, leases: &leases };
    nft::apply(&rs.commands()).map_err(NetError::Nft)
}

/// Release what sandbox `id` holds on its bridge (nothing when it has no lease). Returns notes
/// for the log.
pub fn release(state_dir: &Path, id: u64) -> Result<Vec<String>, NetError> {
    let _lock = Lock::take(state_dir).map_err(io("lock", &lease::dir(state_dir)))?;
    release_locked(state_dir, id)
}

fn release_locked(state_dir: &Path, id: u64) -> Result<Vec<String>, NetError> {
    let path = lease::lease_path(state_dir, id);
    let Some(l) = lease::load::<Lease>(&path).map_err(io("read", &path))? else { return Ok(Vec::new()) };
    let veth = l.veth.clone();
    rtnl::run(None, |h| async move { rtnl::delete_link(&h, &veth).await })
        .map_err(connect)?
        .map_err(netlink("delete the veth pair"))?;
    lease::remove(&path).map_err(io("remove", &path))?;
    let vpn_conf = lease::vpn_config_path(state_dir, id);
    lease::remove(&vpn_conf).map_err(io("remove", &vpn_conf))?;
    let mut notes = vec![format!("released {} ({}) on {}", l.address, l.veth, l.bridge)];
    let others = lease::all(state_dir).into_iter().any(|o| o.bridge == l.bridge);
    let range = Range::parse(&l.range).map_err(|reason| NetError::Range { value: l.range.clone(), reason })?;
    if others {
        apply_table(state_dir, &l.bridge, range)?;
    } else {
        notes.extend(remove_bridge(state_dir, &l.bridge)?);
    }
    Ok(notes)
}

/// The last lease is gone: the table, the bridge, forwarding and the NetworkManager file.
fn remove_bridge(state_dir: &Path, bridge: &str) -> Result<Vec<String>, NetError> {
    let mut notes = Vec::new();
    if let Err(e) = nft::apply(&nft::delete_commands(bridge)) {
        // Already gone is fine; anything else is worth a line in the log.
        if !e.contains("No such file") {
            notes.push(format!("delete table {}: {e}", nft::table_name(bridge)));
        }
    }
    let name = bridge.to_string();
    rtnl::run(None, |h| async move { rtnl::delete_link(&h, &name).await })
        .map_err(connect)?
        .map_err(netlink("delete the bridge"))?;
    let state_path = lease::bridge_state_path(state_dir, bridge);
    if let Some(state) = lease::load::<BridgeState>(&state_path).map_err(io("read", &state_path))? {
        if let Some(before) = &state.ip_forward_before {
            std::fs::write(IP_FORWARD, before).map_err(io("write", Path::new(IP_FORWARD)))?;
        }
        if let Some(f) = &state.nm_file {
            lease::remove(f).map_err(io("remove", f))?;
        }
    }
    lease::remove(&state_path).map_err(io("remove", &state_path))?;
    notes.push(format!("removed bridge {bridge} and its table"));
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firewall_hosts_networks_and_names() {
        let r = |h: &str, allow, port| FirewallRule { whitelist: allow, dst_host: h.into(), dst_port: port };
        let (rules, notes) =
            resolve_rules(&[r("10.1.2.3", true, 80), r("10.1.2.3/16", false, 0), r("localhost", true, 53)]).unwrap();
        assert_eq!(
            rules[0],
            Rule { allow: true, host: "10.1.2.3".into(), net: "10.1.2.3".parse().unwrap(), len: 32, port: 80 }
        );
        assert_eq!((rules[1].net, rules[1].len, rules[1].allow), ("10.1.0.0".parse().unwrap(), 16, false));
        assert!(rules[2..].iter().any(|r| r.net == Ipv4Addr::LOCALHOST && r.port == 53));
        assert!(notes[0].starts_with("firewall: localhost resolved to 127.0.0.1"), "{notes:?}");
        let e = resolve_rules(&[r("10.1.2.3/40", true, 0)]).unwrap_err().to_string();
        assert!(e.starts_with("firewall dst_host \"10.1.2.3/40\": bad prefix"), "{e}");
        assert!(resolve_rules(&[r("no-such-host.invalid", true, 0)]).is_err());
    }
}
