//! The agent's event loop: one thread, one poll() over the init channel, the daemon channel,
//! the rendezvous listener, a signalfd and the program's output pipes, plus timers (the
//! supervision tick, helper restarts and the health heartbeat).
//!
//! The same loop runs `oz-agent serve` (with a daemon channel and a rendezvous socket) and
//! `oz-agent standalone` ([`Mode::Standalone`]: no daemon; termination signals are forwarded to
//! the sandbox while a program runs; records go to stderr). Every supervision decision is made
//! by the pure tree ([`crate::agent::supervise::tree`]); this loop only performs its actions.
//! Helper processes are added with [`Runtime::add_child`] ([`crate::agent::children`]).
//!
//! The daemon channel is non-blocking: every pending daemon message is read each round, and
//! what the agent sends waits in a bounded [`Outbox`] until the socket takes it. Log records
//! pass a rate limit ([`LogLimiter`]).

mod seccomp;

use super::launch::Started;
use super::loglimit::LogLimiter;
use super::logpipe::LogPipe;
use super::outbox::{self, Outbox, Push};
use super::requests::{reported_phase, MountBatch, Pending, Slot};
use super::ServeError;
use crate::agent::children::{ChildSpec, Children};
use crate::agent::forward::Forwarders;
use crate::agent::health;
use crate::agent::mountinject::MountTable;
use crate::agent::rendezvous::{Accepted, Rendezvous};
use crate::agent::supervise::tree::{self, Tree};
use crate::agent::supervise::{self, Action, Event, Policy, ShutdownReason};
use crate::common::proto::{self as iproto, AgentToInit, InitToAgent};
use crate::common::proto::{ExitStatus, InitRequestId, ProcessRole};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oz_sandbox::user::UserInfo;
use oz_wire::channel::DaemonChannel;
use oz_wire::{
    AgentToDaemon, DisplayInfo, LaunchSpec, LogLevel, LogRecord, NetworkInfo, RequestId, SandboxRecord, SandboxState,
};
use std::collections::{BTreeMap, VecDeque};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the supervisor re-checks watchdogs while lingering.
const TICK: Duration = Duration::from_secs(1);
/// Delay before a negative watchdog scan is confirmed.
const RESCAN: Duration = Duration::from_millis(300);
/// Health heartbeat period.
const HEALTH: Duration = Duration::from_secs(5);
/// How long the init gets to stop everything before it is killed.
const GRACE_MS: u32 = 2000;
/// Extra time, after the grace period, before the agent SIGKILLs the init.
const KILL_AFTER: Duration = Duration::from_millis(GRACE_MS as u64 + 1500);
/// Most exit events kept for a daemon that is not attached.
const MAX_BACKLOG: usize = 256;
/// How long a reconnecting daemon may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the last messages to the daemon may take to leave when the agent exits.
const FINAL_FLUSH: Duration = Duration::from_secs(2);

/// Who drives the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `oz-agent serve`: a daemon (now or after a reconnect); SIGTERM/SIGINT shut down.
    Serve,
    /// `oz-agent standalone`: no daemon; SIGINT/SIGTERM/SIGHUP go to the sandbox's processes
    /// while a program runs and shut the sandbox down once none does.
    Standalone,
}

