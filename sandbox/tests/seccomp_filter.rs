//! Compiled filters loaded into forked children: one child per test, since a loaded filter
//! cannot be removed. The child only makes raw syscalls before `_exit` (async-signal-safe),
//! and reports through its exit status.

use std::path::Path;

use oz_profiles::profile::SeccompMode;
use oz_profiles::seccomp::{default_blacklist, parse_policy};
use oz_sandbox::seccomp::{compile, CompiledFilter};

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Exited(i32),
    Signaled(i32),
}

/// Runs `body` in a forked child after installing `filter` (if any); `body` returns the exit code.
fn in_child(filter: Option<&CompiledFilter>, body: impl Fn() -> i32) -> Outcome {
    // SAFETY: the child only calls `install` (prctl + seccomp, no allocation), raw syscalls in
    // `body` and `_exit`, all async-signal-safe, so forking a multi-threaded test is sound.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = match filter.map(|f| f.install()) {
            Some(Err(_)) => 99,
            _ => body(),
        };
        // SAFETY: terminating the forked child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for the child we just forked, with a valid status pointer.
    let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(rc, pid);
    if libc::WIFEXITED(status) {
        Outcome::Exited(libc::WEXITSTATUS(status))
    } else {
        Outcome::Signaled(libc::WTERMSIG(status))
    }
}

fn errno() -> i32 {
    // SAFETY: reading the calling thread's errno.
    unsafe { *libc::__errno_location() }
}

/// A raw syscall result as a value >= 0 or -errno; call right after the syscall.
fn res(rc: libc::c_long) -> i64 {
    if rc < 0 {
        -i64::from(errno())
    } else {
        rc
    }
}

/// 0 when the raw syscall result is `want` (a value >= 0, or -errno), else a code naming it.
fn expect(rc: libc::c_long, want: i64) -> i32 {
    check(res(rc), want)
}

fn check(got: i64, want: i64) -> i32 {
    if got == want {
        0
    } else if got < 0 {
        (100 - got).min(254) as i32
    } else {
        98
    }
}

fn policy(text: &str) -> oz_profiles::seccomp::Policy {
    parse_policy(text, Path::new("test.seccomp")).unwrap_or_else(|e| panic!("{e}"))
}

/// personality(0xffffffff) only queries the persona: harmless when it is not denied.
fn personality_query() -> libc::c_long {
    // SAFETY: raw syscall with integer arguments.
    unsafe { libc::syscall(libc::SYS_personality, 0xffff_ffffu64) }
}

fn getppid_works() -> bool {
    // SAFETY: raw syscall without arguments.
    unsafe { libc::syscall(libc::SYS_getppid) > 0 }
}

#[test]
fn blacklisted_call_fails_with_eperm_and_others_work() {
    let f = compile(&policy("personality: 1\n"), SeccompMode::Blacklist, true).unwrap();
    let out = in_child(None, || if personality_query() >= 0 { 0 } else { 1 });
    assert_eq!(out, Outcome::Exited(0), "personality must work without a filter");
    let out = in_child(Some(&f), || {
        if !getppid_works() {
            return 2;
        }
        expect(personality_query(), -i64::from(libc::EPERM))
    });
    assert_eq!(out, Outcome::Exited(0));
}

#[test]
fn return_errno_rule_uses_its_errno() {
    let f = compile(&policy("personality: return EACCES\n"), SeccompMode::Blacklist, true).unwrap();
    let out = in_child(Some(&f), || expect(personality_query(), -i64::from(libc::EACCES)));
    assert_eq!(out, Outcome::Exited(0));
}

#[test]
fn enforce_false_only_logs() {
    let f = compile(&policy("personality: 1\n"), SeccompMode::Blacklist, false).unwrap();
    let out = in_child(Some(&f), || if personality_query() >= 0 { 0 } else { 100 + errno() });
    assert_eq!(out, Outcome::Exited(0));
}

/// A pseudo-terminal pair for TIOCSTI; returns the slave fd (the master stays open).
fn open_pty() -> (libc::c_int, libc::c_int) {
    // SAFETY: plain libc pty calls on descriptors we own; results are checked.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0);
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let mut name = [0 as libc::c_char; 128];
        assert_eq!(libc::ptsname_r(master, name.as_mut_ptr(), name.len()), 0);
        let slave = libc::open(name.as_ptr(), libc::O_RDWR | libc::O_NOCTTY);
        assert!(slave >= 0);
        (master, slave)
    }
}

#[allow(clippy::unnecessary_cast)] // ioctl numbers are not u64 on every target
fn tiocsti(fd: libc::c_int, high_bits: u64) -> libc::c_long {
    let c: libc::c_char = b'x' as libc::c_char;
    let cmd = high_bits | libc::TIOCSTI as u64;
    // SAFETY: raw ioctl on our own pty with a pointer to a live byte.
    unsafe { libc::syscall(libc::SYS_ioctl, fd, cmd, &c as *const libc::c_char) }
}

