//! A sandbox on the bridge: attaching its network namespace once the init created it, its
//! DNS forwarder or VPN client (started by the serve loop), and releasing its lease.

use super::{sys, Sandbox, SandboxError};
use nix::errno::Errno;
use oz_wire::LaunchSpec;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

impl Sandbox {
    /// Bridged networking: once the init's network namespace exists (one byte on `ready`),
    /// attach it to the bridge and let the init go on (one byte on `go`). Returns notes for the
    /// log. On failure `go` closes unwritten and the init gives up.
    pub(super) fn open_network_gate(
        &mut self,
        spec: &LaunchSpec,
        bridged: bool,
        ready: OwnedFd,
        go: OwnedFd,
        vpn: Option<oz_net::openvpn::Sanitized>,
    ) -> Result<Vec<String>, SandboxError> {
        let mut byte = [0u8; 1];
        let n = loop {
            match nix::unistd::read(ready.as_raw_fd(), &mut byte) {
                Err(Errno::EINTR) => continue,
                other => break other.map_err(sys("read the network gate"))?,
            }
        };
        if n != 1 {
            // The init died before: wait_ready reports how.
            return Ok(Vec::new());
        }
        let notes = if bridged { self.attach_network(spec, vpn)? } else { Vec::new() };
        self.listen_forwarders(spec);
        // Dropping `go` unwritten (an error above) makes the init give up.
        let _ = nix::unistd::write(&go, &[1]);
        Ok(notes)
    }

    /// Open the profile's socket forwarders in the sandbox's network namespace (its loopback is
    /// up once the init passed the gate's first half). A forwarder that cannot listen is left to
    /// the serve loop, which reports it and retries under supervision.
    fn listen_forwarders(&mut self, spec: &LaunchSpec) {
        let sockets = &spec.profile.networking.sockets;
        if sockets.is_empty() {
            return;
        }
        let dir = crate::agent::forward::dir(&spec.config.state_dir, self.id);
        if let Ok((mut forwards, warnings)) =
            crate::agent::forward::Forwarders::new(sockets, self.init.as_raw(), self.user.clone(), dir)
        {
            for i in 0..forwards.len() {
                let _ = forwards.start(i);
            }
            self.forwards = Some((forwards, warnings));
        }
    }

    /// The forwarders opened before the program started, and the planning warnings, once.
    pub fn take_forwarders(&mut self) -> Option<(crate::agent::forward::Forwarders, Vec<String>)> {
        self.forwards.take()
    }

    fn attach_network(
        &mut self,
        spec: &LaunchSpec,
        vpn: Option<oz_net::openvpn::Sanitized>,
    ) -> Result<Vec<String>, SandboxError> {
        let netns = std::fs::File::open(format!("/proc/{}/ns/net", self.init))
            .map_err(|e| SandboxError::Sys { op: "open the sandbox's network namespace", errno: io_errno(&e) })?;
        let c = &spec.config;
        let req = oz_net::AttachRequest {
            state_dir: &c.state_dir,
            bridge: &c.bridge_name,
            range: &c.bridge_range,
            nm_ignore_file: &c.nm_ignore_file,
            sandbox_id: self.id,
            firewall: &spec.profile.firewall,
            vpn: vpn.as_ref().map_or(&[], |v| &v.remotes),
        };
        let attached = oz_net::attach(&req, netns.as_fd())?;
        let mut notes = attached.notes.clone();
        if let Some(b) = spec.profile.networking.bridge.as_deref().filter(|b| *b != c.bridge_name) {
            notes.push(format!("networking.bridge {b}: bridged sandboxes share oz.conf bridge_name {}", c.bridge_name));
        }
        notes.push(format!("network: {} on {} via {}", attached.lease.address, c.bridge_name, attached.gateway));
        self.net = Some((c.state_dir.clone(), attached));
        match vpn {
            // All its traffic, DNS included, goes through the tunnel: no forwarder on the host.
            Some(v) => {
                notes.extend(v.stripped.iter().map(|d| format!("vpn: directive {d} stripped")));
                self.vpn = Some(crate::agent::vpn::write_config(&c.state_dir, self.id, &v, &netns)?);
            }
            None => {
                let listeners = oz_net::dns::bind_in(netns.as_fd()).map_err(|e| SandboxError::Sys {
                    op: "bind the DNS forwarder at 127.0.0.1:53",
                    errno: io_errno(&e),
                })?;
                self.dns = Some((listeners, oz_net::resolv::host().servers));
            }
        }
        Ok(notes)
    }

    /// The DNS forwarder's listeners and upstreams (bridged networking), once.
    pub fn take_dns(&mut self) -> Option<(oz_net::dns::Listeners, Vec<std::net::SocketAddr>)> {
        self.dns.take()
    }

    /// The VPN client to supervise (bridged networking with a VPN), once.
    pub fn take_vpn(&mut self) -> Option<crate::agent::vpn::Client> {
        self.vpn.take()
    }

    /// The sandbox's address on the bridge (bridged networking).
    pub fn address(&self) -> Option<std::net::Ipv4Addr> {
        self.net.as_ref().map(|(_, a)| a.lease.address)
    }

    /// Release the bridge lease (veth, address, firewall rules; the bridge with the last one).
    pub(super) fn release_network(&mut self) -> Result<(), SandboxError> {
        if let Some((state_dir, _)) = self.net.take() {
            oz_net::release(&state_dir, self.id)?;
        }
        Ok(())
    }
}

pub(crate) fn io_errno(e: &std::io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}
