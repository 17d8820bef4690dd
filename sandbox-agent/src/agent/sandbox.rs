//! One sandbox, from the agent's side: [`Sandbox::launch`] prepares everything (user, program,
//! environment, root filesystem plan, seccomp filter, cgroup), clones the init into new
//! namespaces (the init joins the cgroup itself on v1, the agent moves it there on v2; either
//! way before it forks anything) and returns once the program was exec'd; the handle then carries the channel to
//! the init and cleans up (processes, cgroup) when the sandbox ends.
//!
//! `launch` must be called while the agent is single-threaded (before tokio starts).

use crate::common::env::{expand_context, program_argv, program_env, program_path, Env, ProgramError};
use crate::common::proto::{self, AgentToInit, InitError, InitRequestId, InitToAgent, WireError};
use crate::init::{InitPlan, NetGate, StartStdio};
use nix::errno::Errno;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use oz_sandbox::cgroups::{Cgroup, CgroupError, CgroupName};
use oz_sandbox::exec::{cstring, cstrings, Credentials, ExecPlan, NulError, ProgramStdio, SeccompFilter};
use oz_sandbox::landlock::LandlockPlan;
use oz_sandbox::namespaces::{self, Forked};
use oz_sandbox::rootfs::{self, RootfsError, RootfsPlan};
use oz_sandbox::user::{UserError, UserInfo};
use oz_wire::{LaunchSpec, StdioMode};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

