//! `oz mount` / `oz umount`: files from the owner's home appear in a running sandbox.
//!
//! Host side (the agent, in the host mount namespace): check the request, open the path beneath
//! the user's home without letting a symlink lead out of it, turn the opened file into a
//! detached mount (`open_tree(OPEN_TREE_CLONE)`), set nosuid/nodev (and read-only) on it with
//! `mount_setattr`, and hand the fd to the init. Sandbox side (the init): `move_mount` the tree
//! to the same path inside ([`attach`]). The agent records what it mounted in a [`MountTable`].

use std::collections::BTreeSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{path}: not allowed: {detail}")]
    Refused { path: PathBuf, detail: &'static str },
    #[error("{op} {path}: {errno}")]
    Sys { op: &'static str, path: PathBuf, errno: Errno },
    #[error("{path}: not mounted")]
    NotMounted { path: PathBuf },
}

impl MountError {
    /// The wire form of the error.
    pub fn to_agent_error(&self) -> oz_wire::AgentError {
        match self {
            MountError::Refused { path, detail } => {
                oz_wire::AgentError::PathRefused { path: path.clone(), detail: detail.to_string() }
            }
            MountError::Sys { path, errno, .. } => oz_wire::AgentError::Mount { path: path.clone(), errno: *errno as i32 },
            MountError::NotMounted { path } => oz_wire::AgentError::Umount { path: path.clone(), errno: libc::EINVAL },
        }
    }
}

/// The absolute path a request names: relative paths join `home`; the result must be strictly
/// beneath `home` and may not contain `..` (the lexical check; the open enforces it again).
pub fn resolve_request(home: &Path, path: &Path) -> Result<PathBuf, MountError> {
    let refused = |detail| MountError::Refused { path: path.to_path_buf(), detail };
    if path.as_os_str().is_empty() {
        return Err(refused("empty path"));
    }
    if path.as_os_str().as_bytes().contains(&0) {
        return Err(refused("contains a nul byte"));
    }
    let full = if path.is_absolute() { path.to_path_buf() } else { home.join(path) };
    let mut clean = PathBuf::new();
    for c in full.components() {
        match c {
            Component::ParentDir => return Err(refused("contains '..'")),
            Component::CurDir => {}
            other => clean.push(other.as_os_str()),
        }
    }
    match clean.strip_prefix(home) {
        Ok(rest) if !rest.as_os_str().is_empty() => Ok(clean),
        Ok(_) => Err(refused("the home directory itself cannot be mounted")),
        Err(_) => Err(refused("outside the owner's home directory")),
    }
}

/// Open `path` (absolute, beneath `home`, from [`resolve_request`]) as an O_PATH fd, resolving
/// every component beneath `home`: symlinks may not leave it, magic links are refused.
pub fn open_beneath(home: &Path, path: &Path) -> Result<OwnedFd, MountError> {
    let rel = path.strip_prefix(home).map_err(|_| MountError::Refused {
        path: path.to_path_buf(),
        detail: "outside the owner's home directory",
    })?;
    let sys = |op, errno| MountError::Sys { op, path: path.to_path_buf(), errno };
    let home_fd = nix::fcntl::open(
        home,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| MountError::Sys { op: "open home", path: home.to_path_buf(), errno: e })?;
    // SAFETY: open just returned this fd and nothing else owns it.
    let home_fd = unsafe { OwnedFd::from_raw_fd(home_fd) };
    let crel = CString::new(rel.as_os_str().as_bytes()).map_err(|_| sys("open", Errno::EINVAL))?;
    // SAFETY: open_how is plain old data; all-zero is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads `how` (size passed) and the nul-terminated path; both outlive the
    // call. The returned fd is owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            home_fd.as_raw_fd(),
            crel.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        let errno = Errno::last();
        if errno == Errno::EXDEV {
            return Err(MountError::Refused { path: path.to_path_buf(), detail: "a symlink leads outside the home directory" });
        }
        return Err(sys("open", errno));
    }
    // SAFETY: openat2 returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Clone the file or directory `fd` refers to into a detached mount (not attached anywhere,
/// gone when the fd closes unless moved), nosuid and nodev, read-only when asked.
pub fn detach(fd: BorrowedFd<'_>, path: &Path, read_only: bool) -> Result<OwnedFd, MountError> {
    let sys = |op, errno| MountError::Sys { op, path: path.to_path_buf(), errno };
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | libc::AT_EMPTY_PATH as u32;
    // SAFETY: open_tree takes a dirfd, a nul-terminated path ("" with AT_EMPTY_PATH) and flags;
    // the returned fd is owned below.
    let tree = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    if tree < 0 {
        return Err(sys("open_tree", Errno::last()));
    }
    // SAFETY: open_tree returned a new fd that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as i32) };
    let mut attr_set = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
    if read_only {
        attr_set |= libc::MOUNT_ATTR_RDONLY;
    }
    let attr = libc::mount_attr { attr_set, attr_clr: 0, propagation: libc::MS_PRIVATE, userns_fd: 0 };
    // SAFETY: mount_setattr reads `attr` (size passed), which outlives the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if r < 0 {
        return Err(sys("mount_setattr", Errno::last()));
    }
    Ok(tree)
}

