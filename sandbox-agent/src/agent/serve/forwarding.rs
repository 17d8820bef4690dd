//! The socket forwarders in the agent's loop: each is a helper slot of the supervision tree
//! whose "process" is the agent itself ([`crate::agent::forward`]): the tree starts, restarts
//! and stops it like any helper, and a forwarder whose listening socket fails is fed back as
//! an exited helper.
//!
//! External forwarders (the profile's `external_forwarders`, opened by `oz forward`) are added
//! the same way at run time: a unix socket in the sandbox's forwarder directory, the user's,
//! reaching a port on the sandbox's loopback.

use super::runtime::Runtime;
use crate::agent::forward::plan::{self, Addr, End, Kind, Plan, Side};
use crate::agent::forward::{self, Forwarders};
use crate::agent::supervise::tree::{self, ChildState, RestartPolicy};
use oz_profiles::profile::{ExternalForwarder, SocketDirection, SocketProto};
use oz_wire::{AgentError, AgentToDaemon, ForwarderInfo, ForwarderStatus, LogLevel};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// External forwarders one sandbox may open.
const MAX_EXTERNAL: usize = 16;

impl Runtime {
    /// Plan the profile's `networking.sockets` and add one helper slot per forwarder.
    pub(super) fn start_forwarders(&mut self) {
        let sockets = self.spec.profile.networking.sockets.clone();
        if sockets.is_empty() {
            return;
        }
        let warnings = match self.ensure_forwarders(&sockets) {
            Ok(w) => w,
            Err(e) => return self.warn(format!("socket forwarders: {e}")),
        };
        for w in warnings {
            self.warn(format!("socket forwarder skipped: {w}"));
        }
        // The entries that were planned (the same pure decision as the forwarder set's), for
        // the record; the others were reported as skipped.
        let dir = forward::dir(&self.spec.config.state_dir, self.spec.sandbox_id);
        let planned: Vec<_> =
            sockets.iter().enumerate().filter_map(|(i, s)| Some((plan::plan(i, s, &dir).ok()?, s))).collect();
        for (i, (p, s)) in planned.into_iter().enumerate() {
            self.forward_infos.push(ForwarderInfo {
                name: p.name,
                direction: s.direction,
                proto: s.proto,
                port: s.port,
            });
            self.supervise_forwarder(i);
        }
    }

    /// The forwarder set, created (with `sockets`) on first use.
    fn ensure_forwarders(&mut self, sockets: &[oz_profiles::profile::SocketForward]) -> Result<Vec<String>, String> {
        if self.forwards.is_some() {
            return Ok(Vec::new());
        }
        if let Some((forwards, warnings)) = self.started.sandbox.as_mut().and_then(|s| s.take_forwarders()) {
            self.forwards_listening = (0..forwards.len()).filter(|&i| forwards.is_listening(i)).collect();
            self.forwards = Some(forwards);
            return Ok(warnings);
        }
        let dir = forward::dir(&self.spec.config.state_dir, self.spec.sandbox_id);
        let (forwards, warnings) = Forwarders::new(sockets, self.init_pid(), self.user.clone(), dir)?;
        self.forwards = Some(forwards);
        Ok(warnings)
    }

    /// Add forwarder `i` to the tree as a helper slot (started at once); returns the slot.
    fn supervise_forwarder(&mut self, i: usize) -> tree::Slot {
        let name = self.forwards.as_ref().map(|f| f.plan(i).name.clone()).unwrap_or_default();
        // The slot's process is the agent: the placeholder is never called.
        let slot = self.children.push(Box::new(|| Err(std::io::Error::other("forwarder runs in the agent"))));
        self.forward_slots.push((slot, i));
        self.feed(tree::Event::Add { name: format!("forward {name}"), restart: RestartPolicy::HELPER });
        slot
    }

    /// The forwarder of helper slot `slot`, if it is one.
    pub(super) fn forward_slot(&self, slot: tree::Slot) -> Option<usize> {
        self.forward_slots.iter().find(|(s, _)| *s == slot).map(|(_, i)| *i)
    }

    /// Open forwarder `i`; its "pid" is the agent's.
    pub(super) fn start_forwarder(&mut self, i: usize) -> Result<i32, String> {
        let Some(f) = &mut self.forwards else { return Err("no forwarders".into()) };
        if !self.forwards_listening.remove(&i) {
            f.start(i)?;
        }
        let line = f.describe(i);
        self.log(LogLevel::Info, line);
        Ok(std::process::id() as i32)
    }

    pub(super) fn stop_forwarder(&mut self, i: usize) {
        if let Some(f) = &mut self.forwards {
            f.stop(i);
        }
    }

