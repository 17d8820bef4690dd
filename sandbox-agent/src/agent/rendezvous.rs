//! Crash resilience: the agent's rendezvous socket and state record.
//!
//! Beside every running sandbox the agent keeps, in `<state_dir>/agents/` (mode 0700, root):
//! - `<id>.sock`: a listening SOCK_SEQPACKET socket on which a (re)started daemon reconnects;
//!   only peers with uid 0 (SO_PEERCRED) are accepted;
//! - `<id>.json`: the sandbox's [`SandboxRecord`], written atomically (temp file + rename).
//!
//! Both are removed when the sandbox ends.

use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
use oz_wire::state::{self as wstate, SandboxRecord, StateError};
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RendezvousError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("{op} {path}: {errno}")]
    Sys { op: &'static str, path: PathBuf, errno: nix::errno::Errno },
    #[error("{path}: not a directory owned by root (uid {uid}, mode {mode:o})")]
    UnsafeDir { path: PathBuf, uid: u32, mode: u32 },
    #[error("{path}: exists and is not a socket")]
    NotASocket { path: PathBuf },
    #[error("state record: {0}")]
    Record(#[from] StateError),
}

/// Who connected to the rendezvous socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
}

/// The outcome of one `accept` on the rendezvous socket.
#[derive(Debug)]
pub enum Accepted {
    /// A root peer: a new daemon channel.
    Daemon(OwnedFd, Peer),
    /// A non-root peer, already disconnected.
    Refused(Peer),
    /// Nobody was waiting.
    Nobody,
}

/// The listening socket and the record, removed again by [`Rendezvous::remove`].
#[derive(Debug)]
pub struct Rendezvous {
    listener: OwnedFd,
    socket: PathBuf,
    record: PathBuf,
}

/// Create `<state_dir>/agents` (0700, root) if needed and check it when it exists: it must be a
/// real directory owned by root and not writable by anyone else.
pub fn ensure_agents_dir(state_dir: &Path) -> Result<PathBuf, RendezvousError> {
    let dir = wstate::agents_dir(state_dir);
    let io = |op, path: &Path, source| RendezvousError::Io { op, path: path.to_path_buf(), source };
    fs::create_dir_all(state_dir).map_err(|e| io("create", state_dir, e))?;
    match fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("create", &dir, e)),
    }
    let meta = fs::symlink_metadata(&dir).map_err(|e| io("stat", &dir, e))?;
    let mode = meta.mode() & 0o7777;
    if !meta.is_dir() || meta.uid() != 0 {
        return Err(RendezvousError::UnsafeDir { path: dir, uid: meta.uid(), mode });
    }
    if mode != 0o700 {
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(|e| io("chmod", &dir, e))?;
    }
    Ok(dir)
}

impl Rendezvous {
    /// Bind and listen on the record's socket path, then write the record (so a daemon that
    /// finds a record always finds a listening socket).
    pub fn create(state_dir: &Path, record: &SandboxRecord) -> Result<Rendezvous, RendezvousError> {
        ensure_agents_dir(state_dir)?;
        let socket = wstate::socket_path(state_dir, record.id);
        let record_path = wstate::record_path(state_dir, record.id);
        let listener = listen(&socket)?;
        let rv = Rendezvous { listener, socket, record: record_path };
        if let Err(e) = rv.store(record) {
            rv.remove();
            return Err(e);
        }
        Ok(rv)
    }

