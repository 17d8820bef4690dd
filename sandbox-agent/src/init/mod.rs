//! The sandbox's init: PID 1 of the new PID namespace, a forked child of the agent that stays
//! root (with every capability) for the life of the sandbox, but never runs user code itself.
//!
//! Setup, in order: die with the agent, name itself, UTS names, root filesystem (unsharing
//! the network namespace, and bringing up its loopback, before /proc and /sys),
//! join the sandbox's cgroup (cgroup v1: move itself in; v2: the agent moved it meanwhile) and
//! enter a cgroup namespace rooted there, signal handling, then the launch's program (`Ready` only once it was exec'd). Then it serves
//! the agent's requests (`proto::AgentToInit`), reaps every process of the sandbox, reports each
//! exit, forwards SIGTERM/SIGINT/SIGHUP, and on shutdown kills everything and exits.
//! Single-threaded: poll() over the agent socket and a signalfd.

mod reaper;
mod requests;

use crate::common::proto::{self, AgentToInit, InitError, InitMessage, InitRequestId, InitToAgent, ProcessRole, Step};
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use oz_sandbox::exec::{self, ExecPlan, ProgramStdio};
use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Everything the init needs, prepared by the agent before the clone (the init inherits it).
pub struct InitPlan {
    pub id: u64,
    pub hostname: String,
    pub domainname: String,
    pub loopback: bool,
    /// The root filesystem to build.
    pub rootfs: oz_sandbox::rootfs::RootfsPlan,
    /// Read end of a pipe the agent writes the blacklist to (`rootfs::send_blacklist`) while
    /// the init builds the rest of the root filesystem; None: `rootfs.blacklist` is complete.
    pub blacklist_pipe: Option<OwnedFd>,
    /// Unshare a network namespace of its own (all but `host` networking), during the build
    /// just before /proc and /sys are mounted: off the clone, which the agent waits for, and
    /// while the agent expands the blacklist and compiles the seccomp filter.
    pub new_net: bool,
    /// Bridged networking: the agent configures the new network namespace from outside.
    pub net_gate: Option<NetGate>,
    /// Read end of a pipe the agent writes the program's seccomp filter to
    /// (`seccomp::compile_bytes`, `proto::write_pipe_message`) while the init builds the root
    /// filesystem; None: `program.seccomp` is complete.
    pub seccomp_pipe: Option<OwnedFd>,
    /// The `tasks` files (cgroup v1, opened by the agent) of the sandbox's cgroup: the init
    /// moves itself in by writing 0 to each. A single thread moving itself skips the global lock
    /// whose write side waits for an RCU grace period (5-20 ms) when a whole process moves.
    pub cgroup_tasks: Vec<(String, OwnedFd)>,
    /// Otherwise (cgroup v2) the read end of a pipe: one byte once the agent moved the init into
    /// the sandbox's cgroup, end of file when it could not (the init then gives up).
    pub cgroup_gate: Option<OwnedFd>,
    /// The launch's program; also the template for relaunches and shells.
    pub program: ExecPlan,
    /// stdio of the launch's program; None = `noexec`.
    pub stdio: Option<StartStdio>,
    pub shell_path: CString,
    pub profile: String,
    /// Filled by the setup: the root filesystem build's warnings, sent with `Ready`.
    pub warnings: Vec<String>,
}

/// The two pipes of bridged networking: the init writes one byte to `ready` once its network
/// namespace exists; the agent attaches it to the bridge and writes one byte to `go` (end of
/// file: it could not, and the init gives up before starting anything).
pub struct NetGate {
    pub ready: OwnedFd,
    pub go: OwnedFd,
}

/// How the launch's program gets its stdin, stdout and stderr.
pub enum StartStdio {
    /// Prepared by the agent (its fds or the log pipe).
    Given(ProgramStdio),
    /// A new pty of the sandbox's devpts (cols, rows), opened once the root filesystem is
    /// built; its master goes to the agent with `Ready`.
    Pty(u16, u16),
}

