//! oz-agent: builds one sandbox from a launch spec, runs the in-sandbox init (PID 1), and
//! supervises the program. The mechanism (root filesystem, namespaces, exec, cgroups, Landlock,
//! seccomp) is the `oz-sandbox` crate; this crate sequences it, by role:
//!
//! - [`agent`]: runs in the agent, the privileged process outside the sandbox: the serve loop,
//!   supervision, standalone mode, and the clone of the init.
//! - [`init`]: runs in the init, inside the sandbox.
//! - [`common`]: used by both: the agent <-> init channel, the program's environment, process
//!   names. It imports neither `agent` nor `init`.

pub mod agent;
pub mod common;
pub mod init;

pub use agent::sandbox::{Sandbox, SandboxError};
