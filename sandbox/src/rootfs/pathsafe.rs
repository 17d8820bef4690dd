//! Opening paths a user controls without letting a symlink lead root somewhere else.
//!
//! - [`AsUser`] switches this thread's filesystem credentials (fsuid, fsgid, supplementary groups,
//!   by raw syscalls so only the calling thread changes) to the sandbox user for a scope, so that
//!   every permission check, every mkdir and every lookup is the user's: root's DAC privileges
//!   are never lent. Dropping it restores root.
//! - [`open_beneath`] opens `rel` below a root directory fd (the user's home, `/run/user/<uid>`):
//!   first `openat2(RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS)`, and when the kernel refuses because
//!   of an absolute symlink (EXDEV) an O_NOFOLLOW component walk that accepts absolute symlinks
//!   only when they point back below the root (`~/.mozilla -> /home/u/dotfiles/mozilla`) and
//!   refuses everything else (`~/.foo -> /etc/shadow`, `~/.bar -> /root`, `../..`).
//! - [`create_dirs_beneath`] is the same walk creating missing directories (`can_create`).
//! - [`open_in_root`] resolves a sandbox path inside the new root (`RESOLVE_IN_ROOT`): absolute
//!   symlinks and `..` stay inside it.

use crate::user::UserInfo;
use nix::errno::Errno;
use std::collections::VecDeque;
use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

/// Why a user path could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    /// A symlink (or `..`) leads out of the root it must stay below.
    Escape {
        link: PathBuf,
        target: PathBuf,
    },
    /// Too many symlinks.
    Loop,
    Io(Errno),
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathError::Escape { link, target } => {
                write!(f, "symlink {} -> {} leads out of the allowed tree", link.display(), target.display())
            }
            PathError::Loop => f.write_str("too many levels of symbolic links"),
            PathError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl From<Errno> for PathError {
    fn from(e: Errno) -> Self {
        PathError::Io(e)
    }
}

const MAX_HOPS: u32 = 40;

fn cstr(p: &OsStr) -> Result<CString, Errno> {
    CString::new(p.as_bytes()).map_err(|_| Errno::EINVAL)
}

