//! Launching the sandbox for `serve` with the process engineer's [`Sandbox::launch`] (which
//! clones the init: the agent is still single-threaded here) and returns once the init reported
//! the program exec'd.

use super::logpipe::LogPipe;
use crate::common::proto as iproto;
use crate::agent::sandbox::Sandbox;
use oz_sandbox::user::UserInfo;
use oz_wire::{AgentError, LaunchSpec};
use std::os::fd::{BorrowedFd, OwnedFd};

/// A sandbox whose init runs and whose program was exec'd.
pub struct Started {
    /// None once torn down.
    sandbox: Option<Sandbox>,
    pub init_pid: i32,
    /// The program's pid inside the sandbox (None with noexec).
    pub program_pid: Option<i32>,
    pub user: UserInfo,
    /// Read end of the program's output (StdioMode::Log).
    pub logs: Vec<LogPipe>,
    /// The program's pty master (StdioMode::Pty), sent to the daemon with `Ready`.
    pub pty: Option<OwnedFd>,
    /// Problems of the build that did not stop it (skipped whitelist items, ...).
    pub warnings: Vec<String>,
    /// The init's channel, kept open after the teardown so poll() never sees a closed fd.
    channel: OwnedFd,
}

impl Started {
    pub fn channel(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.channel)
    }

    /// Wait for the init (already exited or killed), remove the cgroup: nothing of the
    /// sandbox is left after this.
    pub fn teardown(&mut self) -> Result<(), String> {
        match self.sandbox.take() {
            Some(sb) => sb.finish().map(drop).map_err(|e| e.to_string()),
            None => Ok(()),
        }
    }
}

/// Launch the sandbox of `spec` with the daemon's stdio fds (3 when attached, none for log).
pub fn start(spec: &LaunchSpec, fds: Vec<OwnedFd>) -> Result<Started, AgentError> {
    let files = crate::agent::argfiles::arg_files(&spec.args, spec.cwd.as_deref());
    let mut sandbox = Sandbox::launch_with_files(spec, fds, &files).map_err(|e| e.to_wire())?;
    let sys = |op: &str, errno: Option<i32>| AgentError::Sys { op: op.into(), errno: errno.unwrap_or(0) };
    let channel = sandbox.channel().try_clone_to_owned().map_err(|e| sys("dup init channel", e.raw_os_error()))?;
    let mut logs = Vec::new();
    if let Some(fd) = sandbox.take_log() {
        logs.push(LogPipe::new(fd).map_err(|e| sys("log pipe", Some(e as i32)))?);
    }
    Ok(Started {
        init_pid: sandbox.init_pid().as_raw(),
        program_pid: sandbox.program_pid(),
        user: sandbox.user().clone(),
        warnings: sandbox.warnings().to_vec(),
        pty: sandbox.take_pty(),
        sandbox: Some(sandbox),
        logs,
        channel,
    })
}

/// The wire form of an init failure; `path` names the object of a mount/umount request.
pub(crate) fn agent_error(e: &iproto::InitError, path: Option<&std::path::PathBuf>) -> AgentError {
    use iproto::Step;
    let object = || path.cloned().unwrap_or_else(|| e.object.clone().unwrap_or_default().into());
    match e.step {
        Step::Exec => AgentError::Exec { path: object(), errno: e.errno },
        Step::Mount if e.errno != 0 => AgentError::Mount { path: object(), errno: e.errno },
        Step::Umount if e.errno != 0 => AgentError::Umount { path: object(), errno: e.errno },
        Step::Pty => AgentError::Pty { errno: e.errno },
        Step::Seccomp => AgentError::Seccomp { detail: e.to_string() },
        _ => AgentError::Setup { step: e.step.as_str().into(), detail: e.to_string() },
    }
}
