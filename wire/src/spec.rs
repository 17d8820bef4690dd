//! What the daemon hands an agent to build one sandbox (also built by `oz-agent standalone`).

use oz_profiles::{Config, Profile};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything an agent needs to build and run one sandbox. The agent resolves the user's
/// name, home, primary gid and group memberships itself from `uid` (it trusts nothing else).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchSpec {
    /// Sandbox id, unique for the life of the state directory.
    pub sandbox_id: u64,
    /// The validated profile.
    pub profile: Profile,
    /// The daemon's configuration.
    pub config: Config,
    /// The requesting user (never 0 for a program launch).
    pub uid: u32,
    /// The caller's environment; the agent keeps only what oz.conf and the profile allow.
    pub caller_env: Vec<(String, String)>,
    /// Arguments given by the user (before default_params / reject_user_args).
    pub args: Vec<String>,
    /// The caller's working directory, used when visible inside the sandbox.
    pub cwd: Option<PathBuf>,
    /// Build the sandbox but do not start the program.
    pub noexec: bool,
    /// How the program's stdin/stdout/stderr are connected.
    pub stdio: StdioMode,
    /// An ephemeral launch: the profile was stripped of the owner's home already; the agent
    /// records the flag in the sandbox's record.
    pub ephemeral: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StdioMode {
    /// stdin is /dev/null, stdout and stderr go to the sandbox log.
    Log,
    /// Three fds (stdin, stdout, stderr) accompany the launch message (SCM_RIGHTS), in that order.
    Attached,
    /// A new pty of the sandbox's devpts on all three, the program's controlling terminal; no
    /// fds accompany the launch, the pty master goes back with `Ready`.
    Pty { cols: u16, rows: u16 },
}
