//! Representative messages: every variant of every direction, with non-trivial field values.

#![allow(dead_code)]

use oz_profiles::profile::{NetType, SocketDirection, SocketProto, XBackend};
use oz_wire::*;
use std::path::PathBuf;

pub fn log_record() -> LogRecord {
    LogRecord {
        ts: 1_764_400_000_123,
        level: LogLevel::Warning,
        sandbox: Some(7),
        profile: Some("firefox".into()),
        message: "program exited: exit code 3".into(),
    }
}

pub fn sandbox_record() -> SandboxRecord {
    SandboxRecord { ephemeral: true, ..sandbox_record_v3().into() }
}

/// The same sandbox as a protocol 3 agent records it (without `ephemeral`).
pub fn sandbox_record_v3() -> v3::SandboxRecord {
    v3::SandboxRecord {
        id: 7,
        profile: "firefox".into(),
        uid: 1000,
        user: "alice".into(),
        phase: SandboxState::Lingering,
        init_pid: 4242,
        agent_pid: 4240,
        started_at: 1_764_400_000,
        mounts: vec!["/home/alice/a.txt".into()],
        network: Some(NetworkInfo {
            mode: NetType::Bridge,
            address: Some("10.0.4.7".parse().unwrap()),
            forwarders: vec![ForwarderInfo {
                name: "forward tcp:8080".into(),
                direction: SocketDirection::Server,
                proto: SocketProto::Tcp,
                port: 8080,
            }],
        }),
        display: Some(DisplayInfo { backend: XBackend::Xpra, display: 100 }),
    }
}

/// What a protocol 3 agent sends that encodes differently in the current protocol: its record,
/// bare and in its envelope.
pub fn agent_to_daemon_v3() -> Vec<(&'static str, v3::AgentToDaemon)> {
    vec![("a2d_state_v3", v3::AgentToDaemon::State(sandbox_record_v3()))]
}

pub fn agent_messages_v3() -> Vec<(&'static str, v3::AgentMessage)> {
    vec![("a2d_env_state_v3", v3::AgentMessage { re: None, msg: v3::AgentToDaemon::State(sandbox_record_v3()) })]
}

pub fn forwarder_status() -> ForwarderStatus {
    ForwarderStatus {
        name: "client tcp:9050".into(),
        listen: "127.0.0.1:9050".into(),
        target: "127.0.0.1:9050".into(),
        state: "running".into(),
    }
}

