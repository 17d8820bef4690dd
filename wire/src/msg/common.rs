//! Types shared by several channels: exit statuses, log records, sandbox states, typed errors.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExitStatus {
    /// Exited normally with this code.
    Code(i32),
    /// Killed by this signal.
    Signal(i32),
}

impl ExitStatus {
    /// The status a shell would report: the code, or 128 + signal.
    pub fn shell_code(&self) -> i32 {
        match *self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitStatus::Code(c) => write!(f, "exit code {c}"),
            ExitStatus::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Severity of a log record (slog's levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LogLevel {
    Critical,
    Error,
    Warning,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(&self) -> &'static str {
        match self {
            LogLevel::Critical => "critical",
            LogLevel::Error => "error",
            LogLevel::Warning => "warning",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One log line, from the daemon or from an agent (program output included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Milliseconds since the Unix epoch.
    pub ts: u64,
    pub level: LogLevel,
    /// The sandbox this record is about, if any.
    pub sandbox: Option<u64>,
    /// The profile name of that sandbox, if any.
    pub profile: Option<String>,
    pub message: String,
}

/// Life cycle of a sandbox as the daemon sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SandboxState {
    /// Agent spawned, waiting for `Ready`.
    Starting,
    /// The program runs (or the sandbox was built with noexec).
    Running,
    /// The program exited; watchdog processes keep the sandbox alive.
    Lingering,
    /// Shutdown requested or in progress.
    ShuttingDown,
}

impl SandboxState {
    pub fn as_str(&self) -> &'static str {
        match self {
            SandboxState::Starting => "starting",
            SandboxState::Running => "running",
            SandboxState::Lingering => "lingering",
            SandboxState::ShuttingDown => "shutting-down",
        }
    }
}

impl fmt::Display for SandboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An agent's failure, with the object and errno it concerns. Crosses agent -> daemon -> client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AgentError {
    #[error("mount {}: {}", path.display(), errno_text(*errno))]
    Mount { path: PathBuf, errno: i32 },
    #[error("umount {}: {}", path.display(), errno_text(*errno))]
    Umount { path: PathBuf, errno: i32 },
    #[error("exec {}: {}", path.display(), errno_text(*errno))]
    Exec { path: PathBuf, errno: i32 },
    #[error("namespace setup: {}", errno_text(*errno))]
    Namespace { errno: i32 },
    #[error("seccomp: {detail}")]
    Seccomp { detail: String },
    #[error("profile: {detail}")]
    Profile { detail: String },
    #[error("user {uid}: {detail}")]
    User { uid: u32, detail: String },
    #[error("pty: {}", errno_text(*errno))]
    Pty { errno: i32 },
    #[error("{path}: not allowed: {detail}")]
    PathRefused { path: PathBuf, detail: String },
    #[error("no program running")]
    NotRunning,
    #[error("unsupported request: {detail}")]
    Unsupported { detail: String },
    #[error("{detail}")]
    Other { detail: String },
    /// The agent channel failed for this request (send, or a reply the request does not accept).
    #[error("agent channel: {detail}")]
    Channel { detail: String },
    #[error("no answer to {request} within {secs} s")]
    NoAnswer { request: String, secs: u64 },
    #[error("agent exited")]
    AgentExited,
    /// A system call of the agent failed.
    #[error("{op}: {}", errno_text(*errno))]
    Sys { op: String, errno: i32 },
    /// A step of the sandbox setup failed (the init's report: step, object, errno text).
    #[error("{step}: {detail}")]
    Setup { step: String, detail: String },
    /// A request the agent could not decode or whose fds do not fit it.
    #[error("bad request: {detail}")]
    BadRequest { detail: String },
    /// A peer answered with a message its request does not accept.
    #[error("expected {expected}, received {received}")]
    UnexpectedReply { expected: String, received: String },
    /// A profile with `xserver.enabled` was launched without the caller's `DISPLAY`.
    #[error("xserver: the caller has no DISPLAY; profile {profile} needs the user's X display")]
    NoDisplay { profile: String },
    /// A host program the sandbox needs is not installed.
    #[error("{program} not found (install {package})")]
    MissingProgram { program: String, package: String },
    /// A helper of the sandbox's X display (Xephyr, the Xpra server or client) did not start.
    #[error("xserver: {program}: {detail}")]
    XServer { program: String, detail: String },
}

/// An errno as people read it: `ENOENT: No such file or directory` (the number for an unknown one).
pub fn errno_text(errno: i32) -> String {
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => format!("unknown error {errno}"),
        e => e.to_string(),
    }
}

/// Why the daemon refused or failed a client request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum DaemonError {
    #[error("no such profile: {profile}")]
    NoSuchProfile { profile: String },
    #[error("no such sandbox: {id}")]
    NoSuchSandbox { id: u64 },
    #[error("permission denied: {action}: {detail}")]
    PermissionDenied { action: String, detail: String },
    #[error("invalid request: {detail}")]
    InvalidRequest { detail: String },
    #[error("launch {profile}: {detail}")]
    LaunchFailed { profile: String, detail: String },
    #[error("sandbox {id}: {error}")]
    Agent { id: u64, error: AgentError },
    #[error("protocol version mismatch: daemon speaks {daemon}, client speaks {client}")]
    VersionMismatch { daemon: u32, client: u32 },
    #[error("sandbox {id} is not running")]
    NotRunning { id: u64 },
    #[error("internal error: {detail}")]
    Internal { detail: String },
    #[error("too many sandboxes: uid {uid} already runs {limit} (oz.conf max_sandboxes_per_user)")]
    TooManySandboxes { uid: u32, limit: u32 },
    #[error("sandbox {id}: agent is not keeping up; try again")]
    AgentBusy { id: u64 },
    #[error("sandbox {id}: {request} request is {len} bytes; the limit for one agent message is {max}")]
    RequestTooLarge { id: u64, request: String, len: u64, max: u64 },
    /// The program ended unsuccessfully within oz.conf `launch_check_ms` of its start; `output`
    /// holds the sandbox's last log lines (the program's output among them).
    #[error("profile {profile}: the program ended at once ({status}) in sandbox {id}{}", output_tail(output))]
    ProgramFailed { id: u64, profile: String, status: ExitStatus, output: Vec<String> },
}

fn output_tail(output: &[String]) -> String {
    if output.is_empty() {
        return "; it printed nothing".to_string();
    }
    format!("; last output: {}", output.join(" | "))
}
