//! A bridged sandbox's VPN (`networking.vpn`, OpenVPN): the profile's configuration sanitized
//! ([`oz_net::openvpn`]), written root-only under the state directory, and `openvpn` run as a
//! supervised helper inside the sandbox's network namespace, so that its tunnel device and
//! routes belong to the sandbox alone. On the bridge the sandbox may then reach only the VPN's
//! servers (its nftables chain), so nothing leaves around the tunnel when it is down; its
//! resolv.conf names the VPN's DNS servers (`vpn.dns`).

use crate::agent::children::{self, ChildSpec};
use crate::agent::sandbox::SandboxError;
use crate::agent::supervise::tree::RestartPolicy;
use oz_net::openvpn::Sanitized;
use oz_wire::LaunchSpec;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

fn vpn_error(detail: String) -> SandboxError {
    SandboxError::Net(oz_net::NetError::Vpn(detail))
}

/// The sanitized configuration of the profile's VPN (None without one).
pub fn prepare(spec: &LaunchSpec) -> Result<Option<Sanitized>, SandboxError> {
    let Some(vpn) = &spec.profile.networking.vpn else { return Ok(None) };
    if vpn.vpn_type != "openvpn" {
        return Err(vpn_error(format!("type \"{}\" is not supported (openvpn)", vpn.vpn_type)));
    }
    let dir = &spec.config.openvpn_conf_dir;
    let in_dir = |p: &str| in_conf_dir(dir, p).map_err(vpn_error);
    let conf = in_dir(vpn.config_path.as_deref().ok_or_else(|| vpn_error("configpath is missing".into()))?)?;
    let auth = vpn.auth_file.as_deref().map(in_dir).transpose()?;
    let text = std::fs::read_to_string(&conf).map_err(|e| vpn_error(format!("{}: {e}", conf.display())))?;
    oz_net::openvpn::sanitize(&text, dir, auth.as_deref())
        .map(Some)
        .map_err(|e| vpn_error(format!("{}: {e}", conf.display())))
}

/// `p` (from the profile) inside `dir`: relative, without `..`.
fn in_conf_dir(dir: &Path, p: &str) -> Result<PathBuf, String> {
    let path = Path::new(p);
    if p.is_empty() || path.is_absolute() || path.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        return Err(format!("\"{p}\" must be a relative path inside oz.conf openvpn_conf_dir"));
    }
    Ok(dir.join(p))
}

/// The sandbox's resolv.conf with a VPN: its DNS servers, reached through the tunnel.
pub fn resolv_conf(spec: &LaunchSpec) -> String {
    let mut s = String::from("# written by oz: the VPN's DNS servers\n");
    for d in spec.profile.networking.vpn.iter().flat_map(|v| &v.dns) {
        s.push_str(&format!("nameserver {d}\n"));
    }
    s
}

/// The VPN client of a sandbox: its configuration file and the sandbox's network namespace.
pub struct Client {
    config: PathBuf,
    netns: OwnedFd,
}

/// Write the sanitized configuration (root only) for sandbox `id`.
pub fn write_config(state_dir: &Path, id: u64, v: &Sanitized, netns: &std::fs::File) -> Result<Client, SandboxError> {
    let path = oz_net::lease::vpn_config_path(state_dir, id);
    let sys = |e: std::io::Error| SandboxError::Sys {
        op: "write the VPN configuration",
        errno: crate::agent::sandbox::io_errno(&e),
    };
    let mut f =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path).map_err(sys)?;
    std::io::Write::write_all(&mut f, v.text.as_bytes()).map_err(sys)?;
    let netns = netns.as_fd().try_clone_to_owned().map_err(sys)?;
    Ok(Client { config: path, netns })
}

impl Client {
    /// The helper slot: `openvpn --config FILE` entering the sandbox's network namespace.
    pub fn child_spec(self) -> ChildSpec {
        let mut cmd = std::process::Command::new("openvpn");
        cmd.arg("--config").arg(&self.config).stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        let netns = self.netns;
        // SAFETY: setns is async-signal-safe; the namespace fd stays open in this closure.
        unsafe {
            cmd.pre_exec(move || {
                unblock_signals()?;
                enter(netns.as_fd())
            });
        }
        ChildSpec { name: "openvpn".into(), restart: RestartPolicy::HELPER, spawn: children::command(cmd) }
    }
}

/// In a helper between fork and exec: no blocked signals (the agent blocks the ones its
/// signalfd reads, and a blocked SIGTERM would survive exec).
pub fn unblock_signals() -> std::io::Result<()> {
    // SAFETY: sigprocmask with an empty set we own; async-signal-safe.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        match libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }
}

fn enter(netns: BorrowedFd<'_>) -> std::io::Result<()> {
    // SAFETY: plain setns(2) on a descriptor we hold.
    match unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_paths_stay_in_the_conf_dir() {
        let d = Path::new("/var/lib/oz/openvpn");
        assert_eq!(in_conf_dir(d, "work/client.conf").unwrap(), d.join("work/client.conf"));
        for bad in ["/etc/shadow", "../x", "a/../../x", ""] {
            assert!(in_conf_dir(d, bad).is_err(), "{bad}");
        }
    }
}
