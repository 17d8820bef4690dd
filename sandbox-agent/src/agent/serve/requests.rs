//! Daemon requests (RunProgram, Shell, Mount, Umount, Shutdown, Ping) and the init's replies.
//!
//! The init answers every request exactly once, with the request's id: the agent keeps what it
//! asked by id ([`Pending`]) and turns each reply into the answer to the daemon request it
//! serves (by that request's id) without blocking.

use super::launch::agent_error;
use super::logpipe;
use super::runtime::Runtime;
use crate::agent::mountinject;
use crate::agent::supervise::{Event, Phase};
use crate::common::proto::{AgentToInit, InitRequestId, InitToAgent, ProcessRole, ShellRequest};
use oz_wire::{AgentError, AgentToDaemon, DaemonToAgent, LogLevel, RequestId, SandboxState, StdioMode, WireError};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;

/// A request sent to the init whose reply is still due. `answer` is the daemon request the
/// reply answers (None when the daemon that asked has gone, or nobody asked: the reply is then
/// dropped).
#[derive(Debug)]
pub enum Pending {
    RunProgram {
        answer: Option<RequestId>,
    },
    Shell {
        answer: Option<RequestId>,
    },
    /// One path of a `Mount` batch; `last` closes the batch.
    MountPart {
        path: PathBuf,
        last: bool,
        answer: Option<RequestId>,
    },
    Umount {
        path: PathBuf,
        answer: Option<RequestId>,
    },
    Shutdown,
}

impl Pending {
    /// The daemon that asked went away.
    pub fn orphan(&mut self) {
        match self {
            Pending::RunProgram { answer } | Pending::Shell { answer } => *answer = None,
            Pending::MountPart { answer, .. } | Pending::Umount { answer, .. } => *answer = None,
            Pending::Shutdown => {}
        }
    }
}

/// One answer owed to the daemon, with the id of the request it answers. Answers go out in the
/// order of the requests, so an immediate answer waits behind one still due from the init.
#[derive(Debug)]
pub enum Slot {
    /// Due from the init.
    Due(RequestId),
    /// A `Shutdown` request: answered by `ShuttingDown` once the sandbox is gone.
    DueShutdown(RequestId),
    Ready(RequestId, AgentToDaemon, Vec<OwnedFd>),
}

/// The phase the daemon lists for a supervision phase.
pub(super) fn reported_phase(phase: &Phase) -> SandboxState {
    match phase {
        Phase::Running => SandboxState::Running,
        Phase::Watchdog | Phase::Confirming { .. } | Phase::Lingering => SandboxState::Lingering,
        Phase::ShuttingDown(_) | Phase::Ended => SandboxState::ShuttingDown,
    }
}

/// The init answered a request with a message it does not accept.
fn unexpected_init_reply(expected: &str, received: &InitToAgent) -> AgentError {
    AgentError::UnexpectedReply { expected: format!("{expected} from the init"), received: format!("{received:?}") }
}

/// The results so far of the `Mount` batch being answered.
#[derive(Debug, Default)]
pub struct MountBatch {
    done: Vec<PathBuf>,
    error: Option<AgentError>,
}

impl Runtime {
    /// Answer the current request now (after any answer still due).
    pub(super) fn answer(&mut self, msg: AgentToDaemon) {
        self.answers.push_back(Slot::Ready(self.current, msg, Vec::new()));
        self.flush_answers();
    }

    /// The current request is answered by the init's reply: keep its place.
    fn answer_later(&mut self) {
        self.answers.push_back(Slot::Due(self.current));
    }

    /// The init replied: fill the answer due to daemon request `re` and send what is in order
    /// (after the record, if the reply changed it, so that the daemon lists what the answer says).
    fn complete(&mut self, re: RequestId, msg: AgentToDaemon, fds: Vec<OwnedFd>) {
        self.sync_record();
        if let Some(slot) = self.answers.iter_mut().find(|s| matches!(s, Slot::Due(id) if *id == re)) {
            *slot = Slot::Ready(re, msg, fds);
        }
        self.flush_answers();
    }

    fn flush_answers(&mut self) {
        while matches!(self.answers.front(), Some(Slot::Ready(..))) {
            let Some(Slot::Ready(re, msg, fds)) = self.answers.pop_front() else { unreachable!() };
            let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
            self.reply_daemon(re, msg, &borrowed);
        }
    }