pub struct Runtime {
    mode: Mode,
    pub(super) spec: LaunchSpec,
    pub(super) user: UserInfo,
    pub(super) started: Started,
    pub(super) daemon: Option<DaemonChannel>,
    /// Frames for the attached daemon that its socket has not taken yet.
    outbox: Outbox,
    limiter: LogLimiter,
    rendezvous: Option<Rendezvous>,
    /// The sandbox's record as last sent to the daemon and stored in the state file.
    record: SandboxRecord,
    pub(super) tree: Tree,
    pub(super) children: Children,
    /// When helper restarts are due (each feeds `tree::Event::Tick`).
    respawn_at: Vec<Instant>,
    /// How the launch's program ended.
    program_status: Option<ExitStatus>,
    /// Requests sent to the init whose replies are due, by id.
    pub(super) pending: BTreeMap<InitRequestId, Pending>,
    /// Answers owed to the attached daemon, in request order.
    pub(super) answers: VecDeque<Slot>,
    /// The id of the daemon request being handled.
    pub(super) current: RequestId,
    /// Exit events that happened while no daemon was attached.
    backlog: VecDeque<AgentToDaemon>,
    pub(super) mount_batch: MountBatch,
    pub(super) logs: Vec<LogPipe>,
    pub(super) mounts: MountTable,
    signals: SignalFd,
    born: Instant,
    next_tick: Instant,
    next_health: Instant,
    kill_at: Option<Instant>,
    init_channel_open: bool,
    /// The init has exited (noticed, reaped by the teardown).
    init_reaped: bool,
    shutdown_reason: Option<ShutdownReason>,
    /// The socket forwarders, run in this loop (helper slots of the tree).
    pub(super) forwards: Option<Forwarders>,
    /// Which helper slot is which forwarder.
    pub(super) forward_slots: Vec<(tree::Slot, usize)>,
    /// The forwarders as the sandbox record lists them, in slot order.
    pub(super) forward_infos: Vec<oz_wire::ForwarderInfo>,
    /// Forwarders that already listened when the program started: their first start by the
    /// tree keeps that socket.
    pub(super) forwards_listening: std::collections::BTreeSet<usize>,
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// SIGTERM and SIGINT (and SIGHUP standalone) to the agent, and SIGCHLD of its helpers: read
/// them from a signalfd.
fn termination_signals(mode: Mode) -> Result<SignalFd, oz_wire::AgentError> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGTERM);
    mask.add(Signal::SIGINT);
    mask.add(Signal::SIGCHLD);
    if mode == Mode::Standalone {
        mask.add(Signal::SIGHUP);
    }
    let fail = |what: &str, e: nix::errno::Errno| oz_wire::AgentError::Sys { op: what.into(), errno: e as i32 };
    mask.thread_block().map_err(|e| fail("block SIGTERM/SIGINT", e))?;
    SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(|e| fail("signalfd", e))
}

/// A helper slot as the heartbeat reports it.
fn child_health(c: &tree::Child) -> oz_wire::ChildHealth {
    use oz_wire::ChildState as W;
    let (state, pid) = match c.state {
        tree::ChildState::Starting => (W::Starting, None),
        tree::ChildState::Running { pid } => (W::Running, Some(pid as u32)),
        tree::ChildState::Backoff { .. } => (W::Backoff, None),
        tree::ChildState::GivenUp => (W::GivenUp, None),
        tree::ChildState::Stopped => (W::Stopped, None),
    };
    oz_wire::ChildHealth { name: c.name.clone(), state, pid, restarts: c.restarts }
}

impl Runtime {
    /// Set up the rendezvous socket and record, tell the daemon `Ready`, and build the loop.
    /// Serve the sandbox `started` for `spec`, answering the daemon's `Launch` request `launch`.
    pub fn new(
        spec: LaunchSpec,
        started: Started,
        daemon: DaemonChannel,
        launch: RequestId,
    ) -> Result<Runtime, ServeError> {
        Runtime::build(Mode::Serve, spec, started, Some(daemon), launch)
    }

    /// The loop for `oz-agent standalone`: no daemon, no rendezvous socket.
    pub fn standalone(spec: LaunchSpec, started: Started) -> Result<Runtime, ServeError> {
        Runtime::build(Mode::Standalone, spec, started, None, RequestId(0))
    }

