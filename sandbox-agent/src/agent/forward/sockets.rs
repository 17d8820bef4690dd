//! Opening the two ends of a forwarder: sockets in the sandbox's network namespace, and on the
//! host sockets that stay on loopback, unix sockets connected as the user, and server sockets
//! owned by the user in the sandbox's forwarder directory.
//!
//! A socket belongs to the network namespace it was created in, whatever the creating process
//! does afterwards. The agent (single-threaded) enters the sandbox's namespace with `setns`
//! just for the `socket()` call and returns to its own at once; no process is forked for it.

use super::creds::AsUser;
use super::plan::{Addr, End, Kind, Side};
use nix::errno::Errno;
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{self as sock, AddressFamily, Backlog, SockFlag, SockType, SockaddrLike, UnixAddr};
use oz_sandbox::user::UserInfo;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

const LISTEN_BACKLOG: i32 = 128;

/// The agent's own network namespace and the sandbox's.
pub struct NetNs {
    host: File,
    sandbox: File,
}

impl NetNs {
    pub fn open(init_pid: i32) -> std::io::Result<NetNs> {
        Ok(NetNs { host: File::open("/proc/self/ns/net")?, sandbox: File::open(format!("/proc/{init_pid}/ns/net"))? })
    }

    /// A new non-blocking socket in `side`'s namespace.
    pub fn socket(&self, side: Side, family: AddressFamily, ty: SockType) -> Result<OwnedFd, Errno> {
        let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
        if side == Side::Host {
            return sock::socket(family, ty, flags, None);
        }
        setns(self.sandbox.as_fd(), CloneFlags::CLONE_NEWNET)?;
        let made = sock::socket(family, ty, flags, None);
        if setns(self.host.as_fd(), CloneFlags::CLONE_NEWNET).is_err() {
            // Host-side sockets would be created in the sandbox from now on.
            std::process::abort();
        }
        made
    }
}

/// What the ends need besides their address.
pub struct Context {
    pub netns: NetNs,
    pub user: UserInfo,
}

fn sock_type(kind: Kind) -> SockType {
    match kind {
        Kind::Stream => SockType::Stream,
        Kind::Datagram => SockType::Datagram,
    }
}

/// A socket address of any family, for bind and connect.
enum SockAddr {
    /// A `sockaddr_in` or `sockaddr_in6` and its length.
    Inet(libc::sockaddr_storage, libc::socklen_t, AddressFamily),
    Unix(UnixAddr),
}

impl SockAddr {
    fn family(&self) -> AddressFamily {
        match self {
            SockAddr::Inet(_, _, f) => *f,
            SockAddr::Unix(_) => AddressFamily::Unix,
        }
    }

    fn raw(&self) -> (*const libc::sockaddr, libc::socklen_t) {
        match self {
            SockAddr::Inet(ss, len, _) => ((ss as *const libc::sockaddr_storage).cast(), *len),
            SockAddr::Unix(u) => (u.as_ptr().cast(), u.len()),
        }
    }

    fn bind(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        let (ptr, len) = self.raw();
        // SAFETY: ptr/len describe a valid sockaddr owned by self.
        Errno::result(unsafe { libc::bind(fd.as_raw_fd(), ptr, len) }).map(drop)
    }

    fn connect(&self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        let (ptr, len) = self.raw();
        // SAFETY: as in bind.
        Errno::result(unsafe { libc::connect(fd.as_raw_fd(), ptr, len) }).map(drop)
    }
}

fn inet(a: &std::net::SocketAddr) -> SockAddr {
    // SAFETY: an all-zero sockaddr_storage is valid; the family-specific struct is written
    // into its start, which is large and aligned enough for either.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match a {
        std::net::SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(*a.ip()).to_be() },
                sin_zero: [0; 8],
            };
            // SAFETY: see above.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin) };
            SockAddr::Inet(ss, std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t, AddressFamily::Inet)
        }
        std::net::SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr { s6_addr: a.ip().octets() },
                sin6_scope_id: 0,
            };
            // SAFETY: see above.
            unsafe { std::ptr::write((&mut ss as *mut libc::sockaddr_storage).cast(), sin6) };
            SockAddr::Inet(ss, std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t, AddressFamily::Inet6)
        }
    }
}

fn sockaddr(addr: &Addr) -> Result<SockAddr, Errno> {
    Ok(match addr {
        Addr::Inet(a) => inet(a),
        Addr::Abstract(name) => SockAddr::Unix(UnixAddr::new_abstract(name.as_bytes())?),
        Addr::Path(p) => SockAddr::Unix(UnixAddr::new(p.as_path())?),
    })
}

