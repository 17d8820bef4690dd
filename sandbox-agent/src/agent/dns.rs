//! The sandbox's DNS forwarder as a supervised helper: `oz-agent dns` gets the listeners the
//! agent bound inside the sandbox's network namespace (127.0.0.1:53, UDP on fd 3, TCP on fd 4),
//! drops to `nobody` and forwards queries to the host's resolvers ([`oz_net::dns`]).

use crate::agent::children::{self, ChildSpec};
use crate::agent::supervise::tree::RestartPolicy;
use oz_net::dns::Listeners;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;

const UDP_FD: RawFd = 3;
const TCP_FD: RawFd = 4;
/// nobody/nogroup: the forwarder needs no privilege once it has its listeners.
const NOBODY: u32 = 65534;

/// The helper slot: `oz-agent dns --upstream ...` with the listeners on fds 3 and 4.
pub fn child_spec(l: Listeners, upstreams: &[SocketAddr]) -> ChildSpec {
    let mut cmd = std::process::Command::new("/proc/self/exe");
    cmd.arg("dns").stdin(std::process::Stdio::null());
    for u in upstreams {
        cmd.arg("--upstream").arg(u.to_string());
    }
    let (udp, tcp) = (OwnedFd::from(l.udp), OwnedFd::from(l.tcp));
    // SAFETY: dup2 and fcntl are async-signal-safe; the fds stay open in the parent (owned by
    // this closure) for every respawn.
    unsafe {
        cmd.pre_exec(move || {
            crate::agent::vpn::unblock_signals()?;
            for (fd, to) in [(udp.as_raw_fd(), UDP_FD), (tcp.as_raw_fd(), TCP_FD)] {
                let r = if fd == to { libc::fcntl(fd, libc::F_SETFD, 0) } else { libc::dup2(fd, to) };
                if r < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    ChildSpec { name: "dns forwarder".into(), restart: RestartPolicy::HELPER, spawn: children::command(cmd) }
}

/// `oz-agent dns`: serve the inherited listeners until killed.
pub fn run(upstreams: Vec<SocketAddr>) -> std::io::Result<()> {
    // SAFETY: the agent passed these descriptors to us; nothing else here owns them.
    let (udp, tcp) = unsafe { (OwnedFd::from_raw_fd(UDP_FD), OwnedFd::from_raw_fd(TCP_FD)) };
    let l = Listeners { udp: udp.into(), tcp: tcp.into() };
    let agent = nix::unistd::getppid();
    nix::unistd::setgroups(&[]).map_err(std::io::Error::from)?;
    let id = nix::unistd::Gid::from_raw(NOBODY);
    nix::unistd::setresgid(id, id, id).map_err(std::io::Error::from)?;
    let id = nix::unistd::Uid::from_raw(NOBODY);
    nix::unistd::setresuid(id, id, id).map_err(std::io::Error::from)?;
    // Changing credentials cleared the death signal: set it again, then make sure the agent
    // did not die in between.
    // SAFETY: prctl with an integer signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if nix::unistd::getppid() != agent {
        return Err(std::io::Error::other("the agent is gone"));
    }
    crate::common::procname::set("oz-dns");
    oz_net::dns::serve(l, upstreams)
}