    fn build(
        mode: Mode,
        spec: LaunchSpec,
        started: Started,
        daemon: Option<DaemonChannel>,
        launch: RequestId,
    ) -> Result<Runtime, ServeError> {
        let record = SandboxRecord {
            id: spec.sandbox_id,
            profile: spec.profile.name.clone(),
            uid: spec.uid,
            user: started.user.name.clone(),
            phase: SandboxState::Running,
            init_pid: started.init_pid as u32,
            agent_pid: std::process::id(),
            started_at: now_secs(),
            mounts: Vec::new(),
            network: Some(NetworkInfo {
                mode: spec.profile.networking.net_type,
                address: started
                    .sandbox
                    .as_ref()
                    .and_then(crate::agent::sandbox::Sandbox::address)
                    .map(std::net::IpAddr::V4),
                forwarders: Vec::new(),
            }),
            display: started.x11.as_ref().map(|x| DisplayInfo { backend: x.backend(), display: x.display }),
            ephemeral: spec.ephemeral,
        };
        let signals = match termination_signals(mode) {
            Ok(fd) => fd,
            Err(e) => {
                if let Some(d) = &daemon {
                    let _ = d.reply(launch, AgentToDaemon::LaunchFailed(e.clone()), &[]);
                }
                return Err(ServeError::Launch(e));
            }
        };
        if let Some(d) = &daemon {
            if let Err(e) = outbox::set_nonblocking(d.as_fd()) {
                let e = oz_wire::AgentError::Sys { op: "daemon channel O_NONBLOCK".into(), errno: e as i32 };
                let _ = d.reply(launch, AgentToDaemon::LaunchFailed(e.clone()), &[]);
                return Err(ServeError::Launch(e));
            }
        }
        let policy = Policy::from_profile(&spec.profile);
        let user = started.user.clone();
        let now = Instant::now();
        let mut rt = Runtime {
            mode,
            spec,
            user,
            started,
            daemon,
            outbox: Outbox::default(),
            limiter: LogLimiter::new(now),
            rendezvous: None,
            record,
            tree: Tree::new(policy),
            children: Children::default(),
            respawn_at: Vec::new(),
            program_status: None,
            pending: BTreeMap::new(),
            backlog: VecDeque::new(),
            answers: VecDeque::new(),
            current: launch,
            mount_batch: MountBatch::default(),
            logs: Vec::new(),
            mounts: MountTable::default(),
            signals,
            born: now,
            next_tick: now + TICK,
            next_health: now + HEALTH,
            kill_at: None,
            init_channel_open: true,
            init_reaped: false,
            shutdown_reason: None,
            forwards: None,
            forward_slots: Vec::new(),
            forward_infos: Vec::new(),
            forwards_listening: Default::default(),
        };
        rt.logs = std::mem::take(&mut rt.started.logs);
        match rt.mode {
            Mode::Serve => rt.rendezvous()?,
            Mode::Standalone => rt.tree.sandbox.daemon_attached = false,
        }
        // Listening before the launch is answered: a reply means the forwarders are there.
        rt.start_forwarders();
        let program_pid = rt.started.program_pid;
        let pty = rt.started.pty.take();
        let fds: Vec<_> = pty.iter().map(|m| m.as_fd()).collect();
        // The record first: the daemon lists the sandbox as the agent says once it is ready.
        rt.send_daemon(AgentToDaemon::State(rt.record.clone()), &[]);
        let ready = AgentToDaemon::Ready { init_pid: rt.record.init_pid, program_pid: program_pid.map(|p| p as u32) };
        rt.reply_daemon(launch, ready, &fds);
        for line in std::mem::take(&mut rt.started.x11_output) {
            rt.log(LogLevel::Info, line);
        }
        if let Some(x) = &rt.started.x11 {
            let line = format!("xserver: {:?} display :{} ready", x.backend(), x.display);
            rt.log(LogLevel::Info, line);
        }
        for w in std::mem::take(&mut rt.started.warnings) {
            rt.log(LogLevel::Warning, w);
        }
        if let Some((listeners, upstreams)) = rt.started.sandbox.as_mut().and_then(|s| s.take_dns()) {
            rt.add_child(crate::agent::dns::child_spec(listeners, &upstreams));
        }
        if let Some(client) = rt.started.sandbox.as_mut().and_then(|s| s.take_vpn()) {
            rt.add_child(client.child_spec());
        }
        if let Some(pid) = program_pid {
            rt.feed(Event::ProgramStarted { pid });
        }
        Ok(rt)
    }