/// `openat(dir, name, flags)` returning an owned fd.
pub fn openat(dir: BorrowedFd<'_>, name: &Path, flags: libc::c_int, mode: libc::mode_t) -> Result<OwnedFd, Errno> {
    let c = cstr(name.as_os_str())?;
    // SAFETY: valid dirfd and NUL-terminated path; the fd returned is new and owned below.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint) };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fresh descriptor from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat2(dir, path, flags, resolve)` returning an owned fd.
pub fn openat2(dir: BorrowedFd<'_>, path: &Path, flags: libc::c_int, resolve: u64) -> Result<OwnedFd, Errno> {
    let c = cstr(path.as_os_str())?;
    // SAFETY: open_how is plain data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: openat2 with a valid dirfd, NUL-terminated path and correctly sized open_how.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: fresh descriptor from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// fstat of an fd (O_PATH fds included).
pub fn fstat(fd: BorrowedFd<'_>) -> Result<libc::stat, Errno> {
    nix::sys::stat::fstat(fd.as_raw_fd())
}

pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

pub fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// The text of the symlink an O_PATH|O_NOFOLLOW fd refers to.
pub fn read_link(fd: BorrowedFd<'_>) -> Result<PathBuf, Errno> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: readlinkat with an empty path reads the link `fd` refers to into our buffer.
    let n = unsafe { libc::readlinkat(fd.as_raw_fd(), c"".as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return Err(Errno::last());
    }
    buf.truncate(n as usize);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

/// Open `rel` (relative) below `root` (whose host path is `root_path`), never leaving it.
/// `follow_last = false` returns the final symlink itself (O_PATH|O_NOFOLLOW).
pub fn open_beneath(
    root: BorrowedFd<'_>,
    root_path: &Path,
    rel: &Path,
    follow_last: bool,
) -> Result<OwnedFd, PathError> {
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    let mut flags = libc::O_PATH;
    if !follow_last {
        flags |= libc::O_NOFOLLOW;
    }
    match openat2(root, rel, flags, libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS) {
        Ok(fd) => Ok(fd),
        Err(Errno::EXDEV) | Err(Errno::EAGAIN) => walk(root, root_path, rel, follow_last, None),
        Err(e) => Err(PathError::Io(e)),
    }
}

/// Like [`open_beneath`] but creates every missing directory (mode `mode`) on the way, the last
/// component included. Call it inside [`AsUser`] so the directories belong to the user.
pub fn create_dirs_beneath(
    root: BorrowedFd<'_>,
    root_path: &Path,
    rel: &Path,
    mode: u32,
) -> Result<OwnedFd, PathError> {
    walk(root, root_path, rel, true, Some(mode))
}

fn components(p: &Path) -> VecDeque<OsString> {
    p.components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect()
}

/// The component walk: every step is an O_NOFOLLOW openat on the previous directory's fd; `..`
/// pops our own stack of fds (never the kernel's `..`), symlinks are read and re-walked.
fn walk(
    root: BorrowedFd<'_>,
    root_path: &Path,
    rel: &Path,
    follow_last: bool,
    create: Option<u32>,
) -> Result<OwnedFd, PathError> {
    let mut pending = components(rel);
    let mut stack: Vec<OwnedFd> =
        vec![root.try_clone_to_owned().map_err(|e| PathError::Io(Errno::from_raw(e.raw_os_error().unwrap_or(0))))?];
    let mut walked = root_path.to_path_buf();
    let mut hops = 0;
    while let Some(comp) = pending.pop_front() {
        if comp == ".." {
            if stack.len() == 1 {
                return Err(PathError::Escape { link: walked, target: PathBuf::from("..") });
            }
            stack.pop();
            walked.pop();
            continue;
        }
        let last = pending.is_empty();
        let cur = stack.last().expect("stack holds the root");
        let fd = match openat(borrow(cur), Path::new(&comp), libc::O_PATH | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) if create.is_some() => {
                mkdirat(borrow(cur), Path::new(&comp), create.unwrap_or(0o700))?;
                openat(borrow(cur), Path::new(&comp), libc::O_PATH | libc::O_NOFOLLOW, 0)?
            }
            Err(e) => return Err(PathError::Io(e)),
        };
        let st = fstat(borrow(&fd))?;
        if is_symlink(&st) && (!last || follow_last) {
            hops += 1;
            if hops > MAX_HOPS {
                return Err(PathError::Loop);
            }
            let target = read_link(borrow(&fd))?;
            let link = walked.join(&comp);
            let rest = if target.is_absolute() {
                let inside = target
                    .strip_prefix(root_path)
                    .map_err(|_| PathError::Escape { link: link.clone(), target: target.clone() })?;
                stack.truncate(1);
                walked = root_path.to_path_buf();
                components(inside)
            } else {
                components(&target)
            };
            for c in rest.into_iter().rev() {
                pending.push_front(c);
            }
            continue;
        }
        walked.push(&comp);
        stack.push(fd);
    }
    Ok(stack.pop().expect("stack holds the root"))
}

fn borrow(fd: &OwnedFd) -> BorrowedFd<'_> {
    use std::os::fd::AsFd;
    fd.as_fd()
}

/// `mkdirat(dir, name, mode)`; an existing entry is not an error (the caller re-opens it with
/// O_NOFOLLOW and checks what it is).
pub fn mkdirat(dir: BorrowedFd<'_>, name: &Path, mode: u32) -> Result<(), Errno> {
    let c = cstr(name.as_os_str())?;
    // SAFETY: valid dirfd and NUL-terminated name.
    let rc = unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode as libc::mode_t) };
    if rc < 0 && Errno::last() != Errno::EEXIST {
        return Err(Errno::last());
    }
    Ok(())
}

/// Resolve the sandbox path `path` inside the directory `root` as if it were `/`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: libc::c_int) -> Result<OwnedFd, Errno> {
    let rel = path.strip_prefix("/").unwrap_or(path);
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    openat2(root, rel, flags, libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS)
}