fn tcgets_works(fd: libc::c_int) -> bool {
    // SAFETY: termios is plain data; the kernel fills it.
    let mut t: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: raw ioctl on our own pty with a pointer to a live termios.
    unsafe { libc::syscall(libc::SYS_ioctl, fd, libc::TCGETS, &mut t as *mut libc::termios) == 0 }
}

#[test]
fn tiocsti_is_denied_even_when_the_whitelist_allows_ioctl() {
    let (master, slave) = open_pty();
    let out = in_child(None, || expect(tiocsti(slave, 0), 0));
    assert_eq!(out, Outcome::Exited(0), "TIOCSTI must work without a filter (as root)");
    let whitelist = policy("ioctl: 1\nexit_group: 1\nexit: 1\n");
    for (p, mode) in [(whitelist, SeccompMode::Whitelist), (policy(""), SeccompMode::Blacklist)] {
        let f = compile(&p, mode, true).unwrap();
        let out = in_child(Some(&f), || {
            if !tcgets_works(slave) {
                return 2;
            }
            let eperm = -i64::from(libc::EPERM);
            match expect(tiocsti(slave, 0), eperm) {
                0 => expect(tiocsti(slave, 0xdead_beef_0000_0000), eperm),
                code => code,
            }
        });
        assert_eq!(out, Outcome::Exited(0), "{mode:?}");
    }
    // The hardening is not switched off by enforce=false.
    let f = compile(&policy(""), SeccompMode::Blacklist, false).unwrap();
    let out = in_child(Some(&f), || expect(tiocsti(slave, 0), -i64::from(libc::EPERM)));
    assert_eq!(out, Outcome::Exited(0));
    // SAFETY: closing descriptors this test opened.
    unsafe {
        libc::close(slave);
        libc::close(master);
    }
}

fn socket(domain: libc::c_int) -> libc::c_long {
    // SAFETY: raw syscall with integer arguments; the fd is closed by _exit.
    unsafe { libc::syscall(libc::SYS_socket, domain, libc::SOCK_STREAM, 0) }
}

#[test]
fn whitelist_argument_filter() {
    let p = policy("socket: arg0 == AF_UNIX\nexit_group: 1\nexit: 1\n");
    let f = compile(&p, SeccompMode::Whitelist, true).unwrap();
    let out = in_child(Some(&f), || {
        if socket(libc::AF_UNIX) < 0 {
            return 100 + errno();
        }
        match expect(socket(libc::AF_INET), -i64::from(libc::EPERM)) {
            // An unlisted call is denied too.
            // SAFETY: raw syscall without arguments.
            0 => expect(unsafe { libc::syscall(libc::SYS_getppid) }, -i64::from(libc::EPERM)),
            code => code,
        }
    });
    assert_eq!(out, Outcome::Exited(0));
}

#[test]
fn whitelist_without_clone3_makes_libc_fall_back() {
    let p = policy("clone: 1\nexit_group: 1\nwait4: 1\n");
    let f = compile(&p, SeccompMode::Whitelist, true).unwrap();
    let out = in_child(Some(&f), || {
        // SAFETY: raw syscall with null arguments; expected to fail.
        let rc = unsafe { libc::syscall(libc::SYS_clone3, 0, 0) };
        match expect(rc, -i64::from(libc::ENOSYS)) {
            0 => raw_clone(0, 1),
            code => code,
        }
    });
    assert_eq!(out, Outcome::Exited(0));
}

#[test]
fn whitelist_negative_action_and_unlisted_calls() {
    let p = policy("personality[-EACCES]: arg0 == 0xffffffff\nexit_group: 1\n");
    let f = compile(&p, SeccompMode::Whitelist, true).unwrap();
    let out = in_child(Some(&f), || {
        if personality_query() < 0 {
            return 2;
        }
        // SAFETY: raw syscall with integer arguments (PER_LINUX, a no-op change).
        let rc = unsafe { libc::syscall(libc::SYS_personality, 0u64) };
        match expect(rc, -i64::from(libc::EACCES)) {
            // SAFETY: raw syscall without arguments.
            0 => expect(unsafe { libc::syscall(libc::SYS_getppid) }, -i64::from(libc::EPERM)),
            code => code,
        }
    });
    assert_eq!(out, Outcome::Exited(0));
}

/// clone(flags) as fork: a child that exits at once. 0 when it returned `want`.
fn raw_clone(flags: u64, want: i64) -> i32 {
    // SAFETY: clone without CLONE_VM behaves like fork; the new child only calls _exit.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags | libc::SIGCHLD as u64, 0, 0, 0, 0) };
    if rc == 0 {
        // SAFETY: leaving the grandchild immediately.
        unsafe { libc::_exit(0) };
    }
    if rc > 0 {
        let mut status = 0;
        // SAFETY: reaping the grandchild we created.
        unsafe { libc::waitpid(rc as libc::pid_t, &mut status, 0) };
        return if want > 0 { 0 } else { 97 };
    }
    expect(rc, want)
}

