//! `/dev`: a minimal tmpfs with bind-mounted host nodes (mknod on a nodev tmpfs would give dead
//! nodes, and a tmpfs without nodev would let root-in-sandbox mistakes become real devices), a
//! new devpts instance with its own ptmx, and a private shm. With `use_full_dev` the host's
//! devtmpfs instead of the tmpfs.

use super::bind::{self, FsOption, ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID};
use super::build::{host_open, Builder};
use super::pathsafe;
use super::plan::DevMode;
use super::RootfsError;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// The only device nodes of a minimal /dev.
pub const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Step 7.
pub fn mount_dev(b: &mut Builder<'_>) -> Result<(), RootfsError> {
    match b.plan.dev {
        DevMode::Minimal => {
            b.mount_tmpfs(Path::new("/dev"), &[FsOption::Str("mode", "0755")], ATTR_NOSUID | ATTR_NOEXEC | ATTR_NODEV)?;
            for name in DEVICES {
                bind_device(b, name)?;
            }
        }
        DevMode::Full => {
            let mnt = bind::new_fs("devtmpfs", &[], ATTR_NOSUID | ATTR_NOEXEC)
                .map_err(|failure| RootfsError::Mount { fstype: "devtmpfs", target: "/dev".into(), failure })?;
            b.attach_new(mnt.as_fd(), "devtmpfs", Path::new("/dev"))?;
        }
    }
    mount_devpts(b)?;
    b.mount_tmpfs(Path::new("/dev/shm"), &[FsOption::Str("mode", "1777")], ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC)?;
    for (link, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        if b.open(Path::new(link), libc::O_PATH | libc::O_NOFOLLOW).is_err() {
            b.symlink(Path::new(link), Path::new(target))?;
        }
    }
    Ok(())
}

/// Bind the host's `/dev/<name>` (which must be a character device) on an empty file; the
/// bind is nosuid and noexec but not nodev.
fn bind_device(b: &mut Builder<'_>, name: &str) -> Result<(), RootfsError> {
    let path = PathBuf::from("/dev").join(name);
    let src = host_open(&path, libc::O_PATH | libc::O_NOFOLLOW)?;
    let st = pathsafe::fstat(src.as_fd()).map_err(|e| RootfsError::fs("stat", &path, e))?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR {
        return Err(RootfsError::Invalid { item: path.display().to_string(), reason: "not a character device".into() });
    }
    b.bind_new(src.as_fd(), &path, &path, ATTR_NOSUID | ATTR_NOEXEC)
}

/// A new devpts instance: the sandbox's ptys are its own; `/dev/ptmx` links to its ptmx.
fn mount_devpts(b: &mut Builder<'_>) -> Result<(), RootfsError> {
    let opts = [
        FsOption::Flag("newinstance"),
        FsOption::Str("ptmxmode", "0666"),
        FsOption::Str("mode", "620"),
        FsOption::Str("gid", "5"),
    ];
    let mnt = bind::new_fs("devpts", &opts, ATTR_NOSUID | ATTR_NOEXEC).map_err(|failure| RootfsError::Mount {
        fstype: "devpts",
        target: "/dev/pts".into(),
        failure,
    })?;
    if let Ok(existing) = b.open(Path::new("/dev/ptmx"), libc::O_PATH | libc::O_NOFOLLOW) {
        // The full devtmpfs has a real ptmx node; the pts instance's must be used instead.
        let st = pathsafe::fstat(existing.as_fd()).map_err(|e| RootfsError::fs("stat", "/dev/ptmx", e))?;
        if !pathsafe::is_symlink(&st) {
            let ptmx = PathBuf::from("/dev/pts/ptmx");
            b.attach_new(mnt.as_fd(), "devpts", Path::new("/dev/pts"))?;
            let src = b.open(&ptmx, libc::O_PATH).map_err(|e| RootfsError::fs("open", &ptmx, e))?;
            return b.bind_at(src.as_fd(), &ptmx, existing.as_fd(), Path::new("/dev/ptmx"), ATTR_NOSUID | ATTR_NOEXEC);
        }
    }
    b.attach_new(mnt.as_fd(), "devpts", Path::new("/dev/pts"))
}
