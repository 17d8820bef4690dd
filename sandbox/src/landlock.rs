//! Landlock: the program may read and execute what the sandbox shows it, but write only where
//! the sandbox gave it writable space (home, /tmp, /dev/shm, /run/user/<uid>, writable
//! whitelist items, device nodes). Raw syscalls; the handled rights follow the kernel's ABI.
//!
//! Defense in depth: the mounts already make everything else read-only, so this matters when a
//! mount flag is missed or a writable host tree is bound in by mistake. Rules add up, so the
//! read+execute rule on `/` also allows execution in writable places; `noexec` mounts are what
//! forbid that.
//!
//! Runs in the program's child after no_new_privs and before exec.

use nix::errno::Errno;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

const EXECUTE: u64 = 1 << 0;
const WRITE_FILE: u64 = 1 << 1;
const READ_FILE: u64 = 1 << 2;
const READ_DIR: u64 = 1 << 3;
const REFER: u64 = 1 << 13;
const TRUNCATE: u64 = 1 << 14;
const IOCTL_DEV: u64 = 1 << 15;
/// Every right of ABI 1 (execute .. make_sym).
const ABI1_ALL: u64 = (1 << 13) - 1;
/// Rights that apply to a file (not a directory) rule.
const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: libc::c_int = 1;

/// ABI 6 scopes: no connecting to abstract unix sockets, and no signals, outside the domain.
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// What the program may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandlockPlan {
    /// Read and execute beneath (normally just "/").
    pub read_exec: Vec<CString>,
    /// Read, write, create, delete beneath (execute only through the `/` rule).
    pub writable: Vec<CString>,
    /// Read and write existing files (and use device ioctls), beneath: /dev and /proc. Writes
    /// may truncate (`O_TRUNC`, as a shell's `>` does): /proc files are regular files to
    /// Landlock, and `echo x > /proc/self/comm` is a write the sandbox allows.
    pub devices: Vec<CString>,
    /// Fail when the kernel cannot enforce (else best effort).
    pub required: bool,
    /// Confine the filesystem (false: scopes only, no filesystem rule is handled).
    pub fs: bool,
    /// Scope abstract unix sockets and signals to the sandbox (ABI >= 6; best effort): the host's
    /// abstract X11 and D-Bus sockets stay out of reach even with host networking.
    pub scope_ipc: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LandlockError {
    #[error("landlock is not supported by this kernel ({0}) and the profile requires it")]
    Unsupported(Errno),
    #[error("landlock {op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
}

impl LandlockPlan {
    /// The plan for a sandbox user with `home` and `uid`, plus writable whitelist `extra` paths.
    pub fn for_user(home: &std::path::Path, uid: u32, extra: &[PathBuf], required: bool) -> LandlockPlan {
        let c = |p: &std::path::Path| CString::new(p.as_os_str().as_encoded_bytes()).ok();
        let mut writable: Vec<PathBuf> =
            vec![home.to_path_buf(), "/tmp".into(), "/dev/shm".into(), PathBuf::from(format!("/run/user/{uid}"))];
        writable.extend(extra.iter().cloned());
        LandlockPlan {
            read_exec: vec![CString::new("/").unwrap()],
            writable: writable.iter().filter_map(|p| c(p)).collect(),
            devices: vec![CString::new("/dev").unwrap(), CString::new("/proc").unwrap()],
            required,
            fs: true,
            scope_ipc: false,
        }
    }

    /// No filesystem rules, only the IPC scopes (for a profile without `landlock.enabled`).
    pub fn scope_only() -> LandlockPlan {
        LandlockPlan {
            read_exec: vec![],
            writable: vec![],
            devices: vec![],
            required: false,
            fs: false,
            scope_ipc: true,
        }
    }
}

/// The Landlock ABI version, or the errno saying there is none.
pub fn abi_version() -> Result<i64, Errno> {
    // SAFETY: the version query takes a null attr and size 0.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    Errno::result(r)
}

/// Rights this ABI can handle.
fn handled(abi: i64) -> u64 {
    let mut h = ABI1_ALL;
    if abi >= 2 {
        h |= REFER;
    }
    if abi >= 3 {
        h |= TRUNCATE;
    }
    if abi >= 5 {
        h |= IOCTL_DEV;
    }
    h
}

