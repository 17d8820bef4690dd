//! The sandbox's root filesystem: planned in the agent (host mount namespace, before clone),
//! built in the init child (new mount namespace, PID 1 of the new PID namespace), ending with
//! `pivot_root` into a fresh tmpfs.
//!
//! - [`plan`] expands variables and globs, classifies every whitelist source (below the user's
//!   home, `/run/user/<uid>` or `/media/<name>`: opened beneath it; elsewhere: resolved from `/`; always with the
//!   user's filesystem credentials so root's privileges are never lent), probes them, and decides
//!   every mount. No mounts, no writes.
//! - [`build`] performs the plan as a list of named steps (see `build.rs`), re-opening every user
//!   source the same safe way (fds do not cross mount namespaces) and mounting by fd.
//! - [`open_user_path`] opens a user path for `oz mount` later.
//!
//! Decisions (the original Oz's semantics, with its bugs fixed):
//! - The new root is a tmpfs mounted at `<sandbox_path>/root` under a 0700 staging tmpfs that is
//!   mounted over `config.sandbox_path` in the sandbox's own mount namespace only (the host path
//!   is created 0755 if missing; nothing else is written on the host). The staging tmpfs also holds
//!   the blacklist placeholders, so no `/oz.ro.*` is visible inside. After `pivot_root` the old
//!   root (and with it the staging tmpfs) is detached, and the root tmpfs is made read-only.
//! - Binds are recursive and the flags are applied to the detached copy with
//!   `mount_setattr(AT_RECURSIVE)`, so submounts are read-only too. Flags are only ever added.
//! - Every writable mount is noexec: writable whitelist binds, home, `/tmp`, `/dev/shm`, `/run`
//!   (the original's noexec on /tmp and /dev/shm is kept; apps that want to execute from /tmp must
//!   be given a read-only whitelist item instead).
//! - `force`: an existing target that is a different object is covered only with `force`;
//!   without it the item is skipped with a warning in the build report (the original's behaviour).
//!   Re-binding the same object (a nested item inside an earlier bind, to change its flags) and
//!   directories created as parents of earlier items never count as existing.
//! - Binds are applied parents first (stable sort by target depth), so a later parent cannot hide
//!   an earlier child.
//! - `no_follow`: when the source is a symlink, the link itself is recreated inside (same text);
//!   nothing is mounted and nothing is resolved as root.
//! - `ignore`: a missing source is skipped with a warning. Sources refused for safety (symlink out
//!   of the home, not accessible to the user) are errors even with `ignore`.
//! - Blacklist entries are resolved inside the new root (RESOLVE_IN_ROOT), so a symlink leads to
//!   the real object, which is hidden under every name. Placeholders are an empty 0000 directory
//!   or file, bound read-only, nosuid, nodev, noexec.
//! - `/sys`: a new read-only sysfs; if that mount fails, a read-only recursive bind of the
//!   host's `/sys` (which shows the host's network devices), with a warning in the report.
//! - `/proc`: a new proc, nosuid/nodev/noexec; runc's masked paths plus /proc/kallsyms get
//!   /dev/null (files) or the empty placeholder (directories); /proc/{bus,fs,irq,sys,
//!   sysrq-trigger} are bound onto themselves read-only. /sys/firmware is masked.
//! - `/dev`: the host's null, zero, full, random, urandom and tty bind-mounted (nosuid, noexec,
//!   not nodev) on a nodev tmpfs; a new devpts (`newinstance,ptmxmode=0666,mode=620,gid=5`) with
//!   `/dev/ptmx -> pts/ptmx`; shm 1777. `use_full_dev`: the devtmpfs instead of the tmpfs, still
//!   with a private devpts whose ptmx covers the host one; nothing is created in the shared
//!   devtmpfs (root never creates outside its own tmpfs mounts).
//! - Targets are resolved inside the new root (RESOLVE_IN_ROOT). Missing mount points are created
//!   by root only in root-owned directories of the build's own tmpfs mounts; anywhere else (the
//!   user's home, `/run/user/<uid>`, trees bound from the host) with the user's credentials.
//! - Argument files are bound read-write and noexec at their own path; they must lie below a
//!   user tree. `nodefaults` drops the default blacklist (the system binds are not optional).
//! - Generated: `/etc/{hostname,hosts,machine-id (random),fstab}`, `/etc/mtab -> /proc/self/mounts`,
//!   the host's resolv.conf bound read-only for bridge and host networking only, and
//!   `/run/oz-sandbox` (profile name, root 0444; /run is root 0755, so the sandbox cannot remove it).