mod net;
pub(crate) use net::io_errno;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("refusing to run a program as root (uid 0)")]
    RootUser,
    #[error("the agent has {0} threads: a sandbox can only be cloned while single-threaded")]
    Threaded(usize),
    #[error(transparent)]
    User(#[from] UserError),
    #[error(transparent)]
    Program(#[from] ProgramError),
    #[error("argument or environment {0}")]
    Nul(#[from] NulError),
    #[error("root filesystem: {0}")]
    Rootfs(#[from] RootfsError),
    #[error("seccomp: {0}")]
    Seccomp(String),
    #[error("cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    #[error("stdio mode {0:?} needs {1} fds, got {2}")]
    Stdio(StdioMode, usize, usize),
    #[error("{op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
    #[error("sandbox {id}: {error}")]
    Init { id: u64, error: InitError },
    #[error("sandbox {id}: {error}")]
    Channel { id: u64, error: WireError },
    #[error("sandbox {id}: the init ended before the program did ({status})")]
    InitDied { id: u64, status: String },
    #[error("network: {0}")]
    Net(#[from] oz_net::NetError),
    #[error("{}", crate::agent::argfiles::refused(user, path))]
    ArgFileOutside { user: Box<UserInfo>, path: PathBuf },
}

impl SandboxError {
    /// The wire form, for the daemon and the client: the one mapping of agent errors, with the
    /// user's uid, the object and the errno where the error has them.
    pub fn to_wire(&self) -> oz_wire::AgentError {
        use oz_wire::AgentError as W;
        let setup = |step: &str| W::Setup { step: step.into(), detail: self.to_string() };
        match self {
            SandboxError::RootUser => W::User { uid: 0, detail: self.to_string() },
            SandboxError::User(e) => W::User { uid: e.uid(), detail: e.to_string() },
            SandboxError::Init { error, .. } => crate::agent::serve::agent_error(error, None),
            SandboxError::Seccomp(d) => W::Seccomp { detail: d.clone() },
            SandboxError::Sys { op, errno } => W::Sys { op: (*op).into(), errno: *errno as i32 },
            SandboxError::Threaded(_) => setup("clone"),
            SandboxError::Program(_) | SandboxError::Nul(_) => W::Profile { detail: self.to_string() },
            SandboxError::Rootfs(_) => setup("root filesystem"),
            SandboxError::Cgroup(_) => setup("cgroup"),
            SandboxError::Stdio(..) => W::BadRequest { detail: self.to_string() },
            SandboxError::Channel { error, .. } => W::Channel { detail: error.to_string() },
            SandboxError::InitDied { .. } => setup("init"),
            SandboxError::Net(_) => setup("network"),
            SandboxError::ArgFileOutside { user, path } => crate::agent::argfiles::refused(user, path),
        }
    }
}

/// The program's environment, argv, executable and credentials for a launch spec.
pub struct ProgramSpec {
    pub user: UserInfo,
    pub creds: Credentials,
    pub exe: PathBuf,
    pub argv: Vec<String>,
    pub env: Env,
    /// Working directories to try, in order.
    pub cwds: Vec<PathBuf>,
}

impl ProgramSpec {
    pub fn resolve(spec: &LaunchSpec) -> Result<ProgramSpec, SandboxError> {
        if spec.uid == 0 {
            return Err(SandboxError::RootUser);
        }
        let user = UserInfo::resolve(spec.uid)?;
        let groups = user.sandbox_groups(&spec.config.default_groups, &spec.profile.allowed_groups);
        let creds = Credentials { uid: user.uid, gid: user.gid, groups };
        let vars = expand_context(&user, &spec.profile.name);
        let exe = program_path(&spec.profile, &spec.config, &vars, &|p: &Path| p.exists())?;
        let argv = program_argv(&exe, &spec.profile, &spec.args);
        let env = program_env(&spec.config.environment_vars, &spec.profile.environment, &spec.caller_env, &user);
        let mut cwds: Vec<PathBuf> = spec.cwd.iter().cloned().collect();
        cwds.push(user.home.clone());
        cwds.push("/".into());
        Ok(ProgramSpec { user, creds, exe, argv, env, cwds })
    }

    fn exec_plan(
        &self,
        landlock: Option<LandlockPlan>,
        seccomp: Option<Rc<dyn SeccompFilter>>,
    ) -> Result<ExecPlan, SandboxError> {
        let c = |p: &Path| cstring(&p.to_string_lossy());
        Ok(ExecPlan {
            path: c(&self.exe)?,
            argv: cstrings(&self.argv)?,
            env: cstrings(&self.env.to_strings())?,
            cwds: self.cwds.iter().map(|p| c(p)).collect::<Result<_, _>>()?,
            creds: self.creds.clone(),
            landlock,
            seccomp,
            last_cap: oz_sandbox::exec::creds::last_cap(),
        })
    }
}

/// Writable places of a rootfs plan (for Landlock): binds that are neither read-only nor suid.
fn writable_targets(plan: &RootfsPlan) -> Vec<PathBuf> {
    plan.binds.iter().filter(|b| !b.read_only && !b.allow_suid).map(|b| b.target.clone()).collect()
}

/// What the init's `Ready` brought: the program's pid (None with noexec), the build's warnings
/// and the program's pty master (StdioMode::Pty).
struct Readied {
    pid: Option<i32>,
    warnings: Vec<String>,
    pty: Option<OwnedFd>,
}

/// A running sandbox.
pub struct Sandbox {
    id: u64,
    profile: String,
    init: Pid,
    channel: OwnedFd,
    cgroup: Option<Cgroup>,
    log: Option<OwnedFd>,
    /// The master of the program's pty (StdioMode::Pty).
    pty: Option<OwnedFd>,
    program: Option<i32>,
    user: UserInfo,
    /// The init was reaped.
    ended: bool,
    init_status: Option<String>,
    /// Things the root filesystem skipped or adjusted (plan and build), for the log.
    warnings: Vec<String>,
    /// Bridged networking: the lease to release at the end (under `state_dir`).
    net: Option<(PathBuf, oz_net::Attached)>,
    /// Bridged networking: the DNS forwarder's listeners (inside the sandbox) and the host's
    /// resolvers, until the serve loop starts the forwarder.
    dns: Option<(oz_net::dns::Listeners, Vec<std::net::SocketAddr>)>,
    /// With a VPN: its client, until the serve loop starts it.
    vpn: Option<crate::agent::vpn::Client>,
    /// The profile's socket forwarders, listening before the program starts, until the serve
    /// loop takes them over.
    forwards: Option<(crate::agent::forward::Forwarders, Vec<String>)>,
    /// Answers the seccomp notifications of the program (and its relaunches and shells).
    seccomp: Option<crate::agent::seccomp::Monitor>,
}

fn sys(op: &'static str) -> impl Fn(Errno) -> SandboxError {
    move |errno| SandboxError::Sys { op, errno }
}

impl Sandbox {
    /// Build the sandbox of `spec` and start its program (unless `noexec`); returns once the
    /// program was exec'd. `stdio` must hold 3 fds (stdin, stdout, stderr) for
    /// `StdioMode::Attached` and none for `StdioMode::Log` (the output then goes to
    /// [`Sandbox::take_log`]).
    pub fn launch(spec: &LaunchSpec, stdio: Vec<OwnedFd>) -> Result<Sandbox, SandboxError> {
        Sandbox::launch_with_files(spec, stdio, &[])
    }

    /// As `launch`, with argument files (candidate absolute host paths, only when the profile
    /// has `allow_files`; those the user can read, see [`crate::agent::argfiles::accessible`]) bound
    /// into the sandbox at the same place.
    pub fn launch_with_files(
        spec: &LaunchSpec,
        stdio: Vec<OwnedFd>,
        files: &[PathBuf],
    ) -> Result<Sandbox, SandboxError> {
        if let Some(n) = namespaces::thread_count().filter(|n| *n > 1) {
            return Err(SandboxError::Threaded(n));
        }
        let program = ProgramSpec::resolve(spec)?;
        // Only files the user can reach, decided with the user's credentials.
        let files = if spec.profile.allow_files {
            if let Some(path) = crate::agent::argfiles::outside_user_trees(&program.user, files) {
                return Err(SandboxError::ArgFileOutside { user: Box::new(program.user), path });
            }
            crate::agent::argfiles::accessible(&program.user, files)
        } else {
            Vec::new()
        };
        let (mut rootfs, blacklist) = rootfs::plan_deferred(spec, &program.user, &files)?;
        let bridged = spec.profile.networking.net_type == oz_profiles::profile::NetType::Bridge;
        let vpn = crate::agent::vpn::prepare(spec)?;
        if bridged {
            let text = match &vpn {
                Some(_) => crate::agent::vpn::resolv_conf(spec),
                None => oz_net::resolv::sandbox_file(&oz_net::resolv::host()),
            };
            rootfs.etc.resolv_conf = rootfs::ResolvConf::Text(text);
        }
        let mut warnings = rootfs.warnings.clone();
        // An X program, or one on the host's network, is scoped away from the host's abstract
        // sockets (X11, D-Bus) and from signalling outside the sandbox.
        let scope_ipc =
            spec.profile.xserver.enabled || spec.profile.networking.net_type == oz_profiles::profile::NetType::Host;
        let landlock = match spec.profile.landlock.enabled {
            true => {
                let extra = writable_targets(&rootfs);
                let plan = LandlockPlan::for_user(
                    &program.user.home,
                    program.user.uid,
                    &extra,
                    spec.profile.landlock.required,
                );
                Some(LandlockPlan { scope_ipc, ..plan })
            }
            false => scope_ipc.then(LandlockPlan::scope_only),
        };
        // The seccomp filter is compiled after the clone and sent to the init (seccomp_pipe).
        let exec_plan = program.exec_plan(landlock, None)?;
        let (stdio, log) = Sandbox::stdio(spec, stdio)?;
        let cgroup = Cgroup::create(&CgroupName::new(&spec.config.state_dir, spec.sandbox_id), &spec.profile.limits)?;
        let (agent_end, init_end) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(sys("socketpair"))?;
        let cgroup_tasks = v1_tasks_files(&cgroup)?;
        let (gate_r, gate_w) = match cgroup_tasks.is_empty() {
            true => nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map(|(r, w)| (Some(r), Some(w)))
                .map_err(sys("pipe"))?,
            false => (None, None),
        };
        let (blacklist_r, blacklist_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
        let (seccomp_r, seccomp_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
        // The init waits at the gate for the bridge to be attached and the forwarders to listen,
        // so that its program never finds them missing.
        let gated = bridged || !spec.profile.networking.sockets.is_empty();
        let (net_gate, net_agent) = match gated {
            true => {
                let (ready_r, ready_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
                let (go_r, go_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
                (Some(NetGate { ready: ready_w, go: go_r }), Some((ready_r, go_w)))
            }
            false => (None, None),
        };
        let plan = InitPlan {
            id: spec.sandbox_id,
            hostname: spec.profile.name.clone(),
            domainname: "local".into(),
            loopback: namespaces::wants_loopback(spec.profile.networking.net_type),
            rootfs,
            program: exec_plan,
            stdio,
            shell_path: cstring(&spec.config.shell_path.to_string_lossy())?,
            profile: spec.profile.name.clone(),
            warnings: Vec::new(),
            cgroup_tasks,
            cgroup_gate: gate_r,
            blacklist_pipe: Some(blacklist_r),
            seccomp_pipe: Some(seccomp_r),
            new_net: namespaces::wants_net_namespace(spec.profile.networking.net_type),
            net_gate,
        };
        let mut keep: Vec<RawFd> = vec![init_end.as_raw_fd()];
        keep.extend(
            plan.cgroup_gate.iter().chain(&plan.blacklist_pipe).chain(&plan.seccomp_pipe).map(|fd| fd.as_raw_fd()),
        );
        keep.extend(plan.cgroup_tasks.iter().map(|(_, fd)| fd.as_raw_fd()));
        keep.extend(plan.net_gate.iter().flat_map(|g| [g.ready.as_raw_fd(), g.go.as_raw_fd()]));
        keep.extend(plan.stdio.iter().flat_map(|s| match s {
            StartStdio::Given(s) => stdio_fds(s),
            StartStdio::Pty(..) => Vec::new(),
        }));
        // SAFETY: checked single-threaded above; the child only runs the init and _exits.
        let forked = unsafe { namespaces::clone_fork(namespaces::clone_flags(spec.profile.networking.net_type)) };
        if let Ok(Forked::Child) = forked {
            close_fds_except(&keep);
            // A panic must never unwind out of the init into the agent's copied frames.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| crate::init::run(plan, init_end)));
            // SAFETY: leave the child without running the agent's destructors.
            unsafe { libc::_exit(101) }
        }
        let init = match forked {
            Ok(Forked::Parent(pid)) => pid,
            Ok(Forked::Child) => unreachable!("the init never returns"),
            Err(errno) => return Err(SandboxError::Sys { op: "clone", errno }),
        };
        drop(init_end);
        drop(plan);
        // The init builds its root filesystem meanwhile and takes the blacklist just before
        // applying it. A failed send means the init died (wait_ready reports it) or gets a cut
        // message (and fails).
        let (hidden, blacklist_warnings) = blacklist.plan();
        warnings.extend(blacklist_warnings);
        let _ = rootfs::send_blacklist(blacklist_w, &hidden);
        // A compile error is the launch's error (the init, getting no filter, spawns nothing).
        let seccomp = crate::agent::seccomp::compile_bytes(spec).map(|(bytes, monitor)| {
            let _ = proto::write_pipe_message(seccomp_w, &bytes);
            monitor
        });
        // cgroup v2: the init forks nothing before the gate opens; on failure the gate closes
        // unopened and the init gives up (killed below).
        let moved = match gate_w {
            Some(gate) => {
                let moved = cgroup.add(init.as_raw());
                if moved.is_ok() {
                    // An error means the init died already: wait_ready reports it.
                    let _ = nix::unistd::write(&gate, &[1]);
                }
                moved
            }
            None => Ok(()),
        };
        let mut sandbox = Sandbox {
            id: spec.sandbox_id,
            profile: spec.profile.name.clone(),
            init,
            channel: agent_end,
            cgroup: Some(cgroup),
            log,
            pty: None,
            program: None,
            user: program.user,
            ended: false,
            init_status: None,
            warnings: Vec::new(),
            net: None,
            dns: None,
            vpn: None,
            forwards: None,
            seccomp: None,
        };
        sandbox.seccomp = seccomp?;
        moved?;
        if let Some((ready, go)) = net_agent {
            warnings.extend(sandbox.open_network_gate(spec, bridged, ready, go, vpn)?);
        }
        let ready = sandbox.wait_ready()?;
        sandbox.pty = ready.pty;
        warnings.extend(ready.warnings);
        sandbox.program = ready.pid;
        sandbox.warnings = warnings;
        Ok(sandbox)
    }

    fn stdio(spec: &LaunchSpec, fds: Vec<OwnedFd>) -> Result<(Option<StartStdio>, Option<OwnedFd>), SandboxError> {
        let n = fds.len();
        match spec.stdio {
            StdioMode::Attached => {
                let fds: [OwnedFd; 3] = fds.try_into().map_err(|_| SandboxError::Stdio(spec.stdio, 3, n))?;
                Ok(((!spec.noexec).then_some(StartStdio::Given(ProgramStdio::Fds(fds))), None))
            }
            StdioMode::Pty { cols, rows } => {
                if n != 0 {
                    return Err(SandboxError::Stdio(spec.stdio, 0, n));
                }
                Ok(((!spec.noexec).then_some(StartStdio::Pty(cols, rows)), None))
            }
            StdioMode::Log => {
                if n != 0 {
                    return Err(SandboxError::Stdio(spec.stdio, 0, n));
                }
                if spec.noexec {
                    return Ok((None, None));
                }
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("pipe"))?;
                Ok((Some(StartStdio::Given(ProgramStdio::Log(w))), Some(r)))
            }
        }
    }

    /// Wait for `Ready` (or the failure that replaces it).
    fn wait_ready(&mut self) -> Result<Readied, SandboxError> {
        let id = self.id;
        let received = loop {
            match proto::recv_message(self.channel.as_fd()) {
                Ok((_, InitToAgent::SeccompListener { .. }, fds)) => self.seccomp_listener(fds),
                other => break other.map(|(_, msg, fds)| (msg, fds)),
            }
        };
        match received {
            Ok((InitToAgent::Ready { pid, warnings }, fds)) => {
                Ok(Readied { pid, warnings, pty: fds.into_iter().next() })
            }
            Ok((InitToAgent::ProgramFailed { error }, _)) => {
                self.reap();
                Err(SandboxError::Init { id, error })
            }
            Ok((other, _)) => Err(SandboxError::Channel {
                id,
                error: WireError::UnexpectedMessage { expected: "Ready", received: format!("{other:?}") },
            }),
            Err(WireError::Closed) => {
                let status = self.reap();
                Err(SandboxError::InitDied { id, status })
            }
            Err(error) => Err(SandboxError::Channel { id, error }),
        }
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn profile(&self) -> &str {
        &self.profile
    }

    /// The init's pid (in the agent's PID namespace).
    pub fn init_pid(&self) -> Pid {
        self.init
    }

    /// The program's pid inside the sandbox (None with `noexec`).
    pub fn program_pid(&self) -> Option<i32> {
        self.program
    }

    /// What the root filesystem skipped or adjusted (missing `ignore` items, ...), for the log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn user(&self) -> &UserInfo {
        &self.user
    }

    /// The channel to the init (see `init::proto` for the messages).
    pub fn channel(&self) -> BorrowedFd<'_> {
        self.channel.as_fd()
    }

    /// The read end of the program's stdout/stderr pipe (StdioMode::Log).
    pub fn take_log(&mut self) -> Option<OwnedFd> {
        self.log.take()
    }

    /// The master of the program's pty (StdioMode::Pty).
    pub fn take_pty(&mut self) -> Option<OwnedFd> {
        self.pty.take()
    }

    /// The sandbox's cgroup (count or kill its processes).
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// Send a request to the init; returns its id, which its reply carries.
    pub fn send(&self, msg: &AgentToInit, fds: &[RawFd]) -> Result<InitRequestId, SandboxError> {
        proto::send_request(self.channel.as_fd(), msg, fds)
            .map_err(|error| SandboxError::Channel { id: self.id, error })
    }

    /// The next message from the init (`Err(Channel Closed)` once the init is gone). Seccomp
    /// listeners are handed to the monitor on the way.
    pub fn recv(&self) -> Result<(InitToAgent, Vec<OwnedFd>), SandboxError> {
        self.recv_message().map(|(_, msg, fds)| (msg, fds))
    }

    /// Send a request and wait for the init's reply to it (blocking; before the event loop
    /// runs). Anything else arriving first (an event, the reply to another request) is an
    /// `UnexpectedMessage` error.
    pub fn ask(&self, msg: &AgentToInit, fds: &[RawFd]) -> Result<(InitToAgent, Vec<OwnedFd>), SandboxError> {
        let id = self.send(msg, fds)?;
        match self.recv_message()? {
            (Some(re), reply, fds) if re == id => Ok((reply, fds)),
            (_, other, _) => Err(SandboxError::Channel {
                id: self.id,
                error: WireError::UnexpectedMessage { expected: "the init's reply", received: format!("{other:?}") },
            }),
        }
    }

    /// The next message from the init with the id of the request it answers (None: an event).
    /// Seccomp listeners are handed to the monitor on the way.
    pub fn recv_message(&self) -> Result<(Option<InitRequestId>, InitToAgent, Vec<OwnedFd>), SandboxError> {
        loop {
            match proto::recv_message(self.channel.as_fd()) {
                Ok((_, InitToAgent::SeccompListener { .. }, fds)) => self.seccomp_listener(fds),
                other => return other.map_err(|error| SandboxError::Channel { id: self.id, error }),
            }
        }
    }

    /// Gives a listener the init sent to the monitor (closed when there is none: the
    /// notifications then fail with ENOSYS rather than wait).
    pub fn seccomp_listener(&self, fds: Vec<OwnedFd>) {
        if let (Some(m), Some(fd)) = (&self.seccomp, fds.into_iter().next()) {
            m.add(fd);
        }
    }

    /// The seccomp monitor (None with seccomp disabled).
    pub fn seccomp(&self) -> Option<&crate::agent::seccomp::Monitor> {
        self.seccomp.as_ref()
    }

    /// A `RunProgram` request for a relaunch with `args` (user args) from `spec`'s profile.
    pub fn relaunch_request(spec: &LaunchSpec) -> Result<AgentToInit, SandboxError> {
        let p = ProgramSpec::resolve(spec)?;
        let pty = match spec.stdio {
            StdioMode::Pty { cols, rows } => Some((cols, rows)),
            StdioMode::Log | StdioMode::Attached => None,
        };
        Ok(AgentToInit::RunProgram { argv: p.argv, env: p.env.to_strings(), cwd: spec.cwd.clone(), pty })
    }

    /// Wait for the init to exit (after `Shutdown`, or when it died), then remove the cgroup.
    /// Returns how the init ended.
    pub fn finish(mut self) -> Result<String, SandboxError> {
        self.teardown()?;
        Ok(self.init_status.clone().unwrap_or_default())
    }

    /// As `finish`, for a handle owned elsewhere; idempotent. Blocks until the init exits, so
    /// send `Shutdown` first (or use [`Sandbox::kill`]).
    pub fn teardown(&mut self) -> Result<(), SandboxError> {
        if !self.ended {
            self.reap();
        }
        let net = self.release_network();
        if let Some(cg) = self.cgroup.take() {
            cg.remove()?;
        }
        net
    }

    /// SIGKILL the init (the kernel then kills every process of the PID namespace) and tear
    /// down.
    pub fn kill(&mut self) -> Result<(), SandboxError> {
        if !self.ended {
            let _ = nix::sys::signal::kill(self.init, nix::sys::signal::Signal::SIGKILL);
        }
        self.teardown()
    }

    /// Whether the init has exited (reaps it without blocking; then call `teardown`).
    pub fn init_exited(&mut self) -> bool {
        if self.ended || self.init_status.is_some() {
            return true;
        }
        match waitpid(self.init, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, c)) => self.init_status = Some(format!("exit code {c}")),
            Ok(WaitStatus::Signaled(_, s, _)) => self.init_status = Some(format!("killed by {s}")),
            Err(Errno::ECHILD) => self.init_status = Some("already reaped".into()),
            _ => return false,
        }
        self.ended = true;
        true
    }

    /// Wait for the init and record how it ended.
    fn reap(&mut self) -> String {
        let status = self.reap_init();
        self.ended = true;
        self.init_status = Some(status.clone());
        status
    }

    fn reap_init(&mut self) -> String {
        loop {
            match waitpid(self.init, None) {
                Ok(WaitStatus::Exited(_, c)) => return format!("exit code {c}"),
                Ok(WaitStatus::Signaled(_, s, _)) => return format!("killed by {s}"),
                Ok(_) => continue,
                Err(Errno::EINTR) => continue,
                Err(e) => return format!("waitpid: {e}"),
            }
        }
    }
}

impl Drop for Sandbox {
    /// A sandbox dropped without `finish` is killed: the init (and with it the PID namespace),
    /// then whatever the cgroup still holds.
    fn drop(&mut self) {
        if !self.ended {
            let _ = nix::sys::signal::kill(self.init, nix::sys::signal::Signal::SIGKILL);
            self.reap_init();
        }
        let _ = self.release_network();
    }
}

/// The `tasks` files of every directory of `cgroup`, opened for writing, when they all have one
/// (cgroup v1); empty on v2.
fn v1_tasks_files(cgroup: &Cgroup) -> Result<Vec<(String, OwnedFd)>, SandboxError> {
    let mut out = Vec::new();
    for dir in cgroup.dirs() {
        let path = dir.join("tasks");
        if !path.exists() {
            return Ok(Vec::new());
        }
        let file = std::fs::OpenOptions::new().write(true).open(&path).map_err(|source| CgroupError::Io {
            op: "open",
            path: path.clone(),
            source,
        })?;
        out.push((path.display().to_string(), OwnedFd::from(file)));
    }
    Ok(out)
}

fn stdio_fds(s: &ProgramStdio) -> Vec<RawFd> {
    match s {
        ProgramStdio::Fds(f) => f.iter().map(|f| f.as_raw_fd()).collect(),
        ProgramStdio::Log(w) | ProgramStdio::Pty(w) => vec![w.as_raw_fd()],
    }
}

/// Close every descriptor from 3 up except `keep` (the init must not hold the agent's other
/// sockets, pipes or files).
fn close_fds_except(keep: &[RawFd]) {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|fd| *fd >= 3).collect();
    keep.sort_unstable();
    keep.dedup();
    let mut from: libc::c_uint = 3;
    for fd in keep {
        let fd = fd as libc::c_uint;
        if fd > from {
            // SAFETY: closes descriptors the init does not use; nothing owns them in this child.
            unsafe { libc::close_range(from, fd - 1, 0) };
        }
        from = fd + 1;
    }
    // SAFETY: as above.
    unsafe { libc::close_range(from, libc::c_uint::MAX, 0) };
}

#[cfg(test)]
mod tests {
    use super::*;
    use oz_wire::AgentError as W;

    #[test]
    fn a_user_error_carries_the_users_uid_and_the_errno_text() {
        let e = SandboxError::User(UserError::Lookup { uid: 1234, source: Errno::EACCES });
        match e.to_wire() {
            W::User { uid, detail } => {
                assert_eq!(uid, 1234);
                assert!(detail.contains("Permission denied"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(SandboxError::User(UserError::NoSuchUser(4321)).to_wire(), W::User { uid: 4321, .. }));
    }

    #[test]
    fn known_errors_map_to_their_own_variants() {
        let sys = SandboxError::Sys { op: "clone", errno: Errno::EPERM }.to_wire();
        assert_eq!(sys, W::Sys { op: "clone".into(), errno: libc::EPERM });
        assert_eq!(sys.to_string(), "clone: EPERM: Operation not permitted");
        let init = InitError::new(proto::Step::Exec, Some("/usr/bin/nope".into()), libc::ENOENT);
        let exec = SandboxError::Init { id: 1, error: init }.to_wire();
        assert_eq!(exec, W::Exec { path: "/usr/bin/nope".into(), errno: libc::ENOENT });
        let closed = SandboxError::Channel { id: 1, error: WireError::Closed }.to_wire();
        assert!(matches!(closed, W::Channel { .. }));
        let died = SandboxError::InitDied { id: 1, status: "killed by signal 9".into() }.to_wire();
        assert!(matches!(died, W::Setup { ref step, .. } if step == "init"), "{died:?}");
    }
}
