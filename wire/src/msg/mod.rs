//! Typed messages, one enum per direction of each channel.

pub mod agent;
pub mod client;
pub mod common;
pub mod v3;

pub use agent::{
    AgentMessage, AgentRequest, AgentToDaemon, ChildHealth, ChildState, DaemonToAgent, RequestId, RequestKind,
};
pub use client::{
    ClientRequest, ControlReply, ControlRequest, DaemonReply, ForwarderStatus, KillTarget, LaunchParams, ProfileRef,
    ProfileSummary,
};
pub use common::{errno_text, AgentError, DaemonError, ExitStatus, LogLevel, LogRecord, SandboxState};

/// Version exchanged in every `Hello`; bump on any incompatible change.
///
/// 2: every agent-channel frame after the hello is an envelope carrying a request id
/// ([`AgentRequest`], [`AgentMessage`]); replies are matched to requests by id.
/// 3: so is every control-socket frame after the hello ([`ControlRequest`], [`ControlReply`]);
/// a sandbox is one [`crate::SandboxRecord`] in the agent's `State`, the daemon's `Sandboxes`
/// listing and the state file.
/// 4: the record says whether the sandbox is ephemeral (and `LaunchSpec` tells the agent).
pub const PROTOCOL_VERSION: u32 = 4;

/// The oldest agent protocol a daemon manages (agents of a previous release, re-adopted after
/// an upgrade); [`v3`] decodes their messages.
pub const OLDEST_AGENT_PROTOCOL: u32 = v3::VERSION;

/// The one version check of every channel's hello (control socket, agent channel): the peer's
/// `protocol_version` must be ours.
pub fn check_version(theirs: u32) -> Result<(), crate::WireError> {
    if theirs != PROTOCOL_VERSION {
        return Err(crate::WireError::VersionMismatch { ours: PROTOCOL_VERSION, theirs });
    }
    Ok(())
}

/// The daemon's check of a re-adopted agent's hello: agents of [`OLDEST_AGENT_PROTOCOL`] up to
/// ours are managed, anything else is refused with the range.
pub fn check_agent_version(theirs: u32) -> Result<u32, crate::WireError> {
    if !(OLDEST_AGENT_PROTOCOL..=PROTOCOL_VERSION).contains(&theirs) {
        return Err(crate::WireError::AgentVersion { theirs, oldest: OLDEST_AGENT_PROTOCOL, ours: PROTOCOL_VERSION });
    }
    Ok(theirs)
}
