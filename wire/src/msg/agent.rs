//! The agent channel: daemon -> agent and agent -> daemon messages (SOCK_SEQPACKET).

use super::common::{AgentError, ExitStatus, LogRecord, SandboxState};
use crate::record::SandboxRecord;
use crate::spec::{LaunchSpec, StdioMode};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A message from the daemon to an agent.
// `Launch` is much larger than the rest; it is sent once per sandbox, boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaemonToAgent {
    /// First message on every agent connection (socketpair or rendezvous socket).
    Hello {
        protocol_version: u32,
    },
    /// Build the sandbox and start the program; three fds follow when `spec.stdio` is `Attached`.
    /// Answered by `Ready` (after exec) or `LaunchFailed`.
    Launch(LaunchSpec),
    /// Run another program in the running sandbox (a second launch of the profile by the same
    /// user); three fds follow when `stdio` is `Attached`. Answered by `Ready` or `Error`.
    RunProgram {
        args: Vec<String>,
        cwd: Option<PathBuf>,
        caller_env: Vec<(String, String)>,
        stdio: StdioMode,
    },
    /// Start a shell as `uid` on a new pty; answered by `ShellStarted` with the master fd.
    Shell {
        uid: u32,
        term: String,
        cols: u16,
        rows: u16,
    },
    /// Bind paths of `uid`'s home into the sandbox; answered by `Mounted` or `Error`.
    Mount {
        uid: u32,
        paths: Vec<PathBuf>,
        read_only: bool,
    },
    /// Answered by `Unmounted` or `Error`.
    Umount {
        uid: u32,
        path: PathBuf,
    },
    /// Tear the sandbox down; the agent answers `ShuttingDown` and exits when done.
    Shutdown {
        reason: String,
    },
    Ping,
    /// Restart the sandbox's host-side Xpra client. Answered by `XpraRelaunched` or `Error`.
    RelaunchXpra,
}

/// A message from an agent to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentToDaemon {
    /// Answer to `Hello`. `sandbox_id` is None on a fresh agent (before `Launch`); on a
    /// rendezvous connection it is Some and a `State` record follows at once.
    Hello {
        protocol_version: u32,
        sandbox_id: Option<u64>,
        agent_pid: u32,
    },
    /// The program was exec'd (`program_pid` None with noexec).
    Ready {
        init_pid: u32,
        program_pid: Option<u32>,
    },
    LaunchFailed(AgentError),
    /// A program started by `Launch` or `RunProgram` ended.
    ProgramExited {
        pid: u32,
        status: ExitStatus,
    },
    /// Another supervised process (watchdog, shell, helper) ended.
    ProcessExited {
        pid: u32,
        comm: String,
        status: ExitStatus,
    },
    Log(LogRecord),
    Health {
        rss_bytes: u64,
        pids: u32,
        cpu_usec: u64,
        uptime_ms: u64,
    },
    /// The pty master fd accompanies this message.
    ShellStarted,
    Mounted {
        paths: Vec<PathBuf>,
    },
    Unmounted,
    Error(AgentError),
    /// The sandbox's record (event): sent before `Ready`, whenever it changes (phase, mounts,
    /// display, network), and right after `Hello` on a rendezvous connection, so that a
    /// restarted daemon lists the sandbox exactly as the agent knows it.
    State(SandboxRecord),
    ShuttingDown {
        reason: String,
    },
    Pong,
    /// Answer to `Shell` from agents that report how shells end: like `ShellStarted` (the pty
    /// master fd accompanies it), with the shell's pid in the sandbox's PID namespace.
    ShellOpened {
        pid: u32,
    },
    /// The shell opened with this pid ended (event; follows its `ShellOpened`).
    ShellExited {
        pid: u32,
        status: ExitStatus,
    },
    /// Protocol 2: what the agent injected into its sandbox. Protocol 3 agents send the mounts
    /// in their `State` record instead.
    Mounts {
        paths: Vec<PathBuf>,
    },
    /// The helper processes the agent supervises for the sandbox (X server, forwarders), with
    /// each `Health` heartbeat when there are any (event).
    Children {
        children: Vec<ChildHealth>,
    },
    /// Answer to `RelaunchXpra`: a new client was started.
    XpraRelaunched,
    /// Protocol 2: where the sandbox is in its life. Protocol 3 agents send the phase in their
    /// `State` record instead.
    Phase(SandboxState),
}

/// One supervised helper process, as the heartbeat reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildHealth {
    pub name: String,
    pub state: ChildState,
    /// Host pid while it runs.
    pub pid: Option<u32>,
    /// Restarts since the helper was added.
    pub restarts: u32,
}

/// Where a supervised helper is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChildState {
    Starting,
    Running,
    /// Exited; restarts after a backoff delay.
    Backoff,
    /// Exited too often within the restart window: not restarted any more.
    GivenUp,
    /// Stopped with the sandbox.
    Stopped,
}

