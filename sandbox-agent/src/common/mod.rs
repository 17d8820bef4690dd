//! Code both the agent and the init run: the channel between them, the program's environment
//! and path, and process names.

pub mod env;
pub mod procname;
pub mod proto;