    fn rendezvous(&mut self) -> Result<(), ServeError> {
        let rt = self;
        match Rendezvous::create(&rt.spec.config.state_dir, &rt.record) {
            Ok(rv) => rt.rendezvous = Some(rv),
            Err(e) => {
                // Without a rendezvous the sandbox cannot survive a daemon restart: refuse it.
                // Dropping the runtime kills the init and removes the cgroup.
                let error = oz_wire::AgentError::Setup { step: "rendezvous".into(), detail: e.to_string() };
                let launch = rt.current;
                rt.reply_daemon(launch, AgentToDaemon::LaunchFailed(error), &[]);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Supervise a helper process (started at once, restarted as its policy says).
    pub fn add_child(&mut self, spec: ChildSpec) {
        self.children.push(spec.spawn);
        self.feed(tree::Event::Add { name: spec.name, restart: spec.restart });
    }

    /// How the launch's program ended (None while it runs, with noexec, or when the init died
    /// first).
    pub fn program_status(&self) -> Option<ExitStatus> {
        self.program_status
    }

    /// How the init ended (once the loop has returned).
    pub fn init_status(&self) -> Option<&str> {
        self.started.init_status()
    }

    pub(super) fn is_stopping(&self) -> bool {
        self.tree.is_stopping()
    }

    /// The sandbox's processes, found through its cgroup (else by a scan of /proc).
    fn sandbox_processes(&self) -> Vec<health::ProcInfo> {
        match self.started.cgroup_procs() {
            Some(pids) => health::sandbox_processes_among(self.init_pid(), &pids),
            None => health::sandbox_processes(self.init_pid()),
        }
    }

    pub(super) fn init_pid(&self) -> i32 {
        self.started.init_pid
    }

    pub(super) fn init_fd(&self) -> BorrowedFd<'_> {
        self.started.channel()
    }

    /// Serve until the sandbox has ended; returns the exit code.
    pub fn run(&mut self) -> i32 {
        while self.tree.sandbox.phase != supervise::Phase::Ended {
            self.poll_once();
            self.timers();
            self.check_init();
        }
        self.finish()
    }

    fn poll_once(&mut self) {
        const INIT: usize = 0;
        const SIGNALS: usize = 1;
        const RENDEZVOUS: usize = 2;
        const DAEMON: usize = 3;
        const FORWARD: usize = 4;
        const LOGS: usize = 5;
        let input = PollFlags::POLLIN;
        let never = PollFlags::empty();
        let rv_fd = self.rendezvous.as_ref().map(|r| r.listener());
        let placeholder = self.signals.as_fd();
        let mut fds = vec![
            // A closed channel is not polled at all: poll reports POLLHUP whatever the events
            // asked for, and the loop would spin until the init is reaped.
            match self.init_channel_open {
                true => PollFd::new(self.started.channel(), input),
                false => PollFd::new(placeholder, never),
            },
            PollFd::new(self.signals.as_fd(), input),
            PollFd::new(rv_fd.unwrap_or(placeholder), if rv_fd.is_some() { input } else { never }),
            match &self.daemon {
                Some(d) if self.outbox.is_empty() => PollFd::new(d.as_fd(), input),
                Some(d) => PollFd::new(d.as_fd(), input | PollFlags::POLLOUT),
                None => PollFd::new(placeholder, never),
            },
            match &self.forwards {
                Some(f) => PollFd::new(f.fd(), input),
                None => PollFd::new(placeholder, never),
            },
        ];
        fds.extend(self.logs.iter().map(|l| PollFd::new(l.fd(), input)));
        let seccomp = self.started.seccomp().map(|m| m.wake_fd());
        fds.extend(seccomp.map(|fd| PollFd::new(fd, input)));
        let timeout = self.poll_timeout();
        if poll(&mut fds, timeout).is_err() {
            return; // EINTR: re-evaluate
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| {
                f.revents().is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR))
            })
            .collect();
        let daemon_writable = fds[DAEMON].revents().is_some_and(|r| r.contains(PollFlags::POLLOUT));
        let seccomp_ready = seccomp.is_some() && ready.last().is_some_and(|r| *r);
        let logs_end = ready.len() - usize::from(seccomp.is_some());
        drop(fds);
        if seccomp_ready {
            self.on_seccomp();
        }
        // Output first, so that a program's last lines precede its exit event.
        if ready[LOGS..logs_end].iter().any(|r| *r) {
            self.drain_logs();
        }
        if ready[INIT] {
            self.on_init_readable();
        }
        if ready[SIGNALS] {
            self.on_signals();
        }
        if ready[RENDEZVOUS] {
            self.accept_daemon();
        }
        if ready[DAEMON] && self.daemon.is_some() {
            self.on_daemon_readable();
        }
        if daemon_writable {
            self.flush_daemon();
        }
        if ready[FORWARD] {
            self.on_forwarders_ready();
        }
    }

