//! Becoming the sandbox user with nothing left: supplementary groups, gid, uid, every
//! capability gone from every set (bounding and ambient included), securebits locked so root
//! semantics cannot come back, and no_new_privs.
//!
//! These run in a freshly forked child of the (single-threaded) init, right before exec.

use crate::step::Step;
use nix::errno::Errno;

/// The credentials a program or shell runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary gid is added as well).
    pub groups: Vec<u32>,
}

// linux/securebits.h
const SECBIT_NOROOT: libc::c_ulong = 1 << 0;
const SECBIT_NOROOT_LOCKED: libc::c_ulong = 1 << 1;
const SECBIT_NO_SETUID_FIXUP: libc::c_ulong = 1 << 2;
const SECBIT_NO_SETUID_FIXUP_LOCKED: libc::c_ulong = 1 << 3;
const SECBIT_KEEP_CAPS_LOCKED: libc::c_ulong = 1 << 5;
const SECBIT_NO_CAP_AMBIENT_RAISE: libc::c_ulong = 1 << 6;
const SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED: libc::c_ulong = 1 << 7;

/// Root has no special powers at exec, uid changes do not touch capability sets, keep_caps is
/// off, ambient capabilities can never be raised; all locked.
pub const SECUREBITS: libc::c_ulong = SECBIT_NOROOT
    | SECBIT_NOROOT_LOCKED
    | SECBIT_NO_SETUID_FIXUP
    | SECBIT_NO_SETUID_FIXUP_LOCKED
    | SECBIT_KEEP_CAPS_LOCKED
    | SECBIT_NO_CAP_AMBIENT_RAISE
    | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

/// The highest capability number the kernel knows (read before forking).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(63)
}

fn prctl(op: libc::c_int, a: libc::c_ulong, b: libc::c_ulong) -> Result<(), Errno> {
    // SAFETY: the prctl operations used here take integer arguments only.
    Errno::result(unsafe { libc::prctl(op, a, b, 0 as libc::c_ulong, 0 as libc::c_ulong) }).map(drop)
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Empty the effective, permitted and inheritable sets of the calling thread.
fn clear_capsets() -> Result<(), Errno> {
    let hdr = CapHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let data = [CapData::default(); 2];
    // SAFETY: capset reads one header and two data structs (version 3) from valid memory.
    Errno::result(unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) }).map(drop)
}

/// Drop to `creds` and lose every privilege. Order matters: the bounding set and securebits need
/// CAP_SETPCAP, the ids need CAP_SETGID/CAP_SETUID, and with SECBIT_NO_SETUID_FIXUP the uid
/// change keeps the capability sets, which are then cleared explicitly.
pub fn drop_privileges(creds: &Credentials, last_cap: u32) -> Result<(), (Step, Errno)> {
    for cap in 0..=last_cap {
        match prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0) {
            Ok(()) | Err(Errno::EINVAL) => {}
            Err(e) => return Err((Step::CapBound, e)),
        }
    }
    prctl(libc::PR_SET_SECUREBITS, SECUREBITS, 0).map_err(|e| (Step::Securebits, e))?;
    let mut groups: Vec<libc::gid_t> = vec![creds.gid];
    groups.extend(creds.groups.iter().copied().filter(|g| *g != creds.gid));
    // SAFETY: setgroups reads `len` gids from a valid slice.
    Errno::result(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) }).map_err(|e| (Step::Groups, e))?;
    // SAFETY: plain id-setting syscalls.
    Errno::result(unsafe { libc::setresgid(creds.gid, creds.gid, creds.gid) }).map_err(|e| (Step::Gid, e))?;
    // SAFETY: as above.
    Errno::result(unsafe { libc::setresuid(creds.uid, creds.uid, creds.uid) }).map_err(|e| (Step::Uid, e))?;
    prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0)
        .map_err(|e| (Step::Capabilities, e))?;
    clear_capsets().map_err(|e| (Step::Capabilities, e))?;
    set_no_new_privs()
}

/// no_new_privs: execve never grants privileges again (setuid bits, file capabilities).
pub fn set_no_new_privs() -> Result<(), (Step, Errno)> {
    prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0).map_err(|e| (Step::NoNewPrivs, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn securebits_value() {
        // everything but SECBIT_KEEP_CAPS (1 << 4)
        assert_eq!(SECUREBITS, 0xef);
        assert!(last_cap() >= 40);
    }
}
