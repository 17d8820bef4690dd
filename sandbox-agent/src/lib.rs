//! oz-agent: builds one sandbox from a launch spec, runs the in-sandbox init (PID 1), and
//! supervises the program.

pub mod argfiles;
pub mod rootfs;
pub mod user;
pub mod init;
pub mod health;
pub mod rendezvous;
pub mod supervise;
pub mod mountinject;
pub mod serve;
pub mod cgroups;
pub mod exec;
pub mod landlock;
pub mod namespaces;
pub mod procname;
pub mod sandbox;
pub mod seccomp;
pub mod standalone;

pub use sandbox::{Sandbox, SandboxError};
