//! systemd socket activation (`sd_listen_fds`): the control socket may come from systemd
//! (`oz-daemon.socket`) as fd 3 with LISTEN_PID/LISTEN_FDS. It is accepted only if it is a
//! listening unix stream socket bound to oz.conf's `socket_path`, in a directory that passes
//! the same checks as a socket the daemon binds itself.

use crate::listener::check_socket_dir;
use nix::sys::socket::{getsockname, getsockopt, sockopt, SockType, UnixAddr};
use nix::sys::stat::{fstat, SFlag};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;

/// The first fd systemd passes.
const SD_LISTEN_FDS_START: i32 = 3;

/// Take the fds systemd passed to this process, and clear the variables so no child sees them.
/// Call at the start of `main`, before any thread exists. None when not socket-activated.
pub fn take_from_env() -> io::Result<Option<OwnedFd>> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let (Some(pid), Some(fds)) = (pid, fds) else { return Ok(None) };
    if pid.parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None);
    }
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
    match fds.parse::<i32>() {
        Ok(1) => {}
        Ok(n) => {
            return Err(invalid(format!(
                "socket activation: LISTEN_FDS={n}, expected exactly one (the control socket)"
            )))
        }
        Err(_) => return Err(invalid(format!("socket activation: LISTEN_FDS={fds:?} is not a number"))),
    }
    let st = fstat(SD_LISTEN_FDS_START).map_err(|e| invalid(format!("socket activation: fd 3: {e}")))?;
    // SAFETY: fd 3 is open (fstat succeeded) and, per the LISTEN_* protocol, handed to this
    // process to own; nothing else in the process refers to it.
    let fd = unsafe { OwnedFd::from_raw_fd(SD_LISTEN_FDS_START) };
    if SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()) != SFlag::S_IFSOCK {
        return Err(invalid("socket activation: fd 3 is not a socket".into()));
    }
    nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC))?;
    Ok(Some(fd))
}

/// Check the passed socket and make it the control listener.
pub fn listener(fd: OwnedFd, socket_path: &Path) -> io::Result<UnixListener> {
    let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, format!("socket activation: {m}"));
    let raw = fd.as_raw_fd();
    let ty = getsockopt(&fd, sockopt::SockType)?;
    if ty != SockType::Stream {
        return Err(invalid(format!("the passed socket is {ty:?}, not a stream socket (ListenStream=)")));
    }
    if socket_domain(raw)? != libc::AF_UNIX {
        return Err(invalid("the passed socket is not a unix socket".into()));
    }
    if !getsockopt(&fd, sockopt::AcceptConn)? {
        return Err(invalid("the passed socket is not listening".into()));
    }
    let addr: UnixAddr = getsockname(raw)?;
    match addr.path() {
        Some(p) if p == socket_path => {}
        Some(p) => {
            return Err(invalid(format!(
                "the passed socket is bound to {}, but socket_path in oz.conf is {}",
                p.display(),
                socket_path.display()
            )))
        }
        None => return Err(invalid("the passed socket is not bound to a path (abstract or unnamed)".into())),
    }
    if let Some(dir) = socket_path.parent() {
        check_socket_dir(dir)?;
    }
    let meta = std::fs::symlink_metadata(socket_path)?;
    if !meta.file_type().is_socket() || meta.uid() != 0 {
        return Err(invalid(format!("{} is not a socket owned by root", socket_path.display())));
    }
    std::fs::set_permissions(socket_path, std::fs::Permissions::from_mode(0o666))?;
    let listener = UnixListener::from(fd);
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// SO_DOMAIN of a socket (nix has no wrapper for it).
fn socket_domain(fd: i32) -> io::Result<i32> {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `domain` and `len` are valid for writes of the sizes given; `fd` is open.
    let rc = unsafe {
        libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_DOMAIN, (&mut domain as *mut libc::c_int).cast(), &mut len)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(domain)
}
