//! Links, addresses and routes over rtnetlink: the bridge, a sandbox's veth pair, the
//! sandbox's end configured inside its network namespace. Each function takes a connection's
//! [`Handle`]; [`run`] drives one connection on a current-thread runtime (no thread is created,
//! so the agent may still fork afterwards).

use futures::{StreamExt, TryStreamExt};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_REQUEST};
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{
    InfoBridgePort, InfoKind, InfoPortData, InfoPortKind, LinkAttribute, LinkInfo, LinkMessage,
};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::{Error, Handle};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, BorrowedFd};

use crate::range::HostAddr;

/// The errno of a netlink error reply (positive), if it is one.
pub fn errno(e: &Error) -> Option<i32> {
    match e {
        Error::NetlinkError(m) => m.code.map(|c| -c.get()),
        _ => None,
    }
}

/// Run `f` with a new rtnetlink connection, on a current-thread runtime: of the network
/// namespace `netns` when given (entered only while the socket is created), else of the
/// calling thread's. Inside a tokio runtime (the daemon's blocking pool) it runs on a
/// short-lived thread of its own instead.
pub fn run<T, F, Fut>(netns: Option<BorrowedFd<'_>>, f: F) -> std::io::Result<T>
where
    T: Send,
    F: FnOnce(Handle) -> Fut + Send,
    Fut: Future<Output = T>,
{
    let netns = netns.map(|fd| fd.as_raw_fd());
    let go = move || -> std::io::Result<T> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
        let (conn, handle, _) = {
            let _guard = rt.enter();
            match netns {
                Some(fd) => in_netns(fd, rtnetlink::new_connection)??,
                None => rtnetlink::new_connection()?,
            }
        };
        Ok(rt.block_on(async move {
            let task = tokio::spawn(conn);
            let out = f(handle).await;
            task.abort();
            out
        }))
    };
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(go).join().unwrap_or_else(|_| Err(std::io::Error::other("netlink thread panicked")))
        })
    } else {
        go()
    }
}

