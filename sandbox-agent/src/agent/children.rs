//! Helper processes the agent starts on the host side for its sandbox (an X server, an X
//! client, a network forwarder): the effects of the helper slots of the supervision tree
//! ([`crate::agent::supervise::tree`]).
//!
//! A helper is described by a [`ChildSpec`]: a name, a [`RestartPolicy`] and a spawn function
//! that starts one instance and returns its pid. The event loop adds it with
//! `Runtime::add_child`; from then on the tree decides when it is (re)started or stopped, and
//! this module only performs that:
//!
//! - spawn: the agent is single-threaded, so a spawn function may fork and exec (use
//!   [`command`] for a [`Command`]: the child gets `PR_SET_PDEATHSIG(SIGKILL)` so it never
//!   outlives the agent);
//! - exit: the loop reads SIGCHLD from its signalfd and [`Children::reap`] waits for each
//!   helper pid (never `waitpid(-1)`: the init is reaped by the sandbox teardown);
//! - stop: SIGTERM; what still runs when the sandbox has ended is killed and reaped
//!   ([`Children::kill_all`]).
//!
//! Children that run inside the sandbox are started by the init (`RunProgram`, `Shell`) and
//! reported with their [`crate::common::proto::ProcessRole`]; they are not helper slots.

use crate::agent::supervise::tree::{RestartPolicy, Slot};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Starts one instance of a helper; returns its pid (a child of the agent).
pub type SpawnFn = Box<dyn FnMut() -> std::io::Result<Pid>>;

/// A helper slot to supervise.
pub struct ChildSpec {
    /// For logs and health reports (`xpra-server`, `forward tcp:8080`).
    pub name: String,
    pub restart: RestartPolicy,
    pub spawn: SpawnFn,
}

/// A spawn function for `cmd`: fork + exec, the child dies with the agent.
pub fn command(mut cmd: Command) -> SpawnFn {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| match libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        });
    }
    Box::new(move || {
        // The handle is dropped without waiting: the pid is reaped by `Children::reap`.
        let child = cmd.spawn()?;
        Ok(Pid::from_raw(child.id() as i32))
    })
}

/// Why a helper did not start.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("no helper slot {slot}")]
    NoSlot { slot: Slot },
    #[error("{source}")]
    Spawn { source: std::io::Error },
}

/// The helper slots' spawn functions and live pids, indexed by [`Slot`].
#[derive(Default)]
pub struct Children {
    spawn: Vec<SpawnFn>,
    live: Vec<Option<Pid>>,
}

impl Children {
    /// Register a slot's spawn function; returns the slot (the tree numbers slots the same way).
    pub fn push(&mut self, spawn: SpawnFn) -> Slot {
        self.spawn.push(spawn);
        self.live.push(None);
        self.spawn.len() - 1
    }

    /// Start the helper of `slot`.
    pub fn spawn(&mut self, slot: Slot) -> Result<i32, SpawnError> {
        let f = self.spawn.get_mut(slot).ok_or(SpawnError::NoSlot { slot })?;
        let pid = f().map_err(|source| SpawnError::Spawn { source })?;
        self.live[slot] = Some(pid);
        Ok(pid.as_raw())
    }

    /// Ask the helper of `slot` to terminate.
    pub fn stop(&mut self, slot: Slot, pid: i32) {
        if self.live.get(slot).copied().flatten() == Some(Pid::from_raw(pid)) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }

    /// Reap the helpers that exited: `(slot, status)` for each.
    pub fn reap(&mut self) -> Vec<(Slot, String)> {
        let mut out = Vec::new();
        for (slot, live) in self.live.iter_mut().enumerate() {
            let Some(pid) = *live else { continue };
            let status = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => format!("exited with status {code}"),
                Ok(WaitStatus::Signaled(_, sig, _)) => format!("killed by {sig}"),
                Ok(_) => continue,
                Err(e) => format!("waitpid: {e}"),
            };
            *live = None;
            out.push((slot, status));
        }
        out
    }

    /// SIGKILL and reap every helper still running (the sandbox has ended).
    pub fn kill_all(&mut self) {
        for live in &mut self.live {
            if let Some(pid) = live.take() {
                let _ = kill(pid, Signal::SIGKILL);
                while let Err(nix::errno::Errno::EINTR) = waitpid(pid, None) {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawn_reap_and_kill_real_children() {
        let mut c = Children::default();
        let quick = c.push(command(Command::new("true")));
        let mut sleep = Command::new("sleep");
        sleep.arg("30");
        let slow = c.push(command(sleep));
        let missing = c.push(command(Command::new("/nonexistent/helper")));
        c.spawn(quick).unwrap();
        let pid = c.spawn(slow).unwrap();
        assert!(c.spawn(missing).is_err());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let reaped = loop {
            let r = c.reap();
            if !r.is_empty() || std::time::Instant::now() > deadline {
                break r;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(reaped, vec![(quick, "exited with status 0".to_string())]);
        c.stop(slow, pid);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let reaped = loop {
            let r = c.reap();
            if !r.is_empty() || std::time::Instant::now() > deadline {
                break r;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        assert_eq!(reaped, vec![(slow, "killed by SIGTERM".to_string())]);
        c.kill_all();
    }
}