/// The signals the init handles through its signalfd.
fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    set
}

/// Run as the init; never returns.
pub fn run(mut plan: InitPlan, sock: OwnedFd) -> ! {
    let sigfd = match setup(&mut plan) {
        Ok(sigfd) => sigfd,
        Err(error) => {
            let failed = InitMessage { re: None, msg: InitToAgent::ProgramFailed { error } };
            let _ = proto::send(sock.as_fd(), &failed, &[]);
            // SAFETY: leave without unwinding into the agent's copied stack frames.
            unsafe { libc::_exit(1) }
        }
    };
    let mut init = Init::new(&plan, sock, sigfd);
    let code = match init.start(&mut plan) {
        Ok(()) => init.serve(),
        Err(error) => {
            init.send(&InitToAgent::ProgramFailed { error }, &[]);
            1
        }
    };
    // SAFETY: leave without unwinding into the agent's copied stack frames.
    unsafe { libc::_exit(code) }
}

fn setup(plan: &mut InitPlan) -> Result<SignalFd, InitError> {
    // The sandbox lives only as long as its agent.
    // SAFETY: PR_SET_PDEATHSIG takes an integer signal number.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    crate::common::procname::set(&crate::common::procname::init_name(plan.id));
    oz_sandbox::namespaces::set_uts_names(&plan.hostname, &plan.domainname)
        .map_err(|e| InitError::new(Step::Hostname, Some(plan.hostname.clone()), e as i32))?;
    if plan.loopback && !plan.new_net {
        oz_sandbox::namespaces::loopback_up()
            .map_err(|e| InitError::new(Step::Loopback, Some("lo".into()), e as i32))?;
    }
    let deferred = plan.blacklist_pipe.is_some();
    let mut pipe = plan.blacklist_pipe.take();
    let mut blacklist = || {
        oz_sandbox::rootfs::receive_blacklist(
            pipe.take()
                .ok_or(oz_sandbox::rootfs::RootfsError::Sys { what: "receive the blacklist", errno: Errno::EBADF })?,
        )
    };
    let (new_net, loopback) = (plan.new_net, plan.loopback);
    let (mut net_ready, net_go) = match plan.net_gate.take() {
        Some(g) => (Some(g.ready), Some(g.go)),
        None => (None, None),
    };
    let mut join_net = || {
        new_net_namespace(new_net, loopback)?;
        if let Some(ready) = net_ready.take() {
            // A failed write means the agent is gone: the death signal follows.
            let _ = nix::unistd::write(&ready, &[1]);
        }
        Ok(())
    };
    let later = oz_sandbox::rootfs::Deferred {
        before_sysproc: Some(&mut join_net),
        blacklist: if deferred { Some(&mut blacklist) } else { None },
    };
    let report = oz_sandbox::rootfs::build_with(&plan.rootfs, later).map_err(|e| InitError {
        step: Step::Rootfs,
        object: None,
        errno: 0,
        detail: Some(e.to_string()),
    })?;
    plan.warnings = report.warnings;
    join_cgroup(std::mem::take(&mut plan.cgroup_tasks), plan.cgroup_gate.take())?;
    if let Some(pipe) = plan.seccomp_pipe.take() {
        // Without it nothing is ever spawned: the setup fails.
        let bytes = proto::read_pipe_message(pipe)
            .map_err(|e| InitError::new(Step::Seccomp, Some("receive".into()), e.errno().unwrap_or(libc::EPIPE)))?;
        let filter = oz_sandbox::seccomp::from_bytes(&bytes).map_err(|detail| InitError {
            step: Step::Seccomp,
            object: None,
            errno: 0,
            detail: Some(detail),
        })?;
        plan.program.seccomp = Some(filter);
    }
    if let Some(go) = net_go {
        wait_for_byte(go, Step::Network, "the agent could not attach the sandbox to the bridge")?;
    }
    let set = handled_signals();
    set.thread_block().map_err(|e| InitError::new(Step::Signal, None, e as i32))?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| InitError::new(Step::Signal, Some("signalfd".into()), e as i32))
}