pub fn client_requests() -> Vec<(&'static str, ClientRequest)> {
    vec![
        // Protocol 1 hellos keep decoding, so that an old peer gets a version-mismatch error.
        ("client_hello", ClientRequest::Hello { protocol_version: 1 }),
        ("client_hello_v2", ClientRequest::Hello { protocol_version: 2 }),
        ("client_hello_v3", ClientRequest::Hello { protocol_version: 3 }),
        ("client_hello_v4", ClientRequest::Hello { protocol_version: PROTOCOL_VERSION }),
        ("client_list_profiles", ClientRequest::ListProfiles),
        (
            "client_launch_name",
            ClientRequest::Launch(LaunchParams {
                profile: ProfileRef::Name("firefox".into()),
                args: vec!["--private-window".into(), "https://example.org".into()],
                cwd: Some("/home/alice".into()),
                env: vec![("LANG".into(), "C.UTF-8".into()), ("DISPLAY".into(), ":0".into())],
                noexec: false,
                attach_stdio: false,
            }),
        ),
        (
            "client_launch_index_attached",
            ClientRequest::Launch(LaunchParams {
                profile: ProfileRef::Index(3),
                args: vec![],
                cwd: None,
                env: vec![],
                noexec: true,
                attach_stdio: true,
            }),
        ),
        (
            "client_launch_path",
            ClientRequest::Launch(LaunchParams {
                profile: ProfileRef::Path("/usr/bin/evince".into()),
                args: vec!["/home/alice/a.pdf".into()],
                cwd: Some("/tmp".into()),
                env: vec![],
                noexec: false,
                attach_stdio: false,
            }),
        ),
        ("client_list_sandboxes", ClientRequest::ListSandboxes),
        ("client_kill_id", ClientRequest::Kill { target: KillTarget::Id(7) }),
        ("client_kill_all", ClientRequest::Kill { target: KillTarget::All }),
        ("client_shell", ClientRequest::Shell { id: 7, term: "xterm-256color".into(), cols: 120, rows: 40 }),
        (
            "client_mount",
            ClientRequest::Mount { id: 7, paths: vec!["/home/alice/Downloads/a.txt".into()], read_only: true },
        ),
        ("client_umount", ClientRequest::Umount { id: 7, path: "/home/alice/Downloads/a.txt".into() }),
        ("client_logs", ClientRequest::Logs { sandbox: Some(7), follow: true, count: Some(50) }),
        ("client_logs_all", ClientRequest::Logs { sandbox: None, follow: false, count: None }),
        ("client_resize", ClientRequest::Resize { cols: 80, rows: 24 }),
        ("client_ping", ClientRequest::Ping),
        (
            "client_launch_pty",
            ClientRequest::LaunchPty {
                profile: ProfileRef::Name("shell".into()),
                args: vec!["-i".into()],
                cwd: Some("/home/alice".into()),
                env: vec![("TERM".into(), "xterm".into())],
                cols: 120,
                rows: 40,
            },
        ),
        ("client_relaunch_xpra", ClientRequest::RelaunchXpra { target: KillTarget::Id(7) }),
        ("client_forward", ClientRequest::Forward { id: 7, name: "onion".into(), port: Some(8080) }),
        ("client_list_forwarders", ClientRequest::ListForwarders { id: 7 }),
        (
            "client_launch_ephemeral",
            ClientRequest::LaunchEphemeral(LaunchParams {
                profile: ProfileRef::Name("evince".into()),
                args: vec!["/home/alice/a.pdf".into()],
                cwd: None,
                env: vec![("LANG".into(), "C.UTF-8".into())],
                noexec: false,
                attach_stdio: false,
            }),
        ),
    ]
}

pub fn daemon_errors() -> Vec<DaemonError> {
    vec![
        DaemonError::NoSuchProfile { profile: "nope".into() },
        DaemonError::NoSuchSandbox { id: 9 },
        DaemonError::PermissionDenied { action: "kill".into(), detail: "sandbox 7 belongs to uid 1000".into() },
        DaemonError::InvalidRequest { detail: "hello expected".into() },
        DaemonError::LaunchFailed { profile: "firefox".into(), detail: "agent exited".into() },
        DaemonError::Agent { id: 7, error: AgentError::Mount { path: "/home/alice/x".into(), errno: 2 } },
        DaemonError::VersionMismatch { daemon: 1, client: 2 },
        DaemonError::NotRunning { id: 7 },
        DaemonError::Internal { detail: "registry gone".into() },
        DaemonError::TooManySandboxes { uid: 1000, limit: 32 },
        DaemonError::AgentBusy { id: 7 },
        DaemonError::RequestTooLarge { id: 7, request: "mount".into(), len: 812345, max: 163840 },
        DaemonError::ProgramFailed {
            id: 7,
            profile: "evince".into(),
            status: ExitStatus::Code(1),
            output: vec!["cannot open display".into()],
        },
    ]
}

pub fn agent_errors() -> Vec<AgentError> {
    let p = || PathBuf::from("/usr/bin/firefox");
    vec![
        AgentError::Mount { path: p(), errno: 13 },
        AgentError::Umount { path: p(), errno: 16 },
        AgentError::Exec { path: p(), errno: 2 },
        AgentError::Namespace { errno: 1 },
        AgentError::Seccomp { detail: "unknown syscall foo".into() },
        AgentError::Profile { detail: "whitelist path /".into() },
        AgentError::User { uid: 1000, detail: "no passwd entry".into() },
        AgentError::Pty { errno: 24 },
        AgentError::PathRefused { path: p(), detail: "outside home".into() },
        AgentError::NotRunning,
        AgentError::Unsupported { detail: "resize".into() },
        AgentError::Other { detail: "something".into() },
        AgentError::Channel { detail: "send to agent: broken pipe".into() },
        AgentError::NoAnswer { request: "Mount".into(), secs: 30 },
        AgentError::AgentExited,
        AgentError::Sys { op: "signalfd".into(), errno: 24 },
        AgentError::Setup { step: "rendezvous".into(), detail: "bind /run/oz/agents/7.sock: address in use".into() },
        AgentError::BadRequest { detail: "attached stdio needs 3 fds, got 1".into() },
        AgentError::UnexpectedReply { expected: "Mounted".into(), received: "Pong".into() },
        AgentError::NoDisplay { profile: "firefox".into() },
        AgentError::MissingProgram { program: "xpra".into(), package: "xpra".into() },
        AgentError::XServer { program: "xpra server".into(), detail: "no \"xpra is ready\" after 30 s".into() },
    ]
}

