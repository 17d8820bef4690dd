//! The agent <-> init channel: one typed enum per direction, bincode 1.3 in one SOCK_SEQPACKET
//! packet per message, file descriptors alongside with SCM_RIGHTS.
//!
//! The init is a forked child of the agent (PID 1 of the sandbox's PID namespace). It starts the
//! launch's program by itself (from the plan it inherited at fork), then serves these requests.
//! Every request but `Signal` gets exactly one reply (`Launched`, `ShellStarted`, `Mounted`,
//! `Unmounted`, `ShuttingDown` or `Failed`), in request order; `Ready`, `ProgramFailed` and
//! `Exited` are unsolicited events and may come between a request and its reply.

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

/// Largest message accepted on the channel (checked by the packet buffer size).
pub const MAX_PACKET: usize = 256 * 1024;
/// Most descriptors one message carries (RunProgram: stdin, stdout, stderr).
pub const MAX_FDS: usize = 3;

/// How a process ended (the wire type, shared with the daemon and the client).
pub use oz_wire::ExitStatus;

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
}

/// The setup step that failed and the error the init reports (shared with `oz_sandbox::exec`).
pub use oz_sandbox::step::{InitError, Step};

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("{op} on the init channel: {errno}")]
    Sys { op: &'static str, errno: nix::errno::Errno },
    #[error("init channel closed by peer")]
    Closed,
    #[error("init channel packet truncated (over {MAX_PACKET} bytes or {MAX_FDS} fds)")]
    Truncated,
    #[error("decode {what} ({len} bytes): {detail}")]
    Decode { what: &'static str, len: usize, detail: String },
    #[error("encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
    #[error("expected {expected} fds with {message}, got {got}")]
    FdCount { message: &'static str, expected: usize, got: usize },
    #[error("expected {expected}, received {received}")]
    UnexpectedMessage { expected: &'static str, received: String },
}

/// The length of the next packet on the SOCK_SEQPACKET `sock`, without receiving it (blocks like
/// a receive; 0 at end of file).
fn next_packet_len(sock: BorrowedFd<'_>) -> Result<usize, ChannelError> {
    loop {
        // SAFETY: a zero-length receive into no buffer; MSG_PEEK leaves the packet (and any fds
        // attached to it) queued, MSG_TRUNC makes the kernel return its real length.
        let r = unsafe { libc::recv(sock.as_raw_fd(), std::ptr::null_mut(), 0, libc::MSG_PEEK | libc::MSG_TRUNC) };
        match nix::errno::Errno::result(r) {
            Ok(n) => return Ok(n as usize),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECONNRESET) => return Err(ChannelError::Closed),
            Err(errno) => return Err(ChannelError::Sys { op: "recv", errno }),
        }
    }
}

/// Write one length-prefixed message (8 bytes little-endian, then `payload`) to a pipe the init
/// reads during its setup, and close it.
pub fn write_pipe_message(pipe: OwnedFd, payload: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::File::from(pipe);
    f.write_all(&(payload.len() as u64).to_le_bytes())?;
    f.write_all(payload)
}

/// Read what [`write_pipe_message`] wrote; a cut message (the agent failed or died) is an error.
pub fn read_pipe_message(pipe: OwnedFd) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::from(pipe);
    let mut len = [0u8; 8];
    f.read_exact(&mut len)?;
    let len = u64::from_le_bytes(len);
    let mut payload = Vec::new();
    (&mut f).take(len).read_to_end(&mut payload)?;
    if payload.len() as u64 != len {
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
    }
    Ok(payload)
}

/// Send one message with `fds` attached.
pub fn send<T: Serialize>(sock: BorrowedFd<'_>, msg: &T, fds: &[RawFd]) -> Result<(), ChannelError> {
    let what = std::any::type_name::<T>();
    let buf = bincode::serialize(msg).map_err(|e| ChannelError::Encode { what, detail: e.to_string() })?;
    if buf.len() > MAX_PACKET {
        return Err(ChannelError::Encode { what, detail: format!("{} bytes exceed {MAX_PACKET}", buf.len()) });
    }
    let iov = [IoSlice::new(&buf)];
    let cmsg = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &cmsg };
    loop {
        match sendmsg::<()>(sock.as_raw_fd(), &iov, cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EPIPE) | Err(nix::errno::Errno::ECONNRESET) => return Err(ChannelError::Closed),
            Err(errno) => return Err(ChannelError::Sys { op: "sendmsg", errno }),
        }
    }
}

/// Receive one message and the fds that came with it (owned, close-on-exec).
pub fn recv<T: for<'de> Deserialize<'de>>(sock: BorrowedFd<'_>) -> Result<(T, Vec<OwnedFd>), ChannelError> {
    let what = std::any::type_name::<T>();
    // Sized to the next packet (a zeroed MAX_PACKET buffer per message costs more than the
    // peek); a packet larger than MAX_PACKET is still reported as truncated below.
    let mut buf = vec![0u8; next_packet_len(sock)?.clamp(1, MAX_PACKET)];
    let mut cmsg_space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        let r = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg_space), MsgFlags::MSG_CMSG_CLOEXEC);
        match r {
            Ok(msg) => {
                let mut fds = Vec::new();
                for c in msg.cmsgs().map_err(|errno| ChannelError::Sys { op: "recvmsg", errno })? {
                    if let ControlMessageOwned::ScmRights(raw) = c {
                        // SAFETY: the kernel just installed these descriptors for us; nobody
                        // else owns them.
                        fds.extend(raw.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
                    }
                }
                if msg.flags.intersects(MsgFlags::MSG_TRUNC | MsgFlags::MSG_CTRUNC) {
                    return Err(ChannelError::Truncated);
                }
                break (msg.bytes, fds);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::ECONNRESET) => return Err(ChannelError::Closed),
            Err(errno) => return Err(ChannelError::Sys { op: "recvmsg", errno }),
        }
    };
    if len == 0 {
        return Err(ChannelError::Closed);
    }
    let msg = bincode::deserialize(&buf[..len]).map_err(|e| ChannelError::Decode { what, len, detail: e.to_string() })?;
    Ok((msg, fds))
}

/// Check that a message came with exactly `expected` fds.
pub fn expect_fds(message: &'static str, fds: Vec<OwnedFd>, expected: usize) -> Result<Vec<OwnedFd>, ChannelError> {
    if fds.len() != expected {
        return Err(ChannelError::FdCount { message, expected, got: fds.len() });
    }
    Ok(fds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsFd;

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
        assert_eq!(expect_fds("RunProgram", fds, 3).unwrap().len(), 3);
    }

    #[test]
    fn closed_peer_and_garbage() {
        let (a, b) = pair();
        nix::unistd::write(a.as_fd(), &[0xff, 0xff, 0xff, 0xff, 0xff]).unwrap();
        let err = recv::<InitToAgent>(b.as_fd()).unwrap_err();
        assert!(matches!(err, ChannelError::Decode { len: 5, .. }), "{err}");
        drop(a);
        assert!(matches!(recv::<InitToAgent>(b.as_fd()).unwrap_err(), ChannelError::Closed));
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