fn add_rule(ruleset: &OwnedFd, path: &CString, access: u64, handled: u64) -> Result<(), LandlockError> {
    // SAFETY: open(2) with O_PATH on a NUL-terminated path.
    let raw = unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if raw < 0 {
        return match Errno::last() {
            // Not in this sandbox (e.g. no /run/user/<uid>): nothing to allow.
            Errno::ENOENT | Errno::ENOTDIR | Errno::EACCES => Ok(()),
            errno => Err(LandlockError::Sys { op: "open rule path", errno }),
        };
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let st =
        nix::sys::stat::fstat(fd.as_raw_fd()).map_err(|errno| LandlockError::Sys { op: "fstat rule path", errno })?;
    let mut allowed = access & handled;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        allowed &= FILE_RIGHTS;
    }
    let attr = PathBeneathAttr { allowed_access: allowed, parent_fd: fd.as_raw_fd() };
    // SAFETY: the attr struct is valid for the call; the ruleset fd is ours.
    let r = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset.as_raw_fd(),
            RULE_PATH_BENEATH,
            &attr as *const PathBeneathAttr,
            0u32,
        )
    };
    Errno::result(r).map(drop).map_err(|errno| LandlockError::Sys { op: "add rule", errno })
}

/// Restrict the calling process (no_new_privs must already be set). Returns whether Landlock is
/// enforced (false: best effort on a kernel without it).
pub fn restrict_self(plan: &LandlockPlan) -> Result<bool, LandlockError> {
    let abi = match abi_version() {
        Ok(v) => v,
        Err(errno) if plan.required => return Err(LandlockError::Unsupported(errno)),
        Err(_) => return Ok(false),
    };
    let handled = if plan.fs { handled(abi) } else { 0 };
    let scoped = if plan.scope_ipc && abi >= 6 { SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL } else { 0 };
    if handled == 0 && scoped == 0 {
        return Ok(false);
    }
    let attr = RulesetAttr { handled_access_fs: handled, handled_access_net: 0, scoped };
    // SAFETY: creates a ruleset from a valid attr of the given size.
    let raw = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    let raw = Errno::result(raw).map_err(|errno| LandlockError::Sys { op: "create ruleset", errno })?;
    // SAFETY: a fresh descriptor we own.
    let ruleset = unsafe { OwnedFd::from_raw_fd(raw as i32) };
    for p in &plan.read_exec {
        add_rule(&ruleset, p, READ_FILE | READ_DIR | EXECUTE, handled)?;
    }
    for p in &plan.devices {
        add_rule(&ruleset, p, READ_FILE | READ_DIR | WRITE_FILE | TRUNCATE | IOCTL_DEV, handled)?;
    }
    for p in &plan.writable {
        add_rule(&ruleset, p, handled & !EXECUTE, handled)?;
    }
    // SAFETY: restricts the calling thread with a ruleset fd we own.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset.as_raw_fd(), 0u32) };
    Errno::result(r).map_err(|errno| LandlockError::Sys { op: "restrict self", errno })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handled_rights_follow_abi() {
        assert_eq!(handled(1), 0x1fff);
        assert_eq!(handled(2), 0x3fff);
        assert_eq!(handled(3), 0x7fff);
        assert_eq!(handled(4), 0x7fff);
        assert_eq!(handled(7), 0xffff);
        assert!(abi_version().unwrap() >= 1);
    }

    #[test]
    fn plan_for_user() {
        let p = LandlockPlan::for_user(std::path::Path::new("/home/u"), 1000, &["/srv/x".into()], false);
        let w: Vec<&str> = p.writable.iter().map(|c| c.to_str().unwrap()).collect();
        assert_eq!(w, vec!["/home/u", "/tmp", "/dev/shm", "/run/user/1000", "/srv/x"]);
    }

    /// In a forked child: after restrict_self, writing outside the writable set fails with
    /// EACCES while reads still work.
    #[test]
    fn restricts_a_forked_child() {
        let dir = tempfile::tempdir().unwrap();
        let allowed = dir.path().join("ok");
        let devices = dir.path().join("dev");
        std::fs::create_dir(&allowed).unwrap();
        std::fs::create_dir(&devices).unwrap();
        std::fs::write(devices.join("existing"), b"old").unwrap();
        let c = |p: &std::path::Path| CString::new(p.to_str().unwrap()).unwrap();
        let plan = LandlockPlan {
            read_exec: vec![c(std::path::Path::new("/"))],
            writable: vec![c(&allowed)],
            devices: vec![c(&devices)],
            required: true,
            fs: true,
            scope_ipc: false,
        };
        crate::testfork::assert_in_child(|| {
            crate::exec::creds::set_no_new_privs().map_err(|_| 10)?;
            restrict_self(&plan).map_err(|_| 11)?;
            std::fs::write(allowed.join("f"), b"x").map_err(|_| 12)?;
            match std::fs::write(dir.path().join("denied"), b"x") {
                Err(e) if e.raw_os_error() == Some(libc::EACCES) => {}
                _ => return Err(13),
            }
            std::fs::read_to_string("/etc/hostname").map_err(|_| 14)?;
            // Existing files under a devices rule: writable, also with O_TRUNC; no new ones.
            std::fs::write(devices.join("existing"), b"new").map_err(|_| 15)?;
            if std::fs::write(devices.join("new"), b"x").is_ok() {
                return Err(16);
            }
            Ok(())
        });
    }
}