pub mod bind;
mod blacklist;
mod build;
mod dev;
mod etc;
mod pathsafe;
mod plan;
mod proc;
mod userdir;
mod vars;
mod whitelist;

#[cfg(test)]
mod tests;

pub use bind::MountFailure;
pub use blacklist::{receive as receive_blacklist, send as send_blacklist};
pub use build::{build, build_with, BuildReport, Deferred};
pub use pathsafe::{openat2, AsUser, PathError};
pub use plan::{
    plan, plan_deferred, BindItem, BlacklistPlanner, DevMode, EtcFiles, LinkItem, ResolvConf, RootfsPlan, Source,
    SystemEntry, SystemKind,
};
pub use userdir::PrivateDir;

use crate::user::UserInfo;
use nix::errno::Errno;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Everything that can go wrong planning or building a root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("{item}: {reason}")]
    Expand { item: String, reason: String },
    #[error("{item}: {reason}")]
    Invalid { item: String, reason: String },
    #[error("{}: {reason}", path.display())]
    Unsafe { path: PathBuf, reason: PathError },
    #[error("{}: not accessible to user {user}", path.display())]
    NotPermitted { path: PathBuf, user: String },
    #[error("{}: missing (set can_create or ignore)", path.display())]
    Missing { path: PathBuf },
    #[error("{op} {}: {errno}", path.display())]
    Fs { op: &'static str, path: PathBuf, errno: Errno },
    #[error("bind {} -> {}: {failure}", src.display(), target.display())]
    Bind { src: PathBuf, target: PathBuf, failure: MountFailure },
    #[error("mount {fstype} on {}: {failure}", target.display())]
    Mount { fstype: &'static str, target: PathBuf, failure: MountFailure },
    #[error("{what}: {errno}")]
    Sys { what: &'static str, errno: Errno },
}

impl RootfsError {
    pub(crate) fn fs(op: &'static str, path: impl AsRef<Path>, errno: Errno) -> Self {
        RootfsError::Fs { op, path: path.as_ref().to_path_buf(), errno }
    }

    pub(crate) fn open(path: impl AsRef<Path>, e: PathError) -> Self {
        match e {
            PathError::Io(errno) => RootfsError::fs("open", path, errno),
            other => RootfsError::Unsafe { path: path.as_ref().to_path_buf(), reason: other },
        }
    }
}

/// Whether `path` lies (lexically, without `..`) below the user's home, `/run/user/<uid>` or
/// `/media/<name>`: the trees user files are opened beneath.
pub fn in_user_tree(user: &UserInfo, path: &Path) -> bool {
    whitelist::classify(user, path).is_some()
}

/// Open a user path on the host for `oz mount`: it must lie below the user's home,
/// `/run/user/<uid>` or `/media/<name>`, is resolved without leaving that tree and with the
/// user's credentials, and must be accessible to the user. Returns an O_PATH fd to mount from.
pub fn open_user_path(user: &UserInfo, path: &Path) -> Result<OwnedFd, RootfsError> {
    let source = whitelist::classify(user, path).ok_or_else(|| RootfsError::Invalid {
        item: path.display().to_string(),
        reason: format!("not below {}, /run/user/{} or /media/{}", user.home.display(), user.uid, user.name),
    })?;
    whitelist::open_source(user, &source, false)
}