/// Whether the current filesystem credentials allow `mode` (R_OK, X_OK, ...) on the object.
pub fn may_access(fd: BorrowedFd<'_>, mode: libc::c_int) -> Result<bool, Errno> {
    // SAFETY: faccessat2 on a valid fd with an empty path; AT_EACCESS uses the fs credentials.
    let rc = unsafe {
        libc::syscall(libc::SYS_faccessat2, fd.as_raw_fd(), c"".as_ptr(), mode, libc::AT_EMPTY_PATH | libc::AT_EACCESS)
    };
    if rc == 0 {
        return Ok(true);
    }
    match Errno::last() {
        Errno::EACCES | Errno::EPERM | Errno::EROFS => Ok(false),
        e => Err(e),
    }
}

/// This thread acts (for filesystem access) as a given user until dropped.
pub struct AsUser {
    saved_fsuid: u32,
    saved_fsgid: u32,
    saved_groups: Vec<libc::gid_t>,
}

fn raw_setgroups(groups: &[libc::gid_t]) -> Result<(), Errno> {
    // SAFETY: the raw syscall (not glibc's all-threads wrapper) changes only this thread; the
    // pointer and length describe a live slice.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if rc < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

fn current_groups() -> Result<Vec<libc::gid_t>, Errno> {
    // SAFETY: getgroups(0, NULL) only returns the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(Errno::last());
    }
    let mut v = vec![0; n as usize];
    // SAFETY: the buffer has room for n gids.
    let n = unsafe { libc::getgroups(n, v.as_mut_ptr()) };
    if n < 0 {
        return Err(Errno::last());
    }
    v.truncate(n as usize);
    Ok(v)
}

impl AsUser {
    /// Switch fsuid, fsgid and supplementary groups to `user`'s.
    pub fn enter(user: &UserInfo) -> Result<AsUser, Errno> {
        let groups: Vec<libc::gid_t> = user.memberships.iter().map(|(_, g)| *g).collect();
        AsUser::enter_ids(user.uid, user.gid, &groups)
    }

    /// Switch fsuid, fsgid and supplementary groups to these ids.
    pub fn enter_ids(uid: u32, gid: u32, groups: &[libc::gid_t]) -> Result<AsUser, Errno> {
        let saved_groups = current_groups()?;
        raw_setgroups(groups)?;
        // SAFETY: setfsgid/setfsuid only change this thread's filesystem ids; they return the
        // previous value, and the new one is checked by calling them again with -1.
        let (saved_fsgid, saved_fsuid) = unsafe {
            let g = libc::setfsgid(gid) as u32;
            let u = libc::setfsuid(uid) as u32;
            (g, u)
        };
        let guard = AsUser { saved_fsuid, saved_fsgid, saved_groups };
        // SAFETY: as above; -1 queries without changing.
        let (now_u, now_g) = unsafe { (libc::setfsuid(u32::MAX) as u32, libc::setfsgid(u32::MAX) as u32) };
        if now_u != uid || now_g != gid {
            return Err(Errno::EPERM);
        }
        Ok(guard)
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        // SAFETY: restoring this thread's previous filesystem ids.
        let ok = unsafe {
            libc::setfsuid(self.saved_fsuid);
            libc::setfsgid(self.saved_fsgid);
            libc::setfsuid(u32::MAX) as u32 == self.saved_fsuid && libc::setfsgid(u32::MAX) as u32 == self.saved_fsgid
        };
        if !ok || raw_setgroups(&self.saved_groups).is_err() {
            // Continuing with the wrong credentials would be worse than dying.
            std::process::abort();
        }
    }
}

/// Lexically `path` below `root` (both absolute, no `..` allowed in `path`): the relative rest.
pub fn below<'a>(path: &'a Path, root: &Path) -> Option<&'a Path> {
    if path.components().any(|c| c == Component::ParentDir) {
        return None;
    }
    path.strip_prefix(root).ok()
}