#[test]
fn default_blacklist_denies_namespaces_bpf_and_friends() {
    let out = in_child(None, || {
        // SAFETY: unshare in this throwaway child only.
        let rc = unsafe { libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER) };
        expect(rc, 0)
    });
    assert_eq!(out, Outcome::Exited(0), "unshare(CLONE_NEWUSER) must work without a filter");
    let f = compile(&default_blacklist(), SeccompMode::Blacklist, true).unwrap();
    let out = in_child(Some(&f), || {
        let eperm = -i64::from(libc::EPERM);
        // SAFETY: raw syscalls with integer or null arguments; all are expected to be denied.
        let checks: [(i64, i64); 6] = unsafe {
            [
                (res(libc::syscall(libc::SYS_unshare, libc::CLONE_NEWUSER)), eperm),
                (res(libc::syscall(libc::SYS_bpf, 0, 0, 0)), eperm),
                (res(libc::syscall(libc::SYS_setns, 0, 0)), eperm),
                (res(libc::syscall(libc::SYS_kcmp, 0, 0, 0, 0, 0)), eperm),
                (res(libc::syscall(libc::SYS_userfaultfd, 0)), eperm),
                (res(libc::syscall(libc::SYS_clone3, 0, 0)), -i64::from(libc::ENOSYS)),
            ]
        };
        for (i, (got, want)) in checks.into_iter().enumerate() {
            if check(got, want) != 0 {
                return 10 + i as i32;
            }
        }
        for flag in [libc::CLONE_NEWNS, libc::CLONE_NEWUSER, libc::CLONE_NEWNET, 0x80] {
            let code = raw_clone(flag as u64, eperm);
            if code != 0 {
                return code;
            }
        }
        // A plain fork-style clone still works.
        raw_clone(0, 1)
    });
    assert_eq!(out, Outcome::Exited(0));
}

#[test]
fn x32_syscall_kills_the_process() {
    let x32_getpid = 0x4000_0000 | libc::SYS_getpid;
    // SAFETY: raw syscall without arguments.
    let out = in_child(None, || if unsafe { libc::syscall(x32_getpid) } != 0 { 0 } else { 1 });
    assert_eq!(out, Outcome::Exited(0), "an x32 syscall must not be fatal without a filter");
    for (mode, enforce) in
        [(SeccompMode::Blacklist, true), (SeccompMode::Blacklist, false), (SeccompMode::Whitelist, true)]
    {
        let p = if mode == SeccompMode::Whitelist { policy("getpid: 1\n") } else { policy("") };
        let f = compile(&p, mode, enforce).unwrap();
        let out = in_child(Some(&f), || {
            // SAFETY: raw syscall without arguments; expected to kill the child.
            unsafe { libc::syscall(x32_getpid) };
            5
        });
        assert_eq!(out, Outcome::Signaled(libc::SIGSYS), "{mode:?} enforce={enforce}");
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn foreign_architecture_syscall_kills_the_process() {
    /// getpid through the i386 entry point (`int 0x80`, number 20).
    fn i386_getpid() -> i32 {
        let mut ret: i64 = 20;
        // SAFETY: int 0x80 with eax=20 (getpid) reads and writes only eax.
        unsafe { std::arch::asm!("int 0x80", inout("rax") ret) };
        ret as i32
    }
    let out = in_child(None, || if i386_getpid() > 0 { 0 } else { 1 });
    assert_eq!(out, Outcome::Exited(0), "the i386 entry point must work without a filter");
    let f = compile(&policy(""), SeccompMode::Blacklist, true).unwrap();
    let out = in_child(Some(&f), || {
        i386_getpid();
        5
    });
    assert_eq!(out, Outcome::Signaled(libc::SIGSYS));
}

#[test]
fn syscalls_unknown_to_libseccomp_are_filtered_by_number() {
    const SYS_MSEAL: libc::c_long = 462;
    // SAFETY: mseal of an empty range changes nothing.
    let mseal = || res(unsafe { libc::syscall(SYS_MSEAL, 0, 0, 0) });
    let out = in_child(None, || (mseal() == -i64::from(libc::EPERM)) as i32);
    assert_eq!(out, Outcome::Exited(0), "mseal must not fail with EPERM without a filter");
    let f = compile(&policy("mseal: 1\n"), SeccompMode::Blacklist, true).unwrap();
    let out = in_child(Some(&f), || check(mseal(), -i64::from(libc::EPERM)));
    assert_eq!(out, Outcome::Exited(0));
}