/// Sends a spawned process's seccomp listener to the agent, which answers its notifications.
fn forward_listener(sock: std::os::fd::BorrowedFd<'_>, agent: bool) -> impl FnMut(nix::unistd::Pid, OwnedFd) + '_ {
    move |pid, fd| {
        if agent {
            let event = proto::InitMessage { re: None, msg: InitToAgent::SeccompListener { pid: pid.as_raw() } };
            let _ = proto::send(sock, &event, &[fd.as_raw_fd()]);
        }
    }
}

/// Unshare a new network namespace (when `new_net`) and bring its `lo` up when asked.
fn new_net_namespace(new_net: bool, loopback: bool) -> Result<(), oz_sandbox::rootfs::RootfsError> {
    if !new_net {
        return Ok(());
    }
    let err = |what, errno| oz_sandbox::rootfs::RootfsError::Sys { what, errno };
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| err("unshare the network namespace", e))?;
    if loopback {
        oz_sandbox::namespaces::loopback_up().map_err(|e| err("bring up lo", e))?;
    }
    Ok(())
}

/// Block until the agent says the init is inside the sandbox's cgroup (nothing may fork before),
/// then root a new cgroup namespace there.
fn join_cgroup(tasks: Vec<(String, OwnedFd)>, gate: Option<OwnedFd>) -> Result<(), InitError> {
    for (path, fd) in tasks {
        // The init is single-threaded: moving this thread moves the whole process.
        match nix::unistd::write(&fd, b"0") {
            Ok(1) => {}
            Ok(_) => return Err(InitError::new(Step::Cgroup, Some(path), libc::EIO)),
            Err(e) => return Err(InitError::new(Step::Cgroup, Some(path), e as i32)),
        }
    }
    if let Some(gate) = gate {
        wait_for_byte(gate, Step::Cgroup, "the agent could not move the init into the cgroup")?;
    }
    oz_sandbox::namespaces::enter_cgroup_namespace()
        .map_err(|e| InitError::new(Step::Cgroup, Some("unshare".into()), e as i32))
}

/// Block until the agent writes one byte to `gate`; end of file means it could not do its part
/// (`why`), and the setup fails at `step`.
fn wait_for_byte(gate: OwnedFd, step: Step, why: &str) -> Result<(), InitError> {
    let mut byte = [0u8; 1];
    let n = loop {
        match nix::unistd::read(gate.as_raw_fd(), &mut byte) {
            Err(Errno::EINTR) => continue,
            other => break other.map_err(|e| InitError::new(step, None, e as i32))?,
        }
    };
    drop(gate);
    if n != 1 {
        return Err(InitError { step, object: None, errno: 0, detail: Some(why.into()) });
    }
    Ok(())
}

/// The init's running state.
struct Init {
    sock: OwnedFd,
    sigfd: SignalFd,
    /// Processes we started, by pid, with their role.
    tracked: HashMap<i32, ProcessRole>,
    /// What each `Mount` attached, by target, for its `Umount` to check and remove.
    injected: HashMap<PathBuf, requests::Injected>,
    template: ExecPlan,
    shell_path: CString,
    profile: String,
    /// Set once shutdown started: when to SIGKILL what is left.
    deadline: Option<Instant>,
    /// False once the agent closed the channel.
    agent: bool,
}

impl Init {
    fn new(plan: &InitPlan, sock: OwnedFd, sigfd: SignalFd) -> Init {
        Init {
            sock,
            sigfd,
            tracked: HashMap::new(),
            injected: HashMap::new(),
            template: plan.program.clone(),
            shell_path: plan.shell_path.clone(),
            profile: plan.profile.clone(),
            deadline: None,
            agent: true,
        }
    }

