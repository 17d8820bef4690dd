//! One agent spawned ahead of the next launch. The daemon's fork, the exec of `oz-agent` and its
//! start-up (dynamic loading, argument parsing) until it waits for the daemon's `Hello` cost
//! about 1-2 ms of every launch; an agent spawned in advance has done all that when a launch
//! claims it, and the next one is spawned once that launch has been answered.
//!
//! A waiting agent has no sandbox, record, cgroup or rendezvous socket: it only waits for the
//! `Hello` on its channel and exits when the channel closes (the daemon stopped or died). Its
//! stderr goes to an unnamed file in the log directory, which gets the sandbox's name when a
//! launch claims the agent, and disappears with it otherwise.

use crate::logs::LogHub;
use crate::spawn::{self, Spawned};
use std::cell::{Cell, RefCell};
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Child;

/// An agent waiting for its launch.
struct Waiting {
    /// None once claimed (the reaper waits for it then).
    child: Option<Child>,
    channel: OwnedFd,
    path: PathBuf,
    output: Option<File>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The daemon's agent in waiting (the daemon's tasks run on one thread).
#[derive(Default)]
pub struct Warm {
    slot: RefCell<Option<Waiting>>,
    /// The daemon is stopping: no agent is spawned any more (a connection that ends during the
    /// shutdown would otherwise refill the slot).
    closed: Cell<bool>,
}

impl Warm {
    /// The waiting agent if it is `agent_path`'s and still alive, for sandbox `id`: its stderr
    /// file is named for the sandbox and the reaper takes it over.
    pub fn take(&self, agent_path: &Path, id: u64, hub: &LogHub) -> Option<Spawned> {
        let mut w = self.slot.borrow_mut().take()?;
        let alive = w.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)));
        if w.path != agent_path || !alive {
            return None;
        }
        let channel = w.channel.try_clone().ok()?;
        let child = w.child.take()?;
        let pid = child.id();
        spawn::reap(child).ok()?;
        if let Some(f) = &w.output {
            hub.name_agent_stderr(id, f);
        }
        Some(Spawned { pid, channel })
    }

    /// Spawn an agent of `agent_path` to wait for the next launch, unless one waits already.
    /// A failure is left to the launch that would have used it; where the log directory cannot
    /// hold an unnamed file, launches spawn their agents themselves (with a named one).
    pub fn refill(&self, agent_path: &Path, hub: &LogHub) {
        if self.closed.get() || self.slot.borrow().is_some() {
            return;
        }
        let Ok(output) = hub.unnamed_agent_stderr() else { return };
        let copy = output.as_ref().and_then(|f| f.try_clone().ok());
        if let Ok((child, channel)) = spawn::spawn_child(agent_path, copy) {
            *self.slot.borrow_mut() =
                Some(Waiting { child: Some(child), channel, path: agent_path.to_path_buf(), output });
        }
    }

    /// Stop the waiting agent, and spawn none from now on (the daemon stops).
    pub fn clear(&self) {
        self.closed.set(true);
        self.slot.borrow_mut().take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Policy;
    use oz_wire::channel::AgentChannel;
    use oz_wire::AgentToDaemon;
    use std::time::{Duration, Instant};

    const NO_FILES: Policy = Policy { max_bytes: 0, keep: 0, retention_days: 0 };

    /// A stand-in agent: waits for a packet on its channel, then answers a raw Pong frame.
    fn script(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(
            &path,
            "#!/bin/sh\ndd bs=64 count=1 <&3 >/dev/null 2>&1\nprintf '\\000\\000\\000\\004\\015\\000\\000\\000' >&3\n",
        )
        .unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        path
    }

    fn gone(pid: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            if stat.is_empty() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn a_launch_takes_the_waiting_agent_of_its_path_once() {
        let dir = tempfile::tempdir().unwrap();
        let (agent, other) = (script(dir.path(), "agent"), script(dir.path(), "other"));
        let hub = LogHub::new(None, NO_FILES);
        let warm = Warm::default();
        warm.refill(&agent, &hub);
        let pid = warm.slot.borrow().as_ref().unwrap().child.as_ref().unwrap().id();
        // Refilling a full slot spawns nothing.
        warm.refill(&agent, &hub);
        assert_eq!(warm.slot.borrow().as_ref().unwrap().child.as_ref().unwrap().id(), pid);
        let taken = warm.take(&agent, 1, &hub).expect("the waiting agent");
        assert_eq!(taken.pid, pid);
        assert!(warm.take(&agent, 2, &hub).is_none(), "taken twice");
        // It is the same process, alive, on the channel handed over.
        let ch = AgentChannel::new(taken.channel);
        ch.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        nix::unistd::write(std::os::fd::AsFd::as_fd(&ch), b"go").unwrap();
        assert_eq!(ch.recv().unwrap().0, AgentToDaemon::Pong);
        drop(ch);
        assert!(gone(pid), "the reaper did not reap the claimed agent");
        // An agent of another path is not used, and is stopped.
        warm.refill(&other, &hub);
        let pid = warm.slot.borrow().as_ref().unwrap().child.as_ref().unwrap().id();
        assert!(warm.take(&agent, 3, &hub).is_none());
        assert!(gone(pid), "the unused agent was left running");
    }

    #[test]
    fn clear_stops_the_waiting_agent() {
        let dir = tempfile::tempdir().unwrap();
        let agent = script(dir.path(), "agent");
        let hub = LogHub::new(None, NO_FILES);
        let warm = Warm::default();
        warm.refill(&agent, &hub);
        let pid = warm.slot.borrow().as_ref().unwrap().child.as_ref().unwrap().id();
        warm.clear();
        assert!(gone(pid));
        assert!(warm.take(&agent, 1, &hub).is_none());
        warm.refill(&agent, &hub);
        assert!(warm.slot.borrow().is_none(), "an agent was spawned after the daemon began to stop");
    }
}
