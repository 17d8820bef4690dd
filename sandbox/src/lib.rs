//! oz-sandbox: the mechanism of an oz sandbox, one module per kernel mechanism, each usable and
//! tested on its own. `oz-agent` sequences them (agent side and in-sandbox init).
//!
//! - [`rootfs`]: the decisions (a pure plan from the profile) and the build of the root file
//!   system, user paths opened with `openat2` under the user's credentials.
//! - [`namespaces`]: clone into new namespaces, UTS names, loopback ([`linkattr`]: its
//!   rtnetlink attributes).
//! - [`exec`]: the program's child: credentials ([`exec::creds`]), Landlock, seccomp, execve.
//! - [`cgroups`]: the sandbox's cgroup (the `oz-cgroups` crate, shared with the daemon).
//! - [`landlock`], [`seccomp`] (policy IR to BPF with libseccomp, and its install), [`user`].

pub mod exec;
pub mod landlock;
pub mod linkattr;
pub mod namespaces;
pub mod rootfs;
pub mod seccomp;
pub mod step;
#[cfg(test)]
mod testfork;
pub mod user;

pub use oz_cgroups as cgroups;