    fn poll_timeout(&self) -> PollTimeout {
        let now = Instant::now();
        let mut next = self.next_tick.min(self.next_health);
        for at in self.kill_at.iter().chain(&self.respawn_at) {
            next = next.min(*at);
        }
        if !self.init_channel_open && !self.init_reaped {
            next = next.min(now + Duration::from_millis(20));
        }
        let ms = next.saturating_duration_since(now).as_millis().min(60_000) as u16;
        PollTimeout::from(ms)
    }

    fn timers(&mut self) {
        let now = Instant::now();
        if now >= self.next_tick {
            self.next_tick = now + TICK;
            self.check_x11();
            if let Some(f) = &mut self.forwards {
                f.sweep(now);
            }
            self.feed(Event::Tick);
            self.dropped_notice(now);
            self.seccomp_counts(false);
        }
        if self.respawn_at.iter().any(|at| now >= *at) {
            self.respawn_at.retain(|at| now < *at);
            self.feed(tree::Event::Tick);
        }
        if now >= self.next_health {
            self.next_health = now + HEALTH;
            self.send_health();
        }
        if self.kill_at.is_some_and(|k| now >= k) && !self.init_reaped {
            let _ = nix::sys::signal::kill(Pid::from_raw(self.init_pid()), Signal::SIGKILL);
            self.kill_at = None;
        }
    }

    /// Log what happened to the X display's host-side helpers (restarts included).
    fn check_x11(&mut self) {
        if self.is_stopping() {
            return;
        }
        let Some(x11) = self.started.x11.as_mut() else { return };
        let lines = x11.check();
        let lost = x11.take_lost();
        for line in lines {
            self.log(LogLevel::Warning, line);
        }
        if let Some(detail) = lost {
            self.feed(Event::DisplayLost { detail });
        }
    }

    /// Notice the init's exit (without reaping it: the teardown does, so its pid cannot be
    /// reused meanwhile); that ends the sandbox.
    fn check_init(&mut self) {
        if self.init_reaped {
            return;
        }
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
        match waitid(Id::Pid(Pid::from_raw(self.init_pid())), flags) {
            Ok(WaitStatus::StillAlive) => {}
            Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(_) => {
                self.init_reaped = true;
                self.drain_init();
                self.feed(Event::InitExited);
            }
            Ok(_) => {}
        }
    }