    /// Move what is ready; a failed forwarder is reported to the tree as an exited helper.
    pub(super) fn on_forwarders_ready(&mut self) {
        let Some(f) = &mut self.forwards else { return };
        for (i, why) in f.service() {
            if let Some(slot) = self.forward_slots.iter().find(|(_, f)| *f == i).map(|(s, _)| *s) {
                self.feed(tree::Event::ChildExited { slot, status: why });
            }
        }
    }

    /// `Forward`: open the profile's external forwarder `name` to `port` on the sandbox's
    /// loopback; answered with the new host socket once it listens.
    pub(super) fn forward(&mut self, name: String, port: Option<u16>) {
        let bad = |detail: String| AgentToDaemon::Error(AgentError::BadRequest { detail });
        if self.is_stopping() {
            return self.answer(AgentToDaemon::Error(AgentError::NotRunning));
        }
        let profile = &self.spec.profile;
        let Some(ext) = profile.external_forwarders.iter().find(|e| e.name == name).cloned() else {
            return self.answer(bad(format!("profile {} has no external forwarder {name}", profile.name)));
        };
        let plan = match self.external_plan(&ext, port) {
            Ok(p) => p,
            Err(e) => return self.answer(bad(format!("external_forwarders {name}: {e}"))),
        };
        let open =
            self.forwards.as_ref().map_or(0, |f| f.names().iter().filter(|n| n.starts_with("external ")).count());
        if open >= MAX_EXTERNAL {
            return self.answer(bad(format!("at most {MAX_EXTERNAL} external forwarders per sandbox")));
        }
        let added = self.ensure_forwarders(&[]).and_then(|_| self.forwards.as_mut().expect("created").add(plan));
        let i = match added {
            Ok(i) => i,
            Err(detail) => {
                return self.answer(AgentToDaemon::Error(AgentError::Setup { step: "forward".into(), detail }))
            }
        };
        self.forward_infos.push(ForwarderInfo {
            name: format!("external {name}"),
            direction: SocketDirection::Server,
            proto: SocketProto::Tcp,
            port: port.or(ext.targetport).unwrap_or(0),
        });
        let slot = self.supervise_forwarder(i);
        let listen = self.forwards.as_ref().map(|f| f.plan(i).listen.addr.clone());
        match (self.tree.children.get(slot).map(|c| c.state), listen) {
            (Some(ChildState::Running { .. }), Some(Addr::Path(path))) => {
                self.answer(AgentToDaemon::Forwarded { path })
            }
            _ => {
                let detail = format!("external forwarder {name} did not start (see the sandbox log)");
                self.answer(AgentToDaemon::Error(AgentError::Setup { step: "forward".into(), detail }))
            }
        }
    }

    /// An external forwarder: a unix socket on the host, TCP to the sandbox's loopback.
    fn external_plan(&self, ext: &ExternalForwarder, port: Option<u16>) -> Result<Plan, String> {
        if !matches!(ext.extproto.as_str(), "" | "unix") || !matches!(ext.proto.as_str(), "" | "tcp") {
            return Err(format!("only extproto unix to proto tcp is supported, not {} to {}", ext.extproto, ext.proto));
        }
        let host = match ext.targethost.as_deref() {
            None | Some("localhost") => IpAddr::V4(Ipv4Addr::LOCALHOST),
            Some(h) => match h.parse::<IpAddr>() {
                Ok(ip) if ip.is_loopback() => ip,
                _ => return Err(format!("targethost {h} is not a loopback address")),
            },
        };
        let port = port.or(ext.targetport).filter(|p| *p != 0).ok_or("no port given and no targetport")?;
        let safe: String =
            ext.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
        let dir = forward::dir(&self.spec.config.state_dir, self.spec.sandbox_id);
        let n = self.forward_slots.len();
        Ok(Plan {
            name: format!("external {}:{port}", ext.name),
            kind: Kind::Stream,
            listen: End { side: Side::Host, addr: Addr::Path(dir.join(format!("ext-{safe}-{n}.sock"))) },
            connect: End { side: Side::Sandbox, addr: Addr::Inet(SocketAddr::new(host, port)) },
        })
    }

    /// `ListForwarders`: every forwarder of the sandbox and the state of its slot.
    pub(super) fn list_forwarders(&mut self) {
        let mut list = Vec::new();
        if let Some(f) = &self.forwards {
            for (slot, i) in &self.forward_slots {
                let p = f.plan(*i);
                let state = self.tree.children.get(*slot).map_or("unknown", |c| c.state.name());
                list.push(ForwarderStatus {
                    name: p.name.clone(),
                    listen: p.listen.addr.to_string(),
                    target: p.connect.addr.to_string(),
                    state: state.to_string(),
                });
            }
        }
        self.answer(AgentToDaemon::Forwarders(list));
    }
}