pub fn daemon_replies() -> Vec<(&'static str, DaemonReply)> {
    let mut v = vec![
        ("reply_hello", DaemonReply::Hello { protocol_version: 1, daemon_version: "0.1.0".into() }),
        ("reply_hello_v2", DaemonReply::Hello { protocol_version: 2, daemon_version: "0.1.0".into() }),
        ("reply_hello_v3", DaemonReply::Hello { protocol_version: 3, daemon_version: "0.1.0".into() }),
        ("reply_hello_v4", DaemonReply::Hello { protocol_version: PROTOCOL_VERSION, daemon_version: "0.1.0".into() }),
        (
            "reply_profiles",
            DaemonReply::Profiles(vec![
                ProfileSummary { index: 0, name: "evince".into(), path: "/usr/bin/evince".into() },
                ProfileSummary { index: 1, name: "firefox".into(), path: "/usr/bin/firefox".into() },
            ]),
        ),
        ("reply_launched", DaemonReply::Launched { id: 7, init_pid: 4242, reused_existing: true }),
        ("reply_sandboxes_v4", DaemonReply::Sandboxes(vec![sandbox_record()])),
        ("reply_killed", DaemonReply::Killed { ids: vec![7, 8] }),
        ("reply_shell_started", DaemonReply::ShellStarted),
        ("reply_mounted", DaemonReply::Mounted { paths: vec!["/home/alice/a.txt".into()] }),
        ("reply_unmounted", DaemonReply::Unmounted),
        ("reply_log_line", DaemonReply::LogLine(log_record())),
        ("reply_log_end", DaemonReply::LogEnd),
        ("reply_program_exited_code", DaemonReply::ProgramExited { status: ExitStatus::Code(3) }),
        ("reply_program_exited_signal", DaemonReply::ProgramExited { status: ExitStatus::Signal(9) }),
        ("reply_pong", DaemonReply::Pong),
        ("reply_ok", DaemonReply::Ok),
        ("reply_shell_exited_code", DaemonReply::ShellExited { status: ExitStatus::Code(7) }),
        ("reply_shell_exited_signal", DaemonReply::ShellExited { status: ExitStatus::Signal(9) }),
        ("reply_xpra_relaunched", DaemonReply::XpraRelaunched { ids: vec![7] }),
        ("reply_forwarded", DaemonReply::Forwarded { path: "/run/oz/forward/7/onion-1.sock".into() }),
        ("reply_forwarders", DaemonReply::Forwarders(vec![forwarder_status()])),
    ];
    let names = [
        "reply_error_no_such_profile",
        "reply_error_no_such_sandbox",
        "reply_error_permission_denied",
        "reply_error_invalid_request",
        "reply_error_launch_failed",
        "reply_error_agent",
        "reply_error_version_mismatch",
        "reply_error_not_running",
        "reply_error_internal",
        "reply_error_too_many_sandboxes",
        "reply_error_agent_busy",
        "reply_error_request_too_large",
        "reply_error_program_failed",
    ];
    for (name, e) in names.into_iter().zip(daemon_errors()) {
        v.push((name, DaemonReply::Error(e)));
    }
    v
}

