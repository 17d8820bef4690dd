//! The socket forwarders in the agent's loop: each is a helper slot of the supervision tree
//! whose "process" is the agent itself ([`crate::agent::forward`]): the tree starts, restarts
//! and stops it like any helper, and a forwarder whose listening socket fails is fed back as
//! an exited helper.

use super::runtime::Runtime;
use crate::agent::forward::{self, Forwarders};
use crate::agent::supervise::tree::{self, RestartPolicy};
use oz_wire::LogLevel;

impl Runtime {
    /// Plan the profile's `networking.sockets` and add one helper slot per forwarder.
    pub(super) fn start_forwarders(&mut self) {
        let sockets = self.spec.profile.networking.sockets.clone();
        if sockets.is_empty() {
            return;
        }
        let dir = forward::dir(&self.spec.config.state_dir, self.spec.sandbox_id);
        let (forwards, warnings) = match Forwarders::new(&sockets, self.init_pid(), self.user.clone(), dir) {
            Ok(made) => made,
            Err(e) => return self.warn(format!("socket forwarders: {e}")),
        };
        for w in warnings {
            self.warn(format!("socket forwarder skipped: {w}"));
        }
        let names = forwards.names();
        self.forwards = Some(forwards);
        for (i, name) in names.into_iter().enumerate() {
            // The slot's process is the agent: the placeholder is never called.
            let slot = self.children.push(Box::new(|| Err(std::io::Error::other("forwarder runs in the agent"))));
            self.forward_slots.push((slot, i));
            self.feed(tree::Event::Add { name: format!("forward {name}"), restart: RestartPolicy::HELPER });
        }
    }

    /// The forwarder of helper slot `slot`, if it is one.
    pub(super) fn forward_slot(&self, slot: tree::Slot) -> Option<usize> {
        self.forward_slots.iter().find(|(s, _)| *s == slot).map(|(_, i)| *i)
    }

    /// Open forwarder `i`; its "pid" is the agent's.
    pub(super) fn start_forwarder(&mut self, i: usize) -> Result<i32, String> {
        let Some(f) = &mut self.forwards else { return Err("no forwarders".into()) };
        f.start(i)?;
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
}
