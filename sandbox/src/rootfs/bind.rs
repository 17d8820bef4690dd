//! Mounting by file descriptor with the new mount API (open_tree, fsopen/fsmount, mount_setattr,
//! move_mount), so that no path is looked up twice and a symlink swapped in between a check and a
//! mount cannot redirect the mount.
//!
//! A bind is: clone the source tree into a detached mount (`open_tree(OPEN_TREE_CLONE|
//! AT_RECURSIVE)`), set its flags on the whole detached tree at once (`mount_setattr(AT_RECURSIVE)`,
//! so every submount is read-only too, atomically), then attach it on an already opened target
//! (`move_mount` to an fd). Flags are only ever set, never cleared: a bind never grants more than
//! the source mount has (a read-only host mount stays read-only in a writable whitelist item).

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Mount attributes (`MOUNT_ATTR_*` from linux/mount.h).
pub const ATTR_RDONLY: u64 = 0x1;
pub const ATTR_NOSUID: u64 = 0x2;
pub const ATTR_NODEV: u64 = 0x4;
pub const ATTR_NOEXEC: u64 = 0x8;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Which mount syscall failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountOp {
    OpenTree,
    SetAttr,
    MoveMount,
    FsOpen,
    FsConfig,
    FsMount,
}

impl std::fmt::Display for MountOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MountOp::OpenTree => "open_tree",
            MountOp::SetAttr => "mount_setattr",
            MountOp::MoveMount => "move_mount",
            MountOp::FsOpen => "fsopen",
            MountOp::FsConfig => "fsconfig",
            MountOp::FsMount => "fsmount",
        })
    }
}

/// A failed mount syscall: the operation and its errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountFailure {
    pub op: MountOp,
    pub errno: nix::errno::Errno,
}

impl std::fmt::Display for MountFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.op, self.errno)
    }
}

fn fail(op: MountOp) -> MountFailure {
    MountFailure { op, errno: nix::errno::Errno::last() }
}

/// A detached copy of the mount tree at `src` (an O_PATH fd is fine), including submounts.
pub fn clone_tree(src: BorrowedFd<'_>) -> Result<OwnedFd, MountFailure> {
    let flags = OPEN_TREE_CLONE
        | libc::O_CLOEXEC as libc::c_uint
        | libc::AT_EMPTY_PATH as libc::c_uint
        | libc::AT_RECURSIVE as libc::c_uint;
    // SAFETY: open_tree with a valid fd and an empty NUL-terminated path; the returned fd is new
    // and owned by us.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, src.as_raw_fd(), c"".as_ptr(), flags) };
    if fd < 0 {
        return Err(fail(MountOp::OpenTree));
    }
    // SAFETY: fd is a fresh descriptor returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Set `attrs` on the mount `mnt` refers to and, when `recursive`, on every mount below it.
pub fn set_attrs(mnt: BorrowedFd<'_>, attrs: u64, recursive: bool) -> Result<(), MountFailure> {
    let mut flags = libc::AT_EMPTY_PATH as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    let attr = MountAttr { attr_set: attrs, attr_clr: 0, propagation: libc::MS_PRIVATE, userns_fd: 0 };
    // SAFETY: mount_setattr with a valid fd, empty path and a correctly sized, initialised struct.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if rc < 0 {
        return Err(fail(MountOp::SetAttr));
    }
    Ok(())
}

/// Attach the detached mount `mnt` on top of the object `target` refers to.
pub fn attach(mnt: BorrowedFd<'_>, target: BorrowedFd<'_>) -> Result<(), MountFailure> {
    // SAFETY: move_mount between two valid fds with empty paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    if rc < 0 {
        return Err(fail(MountOp::MoveMount));
    }
    Ok(())
}

/// Bind the tree at `src` (recursively) on `target`, every mount of it getting `attrs`.
pub fn bind(src: BorrowedFd<'_>, target: BorrowedFd<'_>, attrs: u64) -> Result<(), MountFailure> {
    let tree = clone_tree(src)?;
    set_attrs(tree.as_fd(), attrs, true)?;
    attach(tree.as_fd(), target)
}

/// One option for a new filesystem instance.
pub enum FsOption<'a> {
    Flag(&'a str),
    Str(&'a str, &'a str),
}

/// A new, detached instance of filesystem `fstype` (tmpfs, proc, sysfs, devpts) with `options`,
/// its mount carrying `attrs`.
pub fn new_fs(fstype: &str, options: &[FsOption<'_>], attrs: u64) -> Result<OwnedFd, MountFailure> {
    let name =
        CString::new(fstype).map_err(|_| MountFailure { op: MountOp::FsOpen, errno: nix::errno::Errno::EINVAL })?;
    // SAFETY: fsopen with a NUL-terminated name; the fd is new and owned below.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, name.as_ptr(), FSOPEN_CLOEXEC) };
    if fs < 0 {
        return Err(fail(MountOp::FsOpen));
    }
    // SAFETY: fresh descriptor from the kernel.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as i32) };
    for opt in options {
        let (cmd, key, value) = match opt {
            FsOption::Flag(k) => (FSCONFIG_SET_FLAG, *k, None),
            FsOption::Str(k, v) => (FSCONFIG_SET_STRING, *k, Some(*v)),
        };
        let key =
            CString::new(key).map_err(|_| MountFailure { op: MountOp::FsConfig, errno: nix::errno::Errno::EINVAL })?;
        let value = value
            .map(CString::new)
            .transpose()
            .map_err(|_| MountFailure { op: MountOp::FsConfig, errno: nix::errno::Errno::EINVAL })?;
        let vptr = value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
        // SAFETY: fsconfig on our fs-context fd with NUL-terminated key and value (or NULL).
        let rc = unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, key.as_ptr(), vptr, 0) };
        if rc < 0 {
            return Err(fail(MountOp::FsConfig));
        }
    }
    let null: *const libc::c_char = std::ptr::null();
    // SAFETY: FSCONFIG_CMD_CREATE takes no key or value.
    let rc = unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), FSCONFIG_CMD_CREATE, null, null, 0) };
    if rc < 0 {
        return Err(fail(MountOp::FsConfig));
    }
    // SAFETY: fsmount on a created fs context; attrs are MOUNT_ATTR_* bits.
    let mnt = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, attrs as libc::c_uint) };
    if mnt < 0 {
        return Err(fail(MountOp::FsMount));
    }
    // SAFETY: fresh descriptor from the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(mnt as i32) })
}