/// Daemon -> agent messages except `Launch` (its `LaunchSpec` embeds the profile and config
/// models, which change with them; daemon and agent ship together).
pub fn daemon_to_agent() -> Vec<(&'static str, DaemonToAgent)> {
    vec![
        ("d2a_hello", DaemonToAgent::Hello { protocol_version: 1 }),
        ("d2a_hello_v2", DaemonToAgent::Hello { protocol_version: 2 }),
        ("d2a_hello_v3", DaemonToAgent::Hello { protocol_version: 3 }),
        ("d2a_hello_v4", DaemonToAgent::Hello { protocol_version: PROTOCOL_VERSION }),
        (
            "d2a_run_program",
            DaemonToAgent::RunProgram {
                args: vec!["https://example.org".into()],
                cwd: Some("/home/alice".into()),
                caller_env: vec![("LANG".into(), "C".into())],
                stdio: StdioMode::Attached,
            },
        ),
        (
            "d2a_run_program_pty",
            DaemonToAgent::RunProgram {
                args: vec!["-i".into()],
                cwd: None,
                caller_env: vec![],
                stdio: StdioMode::Pty { cols: 120, rows: 40 },
            },
        ),
        ("d2a_shell", DaemonToAgent::Shell { uid: 1000, term: "xterm".into(), cols: 80, rows: 24 }),
        ("d2a_mount", DaemonToAgent::Mount { uid: 1000, paths: vec!["/home/alice/a.txt".into()], read_only: false }),
        ("d2a_umount", DaemonToAgent::Umount { uid: 1000, path: "/home/alice/a.txt".into() }),
        ("d2a_shutdown", DaemonToAgent::Shutdown { reason: "killed by uid 1000".into() }),
        ("d2a_ping", DaemonToAgent::Ping),
        ("d2a_relaunch_xpra", DaemonToAgent::RelaunchXpra),
        ("d2a_forward", DaemonToAgent::Forward { name: "onion".into(), port: None }),
        ("d2a_list_forwarders", DaemonToAgent::ListForwarders),
    ]
}

pub fn agent_to_daemon() -> Vec<(&'static str, AgentToDaemon)> {
    let mut v = vec![
        ("a2d_hello_fresh", AgentToDaemon::Hello { protocol_version: 1, sandbox_id: None, agent_pid: 4240 }),
        ("a2d_hello_rendezvous", AgentToDaemon::Hello { protocol_version: 1, sandbox_id: Some(7), agent_pid: 4240 }),
        ("a2d_hello_v2", AgentToDaemon::Hello { protocol_version: 2, sandbox_id: Some(7), agent_pid: 4240 }),
        ("a2d_hello_v3", AgentToDaemon::Hello { protocol_version: 3, sandbox_id: Some(7), agent_pid: 4240 }),
        (
            "a2d_hello_v4",
            AgentToDaemon::Hello { protocol_version: PROTOCOL_VERSION, sandbox_id: Some(7), agent_pid: 4240 },
        ),
        ("a2d_ready", AgentToDaemon::Ready { init_pid: 4242, program_pid: Some(4250) }),
        ("a2d_ready_noexec", AgentToDaemon::Ready { init_pid: 4242, program_pid: None }),
        ("a2d_program_exited", AgentToDaemon::ProgramExited { pid: 4250, status: ExitStatus::Signal(9) }),
        (
            "a2d_process_exited",
            AgentToDaemon::ProcessExited { pid: 4260, comm: "firefox-bin".into(), status: ExitStatus::Code(0) },
        ),
        ("a2d_log", AgentToDaemon::Log(log_record())),
        (
            "a2d_health",
            AgentToDaemon::Health { rss_bytes: 123_456_789, pids: 12, cpu_usec: 9_876_543, uptime_ms: 60_000 },
        ),
        ("a2d_shell_started", AgentToDaemon::ShellStarted),
        ("a2d_mounted", AgentToDaemon::Mounted { paths: vec!["/home/alice/a.txt".into()] }),
        ("a2d_unmounted", AgentToDaemon::Unmounted),
        ("a2d_state_v4", AgentToDaemon::State(sandbox_record())),
        ("a2d_shutting_down", AgentToDaemon::ShuttingDown { reason: "program exited".into() }),
        ("a2d_pong", AgentToDaemon::Pong),
        ("a2d_shell_opened", AgentToDaemon::ShellOpened { pid: 4270 }),
        ("a2d_shell_exited", AgentToDaemon::ShellExited { pid: 4270, status: ExitStatus::Code(7) }),
        ("a2d_mounts", AgentToDaemon::Mounts { paths: vec!["/home/alice/doc.pdf".into(), "/home/alice/music".into()] }),
        (
            "a2d_children",
            AgentToDaemon::Children {
                children: vec![
                    ChildHealth {
                        name: "xpra-server".into(),
                        state: ChildState::Running,
                        pid: Some(4300),
                        restarts: 1,
                    },
                    ChildHealth { name: "forward tcp:8080".into(), state: ChildState::GivenUp, pid: None, restarts: 3 },
                ],
            },
        ),
        ("a2d_xpra_relaunched", AgentToDaemon::XpraRelaunched),
        ("a2d_forwarded", AgentToDaemon::Forwarded { path: "/run/oz/forward/7/onion-1.sock".into() }),
        ("a2d_forwarders", AgentToDaemon::Forwarders(vec![forwarder_status()])),
        ("a2d_phase", AgentToDaemon::Phase(SandboxState::Lingering)),
    ];
    let named = [
        "channel",
        "no_answer",
        "agent_exited",
        "sys",
        "setup",
        "bad_request",
        "unexpected_reply",
        "no_display",
        "missing_program",
        "xserver",
    ];
    for (name, e) in named.iter().zip(agent_errors().into_iter().skip(12)) {
        let name: &'static str = Box::leak(format!("a2d_error_{name}").into_boxed_str());
        v.push((name, AgentToDaemon::Error(e)));
    }
    for e in agent_errors() {
        v.push(("a2d_launch_failed", AgentToDaemon::LaunchFailed(e.clone())));
        v.push(("a2d_error", AgentToDaemon::Error(e)));
    }
    v
}

