//! The one record of a sandbox, from the agent that runs it to the daemon and the client: the
//! agent keeps it (and stores it as its state file), sends it to the daemon whenever it changes
//! and when a restarted daemon re-adopts the sandbox, and the daemon lists it as it is.

use crate::msg::SandboxState;
// The profile model's names for these, re-exported for clients of the record.
pub use oz_profiles::profile::{NetType, SocketDirection, SocketProto, XBackend};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

/// A sandbox as its agent knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxRecord {
    pub id: u64,
    /// The profile name.
    pub profile: String,
    /// The owner.
    pub uid: u32,
    /// The owner's user name.
    pub user: String,
    /// Where the sandbox is in its life, as the agent's supervision decided. State files
    /// written before the phase was recorded read as `Running`.
    #[serde(default = "running")]
    pub phase: SandboxState,
    /// The sandbox init (PID 1 inside), as seen from the host.
    pub init_pid: u32,
    pub agent_pid: u32,
    /// Seconds since the Unix epoch.
    pub started_at: u64,
    /// What the agent injected into the sandbox (`Mount` requests, argument files of later
    /// launches), as paths inside it.
    #[serde(default)]
    pub mounts: Vec<PathBuf>,
    /// The sandbox's network, None while not known.
    #[serde(default)]
    pub network: Option<NetworkInfo>,
    /// The sandbox's own X display, for profiles with `xserver.enabled`.
    #[serde(default)]
    pub display: Option<DisplayInfo>,
    /// Built for an ephemeral launch: nothing of the owner's home is in it, nothing written
    /// there outlives it. Records of protocol 3 agents, which did not know, read as false.
    #[serde(default)]
    pub ephemeral: bool,
}

fn running() -> SandboxState {
    SandboxState::Running
}

/// The network of a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// The profile's `networking.type`.
    pub mode: NetType,
    /// The sandbox's address on its bridge, once it has one.
    pub address: Option<IpAddr>,
    /// The socket forwarders running for the sandbox.
    pub forwarders: Vec<ForwarderInfo>,
}

/// One socket forwarder between the host and the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwarderInfo {
    pub name: String,
    pub direction: SocketDirection,
    pub proto: SocketProto,
    pub port: u16,
}

/// The X display a sandbox's programs draw on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisplayInfo {
    pub backend: XBackend,
    /// The display number inside the sandbox (`DISPLAY=:N`).
    pub display: u32,
}
