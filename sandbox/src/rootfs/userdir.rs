//! A directory private to one user (0700), below a tree that user controls (`/run/user/<uid>`
//! or the home), for things a sandbox shares with host-side helpers of the same user (the X
//! server's socket and cookie). Every step runs with the user's filesystem credentials and
//! never follows a symlink out of the tree, so root never creates, writes or removes anything
//! in a user tree as root.

use super::build::host_open;
use super::pathsafe::{self, AsUser};
use super::RootfsError;
use crate::user::UserInfo;
use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A directory `root/rel` created by (and owned by) the user, mode 0700.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivateDir {
    root: PathBuf,
    rel: PathBuf,
}

fn as_user(user: &UserInfo) -> Result<AsUser, RootfsError> {
    AsUser::enter(user).map_err(|errno| RootfsError::Sys { what: "switch to user credentials", errno })
}

fn cname(name: &str, dir: &Path) -> Result<CString, RootfsError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(RootfsError::Invalid {
            item: dir.join(name).display().to_string(),
            reason: "not a plain file name".into(),
        });
    }
    CString::new(name).map_err(|_| RootfsError::fs("open", dir.join(name), Errno::EINVAL))
}

impl PrivateDir {
    /// Create `root/rel` (and missing parents, 0700) as the user. An existing directory is
    /// accepted only when the user owns it; it is then set to 0700.
    pub fn create(user: &UserInfo, root: &Path, rel: &Path) -> Result<PrivateDir, RootfsError> {
        let dir = PrivateDir { root: root.to_path_buf(), rel: rel.to_path_buf() };
        let _as_user = as_user(user)?;
        let root_fd = host_open(root, libc::O_PATH | libc::O_DIRECTORY)?;
        let fd = pathsafe::create_dirs_beneath(root_fd.as_fd(), root, rel, 0o700)
            .map_err(|e| RootfsError::open(dir.path(), e))?;
        let st = pathsafe::fstat(fd.as_fd()).map_err(|e| RootfsError::fs("stat", dir.path(), e))?;
        if st.st_uid != user.uid || !pathsafe::is_dir(&st) {
            return Err(RootfsError::Invalid {
                item: dir.path().display().to_string(),
                reason: format!("not a directory owned by {}", user.name),
            });
        }
        let proc_path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL");
        // SAFETY: chmod of the directory the O_PATH fd refers to, through its proc link.
        Errno::result(unsafe { libc::chmod(proc_path.as_ptr(), 0o700) })
            .map_err(|e| RootfsError::fs("chmod", dir.path(), e))?;
        Ok(dir)
    }

    /// The host path.
    pub fn path(&self) -> PathBuf {
        self.root.join(&self.rel)
    }

    fn open(&self) -> Result<OwnedFd, RootfsError> {
        let root_fd = host_open(&self.root, libc::O_PATH | libc::O_DIRECTORY)?;
        pathsafe::open_beneath(root_fd.as_fd(), &self.root, &self.rel, false)
            .map_err(|e| RootfsError::open(self.path(), e))
    }

    /// Write `name` in the directory as the user (created or truncated, never through a
    /// symlink), with `mode`.
    pub fn write_file(&self, user: &UserInfo, name: &str, content: &[u8], mode: u32) -> Result<(), RootfsError> {
        let _as_user = as_user(user)?;
        let dir = self.open()?;
        let c = cname(name, &self.path())?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: openat with a valid dirfd and a NUL-terminated plain name.
        let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags, mode as libc::c_uint) };
        if fd < 0 {
            return Err(RootfsError::fs("create", self.path().join(name), Errno::last()));
        }
        // SAFETY: fresh descriptor from the kernel.
        let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        std::io::Write::write_all(&mut file, content).map_err(|e| {
            RootfsError::fs("write", self.path().join(name), Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))
        })
    }

    /// A listening unix stream socket at `name` in the directory (close-on-exec), its file
    /// created as the user with `mode` (any old entry of that name removed first). Clients may
    /// connect at once: their connections wait in the backlog until whoever is handed the
    /// descriptor accepts them.
    pub fn listen(&self, user: &UserInfo, name: &str, mode: u32) -> Result<OwnedFd, RootfsError> {
        use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
        let _as_user = as_user(user)?;
        let dir = self.open()?;
        let c = cname(name, &self.path())?;
        let path = self.path().join(name);
        // SAFETY: unlinkat of a plain name below a valid dirfd (a missing entry is fine).
        unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
        // The directory by its descriptor: no component of the path is looked up again.
        let at = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
        let sock = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)
            .map_err(|e| RootfsError::fs("socket", path.clone(), e))?;
        let addr = UnixAddr::new(at.as_str()).map_err(|e| RootfsError::fs("bind", path.clone(), e))?;
        bind(sock.as_raw_fd(), &addr).map_err(|e| RootfsError::fs("bind", path.clone(), e))?;
        let at = CString::new(at).map_err(|_| RootfsError::fs("chmod", path.clone(), Errno::EINVAL))?;
        // SAFETY: chmod of the socket file just bound, through the directory's descriptor.
        Errno::result(unsafe { libc::chmod(at.as_ptr(), mode) })
            .map_err(|e| RootfsError::fs("chmod", path.clone(), e))?;
        listen(&sock, Backlog::new(16).unwrap_or(Backlog::MAXCONN)).map_err(|e| RootfsError::fs("listen", path, e))?;
        Ok(sock)
    }

    /// Whether `name` exists in the directory (looked up as the user, no symlink followed).
    pub fn contains(&self, user: &UserInfo, name: &str) -> bool {
        let Ok(_as_user) = as_user(user) else { return false };
        let Ok(dir) = self.open() else { return false };
        let Ok(c) = cname(name, &self.path()) else { return false };
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: fstatat with a valid dirfd, a NUL-terminated name and room for one stat.
        unsafe { libc::fstatat(dir.as_raw_fd(), c.as_ptr(), st.as_mut_ptr(), libc::AT_SYMLINK_NOFOLLOW) == 0 }
    }

    /// Remove the directory's entries (files, sockets; not subdirectories) and the directory
    /// itself, as the user. Best effort: what cannot be removed stays.
    pub fn remove(&self, user: &UserInfo) {
        let Ok(_as_user) = as_user(user) else { return };
        let Ok(dir) = self.open() else { return };
        if let Ok(entries) = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd())) {
            for name in entries.flatten().map(|e| e.file_name()) {
                if let Ok(c) = CString::new(name.as_bytes()) {
                    // SAFETY: unlinkat of a plain name below a valid dirfd.
                    unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
                }
            }
        }
        drop(dir);
        let (Some(parent), Some(last)) = (self.rel.parent(), self.rel.file_name()) else { return };
        let Ok(root_fd) = host_open(&self.root, libc::O_PATH | libc::O_DIRECTORY) else { return };
        let Ok(parent_fd) = pathsafe::open_beneath(root_fd.as_fd(), &self.root, parent, true) else { return };
        if let Ok(c) = CString::new(last.as_bytes()) {
            // SAFETY: unlinkat(AT_REMOVEDIR) of a plain name below a valid dirfd.
            unsafe { libc::unlinkat(parent_fd.as_raw_fd(), c.as_ptr(), libc::AT_REMOVEDIR) };
        }
    }
}