/// Call `f` with the calling thread inside the network namespace `fd`, then return to the one
/// it was in.
pub fn in_netns<T>(fd: std::os::fd::RawFd, f: impl FnOnce() -> T) -> std::io::Result<T> {
    let own = std::fs::File::open("/proc/thread-self/ns/net")?;
    // SAFETY: setns on descriptors we hold open for the duration of the call.
    if unsafe { libc::setns(fd, libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let out = f();
    // SAFETY: as above.
    if unsafe { libc::setns(own.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        // Staying in the sandbox's namespace would be worse than dying.
        let e = std::io::Error::last_os_error();
        eprintln!("oz: cannot return to the host's network namespace: {e}");
        std::process::abort();
    }
    Ok(out)
}

/// The index of link `name`, None when there is none.
pub async fn link_index(h: &Handle, name: &str) -> Result<Option<u32>, Error> {
    Ok(link(h, name).await?.map(|m| m.header.index))
}

async fn link(h: &Handle, name: &str) -> Result<Option<LinkMessage>, Error> {
    match h.link().get().match_name(name.to_string()).execute().try_next().await {
        Ok(m) => Ok(m),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_bridge(m: &LinkMessage) -> bool {
    m.attributes.iter().any(|a| match a {
        LinkAttribute::LinkInfo(infos) => infos.iter().any(|i| matches!(i, LinkInfo::Kind(InfoKind::Bridge))),
        _ => false,
    })
}

/// Every IPv4 address on the host's interfaces, with the interface's name.
pub async fn host_addresses(h: &Handle) -> Result<Vec<HostAddr>, Error> {
    let mut names = std::collections::HashMap::new();
    let mut links = h.link().get().execute();
    while let Some(m) = links.try_next().await? {
        for a in &m.attributes {
            if let LinkAttribute::IfName(n) = a {
                names.insert(m.header.index, n.clone());
            }
        }
    }
    let mut out = Vec::new();
    let mut addrs = h.address().get().execute();
    while let Some(m) = addrs.try_next().await? {
        for a in &m.attributes {
            if let AddressAttribute::Local(IpAddr::V4(v4)) | AddressAttribute::Address(IpAddr::V4(v4)) = a {
                let ifname = names.get(&m.header.index).cloned().unwrap_or_default();
                let h = HostAddr { ifname, addr: *v4, len: m.header.prefix_len };
                if !out.contains(&h) {
                    out.push(h);
                }
            }
        }
    }
    Ok(out)
}

/// Why a bridge could not be set up.
#[derive(Debug)]
pub enum BridgeFailure {
    /// A link of that name exists and is not a bridge.
    NotABridge,
    Netlink(Error),
}

/// The bridge `name` with address `gw/len`, up; created when missing. Returns its index and
/// whether it was created.
pub async fn ensure_bridge(h: &Handle, name: &str, gw: Ipv4Addr, len: u8) -> Result<(u32, bool), BridgeFailure> {
    let nl = BridgeFailure::Netlink;
    let (index, created) = match link(h, name).await.map_err(nl)? {
        Some(m) if !is_bridge(&m) => return Err(BridgeFailure::NotABridge),
        Some(m) => (m.header.index, false),
        None => {
            h.link().add().bridge(name.to_string()).execute().await.map_err(nl)?;
            (link_index(h, name).await.map_err(nl)?.ok_or(BridgeFailure::NotABridge)?, true)
        }
    };
    let mut addrs = h.address().get().set_link_index_filter(index).execute();
    let mut has = false;
    while let Some(m) = addrs.try_next().await.map_err(nl)? {
        has |= m.attributes.iter().any(|a| matches!(a, AddressAttribute::Local(IpAddr::V4(v)) if *v == gw));
    }
    if !has {
        h.address().add(index, IpAddr::V4(gw), len).execute().await.map_err(nl)?;
    }
    h.link().set(index).up().execute().await.map_err(nl)?;
    Ok((index, created))
}

/// A veth pair `host`/`peer`: `host` a port of `bridge` (isolated from the other ports) and up,
/// `peer` moved into the network namespace `netns`.
pub async fn add_veth(h: &Handle, host: &str, peer: &str, bridge: u32, netns: BorrowedFd<'_>) -> Result<(), Error> {
    h.link().add().veth(host.to_string(), peer.to_string()).execute().await?;
    let hi = link_index(h, host).await?.ok_or(Error::RequestFailed)?;
    h.link().set(hi).controller(bridge).execute().await?;
    isolate_port(h, hi).await?;
    h.link().set(hi).up().execute().await?;
    let pi = link_index(h, peer).await?.ok_or(Error::RequestFailed)?;
    h.link().set(pi).setns_by_fd(netns.as_raw_fd()).execute().await
}

/// Bridge port isolation (IFLA_BRPORT_ISOLATED): an isolated port only talks to non-isolated
/// ones (the bridge itself), never to another isolated port.
async fn isolate_port(h: &Handle, index: u32) -> Result<(), Error> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::Isolated(true)])),
    ]));
    let mut req = NetlinkMessage::from(RouteNetlinkMessage::NewLink(msg));
    req.header.flags = NLM_F_REQUEST | NLM_F_ACK;
    let mut replies = h.clone().request(req)?;
    while let Some(m) = replies.next().await {
        if let NetlinkPayload::Error(e) = m.payload {
            if e.code.is_some() {
                return Err(Error::NetlinkError(e));
            }
        }
    }
    Ok(())
}

/// Inside the sandbox's namespace: rename `peer` to `eth0`, address it, bring it up, default
/// route via `gw`.
pub async fn configure_peer(h: &Handle, peer: &str, addr: Ipv4Addr, len: u8, gw: Ipv4Addr) -> Result<(), Error> {
    let i = link_index(h, peer).await?.ok_or(Error::RequestFailed)?;
    h.link().set(i).name("eth0".into()).execute().await?;
    h.address().add(i, IpAddr::V4(addr), len).execute().await?;
    h.link().set(i).up().execute().await?;
    h.route().add().v4().gateway(gw).execute().await
}

/// Delete link `name`; a missing link is fine.
pub async fn delete_link(h: &Handle, name: &str) -> Result<(), Error> {
    match link_index(h, name).await? {
        Some(i) => match h.link().del(i).execute().await {
            Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(()),
            other => other,
        },
        None => Ok(()),
    }
}