/// Host side in one call: resolve, open beneath home, detach. Returns the absolute path (the
/// target inside the sandbox) and the detached tree.
pub fn prepare(home: &Path, path: &Path, read_only: bool) -> Result<(PathBuf, OwnedFd), MountError> {
    let full = resolve_request(home, path)?;
    let fd = open_beneath(home, &full)?;
    let tree = detach(std::os::fd::AsFd::as_fd(&fd), &full, read_only)?;
    Ok((full, tree))
}

/// Sandbox side: attach a detached tree at `target` (which must exist: the caller creates the
/// placeholder file or directory first).
pub fn attach(tree: BorrowedFd<'_>, target: &Path) -> Result<(), MountError> {
    let sys = |op, errno| MountError::Sys { op, path: target.to_path_buf(), errno };
    let ct = CString::new(target.as_os_str().as_bytes()).map_err(|_| sys("move_mount", Errno::EINVAL))?;
    // SAFETY: move_mount takes two dirfd/path pairs (nul-terminated strings that outlive the
    // call) and flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            ct.as_ptr(),
            libc::MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r < 0 {
        return Err(sys("move_mount", Errno::last()));
    }
    Ok(())
}

/// The paths the agent injected into a sandbox (for `Umount` checks and listings).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountTable {
    mounted: BTreeSet<PathBuf>,
}

impl MountTable {
    pub fn insert(&mut self, path: PathBuf) {
        self.mounted.insert(path);
    }

    /// Check an unmount request: the resolved path must be one we mounted.
    pub fn check_umount(&self, home: &Path, path: &Path) -> Result<PathBuf, MountError> {
        let full = resolve_request(home, path)?;
        if !self.mounted.contains(&full) {
            return Err(MountError::NotMounted { path: full });
        }
        Ok(full)
    }

    pub fn remove(&mut self, path: &Path) {
        self.mounted.remove(path);
    }