    /// The sandbox is gone: answers the init will never give become errors, shutdown requests
    /// get `ShuttingDown`. Returns whether any shutdown request was answered.
    pub(super) fn final_answers(&mut self, shutting_down: &AgentToDaemon) -> bool {
        let mut answered = false;
        for slot in self.answers.iter_mut() {
            match slot {
                Slot::Due(re) => *slot = Slot::Ready(*re, AgentToDaemon::Error(AgentError::NotRunning), Vec::new()),
                Slot::DueShutdown(re) => {
                    *slot = Slot::Ready(*re, shutting_down.clone(), Vec::new());
                    answered = true;
                }
                Slot::Ready(..) => {}
            }
        }
        self.flush_answers();
        answered
    }

    /// Read every message the daemon has sent (the socket is non-blocking: nothing pending is
    /// `Timeout`), so that its side never waits for us.
    pub(super) fn on_daemon_readable(&mut self) {
        while let Some(d) = &self.daemon {
            match d.recv_request() {
                Ok((id, msg, fds)) => {
                    self.current = id;
                    match msg {
                        Ok(msg) => self.on_daemon_message(msg, fds),
                        Err(e) => {
                            self.warn(format!("daemon request {id}: {e}"));
                            self.answer(AgentToDaemon::Error(AgentError::BadRequest { detail: e.to_string() }));
                        }
                    }
                }
                Err(WireError::Timeout) => return,
                Err(e) if e.is_disconnect() => return self.feed(Event::DaemonLost),
                // A broken socket (not just a bad message) is as good as gone.
                Err(e @ WireError::Io { .. }) => {
                    self.warn(format!("daemon channel: {e}"));
                    return self.feed(Event::DaemonLost);
                }
                // Too short to carry a request id: refused with an `Error` event.
                Err(e) => {
                    self.warn(format!("daemon message: {e}"));
                    self.send_daemon(AgentToDaemon::Error(AgentError::BadRequest { detail: e.to_string() }), &[]);
                }
            }
        }
    }

    fn on_daemon_message(&mut self, msg: DaemonToAgent, fds: Vec<OwnedFd>) {
        let refuse = |detail: String| AgentToDaemon::Error(AgentError::Unsupported { detail });
        match msg {
            DaemonToAgent::Ping => self.answer(AgentToDaemon::Pong),
            DaemonToAgent::Shutdown { reason } => {
                self.answers.push_back(Slot::DueShutdown(self.current));
                self.feed(Event::ShutdownRequested { reason });
            }
            DaemonToAgent::RunProgram { args, cwd, caller_env, stdio } => {
                self.run_program(args, cwd, caller_env, stdio, fds)
            }
            DaemonToAgent::Shell { uid, term, cols, rows } => self.shell(uid, term, cols, rows),
            DaemonToAgent::Mount { uid, paths, read_only } => self.mount(uid, paths, read_only),
            DaemonToAgent::Umount { uid, path } => self.umount(uid, path),
            DaemonToAgent::Hello { .. } => self.answer(refuse("hello already exchanged".into())),
            DaemonToAgent::Launch(_) => self.answer(refuse("this agent already runs a sandbox".into())),
            DaemonToAgent::RelaunchXpra => self.relaunch_xpra(),
            DaemonToAgent::Forward { name, port } => self.forward(name, port),
            DaemonToAgent::ListForwarders => self.list_forwarders(),
        }
    }

    fn relaunch_xpra(&mut self) {
        if self.stopping() {
            return;
        }
        match self.started.x11.as_mut().and_then(|x| x.relaunch_client()) {
            Some(line) => {
                self.log(LogLevel::Info, line);
                self.answer(AgentToDaemon::XpraRelaunched);
            }
            None => self.answer(AgentToDaemon::Error(AgentError::Unsupported {
                detail: "this sandbox has no xpra client".into(),
            })),
        }
    }

    fn stopping(&mut self) -> bool {
        if self.is_stopping() {
            self.answer(AgentToDaemon::Error(AgentError::NotRunning));
            return true;
        }
        false
    }