fn set_reuseaddr(fd: &OwnedFd) {
    let _ = sock::setsockopt(fd, sock::sockopt::ReuseAddr, &true);
}

/// Create `dir` (and its parent) for the server sockets: root's, mode 0711 (the user reaches
/// the socket it owns inside, nobody lists or writes the directory).
pub fn make_dir(dir: &Path) -> std::io::Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("/"));
    // Another agent may remove the shared parent between the two mkdirs: try again once.
    for _ in 0..2 {
        std::fs::DirBuilder::new().recursive(true).mode(0o711).create(parent)?;
        match std::fs::DirBuilder::new().mode(0o711).create(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => break,
        }
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() || std::os::unix::fs::MetadataExt::uid(&meta) != 0 {
        return Err(std::io::Error::other(format!("{} is not root's directory", dir.display())));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
}

/// Bind a filesystem socket in the (root-owned) forwarder directory and give it to the user,
/// mode 0600. A stale socket of an earlier instance is replaced.
fn bind_host_path(fd: &OwnedFd, path: &Path, addr: &SockAddr, user: &UserInfo) -> Result<(), Errno> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()) => {
            let _ = std::fs::remove_file(path);
        }
        _ => {}
    }
    addr.bind(fd.as_fd())?;
    let chown = nix::unistd::fchownat(
        None,
        path,
        Some(nix::unistd::Uid::from_raw(user.uid)),
        Some(nix::unistd::Gid::from_raw(user.gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    );
    let chmod = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)));
    chown.and(chmod)
}

/// The listening (stream) or bound (datagram) socket of `end`.
pub fn listen(end: &End, kind: Kind, ctx: &Context) -> Result<OwnedFd, Errno> {
    let addr = sockaddr(&end.addr)?;
    let fd = ctx.netns.socket(end.side, addr.family(), sock_type(kind))?;
    match (&end.side, &end.addr) {
        (Side::Host, Addr::Path(p)) => bind_host_path(&fd, p, &addr, &ctx.user)?,
        (_, Addr::Inet(_)) => {
            set_reuseaddr(&fd);
            addr.bind(fd.as_fd())?
        }
        _ => addr.bind(fd.as_fd())?,
    }
    if kind == Kind::Stream {
        sock::listen(&fd, Backlog::new(LISTEN_BACKLOG).unwrap_or(Backlog::MAXCONN))?;
    }
    Ok(fd)
}

/// A socket connected (or connecting: the caller waits for POLLOUT) to `end`. The host end is
/// created and connected with the user's credentials. A datagram socket to a unix end is
/// autobound first, so that replies can reach it.
pub fn connect(end: &End, kind: Kind, ctx: &Context) -> Result<(OwnedFd, bool), Errno> {
    let addr = sockaddr(&end.addr)?;
    let _as_user = match end.side {
        Side::Host => Some(AsUser::enter(&ctx.user)?),
        Side::Sandbox => None,
    };
    let fd = ctx.netns.socket(end.side, addr.family(), sock_type(kind))?;
    if kind == Kind::Datagram && addr.family() == AddressFamily::Unix {
        sock::bind(fd.as_raw_fd(), &UnixAddr::new_unnamed())?;
    }
    match addr.connect(fd.as_fd()) {
        Ok(()) => Ok((fd, false)),
        Err(Errno::EINPROGRESS) => Ok((fd, true)),
        Err(e) => Err(e),
    }
}

/// Accept one connection (non-blocking, close-on-exec); None when nothing is pending.
pub fn accept(listener: BorrowedFd<'_>) -> Result<Option<OwnedFd>, Errno> {
    match sock::accept4(listener.as_raw_fd(), SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC) {
        // SAFETY: a fresh descriptor from the kernel, owned from here on.
        Ok(fd) => Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) })),
        Err(Errno::EAGAIN) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The pending error of a socket (a finished non-blocking connect).
pub fn take_error(fd: &OwnedFd) -> Result<(), Errno> {
    match sock::getsockopt(fd, sock::sockopt::SocketError) {
        Ok(0) => Ok(()),
        Ok(e) => Err(Errno::from_raw(e)),
        Err(e) => Err(e),
    }
}

/// The host path a server forwarder listens on, if it is a filesystem socket.
pub fn host_path(end: &End) -> Option<PathBuf> {
    match (&end.side, &end.addr) {
        (Side::Host, Addr::Path(p)) => Some(p.clone()),
        _ => None,
    }
}
