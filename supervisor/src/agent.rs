//! One actor per agent: owns the SOCK_SEQPACKET channel, matches answers to the requests the
//! daemon sent by request id (a reply of a kind its request does not accept fails that request
//! with `UnexpectedMessage`), routes events (logs, exits, health) and
//! tears the sandbox down in the daemon when the channel ends. Requests go through a bounded
//! queue flushed when the socket is writable ([`crate::agentio`]): the actor never waits for an
//! agent.

pub use crate::agentio::{AgentIo, Answer, Incoming};
use crate::agentio::{Outbox, QueueError};
use crate::cleanup;
use crate::logs::LogHub;
use crate::registry::{Registry, Remove, SetRecord, SetState};
use actix::fut::wrap_future;
use actix::prelude::*;
use oz_wire::{
    AgentError, AgentToDaemon, DaemonError, DaemonToAgent, ExitStatus, RequestId, RequestKind, SandboxState, WireError,
};
use slog::{debug, info, o, warn, Logger};
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// Program exits remembered for watchers that register late.
const EXITS_KEPT: usize = 64;
/// Most requests sent to one agent and not yet answered.
pub const MAX_PENDING: usize = 64;

/// What the waiter of a request gets: the answer, or why there is none.
pub type Reply = Result<Answer, WireError>;

/// A request sent (or queued), waiting for the reply with its id.
struct Pending {
    kind: RequestKind,
    tx: oneshot::Sender<Reply>,
    watch: Option<oneshot::Sender<ExitStatus>>,
}

pub struct Agent {
    pub id: u64,
    pub profile: String,
    pub agent_pid: u32,
    pub init_pid: u32,
    io: Rc<AgentIo>,
    outbox: Outbox,
    /// A wait for the socket to become writable is armed.
    flushing: bool,
    pending: HashMap<RequestId, Pending>,
    exits: VecDeque<(u32, ExitStatus)>,
    watchers: HashMap<u32, oneshot::Sender<ExitStatus>>,
    /// Shells opened for a client that waits for their exit (`ShellExited` always follows the
    /// `ShellOpened` registering it, so no exit is kept for late watchers).
    shell_watchers: HashMap<u32, oneshot::Sender<ExitStatus>>,
    shutting_down: bool,
    registry: Addr<Registry>,
    hub: Arc<LogHub>,
    log: Logger,
    state_dir: PathBuf,
    exit_tx: watch::Sender<bool>,
}

/// What creating an agent actor needs.
pub struct AgentParams {
    pub id: u64,
    pub profile: String,
    pub agent_pid: u32,
    pub init_pid: u32,
    pub io: AgentIo,
    pub registry: Addr<Registry>,
    pub hub: Arc<LogHub>,
    pub log: Logger,
    pub state_dir: PathBuf,
}

/// How the rest of the daemon reaches an agent: its address, and a receiver that turns true once
/// the sandbox is gone (channel ended, leftovers released, unlisted). Derefs to the address.
#[derive(Clone)]
pub struct AgentHandle {
    pub addr: Addr<Agent>,
    pub ended: watch::Receiver<bool>,
}

impl std::ops::Deref for AgentHandle {
    type Target = Addr<Agent>;
    fn deref(&self) -> &Addr<Agent> {
        &self.addr
    }
}

impl Agent {
    /// Start the actor for an agent channel.
    pub fn launch(p: AgentParams) -> AgentHandle {
        let (exit_tx, ended) = watch::channel(false);
        let addr = Agent::new(p, exit_tx).start();
        AgentHandle { addr, ended }
    }

    fn new(p: AgentParams, exit_tx: watch::Sender<bool>) -> Agent {
        let log = p.log.new(o!("sandbox" => p.id, "profile" => p.profile.clone(), "agent_pid" => p.agent_pid));
        Agent {
            id: p.id,
            profile: p.profile,
            agent_pid: p.agent_pid,
            init_pid: p.init_pid,
            io: Rc::new(p.io),
            outbox: Outbox::default(),
            flushing: false,
            pending: HashMap::new(),
            exits: VecDeque::new(),
            watchers: HashMap::new(),
            shell_watchers: HashMap::new(),
            shutting_down: false,
            registry: p.registry,
            hub: p.hub,
            log,
            state_dir: p.state_dir,
            exit_tx,
        }
    }

    /// The bare `Hello` that opens the channel answers the pending `Hello` request.
    fn hello_request(&self) -> Option<RequestId> {
        self.pending.iter().find(|(_, p)| p.kind == RequestKind::Hello).map(|(id, _)| *id)
    }