    fn run_program(
        &mut self,
        args: Vec<String>,
        cwd: Option<PathBuf>,
        caller_env: Vec<(String, String)>,
        stdio: StdioMode,
        fds: Vec<OwnedFd>,
    ) {
        if self.stopping() {
            return;
        }
        // The launch spec with this request's arguments, directory and environment.
        let mut spec = self.spec.clone();
        spec.args = args;
        spec.cwd = cwd;
        spec.caller_env = caller_env;
        spec.stdio = stdio;
        let request = match crate::agent::sandbox::Sandbox::relaunch_request(&spec) {
            Ok(r) => r,
            Err(e) => return self.answer(AgentToDaemon::Error(e.to_wire())),
        };
        let stdio_fds = match stdio {
            StdioMode::Attached if fds.len() == 3 => fds,
            StdioMode::Pty { .. } if fds.is_empty() => fds,
            StdioMode::Pty { .. } => {
                let detail = format!("pty stdio takes no fds, got {}", fds.len());
                return self.answer(AgentToDaemon::Error(AgentError::BadRequest { detail }));
            }
            StdioMode::Attached => {
                let detail = format!("attached stdio needs 3 fds, got {}", fds.len());
                return self.answer(AgentToDaemon::Error(AgentError::BadRequest { detail }));
            }
            StdioMode::Log => match self.log_stdio() {
                Ok(fds) => fds,
                Err(e) => {
                    return self.answer(AgentToDaemon::Error(AgentError::Sys {
                        op: "pipe".into(),
                        errno: e.raw_os_error().unwrap_or(0),
                    }))
                }
            },
        };
        if spec.profile.allow_files {
            let candidates = crate::agent::argfiles::arg_files(&spec.args, spec.cwd.as_deref());
            if let Some(path) = crate::agent::argfiles::outside_user_trees(&self.user, &candidates) {
                return self.answer(AgentToDaemon::Error(crate::agent::argfiles::refused(&self.user, &path)));
            }
            self.mount_arg_files(&spec);
        }
        let raw: Vec<_> = stdio_fds.iter().map(|f| f.as_raw_fd()).collect();
        if let Some(id) = self.send_init(&request, &raw) {
            self.pending.insert(id, Pending::RunProgram { answer: Some(self.current) });
            self.answer_later();
        } else {
            self.answer(AgentToDaemon::Error(AgentError::NotRunning));
        }
    }

    /// stdin from /dev/null, stdout and stderr into a new log pipe (read end kept here).
    pub(super) fn log_stdio(&mut self) -> std::io::Result<Vec<OwnedFd>> {
        let null = std::fs::File::open("/dev/null")?;
        let (read, write) = logpipe::pipe()?;
        let write2 = write.try_clone()?;
        self.logs.push(read);
        Ok(vec![null.into(), write, write2])
    }

    fn shell(&mut self, uid: u32, term: String, cols: u16, rows: u16) {
        if self.stopping() {
            return;
        }
        let req = if uid == self.user.uid {
            ShellRequest {
                uid,
                gid: self.user.gid,
                groups: self.user.sandbox_groups(&self.spec.config.default_groups, &self.spec.profile.allowed_groups),
                home: self.user.home.clone(),
                term: Some(term).filter(|t| !t.is_empty()),
                cols,
                rows,
            }
        } else if uid == 0 && self.spec.config.allow_root_shell {
            ShellRequest {
                uid: 0,
                gid: 0,
                groups: vec![],
                home: "/".into(),
                term: Some(term).filter(|t| !t.is_empty()),
                cols,
                rows,
            }
        } else {
            let detail = if uid == 0 {
                "root shells are disabled (oz.conf allow_root_shell)".to_string()
            } else {
                format!("not the owner of sandbox {}", self.spec.sandbox_id)
            };
            return self.answer(AgentToDaemon::Error(AgentError::User { uid, detail }));
        };
        if let Some(id) = self.send_init(&AgentToInit::Shell(req), &[]) {
            self.pending.insert(id, Pending::Shell { answer: Some(self.current) });
            self.answer_later();
        } else {
            self.answer(AgentToDaemon::Error(AgentError::NotRunning));
        }
    }

    /// Only the owner (or root acting for them) may mount into or unmount from the sandbox.
    fn check_owner(&mut self, uid: u32) -> bool {
        if uid == self.user.uid || uid == 0 {
            return true;
        }
        let detail = format!("not the owner of sandbox {}", self.spec.sandbox_id);
        self.answer(AgentToDaemon::Error(AgentError::User { uid, detail }));
        false
    }