    /// Rewrite the state record (atomically).
    pub fn store(&self, record: &SandboxRecord) -> Result<(), RendezvousError> {
        Ok(record.store(&self.record)?)
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    pub fn record_path(&self) -> &Path {
        &self.record
    }

    /// The listening fd, for poll().
    pub fn listener(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// Accept one pending connection (the listener is non-blocking) and authenticate it.
    pub fn accept(&self) -> Result<Accepted, RendezvousError> {
        let raw = match socket::accept4(self.listener.as_raw_fd(), SockFlag::SOCK_CLOEXEC) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::ECONNABORTED | nix::errno::Errno::EINTR) => {
                return Ok(Accepted::Nobody)
            }
            Err(errno) => return Err(self.sys("accept", errno)),
        };
        // SAFETY: accept4 just returned this fd and nothing else owns it.
        let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        let cred = socket::getsockopt(&fd, sockopt::PeerCredentials).map_err(|e| self.sys("SO_PEERCRED", e))?;
        let peer = Peer { pid: cred.pid(), uid: cred.uid() };
        if peer.uid != 0 {
            return Ok(Accepted::Refused(peer));
        }
        Ok(Accepted::Daemon(fd, peer))
    }

    /// Remove the socket and the record (best effort: the sandbox is ending).
    pub fn remove(self) {
        let _ = fs::remove_file(&self.socket);
        let _ = fs::remove_file(&self.record);
    }

    fn sys(&self, op: &'static str, errno: nix::errno::Errno) -> RendezvousError {
        RendezvousError::Sys { op, path: self.socket.clone(), errno }
    }
}

/// A non-blocking listening SOCK_SEQPACKET socket at `path` (mode 0600). A stale socket left
/// by a dead agent with the same id is replaced; any other file there is an error.
fn listen(path: &Path) -> Result<OwnedFd, RendezvousError> {
    let sys = |op, errno| RendezvousError::Sys { op, path: path.to_path_buf(), errno };
    match fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            fs::remove_file(path).map_err(|source| RendezvousError::Io {
                op: "remove stale",
                path: path.to_path_buf(),
                source,
            })?;
        }
        Ok(_) => return Err(RendezvousError::NotASocket { path: path.to_path_buf() }),
        Err(_) => {}
    }
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(|e| sys("socket", e))?;
    let addr = UnixAddr::new(path).map_err(|e| sys("socket address", e))?;
    socket::bind(fd.as_raw_fd(), &addr).map_err(|e| sys("bind", e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|source| RendezvousError::Io {
        op: "chmod",
        path: path.to_path_buf(),
        source,
    })?;
    socket::listen(&fd, Backlog::new(8).expect("8 is a valid backlog")).map_err(|e| sys("listen", e))?;
    Ok(fd)
}