    /// Read what the init wrote before it exited (exit reports of the last processes).
    fn drain_init(&mut self) {
        while self.init_channel_open {
            let mut fds = [PollFd::new(self.started.channel(), PollFlags::POLLIN)];
            if !matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0) {
                break;
            }
            self.on_init_readable();
        }
    }

    fn send_health(&mut self) {
        let procs = self.sandbox_processes();
        let u = health::usage(&procs);
        let uptime_ms = self.born.elapsed().as_millis() as u64;
        self.send_daemon(
            AgentToDaemon::Health { rss_bytes: u.rss_bytes, pids: u.pids, cpu_usec: u.cpu_usec, uptime_ms },
            &[],
        );
        if !self.tree.children.is_empty() {
            let children = self.tree.children.iter().map(child_health).collect();
            self.send_daemon(AgentToDaemon::Children { children }, &[]);
        }
    }

    pub(super) fn drain_logs(&mut self) {
        let mut i = 0;
        while i < self.logs.len() {
            let (lines, eof) = self.logs[i].drain();
            for line in lines {
                self.log(LogLevel::Info, line);
            }
            if eof {
                self.logs.remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn record(&self, level: LogLevel, message: String) -> LogRecord {
        LogRecord {
            ts: now_ms(),
            level,
            sandbox: Some(self.spec.sandbox_id),
            profile: Some(self.spec.profile.name.clone()),
            message,
        }
    }

    /// A log record for the daemon, if the rate limit admits it (else it is counted as dropped).
    pub(super) fn log(&mut self, level: LogLevel, message: String) {
        if self.mode == Mode::Standalone {
            return eprintln!("oz-agent[{}]: {message}", self.spec.sandbox_id);
        }
        let now = Instant::now();
        if !self.limiter.admit(now, message.len()) {
            return;
        }
        self.dropped_notice(now);
        let rec = self.record(level, message);
        self.send_daemon(AgentToDaemon::Log(rec), &[]);
    }

    /// Tell the daemon how many records were dropped, when a notice is due.
    fn dropped_notice(&mut self, now: Instant) {
        if let Some(n) = self.limiter.notice_due(now) {
            let rec = self.record(LogLevel::Warning, LogLimiter::notice(n));
            self.send_daemon(AgentToDaemon::Log(rec), &[]);
        }
    }

    /// A problem of the agent itself: to stderr and, best effort, to the daemon's log.
    pub(super) fn warn(&mut self, message: String) {
        eprintln!("oz-agent[{}]: {message}", self.spec.sandbox_id);
        self.log(LogLevel::Warning, message);
    }

    /// Send an event to the daemon if one is attached; losing it is an event, never an error.
    /// Exit events that happen while no daemon is attached are kept for the next one.
    pub(super) fn send_daemon(&mut self, msg: AgentToDaemon, fds: &[BorrowedFd<'_>]) {
        self.post_daemon(None, msg, fds)
    }

    /// Answer the daemon's request `re` (dropped with the daemon that asked, if it is gone).
    pub(super) fn reply_daemon(&mut self, re: RequestId, msg: AgentToDaemon, fds: &[BorrowedFd<'_>]) {
        self.post_daemon(Some(re), msg, fds)
    }

    fn post_daemon(&mut self, re: Option<RequestId>, msg: AgentToDaemon, fds: &[BorrowedFd<'_>]) {
        if self.daemon.is_none() {
            if matches!(
                msg,
                AgentToDaemon::ProgramExited { .. }
                    | AgentToDaemon::ProcessExited { .. }
                    | AgentToDaemon::ShellExited { .. }
            ) && self.backlog.len() < MAX_BACKLOG
            {
                self.backlog.push_back(msg);
            }
            return;
        }
        match self.outbox.push(re, &msg, fds) {
            Ok(Push::Queued) => self.flush_daemon(),
            Ok(Push::Dropped) => {
                if let AgentToDaemon::Log(_) = msg {
                    self.limiter.count_dropped(1);
                }
            }
            Ok(Push::Overflow) => {
                eprintln!("oz-agent[{}]: the daemon is not reading its channel; dropping it", self.spec.sandbox_id);
                self.feed(Event::DaemonLost);
            }
            Err(e) => self.warn(format!("send {} to the daemon: {e}", msg.kind())),
        }
    }

    /// Send what the daemon's socket takes now; the rest waits for POLLOUT.
    fn flush_daemon(&mut self) {
        let Some(d) = &self.daemon else { return };
        if let Err(e) = self.outbox.flush(d.as_fd()) {
            let kind = e.kind();
            if matches!(
                kind,
                std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::NotConnected
            ) {
                self.feed(Event::DaemonLost);
            } else {
                // Not through `warn`: its record would come back here.
                eprintln!("oz-agent[{}]: send to the daemon: {e}", self.spec.sandbox_id);
            }
        }
    }

    /// Before exiting: give the last messages a bounded time to leave.
    fn final_flush(&mut self) {
        let end = Instant::now() + FINAL_FLUSH;
        while !self.outbox.is_empty() {
            let Some(d) = &self.daemon else { return };
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!("oz-agent[{}]: the daemon did not take the last messages in time", self.spec.sandbox_id);
                return;
            }
            let mut fds = [PollFd::new(d.as_fd(), PollFlags::POLLOUT)];
            let ms = PollTimeout::from(left.as_millis().min(u16::MAX as u128) as u16);
            if matches!(poll(&mut fds, ms), Ok(n) if n > 0) {
                self.flush_daemon();
            }
        }
    }

    /// Send a request to the init; if the init is gone, the failure shows up as its exit.
    /// Returns the request's id, which the init's reply carries.
    pub(super) fn send_init(&mut self, msg: &AgentToInit, fds: &[RawFd]) -> Option<InitRequestId> {
        match iproto::send_request(self.init_fd(), msg, fds) {
            Ok(id) => Some(id),
            Err(e) => {
                self.warn(format!("send to init: {e}"));
                None
            }
        }
    }

    fn on_init_readable(&mut self) {
        match iproto::recv_message(self.init_fd()) {
            Ok((re, msg, fds)) => {
                // The program: the init's first, or (an X display's server started first) the
                // one started after it.
                if let InitToAgent::Exited { pid, role, status, .. } = &msg {
                    let first = *role == ProcessRole::Program;
                    if first || (*role == ProcessRole::Relaunch && self.started.program_pid == Some(*pid)) {
                        self.program_status = Some(*status);
                    }
                }
                self.on_init_message(re, msg, fds)
            }
            Err(iproto::WireError::Closed) | Err(iproto::WireError::Io { .. }) => {
                self.init_channel_open = false;
            }
            Err(e) => self.warn(format!("init channel: {e}")),
        }
    }

    fn on_signals(&mut self) {
        while let Ok(Some(info)) = self.signals.read_signal() {
            let signal = Signal::try_from(info.ssi_signo as i32).ok();
            match signal {
                Some(Signal::SIGCHLD) => self.reap_children(),
                // The init forwards it to every process of the sandbox.
                Some(sig) if self.mode == Mode::Standalone && !self.tree.sandbox.programs.is_empty() => {
                    let _ = nix::sys::signal::kill(Pid::from_raw(self.init_pid()), sig);
                }
                _ => {
                    let name = signal.map(|s| s.as_str()).unwrap_or("signal");
                    self.feed(Event::ShutdownRequested { reason: format!("agent received {name}") });
                }
            }
        }
    }

    /// Feed the exits of helper processes (SIGCHLD also comes for the init: `check_init`).
    fn reap_children(&mut self) {
        for (slot, status) in self.children.reap() {
            self.feed(tree::Event::ChildExited { slot, status });
        }
    }

    /// A daemon knocks on the rendezvous socket: authenticate, hello, hand it the record.
    fn accept_daemon(&mut self) {
        let Some(rv) = &self.rendezvous else { return };
        let (fd, peer): (OwnedFd, _) = match rv.accept() {
            Ok(Accepted::Daemon(fd, peer)) => (fd, peer),
            Ok(Accepted::Refused(peer)) => {
                self.warn(format!("refused rendezvous peer pid {} uid {}", peer.pid, peer.uid));
                return;
            }
            Ok(Accepted::Nobody) => return,
            Err(e) => {
                self.warn(format!("{e}"));
                return;
            }
        };
        let chan = DaemonChannel::new(fd);
        let hello = chan
            .set_read_timeout(Some(HELLO_TIMEOUT))
            .and_then(|()| chan.accept_hello(Some(self.spec.sandbox_id), std::process::id()))
            .and_then(|()| chan.set_read_timeout(None));
        let hello = hello.and_then(|()| {
            outbox::set_nonblocking(chan.as_fd())
                .map_err(|e| oz_wire::WireError::Io { op: "set O_NONBLOCK", source: e.into() })
        });
        if let Err(e) = hello {
            self.warn(format!("rendezvous hello from pid {}: {e}", peer.pid));
            return;
        }
        // The newest daemon wins; an old connection (if any) is dropped with what it asked.
        self.forget_daemon();
        self.daemon = Some(chan);
        self.feed(Event::DaemonAttached);
    }

    /// Feed an event to the supervision tree and perform what it decides, in order (scans and
    /// spawns feed their results back).
    pub(super) fn feed(&mut self, event: impl Into<tree::Event>) {
        let mut queue = VecDeque::from([event.into()]);
        while let Some(ev) = queue.pop_front() {
            let (next, actions) = tree::next(&self.tree, &ev, self.born.elapsed());
            self.tree = next;
            for action in actions {
                self.perform(action, &mut queue);
            }
        }
        self.sync_record();
    }

    /// Bring the record up to date (phase, mounts, forwarders); when it changed, send it to the
    /// daemon and store it in the state file.
    pub(super) fn sync_record(&mut self) {
        let phase = reported_phase(&self.tree.sandbox.phase);
        let mounts = self.mounts.paths();
        let forwarders_same = self.record.network.as_ref().is_none_or(|n| n.forwarders == self.forward_infos);
        if phase == self.record.phase && mounts == self.record.mounts && forwarders_same {
            return;
        }
        self.record.phase = phase;
        self.record.mounts = mounts;
        if let Some(n) = &mut self.record.network {
            n.forwarders = self.forward_infos.clone();
        }
        self.send_daemon(AgentToDaemon::State(self.record.clone()), &[]);
        if let Some(rv) = &self.rendezvous {
            if let Err(e) = rv.store(&self.record) {
                self.warn(format!("state record: {e}"));
            }
        }
    }

    fn perform(&mut self, action: tree::Action, queue: &mut VecDeque<tree::Event>) {
        let action = match action {
            tree::Action::Sandbox(a) => a,
            tree::Action::Spawn { slot } => {
                let result = match self.forward_slot(slot) {
                    Some(i) => self.start_forwarder(i),
                    None => self.children.spawn(slot).map_err(|e| e.to_string()),
                };
                queue.push_back(match result {
                    Ok(pid) => tree::Event::Started { slot, pid },
                    Err(error) => tree::Event::SpawnFailed { slot, error },
                });
                return;
            }
            tree::Action::SpawnAfter { delay, .. } => return self.respawn_at.push(Instant::now() + delay),
            tree::Action::Stop { slot, pid } => match self.forward_slot(slot) {
                Some(i) => {
                    self.stop_forwarder(i);
                    return queue.push_back(tree::Event::ChildExited { slot, status: "closed".into() });
                }
                None => return self.children.stop(slot, pid),
            },
            tree::Action::Report(r) => return self.log(LogLevel::Warning, r.to_string()),
        };
        match action {
            Action::KeepRunning | Action::Finish => {}
            Action::ScanWatchdogs => {
                let procs: Vec<_> = self.sandbox_processes().into_iter().filter(|p| p.pid != self.init_pid()).collect();
                queue.push_back(Event::WatchdogScan { alive: health::watchdog_names(&procs) }.into());
            }
            Action::RescanSoon => self.next_tick = Instant::now() + RESCAN,
            Action::Shutdown(reason) => self.begin_shutdown(reason),
            Action::AwaitDaemon => self.forget_daemon(),
            Action::SendState => {
                let rec = self.record.clone();
                self.send_daemon(AgentToDaemon::State(rec), &[]);
                for msg in std::mem::take(&mut self.backlog) {
                    self.send_daemon(msg, &[]);
                }
            }
        }
    }

    /// Drop the daemon connection and every answer owed to it.
    fn forget_daemon(&mut self) {
        self.daemon = None;
        self.outbox.clear();
        self.answers.clear();
        self.pending.values_mut().for_each(Pending::orphan);
    }

    fn begin_shutdown(&mut self, reason: ShutdownReason) {
        self.shutdown_reason = Some(reason);
        self.kill_at = Some(Instant::now() + KILL_AFTER);
        let sent = self.init_channel_open.then(|| self.send_init(&AgentToInit::Shutdown { grace_ms: GRACE_MS }, &[]));
        if let Some(Some(id)) = sent {
            self.pending.insert(id, Pending::Shutdown);
        } else {
            self.kill_at = Some(Instant::now());
        }
    }

    /// The init is gone: release everything, then tell the daemon and exit.
    fn finish(&mut self) -> i32 {
        self.drain_logs();
        self.seccomp_counts(false);
        self.children.kill_all();
        // Closes every forwarder socket and removes the forwarder directory.
        self.forwards = None;
        let reason = self.shutdown_reason.clone().unwrap_or(ShutdownReason::InitExited);
        if let Err(e) = self.started.teardown() {
            self.warn(format!("teardown: {e}"));
        }
        if let Some(rv) = self.rendezvous.take() {
            rv.remove();
        }
        let done = AgentToDaemon::ShuttingDown { reason: reason.to_string() };
        if !self.final_answers(&done) {
            self.send_daemon(done, &[]);
        }
        self.final_flush();
        0
    }
}