    /// A reply to request `id`: refused unless that request is pending and accepts its kind.
    fn answer(&mut self, id: RequestId, msg: AgentToDaemon, fds: Vec<OwnedFd>) {
        let Some(mut p) = self.pending.remove(&id) else {
            warn!(self.log, "reply to an unknown request refused"; "request" => %id, "message" => msg.kind());
            return;
        };
        if !p.kind.accepts(&msg) {
            warn!(self.log, "agent answered with the wrong message"; "request" => %id, "expected" => p.kind.expected(), "message" => msg.kind());
            let _ = p.tx.send(Err(WireError::UnexpectedMessage {
                expected: p.kind.expected(),
                received: msg.kind().to_string(),
            }));
            return;
        }
        if let AgentToDaemon::Ready { init_pid, program_pid } = &msg {
            self.init_pid = *init_pid;
            if let (Some(pid), Some(w)) = (program_pid, p.watch.take()) {
                self.watch_program(*pid, w);
            }
        }
        if let AgentToDaemon::ShuttingDown { .. } = msg {
            self.shutting_down = true;
        }
        if let (AgentToDaemon::ShellOpened { pid }, Some(w)) = (&msg, p.watch) {
            self.shell_watchers.insert(*pid, w);
        }
        let _ = p.tx.send(Ok((msg, fds)));
    }

    fn watch_program(&mut self, pid: u32, w: oneshot::Sender<ExitStatus>) {
        if let Some(pos) = self.exits.iter().position(|(p, _)| *p == pid) {
            let (_, status) = self.exits.remove(pos).expect("position is valid");
            let _ = w.send(status);
        } else {
            self.watchers.insert(pid, w);
        }
    }

    fn event(&mut self, msg: AgentToDaemon) {
        match msg {
            // Program output: the owner's file and `oz logs`, never the daemon's stderr; its last
            // lines are kept for a launch that fails at once.
            AgentToDaemon::Log(rec) => {
                self.hub.tails.push(self.id, &rec.message);
                self.hub.push_output(self.id, rec);
            }
            AgentToDaemon::ProgramExited { pid, status } => {
                info!(self.log, "program exited"; "pid" => pid, "status" => %status);
                match self.watchers.remove(&pid) {
                    Some(w) => {
                        let _ = w.send(status);
                    }
                    None => {
                        if self.exits.len() == EXITS_KEPT {
                            self.exits.pop_front();
                        }
                        self.exits.push_back((pid, status));
                    }
                }
            }
            AgentToDaemon::ProcessExited { pid, comm, status } => {
                debug!(self.log, "process exited"; "pid" => pid, "comm" => comm, "status" => %status);
            }
            AgentToDaemon::ShellExited { pid, status } => {
                info!(self.log, "shell exited"; "pid" => pid, "status" => %status);
                if let Some(w) = self.shell_watchers.remove(&pid) {
                    let _ = w.send(status);
                }
            }
            AgentToDaemon::Health { rss_bytes, pids, cpu_usec, uptime_ms } => {
                debug!(self.log, "health"; "rss_bytes" => rss_bytes, "pids" => pids, "cpu_usec" => cpu_usec, "uptime_ms" => uptime_ms);
            }
            AgentToDaemon::Children { children } => {
                for c in children {
                    debug!(self.log, "helper"; "name" => c.name, "state" => ?c.state, "pid" => c.pid, "restarts" => c.restarts);
                }
            }
            AgentToDaemon::ShuttingDown { reason } => {
                info!(self.log, "sandbox shutting down"; "reason" => reason);
                self.shutting_down = true;
                self.registry.do_send(SetState { id: self.id, state: SandboxState::ShuttingDown });
            }
            // The agent's record is what the daemon lists (phase, mounts, display, network).
            AgentToDaemon::State(record) if record.id == self.id => {
                self.init_pid = record.init_pid;
                self.registry.do_send(SetRecord { record });
            }
            AgentToDaemon::State(record) => {
                warn!(self.log, "agent sent the record of another sandbox; ignored"; "record_id" => record.id);
            }
            AgentToDaemon::Error(e) => warn!(self.log, "agent refused a message"; "error" => %e),
            other => warn!(self.log, "unexpected message from agent"; "message" => other.kind()),
        }
    }
}

impl Actor for Agent {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let io = self.io.clone();
        let stream = futures::stream::unfold(Some(io), |io| async move {
            let io = io?;
            match io.recv().await {
                Ok(m) => Some((Ok(m), Some(io))),
                Err(e) => Some((Err(e), None)),
            }
        });
        ctx.add_stream(stream);
    }

    /// The channel ended: release what the agent left, then drop the sandbox from the registry
    /// and tell waiters (a kill answers only now, so nothing is listed or left afterwards).
    fn stopped(&mut self, _: &mut Context<Self>) {
        self.registry.do_send(SetState { id: self.id, state: SandboxState::ShuttingDown });
        self.pending.clear();
        self.watchers.clear();
        self.shell_watchers.clear();
        if self.shutting_down {
            info!(self.log, "sandbox ended");
        } else {
            warn!(self.log, "agent channel closed unexpectedly; sandbox removed");
        }
        let job =
            cleanup::Leftovers::new(self.id, self.agent_pid, self.init_pid, self.state_dir.clone(), self.log.clone());
        let (id, registry, hub) = (self.id, self.registry.clone(), self.hub.clone());
        let exit_tx = std::mem::replace(&mut self.exit_tx, watch::channel(false).0);
        actix::spawn(async move {
            job.clean().await;
            let _ = registry.send(Remove { id }).await;
            hub.sandbox_ended(id);
            let _ = exit_tx.send(true);
        });
    }
}

