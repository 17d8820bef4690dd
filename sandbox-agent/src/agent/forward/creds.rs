//! Acting as the sandbox user for one connect: the effective uid and gid (and so the
//! filesystem ids) and the supplementary groups of this thread become the user's for a scope.
//!
//! The host end of a `client` forwarder is connected this way, so that the host service sees
//! the user's credentials (SO_PEERCRED, the socket's owner) and not root's, and a unix path is
//! looked up, and its socket's write permission checked, exactly as for the user's own
//! connect: whatever a symlink in that path leads to, the user could reach it anyway. Raw
//! syscalls change only the calling thread (glibc's wrappers would change every thread); the
//! agent is single-threaded. The saved set-user-ID stays 0, so root comes back on drop.

use nix::errno::Errno;
use oz_sandbox::user::UserInfo;

pub struct AsUser {
    saved_groups: Vec<libc::gid_t>,
}

fn check(rc: libc::c_long) -> Result<(), Errno> {
    if rc < 0 {
        Err(Errno::last())
    } else {
        Ok(())
    }
}

fn setgroups(groups: &[libc::gid_t]) -> Result<(), Errno> {
    // SAFETY: the raw syscall changes only this thread; pointer and length describe a slice.
    check(unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) })
}

fn set_euid_egid(uid: u32, gid: u32) -> Result<(), Errno> {
    let keep = u32::MAX as libc::c_long;
    // SAFETY: raw setresgid/setresuid on this thread; -1 leaves the real and saved ids alone.
    check(unsafe { libc::syscall(libc::SYS_setresgid, keep, gid as libc::c_long, keep) })?;
    // SAFETY: as above.
    check(unsafe { libc::syscall(libc::SYS_setresuid, keep, uid as libc::c_long, keep) })
}

impl AsUser {
    pub fn enter(user: &UserInfo) -> Result<AsUser, Errno> {
        // SAFETY: getgroups(0, NULL) returns the count; the second call fills a buffer of it.
        let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
        let mut saved_groups = vec![0; n.max(0) as usize];
        // SAFETY: as above.
        let n = unsafe { libc::getgroups(n, saved_groups.as_mut_ptr()) };
        if n < 0 {
            return Err(Errno::last());
        }
        saved_groups.truncate(n as usize);
        let groups: Vec<libc::gid_t> = user.memberships.iter().map(|(_, g)| *g).collect();
        let guard = AsUser { saved_groups };
        setgroups(&groups)?;
        set_euid_egid(user.uid, user.gid)?;
        Ok(guard)
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        // The uid first: changing the gid back needs root's capabilities.
        // SAFETY: raw setresuid on this thread, back to the saved 0.
        let uid = check(unsafe { libc::syscall(libc::SYS_setresuid, -1 as libc::c_long, 0, -1 as libc::c_long) });
        let rest = uid.and_then(|()| set_euid_egid(0, 0)).and_then(|()| setgroups(&self.saved_groups));
        if rest.is_err() || nix::unistd::geteuid().as_raw() != 0 {
            // Going on with the user's credentials in the agent would be worse than dying.
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_credentials_for_a_scope_then_root_again() {
        if !nix::unistd::geteuid().is_root() {
            panic!("this test needs root (the agent runs as root)");
        }
        let user = UserInfo {
            uid: 65534,
            gid: 65534,
            name: "nobody".into(),
            home: "/nonexistent".into(),
            shell: "/bin/false".into(),
            memberships: vec![("nogroup".into(), 65534)],
        };
        // On a thread of its own: the credentials change for the calling thread only.
        std::thread::spawn(move || {
            {
                let _as = AsUser::enter(&user).unwrap();
                assert_eq!(nix::unistd::geteuid().as_raw(), 65534);
                assert_eq!(nix::unistd::getegid().as_raw(), 65534);
                // Root-only files are out of reach now.
                assert!(std::fs::File::open("/etc/shadow").is_err());
            }
            assert!(nix::unistd::geteuid().is_root());
            assert!(std::fs::File::open("/etc/shadow").is_ok());
        })
        .join()
        .unwrap();
    }
}