/// Connect to an agent's rendezvous socket (what a restarted daemon does; used by tests).
pub fn connect(path: &Path) -> Result<OwnedFd, RendezvousError> {
    let sys = |op, errno| RendezvousError::Sys { op, path: path.to_path_buf(), errno };
    let fd = socket::socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)
        .map_err(|e| sys("socket", e))?;
    let addr = UnixAddr::new(path).map_err(|e| sys("socket address", e))?;
    socket::connect(fd.as_raw_fd(), &addr).map_err(|e| sys("connect", e))?;
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: u64) -> SandboxRecord {
        SandboxRecord {
            id,
            profile: "shell".into(),
            uid: 1000,
            user: "u".into(),
            phase: oz_wire::SandboxState::Running,
            init_pid: 4242,
            agent_pid: std::process::id(),
            started_at: 1_700_000_000,
            mounts: vec![],
            network: None,
            display: None,
            ephemeral: false,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        v.sort();
        v
    }

    #[test]
    fn create_writes_record_and_socket_and_remove_cleans_up() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("state");
        let rec = record(7);
        let rv = Rendezvous::create(&state, &rec).unwrap();
        let dir = wstate::agents_dir(&state);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
        assert_eq!(names(&dir), vec!["7.json", "7.sock"]);
        assert_eq!(fs::symlink_metadata(rv.socket_path()).unwrap().mode() & 0o777, 0o600);
        assert_eq!(SandboxRecord::load(rv.record_path()).unwrap(), rec);

        let mut moved = rec.clone();
        moved.init_pid = 5;
        rv.store(&moved).unwrap();
        assert_eq!(SandboxRecord::load(rv.record_path()).unwrap().init_pid, 5);
        assert_eq!(names(&dir), vec!["7.json", "7.sock"], "no temp file left");

        rv.remove();
        assert!(names(&dir).is_empty());
    }

    #[test]
    fn accept_authenticates_root_peers() {
        // Tests run as root (CI): our own connection must be accepted as a daemon.
        let tmp = tempfile::tempdir().unwrap();
        let rec = record(3);
        let rv = Rendezvous::create(tmp.path(), &rec).unwrap();
        assert!(matches!(rv.accept().unwrap(), Accepted::Nobody));
        let _client = connect(rv.socket_path()).unwrap();
        match rv.accept().unwrap() {
            Accepted::Daemon(_, peer) => {
                assert_eq!(peer.uid, nix::unistd::geteuid().as_raw());
                assert_eq!(peer.uid, 0, "tests run as root");
                assert_eq!(peer.pid as u32, std::process::id());
            }
            other => panic!("expected a daemon connection, got {other:?}"),
        }
        rv.remove();
    }

    #[test]
    fn accept_refuses_non_root_peers() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = record(4);
        let rv = Rendezvous::create(tmp.path(), &rec).unwrap();
        // Connect from a child whose effective uid (what SO_PEERCRED reports) is unprivileged;
        // its fsuid stays 0 so it can still reach the socket in the root-only directory, the
        // way a non-root peer that got past the directory permissions would. The child only
        // calls async-signal-safe functions (seteuid, setfsuid, socket, connect, read, _exit).
        let addr = UnixAddr::new(rv.socket_path()).unwrap();
        // SAFETY: the test process may have threads (the test harness); the child calls only
        // async-signal-safe functions before _exit.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = (|| {
                    nix::unistd::seteuid(nix::unistd::Uid::from_raw(65534)).ok()?;
                    nix::unistd::setfsuid(nix::unistd::Uid::from_raw(0));
                    let fd = socket::socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::empty(), None).ok()?;
                    socket::connect(fd.as_raw_fd(), &addr).ok()?;
                    let mut b = [0u8; 1];
                    // Wait for the agent to drop us.
                    let _ = nix::unistd::read(fd.as_raw_fd(), &mut b);
                    Some(0)
                })()
                .unwrap_or(1);
                // SAFETY: _exit is async-signal-safe.
                unsafe { libc::_exit(code) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
                let peer = loop {
                    match rv.accept().unwrap() {
                        Accepted::Refused(p) => break p,
                        Accepted::Nobody if std::time::Instant::now() < deadline => {
                            std::thread::sleep(std::time::Duration::from_millis(10))
                        }
                        other => panic!("expected a refused peer, got {other:?}"),
                    }
                };
                assert_eq!(peer.uid, 65534);
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
        rv.remove();
    }

    #[test]
    fn stale_socket_is_replaced_and_other_files_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let rec = record(9);
        let rv = Rendezvous::create(tmp.path(), &rec).unwrap();
        // Simulate an agent that died without cleaning up: its socket file stays.
        std::mem::forget(rv);
        let rv = Rendezvous::create(tmp.path(), &rec).unwrap();
        let _c = connect(rv.socket_path()).unwrap();
        rv.remove();

        fs::write(wstate::socket_path(tmp.path(), 9), b"x").unwrap();
        let err = Rendezvous::create(tmp.path(), &rec).unwrap_err().to_string();
        assert!(err.contains("9.sock: exists and is not a socket"), "{err}");
    }

    #[test]
    fn agents_dir_must_be_root_owned_and_gets_0700() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = wstate::agents_dir(tmp.path());
        fs::create_dir_all(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
        ensure_agents_dir(tmp.path()).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o7777, 0o700);
        nix::unistd::chown(&dir, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let err = ensure_agents_dir(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("not a directory owned by root (uid 65534"), "{err}");
    }
}
