//! The control socket: client -> daemon requests and daemon -> client replies.

use super::agent::RequestId;
use super::common::{DaemonError, ExitStatus, LogRecord};
use crate::record::SandboxRecord;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// How a launch names its profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProfileRef {
    /// By profile name.
    Name(String),
    /// By 1-based index in the `Profiles` listing.
    Index(u32),
    /// By executable path (wrapper mode: `path` or one of `paths` of a profile).
    Path(PathBuf),
}

/// Which sandboxes a kill applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KillTarget {
    Id(u64),
    /// Every sandbox the caller may kill (root: all).
    All,
}

/// What a launch asks for (`Launch`, `LaunchEphemeral`). Encoded as the fields in order, the
/// same bytes as when they were `Launch`'s own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchParams {
    pub profile: ProfileRef,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub noexec: bool,
    pub attach_stdio: bool,
}

/// A request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// First frame of every connection.
    Hello {
        protocol_version: u32,
    },
    ListProfiles,
    /// Launch a program in a sandbox. With `attach_stdio`, the frame carries three fds
    /// (stdin, stdout, stderr) and the daemon later sends `ProgramExited`.
    Launch(LaunchParams),
    ListSandboxes,
    Kill {
        target: KillTarget,
    },
    /// Open a shell in a sandbox; answered by `ShellStarted` with the pty master fd.
    Shell {
        id: u64,
        term: String,
        cols: u16,
        rows: u16,
    },
    Mount {
        id: u64,
        paths: Vec<PathBuf>,
        read_only: bool,
    },
    Umount {
        id: u64,
        path: PathBuf,
    },
    /// Recent log records (`count`, default all buffered), then `LogEnd`; with `follow`, live
    /// records keep coming until the client disconnects.
    Logs {
        sandbox: Option<u64>,
        follow: bool,
        count: Option<u32>,
    },
    /// Reserved: clients resize a shell with TIOCSWINSZ on the pty master they hold.
    Resize {
        cols: u16,
        rows: u16,
    },
    Ping,
    /// Launch a program on a new pty inside the sandbox (`oz run` at a terminal), as the
    /// session leader with the pty as its controlling terminal; answered by `Launched` with the
    /// pty master fd, later `ProgramExited`.
    LaunchPty {
        profile: ProfileRef,
        args: Vec<String>,
        cwd: Option<PathBuf>,
        env: Vec<(String, String)>,
        cols: u16,
        rows: u16,
    },
    /// Restart the host-side Xpra client of a sandbox (or of all the caller's), e.g. after the
    /// user's display came back.
    RelaunchXpra {
        target: KillTarget,
    },
    /// Open the profile's external forwarder `name` of sandbox `id`: a new unix socket on the
    /// host reaching `port` (default: the forwarder's `targetport`) on the sandbox's loopback.
    /// Answered by `Forwarded` with the socket's path.
    Forward {
        id: u64,
        name: String,
        port: Option<u16>,
    },
    /// The forwarders of sandbox `id` (profile sockets and external ones); answered by
    /// `Forwarders`.
    ListForwarders {
        id: u64,
    },
    /// `Launch` of an ephemeral sandbox (oz.conf `enable_ephemerals`): nothing of the user's
    /// home is bound in, so nothing written there persists. Always a new sandbox: never the
    /// program of a running sandbox, never joined by a later non-ephemeral launch.
    LaunchEphemeral(LaunchParams),
}

/// One forwarder of a sandbox, as `oz forwarders` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwarderStatus {
    /// `client tcp:9050`, `server unix:8003`, or an external forwarder's name.
    pub name: String,
    /// Where it listens (`127.0.0.1:9050`, `@/run/x`, a host socket path).
    pub listen: String,
    /// What each connection is joined to.
    pub target: String,
    /// `running`, `backoff`, `given up`, ...
    pub state: String,
}

/// One profile in the `Profiles` listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileSummary {
    pub index: u32,
    pub name: String,
    pub path: String,
}