impl DaemonToAgent {
    /// The variant name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            DaemonToAgent::Hello { .. } => "Hello",
            DaemonToAgent::Launch(_) => "Launch",
            DaemonToAgent::RunProgram { .. } => "RunProgram",
            DaemonToAgent::Shell { .. } => "Shell",
            DaemonToAgent::Mount { .. } => "Mount",
            DaemonToAgent::Umount { .. } => "Umount",
            DaemonToAgent::Shutdown { .. } => "Shutdown",
            DaemonToAgent::Ping => "Ping",
            DaemonToAgent::RelaunchXpra => "RelaunchXpra",
        }
    }
}

impl AgentToDaemon {
    /// The variant name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            AgentToDaemon::Hello { .. } => "Hello",
            AgentToDaemon::Ready { .. } => "Ready",
            AgentToDaemon::LaunchFailed(_) => "LaunchFailed",
            AgentToDaemon::ProgramExited { .. } => "ProgramExited",
            AgentToDaemon::ProcessExited { .. } => "ProcessExited",
            AgentToDaemon::Log(_) => "Log",
            AgentToDaemon::Health { .. } => "Health",
            AgentToDaemon::ShellStarted => "ShellStarted",
            AgentToDaemon::Mounted { .. } => "Mounted",
            AgentToDaemon::Unmounted => "Unmounted",
            AgentToDaemon::Error(_) => "Error",
            AgentToDaemon::State(_) => "State",
            AgentToDaemon::ShuttingDown { .. } => "ShuttingDown",
            AgentToDaemon::Pong => "Pong",
            AgentToDaemon::ShellOpened { .. } => "ShellOpened",
            AgentToDaemon::ShellExited { .. } => "ShellExited",
            AgentToDaemon::Mounts { .. } => "Mounts",
            AgentToDaemon::Children { .. } => "Children",
            AgentToDaemon::XpraRelaunched => "XpraRelaunched",
            AgentToDaemon::Phase(_) => "Phase",
        }
    }
}

/// Identifies one request on an agent channel; the reply to it carries the same id. The daemon
/// numbers its requests from 1 on each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RequestId(pub u64);

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Every frame from the daemon to an agent after the hello: a request and its id. The id comes
/// first, so a request whose body does not decode can still be refused by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRequest {
    pub id: RequestId,
    pub msg: DaemonToAgent,
}

/// Every frame from an agent to the daemon after the hello: `re` is the id of the request this
/// message answers, None for an event (logs, exits, health, the rendezvous `State`/`Mounts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMessage {
    pub re: Option<RequestId>,
    pub msg: AgentToDaemon,
}

/// What a request is, and so which replies it accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Hello,
    Launch,
    RunProgram,
    Shell,
    Mount,
    Umount,
    Shutdown,
    Ping,
    RelaunchXpra,
}

impl RequestKind {
    pub fn of(msg: &DaemonToAgent) -> RequestKind {
        match msg {
            DaemonToAgent::Hello { .. } => RequestKind::Hello,
            DaemonToAgent::Launch(_) => RequestKind::Launch,
            DaemonToAgent::RunProgram { .. } => RequestKind::RunProgram,
            DaemonToAgent::Shell { .. } => RequestKind::Shell,
            DaemonToAgent::Mount { .. } => RequestKind::Mount,
            DaemonToAgent::Umount { .. } => RequestKind::Umount,
            DaemonToAgent::Shutdown { .. } => RequestKind::Shutdown,
            DaemonToAgent::Ping => RequestKind::Ping,
            DaemonToAgent::RelaunchXpra => RequestKind::RelaunchXpra,
        }
    }

    /// The replies this request accepts, named for errors. Any request may also fail with `Error`.
    pub fn expected(self) -> &'static str {
        match self {
            RequestKind::Hello => "Hello",
            RequestKind::Launch => "Ready or LaunchFailed",
            RequestKind::RunProgram => "Ready",
            RequestKind::Shell => "ShellOpened or ShellStarted",
            RequestKind::Mount => "Mounted",
            RequestKind::Umount => "Unmounted",
            RequestKind::Shutdown => "ShuttingDown",
            RequestKind::Ping => "Pong",
            RequestKind::RelaunchXpra => "XpraRelaunched",
        }
    }

    /// Whether `reply` is an answer to a request of this kind.
    pub fn accepts(self, reply: &AgentToDaemon) -> bool {
        use AgentToDaemon as A;
        matches!(
            (self, reply),
            (_, A::Error(_))
                | (RequestKind::Hello, A::Hello { .. })
                | (RequestKind::Launch, A::Ready { .. } | A::LaunchFailed(_))
                | (RequestKind::RunProgram, A::Ready { .. })
                | (RequestKind::Shell, A::ShellOpened { .. } | A::ShellStarted)
                | (RequestKind::Mount, A::Mounted { .. })
                | (RequestKind::Umount, A::Unmounted)
                | (RequestKind::Shutdown, A::ShuttingDown { .. })
                | (RequestKind::Ping, A::Pong)
                | (RequestKind::RelaunchXpra, A::XpraRelaunched)
        )
    }
}