/// Agent-channel frames after the hello: requests with their ids.
pub fn agent_requests() -> Vec<(&'static str, AgentRequest)> {
    daemon_to_agent()
        .into_iter()
        .filter(|(_, m)| !matches!(m, DaemonToAgent::Hello { .. }))
        .map(|(name, msg)| (env_name(name), AgentRequest { id: RequestId(5), msg }))
        .collect()
}

/// Agent-channel frames after the hello: replies (to request 5) and events.
pub fn agent_messages() -> Vec<(&'static str, AgentMessage)> {
    agent_to_daemon()
        .into_iter()
        .filter(|(_, m)| !matches!(m, AgentToDaemon::Hello { .. }))
        .map(|(name, msg)| {
            let event = matches!(
                msg,
                AgentToDaemon::Log(_)
                    | AgentToDaemon::Health { .. }
                    | AgentToDaemon::ProgramExited { .. }
                    | AgentToDaemon::ProcessExited { .. }
                    | AgentToDaemon::ShellExited { .. }
                    | AgentToDaemon::State(_)
                    | AgentToDaemon::Mounts { .. }
                    | AgentToDaemon::Phase(_)
            );
            (env_name(name), AgentMessage { re: (!event).then_some(RequestId(5)), msg })
        })
        .collect()
}

/// Control-socket frames after the hello: requests with their ids.
pub fn control_requests() -> Vec<(&'static str, ControlRequest)> {
    client_requests()
        .into_iter()
        .filter(|(_, m)| !matches!(m, ClientRequest::Hello { .. }))
        .map(|(name, msg)| (env_name(name), ControlRequest { id: RequestId(5), msg }))
        .collect()
}

/// Control-socket frames after the hello: replies to request 5, and one refusal of a frame
/// without an id.
pub fn control_replies() -> Vec<(&'static str, ControlReply)> {
    let mut v: Vec<_> = daemon_replies()
        .into_iter()
        .filter(|(_, m)| !matches!(m, DaemonReply::Hello { .. }))
        .map(|(name, msg)| (env_name(name), ControlReply { re: Some(RequestId(5)), msg }))
        .collect();
    let refusal = DaemonReply::Error(DaemonError::InvalidRequest { detail: "frame too short".into() });
    v.push(("reply_env_refused", ControlReply { re: None, msg: refusal }));
    v
}

/// `d2a_mount` -> `d2a_env_mount`.
fn env_name(name: &'static str) -> &'static str {
    let (dir, rest) = name.split_once('_').expect("direction prefix");
    Box::leak(format!("{dir}_env_{rest}").into_boxed_str())
}
