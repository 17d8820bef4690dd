//! Namespace entry: the fork-like clone into new namespaces, and the per-namespace setup the init
//! does first (UTS names, loopback).

use nix::errno::Errno;
use nix::unistd::Pid;
use oz_profiles::profile::NetType;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The namespaces the init is cloned into: mount, PID, UTS, IPC. Never a user namespace (the
/// init must be real root to build the rootfs). The others come later, off the clone the agent
/// waits for: the cgroup namespace once the init is in the sandbox's cgroup
/// ([`enter_cgroup_namespace`]), and the network namespace (unless the profile shares the
/// host's; setting one up is the costliest part of a clone), which the init unshares during its
/// build while the agent expands the blacklist and compiles the seccomp filter.
pub fn clone_flags(_net: NetType) -> libc::c_int {
    libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC
}

/// Whether the sandbox of this network type gets its own network namespace.
pub fn wants_net_namespace(net: NetType) -> bool {
    net != NetType::Host
}

/// Which side of [`clone_fork`] we are on.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// The number of threads of this process (from /proc/self/status).
pub fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok())
}

/// clone(2) with fork semantics (no new stack: the child continues on a copy of ours) into the
/// namespaces in `flags`; the child is PID 1 of its new PID namespace.
///
/// # Safety
/// The caller must be single-threaded: the child continues with a copy of the whole address
/// space, including any lock another thread held.
pub unsafe fn clone_fork(flags: libc::c_int) -> Result<Forked, Errno> {
    let full = (flags | libc::SIGCHLD) as libc::c_ulong;
    // SAFETY: raw clone with a null stack behaves like fork(2); the caller guarantees there is
    // no other thread whose locks the child could inherit. The parent/child tid pointers and
    // tls are unused (no CLONE_*TID / CLONE_SETTLS flags).
    let r = unsafe { libc::syscall(libc::SYS_clone, full, 0usize, 0usize, 0usize, 0usize) };
    match r {
        -1 => Err(Errno::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(Pid::from_raw(pid as i32))),
    }
}

/// A new cgroup namespace rooted at the caller's current cgroup (the sandbox's, once the agent
/// moved the init there).
pub fn enter_cgroup_namespace() -> Result<(), Errno> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
}

/// Set the UTS namespace's host name and domain name.
pub fn set_uts_names(hostname: &str, domainname: &str) -> Result<(), Errno> {
    nix::unistd::sethostname(hostname)?;
    // SAFETY: setdomainname reads `len` bytes from a valid buffer.
    let r = unsafe { libc::setdomainname(domainname.as_ptr() as *const libc::c_char, domainname.len()) };
    Errno::result(r).map(drop)
}

/// Whether a network namespace of this type gets `lo` up (`none` stays fully down, `host` is
/// not ours to touch).
pub fn wants_loopback(net: NetType) -> bool {
    matches!(net, NetType::Empty | NetType::Bridge)
}

/// Bring `lo` up in the current network namespace, letting it carry segments as large as it
/// can (see [`loopback_large_segments`]).
pub fn loopback_up() -> Result<(), Errno> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write an ifreq we own.
    unsafe {
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req))?;
        req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
        Errno::result(libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req))?;
    }
    // Best effort: a kernel without IPv4 BIG TCP (before 6.3) keeps 64 KiB segments.
    let _ = loopback_large_segments();
    Ok(())
}

/// Let `lo` build and receive IPv4 TCP segments up to its TSO limit (512 KiB, "BIG TCP")
/// instead of 64 KiB: a stream over the sandbox's loopback, such as one reaching a socket
/// forwarder, then costs a fraction of the per-packet work. IPv6 keeps its 64 KiB (its large
/// segments need a jumbo-payload header). Fails on a kernel that knows no such attribute.
pub fn loopback_large_segments() -> Result<u32, Errno> {
    use crate::linkattr::{self, IFLA_GRO_IPV4_MAX_SIZE, IFLA_GSO_IPV4_MAX_SIZE, IFLA_TSO_MAX_SIZE, LOOPBACK_IFINDEX};
    let size = linkattr::get(LOOPBACK_IFINDEX, IFLA_TSO_MAX_SIZE)?.ok_or(Errno::EOPNOTSUPP)?;
    linkattr::set(LOOPBACK_IFINDEX, &[(IFLA_GSO_IPV4_MAX_SIZE, size), (IFLA_GRO_IPV4_MAX_SIZE, size)])?;
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_share_network_only_for_host() {
        assert!(!wants_net_namespace(NetType::Host));
        for t in [NetType::None, NetType::Empty, NetType::Bridge] {
            assert!(wants_net_namespace(t));
            let f = clone_flags(t);
            assert_ne!(f & libc::CLONE_NEWPID, 0);
            assert_eq!(f & libc::CLONE_NEWUSER, 0);
            // Unshared by the init after the clone.
            assert_eq!(f & (libc::CLONE_NEWCGROUP | libc::CLONE_NEWNET), 0);
        }
        assert!(!wants_loopback(NetType::None));
        assert!(!wants_loopback(NetType::Host));
        assert!(wants_loopback(NetType::Empty));
    }

    /// In a child in a new network namespace: `lo` up carries segments up to its TSO limit.
    #[test]
    fn loopback_comes_up_with_large_segments() {
        use crate::linkattr::{
            get, IFLA_GRO_IPV4_MAX_SIZE, IFLA_GSO_IPV4_MAX_SIZE, IFLA_TSO_MAX_SIZE, LOOPBACK_IFINDEX,
        };
        if !nix::unistd::Uid::effective().is_root() {
            panic!("loopback_comes_up_with_large_segments needs root (a network namespace)");
        }
        crate::testfork::assert_in_child(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|_| 10)?;
            let before = get(LOOPBACK_IFINDEX, IFLA_GSO_IPV4_MAX_SIZE).map_err(|_| 11)?;
            if before != Some(65536) {
                return Err(12);
            }
            loopback_up().map_err(|_| 13)?;
            let tso = get(LOOPBACK_IFINDEX, IFLA_TSO_MAX_SIZE).map_err(|_| 14)?.ok_or(15)?;
            if tso <= 65536 {
                return Err(16);
            }
            for attr in [IFLA_GSO_IPV4_MAX_SIZE, IFLA_GRO_IPV4_MAX_SIZE] {
                if get(LOOPBACK_IFINDEX, attr).map_err(|_| 17)? != Some(tso) {
                    return Err(18);
                }
            }
            Ok(())
        });
    }
}
