//! The step of a sandbox or process setup that failed, and the error naming it: what the
//! program's child reports through its error pipe and the init sends to the agent.

use serde::{Deserialize, Serialize};

/// The step of a sandbox or process setup that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    Hostname,
    Loopback,
    Rootfs,
    Cgroup,
    Fork,
    Setsid,
    Stdio,
    Groups,
    Gid,
    Uid,
    CapBound,
    Securebits,
    Capabilities,
    NoNewPrivs,
    Landlock,
    CloseFds,
    Chdir,
    Seccomp,
    Exec,
    Pty,
    Mount,
    Umount,
    Signal,
    Protocol,
    Network,
}

impl Step {
    pub fn as_str(&self) -> &'static str {
        match self {
            Step::Hostname => "sethostname",
            Step::Loopback => "bring up lo",
            Step::Rootfs => "build root filesystem",
            Step::Cgroup => "join the sandbox's cgroup",
            Step::Fork => "fork",
            Step::Setsid => "setsid",
            Step::Stdio => "attach stdio",
            Step::Groups => "setgroups",
            Step::Gid => "setresgid",
            Step::Uid => "setresuid",
            Step::CapBound => "drop bounding capabilities",
            Step::Securebits => "lock securebits",
            Step::Capabilities => "drop capabilities",
            Step::NoNewPrivs => "set no_new_privs",
            Step::Landlock => "landlock",
            Step::CloseFds => "close fds",
            Step::Chdir => "chdir",
            Step::Seccomp => "install seccomp filter",
            Step::Exec => "execve",
            Step::Pty => "open pty",
            Step::Mount => "mount",
            Step::Umount => "umount",
            Step::Signal => "kill",
            Step::Protocol => "protocol",
            Step::Network => "set up the network",
        }
    }
}

/// A failure inside the init, with the step, the object it concerns and the errno.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}{}: {}", step.as_str(), object.as_ref().map(|o| format!(" {o}")).unwrap_or_default(), detail_or_errno(*errno, detail))]
pub struct InitError {
    pub step: Step,
    /// The path, program or other object concerned.
    pub object: Option<String>,
    pub errno: i32,
    /// Extra text (e.g. a rootfs error message), when an errno alone does not say it.
    pub detail: Option<String>,
}

fn detail_or_errno(errno: i32, detail: &Option<String>) -> String {
    match detail {
        Some(d) => d.clone(),
        None => nix::errno::Errno::from_raw(errno).desc().to_string(),
    }
}

impl InitError {
    pub fn new(step: Step, object: Option<String>, errno: i32) -> InitError {
        InitError { step, object, errno, detail: None }
    }
}
