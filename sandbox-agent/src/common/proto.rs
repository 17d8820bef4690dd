//! The agent <-> init channel: one typed enum per direction, framed and sent with the wire's
//! framing and fd passing (`oz_wire::frame`, `oz_wire::fdpass`): one SOCK_SEQPACKET packet per
//! message, file descriptors alongside with SCM_RIGHTS.
//!
//! The init is a forked child of the agent (PID 1 of the sandbox's PID namespace). It starts the
//! launch's program by itself (from the plan it inherited at fork), then serves these requests.
//! Every request travels with an id ([`InitRequest`]); every request but `Signal` gets exactly
//! one reply (`Launched`, `ShellStarted`, `Mounted`, `Unmounted`, `ShuttingDown` or `Failed`)
//! carrying that id ([`InitMessage`]), and the agent matches replies to requests by id only.
//! `Ready`, `ProgramFailed`, `Exited` and `SeccompListener` are events (no id) and may come between a request and
//! its reply.

use oz_wire::fdpass::{self, Limits, SocketKind};
use oz_wire::frame;
use serde::{Deserialize, Serialize};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Largest message accepted on the channel (checked before anything is allocated).
pub const MAX_PACKET: usize = 256 * 1024;
/// Most descriptors one message carries (RunProgram: stdin, stdout, stderr).
pub const MAX_FDS: usize = 3;

/// How a process ended (the wire type, shared with the daemon and the client).
pub use oz_wire::ExitStatus;

/// Identifies one request of the agent to its init; the reply carries it. Unique within the agent
/// process (which has one init channel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InitRequestId(pub u64);

/// Every frame from the agent to the init: a request and its id (first, so that a request whose
/// body does not decode is still refused by id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitRequest {
    pub id: InitRequestId,
    pub msg: AgentToInit,
}

/// Every frame from the init to the agent: `re` is the id of the request this message answers,
/// None for an event (`Ready`, `ProgramFailed`, `Exited`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InitMessage {
    pub re: Option<InitRequestId>,
    pub msg: InitToAgent,
}