    /// Start the launch's program (unless noexec) and send `Ready`.
    fn start(&mut self, plan: &mut InitPlan) -> Result<(), InitError> {
        let warnings = std::mem::take(&mut plan.warnings);
        let (stdio, master) = match plan.stdio.take() {
            Some(StartStdio::Given(stdio)) => (stdio, None),
            Some(StartStdio::Pty(cols, rows)) => {
                let (master, slave) = requests::open_pty(plan.program.creds.uid, cols, rows)?;
                (ProgramStdio::Pty(slave), Some(master))
            }
            None => {
                self.send(&InitToAgent::Ready { pid: None, warnings }, &[]);
                return Ok(());
            }
        };
        let pid =
            exec::spawn_with_listener(&plan.program, stdio, &mut forward_listener(self.sock.as_fd(), self.agent))?;
        self.tracked.insert(pid.as_raw(), ProcessRole::Program);
        let fds: Vec<_> = master.iter().map(|m| m.as_raw_fd()).collect();
        self.send(&InitToAgent::Ready { pid: Some(pid.as_raw()), warnings }, &fds);
        Ok(())
    }

    /// Send an event (`Ready`, `ProgramFailed`, `Exited`).
    fn send(&mut self, msg: &InitToAgent, fds: &[std::os::fd::RawFd]) {
        self.post(None, msg, fds)
    }

    /// Answer request `re`.
    fn reply(&mut self, re: Option<InitRequestId>, msg: &InitToAgent, fds: &[std::os::fd::RawFd]) {
        self.post(re, msg, fds)
    }

    fn post(&mut self, re: Option<InitRequestId>, msg: &InitToAgent, fds: &[std::os::fd::RawFd]) {
        // An `InitMessage` by reference: bincode encodes a struct as the tuple of its fields.
        if self.agent && proto::send(self.sock.as_fd(), &(re, msg), fds).is_err() {
            self.lost_agent();
        }
    }

    fn lost_agent(&mut self) {
        self.agent = false;
        if self.deadline.is_none() {
            self.start_shutdown(Duration::from_secs(2));
        }
    }