/// A reply on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DaemonReply {
    Hello {
        protocol_version: u32,
        daemon_version: String,
    },
    Profiles(Vec<ProfileSummary>),
    /// Sent after the program was exec'd in the sandbox (or the sandbox built, with noexec).
    Launched {
        id: u64,
        init_pid: u32,
        reused_existing: bool,
    },
    /// The sandboxes the caller may see, each as its agent reported it.
    Sandboxes(Vec<SandboxRecord>),
    Killed {
        ids: Vec<u64>,
    },
    /// The pty master fd accompanies this frame.
    ShellStarted,
    Mounted {
        paths: Vec<PathBuf>,
    },
    Unmounted,
    LogLine(LogRecord),
    LogEnd,
    /// For an attached launch (`oz run`): the program ended.
    ProgramExited {
        status: ExitStatus,
    },
    Pong,
    Error(DaemonError),
    Ok,
    /// After `ShellStarted`: the shell ended. Daemons that cannot tell never send it.
    ShellExited {
        status: ExitStatus,
    },
    /// Answer to `RelaunchXpra`: the sandboxes whose Xpra client was restarted.
    XpraRelaunched {
        ids: Vec<u64>,
    },
    /// Answer to `Forward`: the host socket that reaches the sandbox's port.
    Forwarded {
        path: PathBuf,
    },
    /// Answer to `ListForwarders`.
    Forwarders(Vec<ForwarderStatus>),
}

/// Every frame from a client after the hello: a request and its id. Clients number their
/// requests on each connection; the id comes first, so a request whose body does not decode is
/// still refused by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlRequest {
    pub id: RequestId,
    pub msg: ClientRequest,
}

/// Every frame from the daemon after the hello: `re` is the id of the request this reply
/// belongs to (every reply of a stream included: `LogLine`s, `LogEnd`, `ProgramExited`,
/// `ShellExited`); None only for the refusal of a frame too short to carry an id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlReply {
    pub re: Option<RequestId>,
    pub msg: DaemonReply,
}

impl DaemonReply {
    /// The variant name, for `UnexpectedMessage` errors.
    pub fn kind(&self) -> &'static str {
        match self {
            DaemonReply::Hello { .. } => "Hello",
            DaemonReply::Profiles(_) => "Profiles",
            DaemonReply::Launched { .. } => "Launched",
            DaemonReply::Sandboxes(_) => "Sandboxes",
            DaemonReply::Killed { .. } => "Killed",
            DaemonReply::ShellStarted => "ShellStarted",
            DaemonReply::Mounted { .. } => "Mounted",
            DaemonReply::Unmounted => "Unmounted",
            DaemonReply::LogLine(_) => "LogLine",
            DaemonReply::LogEnd => "LogEnd",
            DaemonReply::ProgramExited { .. } => "ProgramExited",
            DaemonReply::Pong => "Pong",
            DaemonReply::Error(_) => "Error",
            DaemonReply::Ok => "Ok",
            DaemonReply::ShellExited { .. } => "ShellExited",
            DaemonReply::XpraRelaunched { .. } => "XpraRelaunched",
            DaemonReply::Forwarded { .. } => "Forwarded",
            DaemonReply::Forwarders(_) => "Forwarders",
        }
    }
}

impl ClientRequest {
    /// The variant name, for logs and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientRequest::Hello { .. } => "Hello",
            ClientRequest::ListProfiles => "ListProfiles",
            ClientRequest::Launch(_) => "Launch",
            ClientRequest::ListSandboxes => "ListSandboxes",
            ClientRequest::Kill { .. } => "Kill",
            ClientRequest::Shell { .. } => "Shell",
            ClientRequest::Mount { .. } => "Mount",
            ClientRequest::Umount { .. } => "Umount",
            ClientRequest::Logs { .. } => "Logs",
            ClientRequest::Resize { .. } => "Resize",
            ClientRequest::Ping => "Ping",
            ClientRequest::LaunchPty { .. } => "LaunchPty",
            ClientRequest::RelaunchXpra { .. } => "RelaunchXpra",
            ClientRequest::Forward { .. } => "Forward",
            ClientRequest::ListForwarders { .. } => "ListForwarders",
            ClientRequest::LaunchEphemeral(_) => "LaunchEphemeral",
        }
    }
}