/// Requests from the agent to the init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentToInit {
    /// Start another program as the sandbox user (a relaunch). Carries three fds: stdin,
    /// stdout, stderr; with `pty` (cols, rows) none: the program gets a new pty of the sandbox's
    /// devpts as its controlling terminal instead. `argv[0]` is the executable path inside the
    /// sandbox; `env` is complete (the agent computed it); `cwd` falls back to home, then `/`,
    /// when not visible. Reply: `Launched` once the program was exec'd (with the pty master fd
    /// attached when `pty`), else `Failed`.
    RunProgram { argv: Vec<String>, env: Vec<String>, cwd: Option<PathBuf>, pty: Option<(u16, u16)> },
    /// Open a pty pair inside the sandbox and start `shell -i` on the slave as `uid`/`gid`/
    /// `groups`, with the same capability drop, no_new_privs and seccomp as the program.
    /// Reply: `ShellStarted` with the master fd attached, else `Failed`.
    Shell(ShellRequest),
    /// Attach the detached mount (from `open_tree(OPEN_TREE_CLONE)` on the host) carried as the
    /// one fd at `target` inside the sandbox, creating the placeholder file or directory.
    /// Reply: `Mounted`, else `Failed`.
    Mount { target: PathBuf, read_only: bool },
    /// Detach the mount at `target` inside the sandbox. Reply: `Unmounted`, else `Failed`.
    Umount { target: PathBuf },
    /// Send a signal to every process in the sandbox (not the init). No reply.
    Signal { signal: i32 },
    /// SIGTERM everything, wait up to `grace_ms`, SIGKILL what is left, report the exits and
    /// exit. Reply: `ShuttingDown` immediately; the channel closes when the init is gone.
    Shutdown { grace_ms: u32 },
    /// Start a helper of the sandbox (its X server) as the sandbox user, confined as the program
    /// (credentials, capabilities, Landlock) but with `seccomp` (a compiled filter,
    /// `CompiledFilter::to_bytes`) instead of the program's. Carries three fds: stdin, stdout,
    /// stderr. Tracked as `ProcessRole::Other`. Reply: `Launched`, else `Failed`.
    StartHelper { argv: Vec<String>, env: Vec<String>, seccomp: Vec<u8> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellRequest {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Home directory inside the sandbox (HOME and the shell's cwd).
    pub home: PathBuf,
    /// The caller's TERM.
    pub term: Option<String>,
    pub cols: u16,
    pub rows: u16,
}

/// What a tracked process is to the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProcessRole {
    /// The launch's program.
    Program,
    /// A program started by `RunProgram`.
    Relaunch,
    /// A shell started by `Shell` (not tracked for auto-shutdown).
    Shell,
    /// Any other process of the sandbox (children and re-parented orphans).
    Other,
}

/// Messages from the init to the agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InitToAgent {
    /// The sandbox is built and the launch's program was exec'd (pid in the sandbox namespace).
    /// With `noexec`, sent with `pid: None` once the sandbox is built. `warnings`: what the root
    /// filesystem build skipped or adjusted, for the log.
    Ready { pid: Option<i32>, warnings: Vec<String> },
    /// The sandbox could not be built, or the launch's program could not be exec'd. The init
    /// exits after sending this.
    ProgramFailed { error: InitError },
    /// Reply to `RunProgram`: exec'd.
    Launched { pid: i32 },
    /// Reply to `Shell`: started; the pty master fd is attached.
    ShellStarted { pid: i32 },
    /// Reply to `Mount`.
    Mounted { target: PathBuf },
    /// Reply to `Umount`.
    Unmounted { target: PathBuf },
    /// Reply to `Shutdown`.
    ShuttingDown,
    /// A request failed.
    Failed { error: InitError },
    /// A process of the sandbox exited and was reaped. `comm` was read before reaping.
    Exited { pid: i32, comm: String, role: ProcessRole, status: ExitStatus },
    /// A process the init started installed a seccomp filter that reports through user
    /// notification; its listener is attached. Sent before the process execs (its first calls
    /// wait for answers), so it may come before `Ready` or a `Launched` reply.
    SeccompListener { pid: i32 },
}

/// The setup step that failed and the error the init reports (shared with `oz_sandbox::exec`).
pub use oz_sandbox::step::{InitError, Step};

/// Errors of the channel: the wire's errors (one framing, one fd-passing implementation).
pub use oz_wire::WireError;

/// The limits every receive on the channel applies.
const LIMITS: Limits = Limits { max_frame: MAX_PACKET as u32, max_fds: MAX_FDS };

/// Largest message written to a setup pipe (the compiled seccomp filter).
pub const MAX_PIPE_MESSAGE: u32 = 16 << 20;

/// A lost peer (EOF, reset, broken pipe) is `Closed`, whichever call noticed it.
fn closed_if_gone(e: WireError) -> WireError {
    if e.is_disconnect() {
        WireError::Closed
    } else {
        e
    }
}

/// Write one framed message (the wire framing) to a pipe the init reads during its setup, and
/// close it.
pub fn write_pipe_message(pipe: OwnedFd, payload: &[u8]) -> Result<(), WireError> {
    frame::write_payload(&mut std::fs::File::from(pipe), payload, MAX_PIPE_MESSAGE)
}

/// Read what [`write_pipe_message`] wrote; a cut message (the agent failed or died) is an error.
pub fn read_pipe_message(pipe: OwnedFd) -> Result<Vec<u8>, WireError> {
    frame::read_payload(&mut std::fs::File::from(pipe), MAX_PIPE_MESSAGE)
}

/// Send a request to the init with `fds` attached; returns its id.
pub fn send_request(sock: BorrowedFd<'_>, msg: &AgentToInit, fds: &[RawFd]) -> Result<InitRequestId, WireError> {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = InitRequestId(NEXT.fetch_add(1, Ordering::Relaxed));
    // An `InitRequest` by reference: bincode encodes a struct as the tuple of its fields.
    send(sock, &(id, msg), fds)?;
    Ok(id)
}