impl StreamHandler<Result<Incoming, WireError>> for Agent {
    fn handle(&mut self, item: Result<Incoming, WireError>, _: &mut Context<Self>) {
        match item {
            Ok((env, fds)) => match (env.re, env.msg) {
                (Some(id), msg) => self.answer(id, msg, fds),
                (None, msg @ AgentToDaemon::Hello { .. }) => match self.hello_request() {
                    Some(id) => self.answer(id, msg, fds),
                    None => warn!(self.log, "unsolicited hello from agent"),
                },
                (None, msg) => self.event(msg),
            },
            Err(WireError::Closed) => debug!(self.log, "agent channel closed"),
            Err(e) => warn!(self.log, "agent channel failed"; "error" => %e),
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

/// Send a request; the receiver yields the agent's answer (dropped if the agent goes away).
/// With `watch`, the program started by an answering `Ready`, or the shell of an answering
/// `ShellOpened`, is watched for its exit.
#[derive(Message)]
#[rtype(result = "Result<oneshot::Receiver<Reply>, DaemonError>")]
pub struct Request {
    pub msg: DaemonToAgent,
    pub fds: Vec<OwnedFd>,
    pub watch: Option<oneshot::Sender<ExitStatus>>,
}

impl Handler<Request> for Agent {
    type Result = Result<oneshot::Receiver<Reply>, DaemonError>;
    fn handle(&mut self, r: Request, ctx: &mut Context<Self>) -> Self::Result {
        let kind = r.msg.kind();
        if self.io.version() == oz_wire::v3::VERSION && !oz_wire::v3::understands(&r.msg) {
            let detail = format!("the agent speaks protocol {} and has no {kind} request", self.io.version());
            return Err(DaemonError::Agent { id: self.id, error: AgentError::Unsupported { detail } });
        }
        if self.pending.len() >= MAX_PENDING {
            warn!(self.log, "agent leaves too many requests unanswered; request refused"; "message" => kind);
            return Err(DaemonError::AgentBusy { id: self.id });
        }
        let seq = match self.outbox.push(&r.msg, r.fds, self.io.max_message()) {
            Ok(seq) => seq,
            Err(QueueError::TooLarge { len, max }) => {
                return Err(DaemonError::RequestTooLarge {
                    id: self.id,
                    request: kind.to_lowercase(),
                    len: len as u64,
                    max: max as u64,
                })
            }
            Err(QueueError::Full) => {
                warn!(self.log, "agent is not keeping up; request refused"; "message" => kind);
                return Err(DaemonError::AgentBusy { id: self.id });
            }
            Err(QueueError::Encode(detail)) => {
                return Err(DaemonError::Agent {
                    id: self.id,
                    error: AgentError::Channel { detail: format!("encode {kind}: {detail}") },
                })
            }
        };
        let (tx, rx) = oneshot::channel();
        match self.pending.entry(RequestId(seq)) {
            Entry::Vacant(v) => v.insert(Pending { kind: RequestKind::of(&r.msg), tx, watch: r.watch }),
            Entry::Occupied(_) => unreachable!("request ids are never reused on a channel"),
        };
        self.flush(ctx);
        Ok(rx)
    }
}

impl Agent {
    /// Send queued frames while the socket takes them; when it is full, arm one wait for it to
    /// become writable. A frame the socket refuses for good fails its own request only.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing {
            return;
        }
        while let Some(out) = self.outbox.front() {
            match self.io.try_send(out) {
                Ok(()) => {
                    self.outbox.pop();
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.flushing = true;
                    let io = self.io.clone();
                    ctx.spawn(wrap_future::<_, Self>(async move { io.writable().await }).map(|(), act, ctx| {
                        act.flushing = false;
                        act.flush(ctx);
                    }));
                    return;
                }
                Err(e) => {
                    let out = self.outbox.pop().expect("front exists");
                    warn!(self.log, "send to agent failed"; "message" => out.kind, "error" => %e);
                    if let Some(p) = self.pending.remove(&RequestId(out.seq)) {
                        let _ = p.tx.send(Err(WireError::Io { op: "send to agent", source: e }));
                    }
                }
            }
        }
    }
}

/// The agent did not shut down in time: kill it and its sandbox's init.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForceKill;

impl Handler<ForceKill> for Agent {
    type Result = ();
    fn handle(&mut self, _: ForceKill, _: &mut Context<Self>) {
        warn!(self.log, "agent did not shut down in time; killing it");
        self.shutting_down = true;
        cleanup::kill_pid(self.agent_pid);
        if cleanup::is_sandbox_init(self.init_pid, &oz_cgroups::CgroupName::new(&self.state_dir, self.id)) {
            cleanup::kill_pid(self.init_pid);
        }
    }
}
