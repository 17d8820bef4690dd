//! `/proc` for the sandbox's PID namespace and a read-only `/sys`, with sensitive entries
//! masked the way OCI runtimes do (runc's default maskedPaths and readonlyPaths, plus
//! /proc/kallsyms). Files are masked with /dev/null, directories with the empty read-only
//! placeholder; the read-only paths are bound onto themselves read-only.

use super::bind::{self, ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY};
use super::build::{host_open, Builder};
use super::pathsafe;
use super::RootfsError;
use nix::errno::Errno;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Masked: hidden behind /dev/null (files) or an empty read-only directory.
pub const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/proc/kallsyms",
];

/// Visible but read-only.
pub const READ_ONLY: &[&str] = &["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

const SYS_MASKED: &[&str] = &["/sys/firmware"];

/// Step 11a: a new proc (the caller is PID 1 of its PID namespace), then the masks.
pub fn mount_proc(b: &mut Builder<'_>) -> Result<(), RootfsError> {
    let mnt = bind::new_fs("proc", &[], ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC)
        .map_err(|failure| RootfsError::Mount { fstype: "proc", target: "/proc".into(), failure })?;
    b.attach_new(mnt.as_fd(), "proc", Path::new("/proc"))?;
    let null = host_open(Path::new("/dev/null"), libc::O_PATH)?;
    let root = open_root(b)?;
    for path in MASKED {
        let Some(at) = open_entry(root.as_fd(), path)? else { continue };
        let st = pathsafe::fstat(at.as_fd()).map_err(|e| RootfsError::fs("stat", path, e))?;
        if pathsafe::is_dir(&st) {
            b.hide(at.as_fd(), Path::new(path))?;
        } else {
            b.bind_at(
                null.as_fd(),
                Path::new("/dev/null"),
                at.as_fd(),
                Path::new(path),
                ATTR_RDONLY | ATTR_NOSUID | ATTR_NOEXEC,
            )?;
        }
    }
    for path in READ_ONLY {
        let Some(at) = open_entry(root.as_fd(), path)? else { continue };
        b.bind_at(
            at.as_fd(),
            Path::new(path),
            at.as_fd(),
            Path::new(path),
            ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC,
        )?;
    }
    Ok(())
}

/// Step 11b: a new read-only sysfs; when the kernel refuses one (sysfs checks the network
/// namespace's owner), a read-only recursive bind of the host's /sys.
pub fn mount_sys(b: &mut Builder<'_>) -> Result<(), RootfsError> {
    let attrs = ATTR_RDONLY | ATTR_NOSUID | ATTR_NODEV | ATTR_NOEXEC;
    match bind::new_fs("sysfs", &[], attrs) {
        Ok(mnt) => b.attach_new(mnt.as_fd(), "sysfs", Path::new("/sys"))?,
        Err(failure) => {
            b.report.warnings.push(format!("mount sysfs on /sys: {failure}; binding the host's /sys read-only"));
            let src = host_open(Path::new("/sys"), libc::O_PATH | libc::O_DIRECTORY)?;
            b.bind_new(src.as_fd(), Path::new("/sys"), Path::new("/sys"), attrs)?;
        }
    }
    let root = open_root(b)?;
    for path in SYS_MASKED {
        if let Some(at) = open_entry(root.as_fd(), path)? {
            b.hide(at.as_fd(), Path::new(path))?;
        }
    }
    Ok(())
}

/// The new root, opened once for the [`open_entry`] lookups of a step.
fn open_root(b: &Builder<'_>) -> Result<OwnedFd, RootfsError> {
    b.open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY).map_err(|e| RootfsError::fs("open", "/", e))
}

/// Open a /proc or /sys entry beneath the new root (`root`) without following any symlink;
/// None when the kernel does not have it.
fn open_entry(root: BorrowedFd<'_>, path: &str) -> Result<Option<OwnedFd>, RootfsError> {
    let path = PathBuf::from(path);
    let rel = path.strip_prefix("/").unwrap_or(&path);
    let resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS;
    match pathsafe::openat2(root, rel, libc::O_PATH | libc::O_NOFOLLOW, resolve) {
        Ok(fd) => Ok(Some(fd)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(RootfsError::fs("open", &path, e)),
    }
}