/// Receive a request (in the init): its id, when the frame is long enough to carry one, and the
/// request or why its body does not decode.
#[allow(clippy::type_complexity)]
pub fn recv_request(
    sock: BorrowedFd<'_>,
) -> Result<(Option<InitRequestId>, Result<AgentToInit, WireError>, Vec<OwnedFd>), WireError> {
    let (payload, fds) = fdpass::recv_frame(sock, SocketKind::SeqPacket, LIMITS).map_err(closed_if_gone)?;
    let id = oz_wire::channel::request_id_prefix(&payload).map(|r| InitRequestId(r.0));
    let req = frame::decode::<InitRequest>(&payload).map(|r| r.msg);
    Ok((id, req, fds))
}

/// Receive a message from the init: the id of the request it answers (None for an event).
pub fn recv_message(sock: BorrowedFd<'_>) -> Result<(Option<InitRequestId>, InitToAgent, Vec<OwnedFd>), WireError> {
    let (m, fds) = recv::<InitMessage>(sock)?;
    Ok((m.re, m.msg, fds))
}

/// Send one message with `fds` attached (each open for the duration of the call).
pub fn send<T: Serialize>(sock: BorrowedFd<'_>, msg: &T, fds: &[RawFd]) -> Result<(), WireError> {
    // SAFETY: the caller passes descriptors it keeps open across this call; the borrows do not
    // outlive it.
    let fds: Vec<BorrowedFd<'_>> = fds.iter().map(|fd| unsafe { BorrowedFd::borrow_raw(*fd) }).collect();
    fdpass::send_msg(sock, SocketKind::SeqPacket, msg, &fds, LIMITS.max_frame).map_err(closed_if_gone)
}