    /// The main loop; returns the init's exit code.
    fn serve(&mut self) -> i32 {
        loop {
            self.reap();
            if let Some(deadline) = self.deadline {
                if !reaper::has_children() {
                    return 0;
                }
                if Instant::now() >= deadline {
                    self.kill_everything();
                    return 0;
                }
            }
            let timeout = match self.deadline {
                Some(d) => PollTimeout::try_from(
                    d.saturating_duration_since(Instant::now()).as_millis().min(60_000) as i32 + 1,
                )
                .unwrap_or(PollTimeout::MAX),
                None => PollTimeout::NONE,
            };
            let (sig_ready, sock_ready) = {
                let mut fds = vec![PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN)];
                if self.agent {
                    fds.push(PollFd::new(self.sock.as_fd(), PollFlags::POLLIN));
                }
                match poll(&mut fds, timeout) {
                    Ok(_) => {}
                    Err(Errno::EINTR) => continue,
                    Err(_) => return 1,
                }
                let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
                (ready(&fds[0]), fds.get(1).is_some_and(ready))
            };
            if sig_ready {
                self.signals();
            }
            if sock_ready {
                self.request();
            }
        }
    }

    fn signals(&mut self) {
        while let Ok(Some(info)) = self.sigfd.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig != libc::SIGCHLD {
                // Forward to every process of the sandbox (PID 1 itself is excluded by kill -1).
                // SAFETY: kill(2) with pid -1 from PID 1 of our namespace.
                unsafe { libc::kill(-1, sig) };
            }
        }
    }

    fn request(&mut self) {
        let protocol = |e: proto::WireError| InitToAgent::Failed {
            error: InitError { step: Step::Protocol, object: None, errno: 0, detail: Some(e.to_string()) },
        };
        match proto::recv_request(self.sock.as_fd()) {
            Ok((id, Ok(req), fds)) => self.handle(id, req, fds),
            Ok((id, Err(e), _)) => self.reply(id, &protocol(e), &[]),
            Err(proto::WireError::Closed) => self.lost_agent(),
            Err(e) => self.reply(None, &protocol(e), &[]),
        }
    }

    fn handle(&mut self, id: Option<InitRequestId>, req: AgentToInit, fds: Vec<OwnedFd>) {
        let reply = match req {
            AgentToInit::RunProgram { argv, env, cwd, pty: Some(size) } => {
                match self.run_program_pty(argv, env, cwd, size) {
                    Ok((pid, master)) => {
                        self.reply(id, &InitToAgent::Launched { pid }, &[master.as_raw_fd()]);
                        return;
                    }
                    Err(error) => InitToAgent::Failed { error },
                }
            }
            AgentToInit::RunProgram { argv, env, cwd, pty: None } => self.run_program(argv, env, cwd, fds),
            AgentToInit::Shell(req) => match self.shell(&req) {
                Ok((pid, master)) => {
                    self.tracked.insert(pid, ProcessRole::Shell);
                    self.reply(id, &InitToAgent::ShellStarted { pid }, &[master.as_raw_fd()]);
                    return;
                }
                Err(error) => InitToAgent::Failed { error },
            },
            AgentToInit::Mount { target, read_only } => self.mount(fds, target, read_only),
            AgentToInit::Umount { target } => self.umount(target),
            AgentToInit::Signal { signal } => {
                // SAFETY: kill(2) with pid -1 from PID 1 of our namespace.
                unsafe { libc::kill(-1, signal) };
                return;
            }
            AgentToInit::StartHelper { argv, env, seccomp } => self.start_helper(argv, env, seccomp, fds),
            AgentToInit::Shutdown { grace_ms } => {
                self.start_shutdown(Duration::from_millis(grace_ms.into()));
                InitToAgent::ShuttingDown
            }
        };
        self.reply(id, &reply, &[]);
    }

    /// One mount per target: a second `Mount` of a mounted path is refused.
    fn mount(&mut self, fds: Vec<OwnedFd>, target: PathBuf, read_only: bool) -> InitToAgent {
        if self.injected.contains_key(&target) {
            let detail = Some("already mounted (unmount it first)".to_string());
            let error =
                InitError { step: Step::Mount, object: Some(target.display().to_string()), errno: libc::EBUSY, detail };
            return InitToAgent::Failed { error };
        }
        match requests::mount(fds, &target, read_only, &self.template.creds) {
            Ok(injected) => {
                self.injected.insert(target.clone(), injected);
                InitToAgent::Mounted { target }
            }
            Err(error) => InitToAgent::Failed { error },
        }
    }

    fn umount(&mut self, target: PathBuf) -> InitToAgent {
        let Some(injected) = self.injected.get(&target) else {
            let error = InitError {
                step: Step::Umount,
                object: Some(target.display().to_string()),
                errno: libc::EINVAL,
                detail: Some("not mounted".into()),
            };
            return InitToAgent::Failed { error };
        };
        match requests::umount(&target, injected) {
            Ok(()) => {
                if let Some(injected) = self.injected.remove(&target) {
                    requests::remove_created(&injected.created, &self.template.creds);
                }
                InitToAgent::Unmounted { target }
            }
            Err(error) => InitToAgent::Failed { error },
        }
    }

    fn run_program(
        &mut self,
        argv: Vec<String>,
        env: Vec<String>,
        cwd: Option<std::path::PathBuf>,
        fds: Vec<OwnedFd>,
    ) -> InitToAgent {
        let plan = match requests::relaunch_plan(&self.template, &argv, &env, cwd.as_deref()) {
            Ok(p) => p,
            Err(error) => return InitToAgent::Failed { error },
        };
        let stdio = match <[OwnedFd; 3]>::try_from(fds) {
            Ok(f) => ProgramStdio::Fds(f),
            Err(v) => {
                let error = InitError {
                    step: Step::Stdio,
                    object: None,
                    errno: libc::EINVAL,
                    detail: Some(format!("expected 3 fds, got {}", v.len())),
                };
                return InitToAgent::Failed { error };
            }
        };
        match exec::spawn_with_listener(&plan, stdio, &mut forward_listener(self.sock.as_fd(), self.agent)) {
            Ok(pid) => {
                self.tracked.insert(pid.as_raw(), ProcessRole::Relaunch);
                InitToAgent::Launched { pid: pid.as_raw() }
            }
            Err(error) => InitToAgent::Failed { error },
        }
    }

    /// A relaunch on a new pty; returns the program's pid and the pty master.
    fn run_program_pty(
        &mut self,
        argv: Vec<String>,
        env: Vec<String>,
        cwd: Option<std::path::PathBuf>,
        (cols, rows): (u16, u16),
    ) -> Result<(i32, OwnedFd), InitError> {
        let plan = requests::relaunch_plan(&self.template, &argv, &env, cwd.as_deref())?;
        let (master, slave) = requests::open_pty(plan.creds.uid, cols, rows)?;
        let forward = &mut forward_listener(self.sock.as_fd(), self.agent);
        let pid = exec::spawn_with_listener(&plan, ProgramStdio::Pty(slave), forward)?.as_raw();
        self.tracked.insert(pid, ProcessRole::Relaunch);
        Ok((pid, master))
    }

    fn start_helper(
        &mut self,
        argv: Vec<String>,
        env: Vec<String>,
        seccomp: Vec<u8>,
        fds: Vec<OwnedFd>,
    ) -> InitToAgent {
        let mut plan = match requests::relaunch_plan(&self.template, &argv, &env, None) {
            Ok(p) => p,
            Err(error) => return InitToAgent::Failed { error },
        };
        match oz_sandbox::seccomp::from_bytes(&seccomp) {
            Ok(f) => plan.seccomp = Some(f),
            Err(detail) => {
                return InitToAgent::Failed {
                    error: InitError { step: Step::Seccomp, object: None, errno: 0, detail: Some(detail) },
                }
            }
        }
        let stdio = match <[OwnedFd; 3]>::try_from(fds) {
            Ok(f) => ProgramStdio::Fds(f),
            Err(v) => {
                let error = InitError {
                    step: Step::Stdio,
                    object: None,
                    errno: libc::EINVAL,
                    detail: Some(format!("expected 3 fds, got {}", v.len())),
                };
                return InitToAgent::Failed { error };
            }
        };
        match exec::spawn(&plan, stdio) {
            Ok(pid) => {
                self.tracked.insert(pid.as_raw(), ProcessRole::Other);
                InitToAgent::Launched { pid: pid.as_raw() }
            }
            Err(error) => InitToAgent::Failed { error },
        }
    }

    fn shell(&mut self, req: &proto::ShellRequest) -> Result<(i32, OwnedFd), InitError> {
        let (master, slave) = requests::open_pty(req.uid, req.cols, req.rows)?;
        let plan = requests::shell_plan(&self.template, &self.shell_path, &self.profile, req)?;
        let forward = &mut forward_listener(self.sock.as_fd(), self.agent);
        let pid = exec::spawn_with_listener(&plan, ProgramStdio::Pty(slave), forward)?;
        Ok((pid.as_raw(), master))
    }

    fn start_shutdown(&mut self, grace: Duration) {
        if self.deadline.is_some() {
            return;
        }
        self.deadline = Some(Instant::now() + grace);
        // SAFETY: kill(2) with pid -1 from PID 1 of our namespace.
        unsafe { libc::kill(-1, libc::SIGTERM) };
    }

    fn kill_everything(&mut self) {
        // SAFETY: kill(2) with pid -1 from PID 1 of our namespace.
        unsafe { libc::kill(-1, libc::SIGKILL) };
        while reaper::has_children() {
            self.reap_blocking();
        }
    }
}