    fn mount(&mut self, uid: u32, paths: Vec<PathBuf>, read_only: bool) {
        if self.stopping() || !self.check_owner(uid) {
            return;
        }
        if paths.is_empty() {
            return self.answer(AgentToDaemon::Mounted { paths: vec![] });
        }
        // Open everything on the host side first: one refused path refuses the whole request.
        // One mount per path: a path mounted (or being mounted) already is refused.
        let mut trees: Vec<(PathBuf, OwnedFd)> = Vec::with_capacity(paths.len());
        for p in &paths {
            match mountinject::prepare(&self.user, p) {
                Ok((target, _)) if self.mounted_or_due(&target) || trees.iter().any(|(t, _)| *t == target) => {
                    let e = mountinject::MountError::AlreadyMounted { path: target };
                    return self.answer(AgentToDaemon::Error(e.to_agent_error()));
                }
                Ok(t) => trees.push(t),
                Err(e) => return self.answer(AgentToDaemon::Error(e.to_agent_error())),
            }
        }
        self.answer_later();
        let (n, re) = (trees.len(), self.current);
        let mut sent = None;
        for (i, (target, tree)) in trees.into_iter().enumerate() {
            let req = AgentToInit::Mount { target: target.clone(), read_only };
            let Some(id) = self.send_init(&req, &[tree.as_fd().as_raw_fd()]) else {
                // The init is gone: the batch ends with the parts already sent.
                self.mount_batch.error.get_or_insert(AgentError::NotRunning);
                match sent.and_then(|id| self.pending.get_mut(&id)) {
                    Some(Pending::MountPart { last, .. }) => *last = true,
                    _ => self.complete(re, AgentToDaemon::Error(AgentError::NotRunning), Vec::new()),
                }
                return;
            };
            self.pending.insert(id, Pending::MountPart { path: target, last: i + 1 == n, answer: Some(re) });
            sent = Some(id);
        }
    }

    /// Whether `target` is mounted by this agent or a mount of it is on its way.
    fn mounted_or_due(&self, target: &std::path::Path) -> bool {
        self.mounts.contains(target)
            || self.pending.values().any(|p| matches!(p, Pending::MountPart { path, .. } if path == target))
    }

    /// A second launch into this sandbox: its argument files are mounted in (as `oz mount`
    /// would, beneath the owner's home, read-write and noexec) before the program starts. Which
    /// arguments are files is decided with the user's credentials. The init handles requests in
    /// order, so they are in place when it runs; failures are logged, not answered.
    fn mount_arg_files(&mut self, spec: &oz_wire::LaunchSpec) {
        let mut trees: Vec<(PathBuf, OwnedFd)> = Vec::new();
        let candidates = crate::agent::argfiles::arg_files(&spec.args, spec.cwd.as_deref());
        for file in crate::agent::argfiles::accessible(&self.user, &candidates) {
            match mountinject::prepare(&self.user, &file) {
                Ok((target, _)) if self.mounted_or_due(&target) || trees.iter().any(|(t, _)| *t == target) => {}
                Ok(tree) => trees.push(tree),
                Err(e) => self.warn(format!("argument file {}: {}", file.display(), e.to_agent_error())),
            }
        }
        let n = trees.len();
        for (i, (target, tree)) in trees.into_iter().enumerate() {
            let req = AgentToInit::Mount { target: target.clone(), read_only: false };
            let Some(id) = self.send_init(&req, &[tree.as_fd().as_raw_fd()]) else { return };
            self.pending.insert(id, Pending::MountPart { path: target, last: i + 1 == n, answer: None });
        }
    }

    fn umount(&mut self, uid: u32, path: PathBuf) {
        if self.stopping() || !self.check_owner(uid) {
            return;
        }
        let target = match self.mounts.check_umount(&self.user.home, &path) {
            Ok(t) => t,
            Err(e) => return self.answer(AgentToDaemon::Error(e.to_agent_error())),
        };
        if let Some(id) = self.send_init(&AgentToInit::Umount { target: target.clone() }, &[]) {
            self.pending.insert(id, Pending::Umount { path: target, answer: Some(self.current) });
            self.answer_later();
        } else {
            self.answer(AgentToDaemon::Error(AgentError::NotRunning));
        }
    }

    pub(super) fn on_init_message(&mut self, re: Option<InitRequestId>, msg: InitToAgent, fds: Vec<OwnedFd>) {
        match msg {
            InitToAgent::Exited { pid, comm, role, status } => {
                // Output first: the program's last lines come before its exit.
                self.drain_logs();
                self.seccomp_exit(pid, &comm, status);
                if role == ProcessRole::Program {
                    self.seccomp_program_exited();
                }
                match role {
                    ProcessRole::Program | ProcessRole::Relaunch => {
                        self.send_daemon(AgentToDaemon::ProgramExited { pid: pid as u32, status }, &[]);
                        self.feed(Event::ProgramExited { pid });
                    }
                    ProcessRole::Shell => {
                        self.send_daemon(AgentToDaemon::ShellExited { pid: pid as u32, status }, &[]);
                        self.feed(Event::ProcessExited { comm });
                    }
                    ProcessRole::Other => {
                        self.send_daemon(
                            AgentToDaemon::ProcessExited { pid: pid as u32, comm: comm.clone(), status },
                            &[],
                        );
                        self.feed(Event::ProcessExited { comm });
                    }
                }
            }
            // Start-up messages were consumed by the launch; late ones carry no news.
            InitToAgent::Ready { .. } | InitToAgent::ProgramFailed { .. } => {}
            InitToAgent::SeccompListener { .. } => self.seccomp_listener(fds),
            reply => {
                self.on_init_reply(re, reply, fds);
                // Also when nobody is answered (the daemon that asked has gone).
                self.sync_record();
            }
        }
    }

