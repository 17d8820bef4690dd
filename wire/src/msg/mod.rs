//! Typed messages, one enum per direction of each channel.

pub mod agent;
pub mod client;
pub mod common;

pub use agent::{AgentToDaemon, ChildHealth, ChildState, DaemonToAgent};
pub use client::{ClientRequest, DaemonReply, KillTarget, ProfileRef, ProfileSummary, SandboxInfo};
pub use common::{errno_text, AgentError, DaemonError, ExitStatus, LogLevel, LogRecord, SandboxState};

/// Version exchanged in every `Hello`; bump on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;
