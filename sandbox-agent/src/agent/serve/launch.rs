//! Launching the sandbox for `serve` with the process engineer's [`Sandbox::launch`] (which
//! clones the init: the agent is still single-threaded here) and returns once the init reported
//! the program exec'd.

use super::logpipe::LogPipe;
use crate::agent::sandbox::{Sandbox, SandboxError};
use crate::common::proto as iproto;
use oz_sandbox::user::UserInfo;
use oz_wire::{AgentError, LaunchSpec};
use std::os::fd::{BorrowedFd, OwnedFd};

/// A sandbox whose init runs and whose program was exec'd.
pub struct Started {
    /// None once torn down.
    pub(super) sandbox: Option<Sandbox>,
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
    /// How the init ended (after the teardown).
    init_status: Option<String>,
    /// The host side of the sandbox's X display (`xserver.enabled`).
    pub x11: Option<crate::agent::x11::Session>,
    /// What the X helpers printed while starting (for the log, with oz.conf `log_xpra`).
    pub x11_output: Vec<String>,
}

impl Started {
    /// The sandbox (None once torn down).
    pub fn sandbox(&self) -> Option<&Sandbox> {
        self.sandbox.as_ref()
    }

    /// The seccomp monitor of the sandbox (None with seccomp disabled or once torn down).
    pub fn seccomp(&self) -> Option<&crate::agent::seccomp::Monitor> {
        self.sandbox.as_ref()?.seccomp()
    }

    pub fn channel(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.channel)
    }

    /// Wait for the init (already exited or killed), remove the cgroup: nothing of the
    /// sandbox is left after this.
    pub fn teardown(&mut self) -> Result<(), SandboxError> {
        let done = match self.sandbox.take() {
            Some(sb) => sb.finish().map(|status| self.init_status = Some(status)),
            None => Ok(()),
        };
        if let Some(mut x11) = self.x11.take() {
            x11.stop();
        }
        done
    }

    /// The host pids in the sandbox's cgroup; None without a cgroup or when it cannot be read.
    pub fn cgroup_procs(&self) -> Option<Vec<i32>> {
        let cgroup = self.sandbox.as_ref()?.cgroup()?;
        cgroup.dirs().next()?;
        cgroup.procs().ok()
    }

    /// How the init ended, once torn down.
    pub fn init_status(&self) -> Option<&str> {
        self.init_status.as_deref()
    }

    /// Take over a launched sandbox.
    pub fn new(mut sandbox: Sandbox) -> Result<Started, AgentError> {
        let channel = sandbox.channel().try_clone_to_owned().map_err(|e| sys("dup init channel", e))?;
        let mut logs = Vec::new();
        if let Some(fd) = sandbox.take_log() {
            logs.push(LogPipe::new(fd).map_err(|e| sys("log pipe", e))?);
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
            init_status: None,
            x11: None,
            x11_output: Vec::new(),
        })
    }
}

/// Launch the sandbox of `spec` with the daemon's stdio fds (3 when attached, none for log).
/// With `xserver.enabled` the display is prepared first and `spec` gains what the sandbox needs
/// of it (binds, `DISPLAY`); an in-sandbox X server (Xpra) starts once the sandbox is built,
/// and the program only after the server is ready and the client attached.
pub fn start(spec: &mut LaunchSpec, fds: Vec<OwnedFd>) -> Result<Started, AgentError> {
    let mut logs = Vec::new();
    let mut x11 = match spec.profile.xserver.enabled {
        true => {
            let user =
                UserInfo::resolve(spec.uid).map_err(|e| AgentError::User { uid: spec.uid, detail: e.to_string() })?;
            Some(crate::agent::x11::Session::start(spec, &user).map_err(|e| e.to_wire())?)
        }
        false => None,
    };
    let deferred = x11.as_ref().is_some_and(|x| x.needs_sandbox_server());
    let files = crate::agent::argfiles::arg_files(&spec.args, spec.cwd.as_deref());
    let (sandbox, program_fds) = match deferred {
        true => {
            let mut built = spec.clone();
            built.noexec = true;
            let copies =
                fds.iter().map(|f| f.try_clone()).collect::<Result<Vec<_>, _>>().map_err(|e| sys("dup stdio", e))?;
            (Sandbox::launch_with_files(&built, copies, &files).map_err(|e| e.to_wire())?, fds)
        }
        false => (Sandbox::launch_with_files(spec, fds, &files).map_err(|e| e.to_wire())?, Vec::new()),
    };
    let mut program_pid = sandbox.program_pid();
    let mut program_pty = None;
    let mut x11_output = Vec::new();
    if let Some(x) = x11.as_mut() {
        if deferred {
            x.start_in_sandbox(&sandbox).map_err(|e| e.to_wire())?;
            if !spec.noexec {
                let (pid, pty) = run_program(&sandbox, spec, program_fds, &mut logs)?;
                program_pid = Some(pid);
                program_pty = pty;
            }
        }
        let (fd, early) = x.take_output();
        if let Some(fd) = fd {
            logs.push(LogPipe::new(fd).map_err(|e| sys("log pipe", e))?);
        }
        x11_output = early;
    }
    let mut started = Started::new(sandbox)?;
    started.program_pid = program_pid;
    if program_pty.is_some() {
        started.pty = program_pty;
    }
    logs.append(&mut started.logs);
    started.logs = logs;
    if let Some(x) = x11.as_mut() {
        started.warnings.append(&mut x.warnings);
    }
    started.x11 = x11;
    started.x11_output = x11_output;
    Ok(started)
}

/// Start the program of `spec` in the built sandbox (after its X server): the daemon's fds when
/// attached, a new pty on a terminal, else a new log pipe. Returns its pid once it was exec'd,
/// and the pty's master.
fn run_program(
    sandbox: &Sandbox,
    spec: &LaunchSpec,
    fds: Vec<OwnedFd>,
    logs: &mut Vec<LogPipe>,
) -> Result<(i32, Option<OwnedFd>), AgentError> {
    let request = Sandbox::relaunch_request(spec).map_err(|e| e.to_wire())?;
    let stdio = match spec.stdio {
        oz_wire::StdioMode::Attached => fds,
        // The init opens the pty and sends its master with the reply.
        oz_wire::StdioMode::Pty { .. } => Vec::new(),
        oz_wire::StdioMode::Log => {
            let null = std::fs::File::open("/dev/null").map_err(|e| sys("open /dev/null", e))?;
            let (read, write) = super::logpipe::pipe().map_err(|e| sys("pipe", e))?;
            let write2 = write.try_clone().map_err(|e| sys("dup", e))?;
            logs.push(read);
            vec![null.into(), write, write2]
        }
    };
    let raw: Vec<_> = stdio.iter().map(std::os::fd::AsRawFd::as_raw_fd).collect();
    match sandbox.ask(&request, &raw).map_err(|e| e.to_wire())? {
        (iproto::InitToAgent::Launched { pid }, fds) => {
            let pty = matches!(spec.stdio, oz_wire::StdioMode::Pty { .. }).then(|| fds.into_iter().next()).flatten();
            Ok((pid, pty))
        }
        (iproto::InitToAgent::Failed { error }, _) => Err(agent_error(&error, None)),
        (msg, _) => {
            Err(AgentError::UnexpectedReply { expected: "Launched from the init".into(), received: format!("{msg:?}") })
        }
    }
}

/// A failed system call of the agent, with its errno.
fn sys(op: &str, e: impl Into<std::io::Error>) -> AgentError {
    AgentError::Sys { op: op.into(), errno: e.into().raw_os_error().unwrap_or(libc::EIO) }
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