    pub fn paths(&self) -> Vec<PathBuf> {
        self.mounted.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn resolve_joins_relative_and_checks_home() {
        let home = Path::new("/home/u");
        assert_eq!(resolve_request(home, Path::new("doc.pdf")).unwrap(), Path::new("/home/u/doc.pdf"));
        assert_eq!(resolve_request(home, Path::new("./a/./b")).unwrap(), Path::new("/home/u/a/b"));
        assert_eq!(resolve_request(home, Path::new("/home/u/x")).unwrap(), Path::new("/home/u/x"));
        for (p, want) in [
            ("/etc/shadow", "outside the owner's home directory"),
            ("/home/uu/x", "outside the owner's home directory"),
            ("../v/x", "contains '..'"),
            ("/home/u/a/../../v", "contains '..'"),
            ("", "empty path"),
            ("/home/u", "the home directory itself cannot be mounted"),
            (".", "the home directory itself cannot be mounted"),
        ] {
            let err = resolve_request(home, Path::new(p)).unwrap_err().to_string();
            assert!(err.ends_with(want), "{p}: {err}");
        }
    }

    #[test]
    fn open_beneath_refuses_symlinks_out_of_home() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        fs::create_dir_all(home.join("d")).unwrap();
        fs::write(home.join("d/ok.txt"), "ok").unwrap();
        fs::write(tmp.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), home.join("abs")).unwrap();
        std::os::unix::fs::symlink("../secret", home.join("rel")).unwrap();
        std::os::unix::fs::symlink("d/ok.txt", home.join("inside")).unwrap();
        std::os::unix::fs::symlink("/proc/self/root/etc/passwd", home.join("magic")).unwrap();

        assert!(open_beneath(&home, &home.join("d/ok.txt")).is_ok());
        assert!(open_beneath(&home, &home.join("inside")).is_ok(), "symlinks that stay inside are fine");
        for bad in ["abs", "rel", "magic"] {
            let err = open_beneath(&home, &home.join(bad)).unwrap_err();
            assert!(
                matches!(err, MountError::Refused { .. } | MountError::Sys { errno: Errno::ELOOP, .. }),
                "{bad}: {err}"
            );
        }
        let err = open_beneath(&home, &home.join("missing")).unwrap_err().to_string();
        assert!(err.contains("missing: ENOENT"), "{err}");
    }

    #[test]
    fn detached_tree_attaches_in_a_private_mount_namespace() {
        // Done in a child that unshares its mount namespace so nothing on the host changes.
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        fs::create_dir_all(&home).unwrap();
        fs::write(home.join("f.txt"), "payload").unwrap();
        let target_dir = tmp.path().join("box");
        fs::create_dir_all(&target_dir).unwrap();
        fs::write(target_dir.join("f.txt"), "").unwrap();
        let (_, tree) = prepare(&home, Path::new("f.txt"), true).unwrap();
        let target = target_dir.join("f.txt");

        // SAFETY: the test harness may have threads; the child allocates (attach, fs reads),
        // which is acceptable in a test child that never returns to the harness and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let code = (|| -> Result<(), String> {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| e.to_string())?;
                    nix::mount::mount(None::<&str>, "/", None::<&str>, nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE, None::<&str>)
                        .map_err(|e| e.to_string())?;
                    attach(std::os::fd::AsFd::as_fd(&tree), &target).map_err(|e| e.to_string())?;
                    let got = fs::read_to_string(&target).map_err(|e| e.to_string())?;
                    if got != "payload" {
                        return Err(format!("read {got:?}"));
                    }
                    match fs::write(&target, "x") {
                        Err(e) if e.raw_os_error() == Some(libc::EROFS) => Ok(()),
                        other => Err(format!("write to read-only mount: {other:?}")),
                    }
                })();
                if let Err(e) = code {
                    eprintln!("child: {e}");
                    // SAFETY: _exit is always safe to call.
                    unsafe { libc::_exit(1) }
                }
                // SAFETY: _exit is always safe to call.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
        // Nothing changed on the host side.
        assert_eq!(fs::read_to_string(&target).unwrap(), "");
    }

    #[test]
    fn table_tracks_mounts_for_umount() {
        let home = Path::new("/home/u");
        let mut t = MountTable::default();
        t.insert("/home/u/a".into());
        assert_eq!(t.check_umount(home, Path::new("a")).unwrap(), Path::new("/home/u/a"));
        assert!(matches!(t.check_umount(home, Path::new("b")), Err(MountError::NotMounted { .. })));
        t.remove(Path::new("/home/u/a"));
        assert!(t.paths().is_empty());
    }
}
