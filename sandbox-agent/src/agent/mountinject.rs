//! `oz mount` / `oz umount`: files from the owner's home appear in a running sandbox.
//!
//! Host side (the agent, in the host mount namespace): check the request, open the path with
//! [`oz_sandbox::rootfs::open_user_path`] (beneath the user's home, as the user, no symlink out), and
//! turn the opened file into a detached mount (`open_tree(OPEN_TREE_CLONE)`). The fd goes to the
//! init, which sets nosuid/nodev and read-only or noexec on it, creates missing placeholders
//! with the user's credentials and `move_mount`s it to the same path inside, remembering the
//! mount's id (`init::requests::mount`); `Umount` walks the path without following symlinks and
//! detaches only that mount. One mount per path: the agent records what it mounted in a
//! [`MountTable`] and refuses a second mount of a recorded path; it reports the table to a
//! daemon that re-adopts it.

use oz_sandbox::rootfs::RootfsError;
use oz_sandbox::user::UserInfo;
use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{path}: not allowed: {detail}")]
    Refused { path: PathBuf, detail: &'static str },
    #[error("{op} {path}: {errno}")]
    Sys { op: &'static str, path: PathBuf, errno: Errno },
    #[error("{source}")]
    Open { path: PathBuf, source: RootfsError },
    #[error("{path}: not mounted")]
    NotMounted { path: PathBuf },
    #[error("{path}: already mounted (unmount it first)")]
    AlreadyMounted { path: PathBuf },
}

impl MountError {
    /// The wire form of the error.
    pub fn to_agent_error(&self) -> oz_wire::AgentError {
        match self {
            MountError::Refused { path, detail } => {
                oz_wire::AgentError::PathRefused { path: path.clone(), detail: detail.to_string() }
            }
            MountError::Sys { path, errno, .. } => {
                oz_wire::AgentError::Mount { path: path.clone(), errno: *errno as i32 }
            }
            MountError::Open { path, source: RootfsError::Fs { errno, .. } } => {
                oz_wire::AgentError::Mount { path: path.clone(), errno: *errno as i32 }
            }
            MountError::Open { path, source } => {
                oz_wire::AgentError::PathRefused { path: path.clone(), detail: source.to_string() }
            }
            MountError::NotMounted { path } => oz_wire::AgentError::Umount { path: path.clone(), errno: libc::EINVAL },
            MountError::AlreadyMounted { path } => oz_wire::AgentError::PathRefused {
                path: path.clone(),
                detail: "already mounted (unmount it first)".into(),
            },
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

/// Clone the file or directory `fd` refers to (with its submounts) into a detached mount: not
/// attached anywhere, gone when the fd closes unless the init moves it into the sandbox.
pub fn detach(fd: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, MountError> {
    let flags = libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC | (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as u32;
    // SAFETY: open_tree takes a dirfd, a nul-terminated path ("" with AT_EMPTY_PATH) and flags;
    // the returned fd is owned below.
    let tree = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    if tree < 0 {
        return Err(MountError::Sys { op: "open_tree", path: path.to_path_buf(), errno: Errno::last() });
    }
    // SAFETY: open_tree returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(tree as i32) })
}

/// Host side in one call: resolve, open as the user beneath their home, detach. Returns the
/// absolute path (also the target inside the sandbox) and the detached tree.
pub fn prepare(user: &UserInfo, path: &Path) -> Result<(PathBuf, OwnedFd), MountError> {
    let full = resolve_request(&user.home, path)?;
    let fd = oz_sandbox::rootfs::open_user_path(user, &full)
        .map_err(|source| MountError::Open { path: full.clone(), source })?;
    let tree = detach(fd.as_fd(), &full)?;
    Ok((full, tree))
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

    pub fn contains(&self, path: &Path) -> bool {
        self.mounted.contains(path)
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
    fn prepare_refuses_symlinks_out_of_home_and_detaches_files() {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        fs::create_dir_all(&home).unwrap();
        fs::write(home.join("ok.txt"), "ok").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", home.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc/shadow", home.join("rel")).unwrap();
        let user = UserInfo {
            uid: 0,
            gid: 0,
            name: "root".into(),
            home: home.clone(),
            shell: "/bin/sh".into(),
            memberships: vec![],
        };
        let (full, tree) = prepare(&user, Path::new("ok.txt")).unwrap();
        assert_eq!(full, home.join("ok.txt"));
        // A detached mount of a regular file: fstat sees the file.
        let st = nix::sys::stat::fstat(tree.as_raw_fd()).unwrap();
        assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFREG);
        for bad in ["abs", "rel"] {
            let err = prepare(&user, Path::new(bad)).unwrap_err();
            assert!(matches!(err.to_agent_error(), oz_wire::AgentError::PathRefused { .. }), "{bad}: {err}");
        }
        let err = prepare(&user, Path::new("/etc/passwd")).unwrap_err().to_string();
        assert!(err.contains("outside the owner's home"), "{err}");
        let err = prepare(&user, Path::new("missing")).unwrap_err();
        assert!(matches!(err.to_agent_error(), oz_wire::AgentError::Mount { errno: libc::ENOENT, .. }), "{err}");
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
