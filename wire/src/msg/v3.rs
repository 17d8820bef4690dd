//! Protocol 3 on the agent channel, as far as it differs from the current protocol, so that a
//! daemon manages the agents a previous release started (they keep running across a package
//! upgrade). Its sandbox record had no `ephemeral` flag, which changes the encoding of `State`;
//! every other agent message, and every daemon request but `Launch` (whose `LaunchSpec` gained
//! the flag; it only ever goes to an agent the daemon spawned itself), encode as in the current
//! protocol. Messages decoded here are converted to the current types at once.

use super::client::ForwarderStatus;
use super::common::{AgentError, ExitStatus, LogRecord, SandboxState};
use super::{ChildHealth, DaemonToAgent, RequestId};
use crate::record::{DisplayInfo, NetworkInfo};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The protocol version of this module.
pub const VERSION: u32 = 3;

/// A sandbox record of protocol 3: the current one without `ephemeral`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: u64,
    pub profile: String,
    pub uid: u32,
    pub user: String,
    pub phase: SandboxState,
    pub init_pid: u32,
    pub agent_pid: u32,
    pub started_at: u64,
    pub mounts: Vec<PathBuf>,
    pub network: Option<NetworkInfo>,
    pub display: Option<DisplayInfo>,
}

impl From<SandboxRecord> for crate::SandboxRecord {
    /// A protocol 3 agent does not know whether its sandbox is ephemeral: it reads as not.
    fn from(r: SandboxRecord) -> Self {
        crate::SandboxRecord {
            id: r.id,
            profile: r.profile,
            uid: r.uid,
            user: r.user,
            phase: r.phase,
            init_pid: r.init_pid,
            agent_pid: r.agent_pid,
            started_at: r.started_at,
            mounts: r.mounts,
            network: r.network,
            display: r.display,
            ephemeral: false,
        }
    }
}

/// A message from a protocol 3 agent: the current variants in the same order, `State` with the
/// protocol 3 record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentToDaemon {
    Hello { protocol_version: u32, sandbox_id: Option<u64>, agent_pid: u32 },
    Ready { init_pid: u32, program_pid: Option<u32> },
    LaunchFailed(AgentError),
    ProgramExited { pid: u32, status: ExitStatus },
    ProcessExited { pid: u32, comm: String, status: ExitStatus },
    Log(LogRecord),
    Health { rss_bytes: u64, pids: u32, cpu_usec: u64, uptime_ms: u64 },
    ShellStarted,
    Mounted { paths: Vec<PathBuf> },
    Unmounted,
    Error(AgentError),
    State(SandboxRecord),
    ShuttingDown { reason: String },
    Pong,
    ShellOpened { pid: u32 },
    ShellExited { pid: u32, status: ExitStatus },
    Mounts { paths: Vec<PathBuf> },
    Children { children: Vec<ChildHealth> },
    XpraRelaunched,
    Phase(SandboxState),
    Forwarded { path: PathBuf },
    Forwarders(Vec<ForwarderStatus>),
}

impl From<AgentToDaemon> for super::AgentToDaemon {
    fn from(m: AgentToDaemon) -> Self {
        use super::AgentToDaemon as A;
        match m {
            AgentToDaemon::Hello { protocol_version, sandbox_id, agent_pid } => {
                A::Hello { protocol_version, sandbox_id, agent_pid }
            }
            AgentToDaemon::Ready { init_pid, program_pid } => A::Ready { init_pid, program_pid },
            AgentToDaemon::LaunchFailed(e) => A::LaunchFailed(e),
            AgentToDaemon::ProgramExited { pid, status } => A::ProgramExited { pid, status },
            AgentToDaemon::ProcessExited { pid, comm, status } => A::ProcessExited { pid, comm, status },
            AgentToDaemon::Log(r) => A::Log(r),
            AgentToDaemon::Health { rss_bytes, pids, cpu_usec, uptime_ms } => {
                A::Health { rss_bytes, pids, cpu_usec, uptime_ms }
            }
            AgentToDaemon::ShellStarted => A::ShellStarted,
            AgentToDaemon::Mounted { paths } => A::Mounted { paths },
            AgentToDaemon::Unmounted => A::Unmounted,
            AgentToDaemon::Error(e) => A::Error(e),
            AgentToDaemon::State(r) => A::State(r.into()),
            AgentToDaemon::ShuttingDown { reason } => A::ShuttingDown { reason },
            AgentToDaemon::Pong => A::Pong,
            AgentToDaemon::ShellOpened { pid } => A::ShellOpened { pid },
            AgentToDaemon::ShellExited { pid, status } => A::ShellExited { pid, status },
            AgentToDaemon::Mounts { paths } => A::Mounts { paths },
            AgentToDaemon::Children { children } => A::Children { children },
            AgentToDaemon::XpraRelaunched => A::XpraRelaunched,
            AgentToDaemon::Phase(p) => A::Phase(p),
            AgentToDaemon::Forwarded { path } => A::Forwarded { path },
            AgentToDaemon::Forwarders(f) => A::Forwarders(f),
        }
    }
}

/// Every frame from a protocol 3 agent after the hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentMessage {
    pub re: Option<RequestId>,
    pub msg: AgentToDaemon,
}

impl From<AgentMessage> for super::AgentMessage {
    fn from(m: AgentMessage) -> Self {
        super::AgentMessage { re: m.re, msg: m.msg.into() }
    }
}

/// Whether a protocol 3 agent decodes `msg` as the daemon means it: every request but
/// `Launch`, whose `LaunchSpec` changed.
pub fn understands(msg: &DaemonToAgent) -> bool {
    !matches!(msg, DaemonToAgent::Launch(_))
}