    fn on_init_reply(&mut self, re: Option<InitRequestId>, reply: InitToAgent, fds: Vec<OwnedFd>) {
        let Some(pending) = re.and_then(|id| self.pending.remove(&id)) else {
            self.warn(format!("init reply {reply:?} to no pending request ({re:?})"));
            return;
        };
        match (pending, reply) {
            (Pending::RunProgram { answer }, InitToAgent::Launched { pid }) => {
                self.feed(Event::ProgramStarted { pid });
                if let Some(re) = answer {
                    // A pty master comes with a relaunch on a pty.
                    let init_pid = self.init_pid() as u32;
                    self.complete(re, AgentToDaemon::Ready { init_pid, program_pid: Some(pid as u32) }, fds);
                }
            }
            (Pending::Shell { answer }, InitToAgent::ShellStarted { pid }) => {
                let Some(re) = answer else { return };
                match fds.len() {
                    1 => self.complete(re, AgentToDaemon::ShellOpened { pid: pid as u32 }, fds),
                    _ => self.complete(re, AgentToDaemon::Error(AgentError::Pty { errno: libc::EBADF }), Vec::new()),
                }
            }
            (Pending::MountPart { path, last, answer }, reply) => self.mount_reply(path, last, answer, reply),
            (Pending::Umount { path, answer }, reply) => {
                let msg = match reply {
                    InitToAgent::Unmounted { .. } => {
                        self.mounts.remove(&path);
                        AgentToDaemon::Unmounted
                    }
                    InitToAgent::Failed { error } => AgentToDaemon::Error(agent_error(&error, Some(&path))),
                    other => AgentToDaemon::Error(unexpected_init_reply("Unmounted", &other)),
                };
                if let Some(re) = answer {
                    self.complete(re, msg, Vec::new());
                }
            }
            (Pending::Shutdown, _) => {}
            (Pending::RunProgram { answer } | Pending::Shell { answer }, InitToAgent::Failed { error }) => {
                if let Some(re) = answer {
                    self.complete(re, AgentToDaemon::Error(agent_error(&error, None)), Vec::new());
                }
            }
            (pending, reply) => {
                self.warn(format!("init answered {reply:?} to {pending:?}"));
            }
        }
    }

    fn mount_reply(&mut self, path: PathBuf, last: bool, answer: Option<RequestId>, reply: InitToAgent) {
        match reply {
            InitToAgent::Mounted { .. } => {
                self.mounts.insert(path.clone());
                self.mount_batch.done.push(path);
            }
            InitToAgent::Failed { error } => {
                let e = agent_error(&error, Some(&path));
                self.mount_batch.error.get_or_insert(e);
            }
            other => {
                let e = unexpected_init_reply("Mounted", &other);
                self.mount_batch.error.get_or_insert(e);
            }
        }
        if !last {
            return;
        }
        let batch = std::mem::take(&mut self.mount_batch);
        let Some(re) = answer else {
            if let Some(e) = batch.error {
                self.warn(format!("mount: {e}"));
            }
            return;
        };
        let msg = match batch.error {
            Some(e) => AgentToDaemon::Error(e),
            None => AgentToDaemon::Mounted { paths: batch.done },
        };
        self.complete(re, msg, Vec::new());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::supervise::ShutdownReason;

    #[test]
    fn the_daemon_lists_the_phase_supervision_decided() {
        assert_eq!(reported_phase(&Phase::Running), SandboxState::Running);
        for kept in [Phase::Watchdog, Phase::Confirming { after_watchdog: false }, Phase::Lingering] {
            assert_eq!(reported_phase(&kept), SandboxState::Lingering, "{kept:?}");
        }
        assert_eq!(reported_phase(&Phase::ShuttingDown(ShutdownReason::ProgramExited)), SandboxState::ShuttingDown);
        assert_eq!(reported_phase(&Phase::Ended), SandboxState::ShuttingDown);
    }
}
