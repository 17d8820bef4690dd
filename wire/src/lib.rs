//! oz wire protocol: typed messages for each channel direction, length-prefixed bincode framing,
//! file-descriptor passing, role-typed channels, the agent state record and the blocking client
//! library. See `PROTOCOL.md` for the byte-level description.

pub mod channel;
pub mod client;
pub mod error;
pub mod fdpass;
pub mod frame;
pub mod msg;
pub mod record;
pub mod spec;
pub mod state;
pub mod text;

pub use error::WireError;
pub use msg::*;
pub use record::{DisplayInfo, ForwarderInfo, NetworkInfo, SandboxRecord};
pub use spec::{LaunchSpec, StdioMode};