/// Receive one message and the fds that came with it (owned, close-on-exec).
pub fn recv<T: for<'de> Deserialize<'de>>(sock: BorrowedFd<'_>) -> Result<(T, Vec<OwnedFd>), WireError> {
    fdpass::recv_msg(sock, SocketKind::SeqPacket, LIMITS).map_err(closed_if_gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::{AsFd, AsRawFd};

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).unwrap()
    }

    #[test]
    fn round_trip_with_fds() {
        let (a, b) = pair();
        let msg = AgentToInit::RunProgram {
            argv: vec!["/bin/true".into()],
            env: vec!["PATH=/usr/bin:/bin".into()],
            cwd: Some("/home/u".into()),
            pty: None,
        };
        let devnull = std::fs::File::open("/dev/null").unwrap();
        let raw = devnull.as_raw_fd();
        send(a.as_fd(), &msg, &[raw, raw, raw]).unwrap();
        let (got, fds): (AgentToInit, _) = recv(b.as_fd()).unwrap();
        assert_eq!(got, msg);
        assert_eq!(fds.len(), 3);
    }

    #[test]
    fn replies_carry_the_id_of_their_request() {
        let (agent, init) = pair();
        let first = send_request(agent.as_fd(), &AgentToInit::Umount { target: "/a".into() }, &[]).unwrap();
        let second = send_request(agent.as_fd(), &AgentToInit::Shutdown { grace_ms: 1 }, &[]).unwrap();
        assert_ne!(first, second);
        let (id1, req1, _) = recv_request(init.as_fd()).unwrap();
        let (id2, req2, _) = recv_request(init.as_fd()).unwrap();
        assert_eq!((id1, req1.unwrap()), (Some(first), AgentToInit::Umount { target: "/a".into() }));
        assert_eq!((id2, req2.unwrap()), (Some(second), AgentToInit::Shutdown { grace_ms: 1 }));
        // Answered last first, with an event between: matched by id, not by order.
        send(init.as_fd(), &InitMessage { re: Some(second), msg: InitToAgent::ShuttingDown }, &[]).unwrap();
        let exited =
            InitToAgent::Exited { pid: 3, comm: "x".into(), role: ProcessRole::Other, status: ExitStatus::Code(0) };
        send(init.as_fd(), &InitMessage { re: None, msg: exited.clone() }, &[]).unwrap();
        let unmounted = InitToAgent::Unmounted { target: "/a".into() };
        send(init.as_fd(), &InitMessage { re: Some(first), msg: unmounted.clone() }, &[]).unwrap();
        assert_eq!(recv_message(agent.as_fd()).unwrap().0, Some(second));
        assert_eq!(recv_message(agent.as_fd()).unwrap().0, None);
        let (re, msg, _) = recv_message(agent.as_fd()).unwrap();
        assert_eq!((re, msg), (Some(first), unmounted));
        // The borrowed tuple the init sends encodes exactly as the envelope.
        let env = InitMessage { re: Some(first), msg: InitToAgent::ShuttingDown };
        assert_eq!(frame::encode(&env).unwrap(), frame::encode(&(env.re, &env.msg)).unwrap());
    }

    #[test]
    fn a_request_whose_body_does_not_decode_keeps_its_id() {
        let (agent, init) = pair();
        let mut packet = vec![0, 0, 0, 12];
        packet.extend_from_slice(&77u64.to_le_bytes());
        packet.extend_from_slice(&[0xff; 4]);
        nix::unistd::write(&agent, &packet).unwrap();
        let (id, req, _) = recv_request(init.as_fd()).unwrap();
        assert_eq!(id, Some(InitRequestId(77)));
        assert!(req.is_err());
    }

    #[test]
    fn closed_peer_and_garbage() {
        let (a, b) = pair();
        nix::unistd::write(a.as_fd(), &[0, 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap();
        let err = recv::<InitToAgent>(b.as_fd()).unwrap_err();
        assert!(matches!(err, WireError::Decode { len: 5, .. }), "{err}");
        nix::unistd::write(a.as_fd(), &[0xff, 0xff, 0xff, 0xff, 0xff]).unwrap();
        let err = recv::<InitToAgent>(b.as_fd()).unwrap_err();
        assert!(matches!(err, WireError::TooLarge { .. }), "{err}");
        drop(a);
        assert!(matches!(recv::<InitToAgent>(b.as_fd()).unwrap_err(), WireError::Closed));
    }

    #[test]
    fn pipe_messages_use_the_wire_framing() {
        let (r, w) = nix::unistd::pipe().unwrap();
        write_pipe_message(w, b"filter").unwrap();
        let (r2, w2) = nix::unistd::pipe().unwrap();
        let mut whole = Vec::new();
        std::io::Read::read_to_end(&mut std::fs::File::from(r), &mut whole).unwrap();
        assert_eq!(whole, frame::frame(b"filter", MAX_PIPE_MESSAGE).unwrap());
        // A message cut short (the writer died) is an error, not a short payload.
        nix::unistd::write(&w2, &whole[..whole.len() - 1]).unwrap();
        drop(w2);
        assert!(matches!(read_pipe_message(r2), Err(WireError::UnexpectedEof { .. })));
    }

    #[test]
    fn packets_of_any_size_are_read_whole_in_order() {
        let (a, b) = pair();
        let (tx, rx) = (a.as_fd(), b.as_fd());
        send(tx, &InitToAgent::ShuttingDown, &[]).unwrap();
        let long = InitToAgent::Ready { pid: Some(7), warnings: vec!["w".repeat(100_000)] };
        send(tx, &long, &[]).unwrap();
        assert_eq!(recv::<InitToAgent>(rx).unwrap().0, InitToAgent::ShuttingDown);
        assert_eq!(recv::<InitToAgent>(rx).unwrap().0, long);
    }

    #[test]
    fn error_display_names_step_object_errno() {
        let e = InitError::new(Step::Exec, Some("/usr/bin/nope".into()), libc::ENOENT);
        assert_eq!(e.to_string(), "execve /usr/bin/nope: No such file or directory");
        assert_eq!(ExitStatus::Signal(9).shell_code(), 137);
    }
}
