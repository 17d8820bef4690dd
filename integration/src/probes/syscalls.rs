//! The default seccomp blacklist, called one by one with arguments the kernel rejects (or that
//! do nothing) when the call is allowed: inside a blacklist sandbox every call must give EPERM;
//! with seccomp off most give EFAULT/EINVAL/EBADF/ENOSYS or succeed, which shows the EPERM came
//! from the filter.

use super::sys;
use nix::errno::Errno;

type Call = fn() -> libc::c_long;

// x86_64 numbers of calls the kernel dropped long ago (ENOSYS; libc no longer names them).
const SYS_CREATE_MODULE: libc::c_long = 174;
const SYS_GET_KERNEL_SYMS: libc::c_long = 177;
const SYS_QUERY_MODULE: libc::c_long = 178;

const BAD: usize = 1; // an unmapped user pointer: EFAULT when the kernel reads it

// SAFETY (every entry below): the arguments are invalid or inert, so the kernel either rejects
// the call before acting or does nothing observable; no memory of ours is written except the
// small buffers passed explicitly.
pub const BLACKLIST: &[(&str, Call)] = &[
    ("acct", || unsafe { libc::syscall(libc::SYS_acct, BAD) }),
    ("add_key", || unsafe { libc::syscall(libc::SYS_add_key, BAD, BAD, 0usize, 0usize, 0) }),
    ("delete_module", || unsafe { libc::syscall(libc::SYS_delete_module, BAD, 0) }),
    ("finit_module", || unsafe { libc::syscall(libc::SYS_finit_module, -1, BAD, 0) }),
    ("get_mempolicy", || unsafe {
        libc::syscall(libc::SYS_get_mempolicy, 0usize, 0usize, 0usize, 0usize, 0xffffusize)
    }),
    ("init_module", || unsafe { libc::syscall(libc::SYS_init_module, BAD, 0usize, BAD) }),
    ("io_cancel", || unsafe { libc::syscall(libc::SYS_io_cancel, 0usize, BAD, BAD) }),
    ("io_destroy", || unsafe { libc::syscall(libc::SYS_io_destroy, 0usize) }),
    ("io_getevents", || unsafe { libc::syscall(libc::SYS_io_getevents, 0usize, 0usize, 0usize, 0usize, 0usize) }),
    ("ioperm", || unsafe { libc::syscall(libc::SYS_ioperm, 0x80usize, 1usize, 0) }),
    ("iopl", || unsafe { libc::syscall(libc::SYS_iopl, 0) }),
    ("io_setup", || unsafe { libc::syscall(libc::SYS_io_setup, 0u32, BAD) }),
    ("kexec_load", || unsafe { libc::syscall(libc::SYS_kexec_load, 0usize, 1000usize, 0usize, 0usize) }),
    ("keyctl", || unsafe { libc::syscall(libc::SYS_keyctl, 9999, 0usize, 0usize, 0usize, 0usize) }),
    ("mbind", || unsafe { libc::syscall(libc::SYS_mbind, 0usize, 0usize, 999, 0usize, 0usize, 0) }),
    ("migrate_pages", || unsafe { libc::syscall(libc::SYS_migrate_pages, 0, 0usize, 0usize, 0usize) }),
    ("mount", || unsafe { libc::syscall(libc::SYS_mount, BAD, BAD, BAD, 0usize, 0usize) }),
    ("move_pages", || unsafe { libc::syscall(libc::SYS_move_pages, 0, 0usize, 0usize, 0usize, 0usize, 0) }),
    ("open_by_handle_at", || unsafe { libc::syscall(libc::SYS_open_by_handle_at, -1, BAD, 0) }),
    ("perf_event_open", || unsafe { libc::syscall(libc::SYS_perf_event_open, BAD, 0, -1, -1, 0usize) }),
    ("pivot_root", || unsafe { libc::syscall(libc::SYS_pivot_root, BAD, BAD) }),
    ("ptrace", || unsafe { libc::syscall(libc::SYS_ptrace, 99999, -1, 0usize, 0usize) }),
    ("remap_file_pages", || unsafe {
        libc::syscall(libc::SYS_remap_file_pages, 0usize, 0usize, 0usize, 0usize, 0usize)
    }),
    ("request_key", || unsafe { libc::syscall(libc::SYS_request_key, BAD, BAD, 0usize, 0) }),
    ("set_mempolicy", || unsafe { libc::syscall(libc::SYS_set_mempolicy, 999, 0usize, 0usize) }),
    ("get_robust_list", || unsafe { libc::syscall(libc::SYS_get_robust_list, 0, BAD, BAD) }),
    ("set_thread_area", || unsafe { libc::syscall(libc::SYS_set_thread_area, BAD) }),
    ("swapoff", || unsafe { libc::syscall(libc::SYS_swapoff, BAD) }),
    ("swapon", || unsafe { libc::syscall(libc::SYS_swapon, BAD, 0) }),
    ("syslog", || unsafe { libc::syscall(libc::SYS_syslog, 9999, 0usize, 0) }),
    ("umount2", || unsafe { libc::syscall(libc::SYS_umount2, BAD, 0) }),
    ("unshare", || unsafe { libc::syscall(libc::SYS_unshare, 0x1) }),
    ("uselib", || unsafe { libc::syscall(libc::SYS_uselib, BAD) }),
    ("vmsplice", || unsafe { libc::syscall(libc::SYS_vmsplice, -1, 0usize, 0usize, 0) }),
    ("modify_ldt", || unsafe { libc::syscall(libc::SYS_modify_ldt, 0, 0usize, 0usize) }),
    ("bpf", || unsafe { libc::syscall(libc::SYS_bpf, 9999, 0usize, 0u32) }),
    ("userfaultfd", || unsafe { libc::syscall(libc::SYS_userfaultfd, 0x7fff_0001) }),
    ("io_uring_setup", || unsafe { libc::syscall(libc::SYS_io_uring_setup, 0u32, BAD) }),
    ("io_uring_enter", || unsafe { libc::syscall(libc::SYS_io_uring_enter, -1, 0u32, 0u32, 0u32, 0usize, 0usize) }),
    ("io_uring_register", || unsafe { libc::syscall(libc::SYS_io_uring_register, -1, 0u32, 0usize, 0u32) }),
    ("setns", || unsafe { libc::syscall(libc::SYS_setns, -1, 0) }),
    ("process_vm_readv", || unsafe {
        libc::syscall(libc::SYS_process_vm_readv, libc::getpid(), 0usize, 0usize, 0usize, 0usize, 0usize)
    }),
    ("process_vm_writev", || unsafe {
        libc::syscall(libc::SYS_process_vm_writev, libc::getpid(), 0usize, 0usize, 0usize, 0usize, 0usize)
    }),
    ("kcmp", || unsafe { libc::syscall(libc::SYS_kcmp, libc::getpid(), libc::getpid(), 999, 0usize, 0usize) }),
    ("name_to_handle_at", || unsafe { libc::syscall(libc::SYS_name_to_handle_at, libc::AT_FDCWD, BAD, BAD, BAD, 0) }),
    // Calls Docker's default profile leaves out (or grants only with a capability).
    ("clock_adjtime", || unsafe { libc::syscall(libc::SYS_clock_adjtime, libc::CLOCK_REALTIME, BAD) }),
    ("clock_settime", || unsafe { libc::syscall(libc::SYS_clock_settime, libc::CLOCK_REALTIME, BAD) }),
    ("settimeofday", || unsafe { libc::syscall(libc::SYS_settimeofday, BAD, 0usize) }),
    // Quota type 0xff is past MAXQUOTAS: EINVAL before anything is looked at.
    ("quotactl", || unsafe { libc::syscall(libc::SYS_quotactl, 0xffu32, 0usize, 0, 0usize) }),
    ("quotactl_fd", || unsafe { libc::syscall(libc::SYS_quotactl_fd, -1, 0xffu32, 0, 0usize) }),
    ("sysfs", || unsafe { libc::syscall(libc::SYS_sysfs, 99, 0usize, 0usize) }),
    ("ustat", || unsafe { libc::syscall(libc::SYS_ustat, 0xfff_ffffusize, BAD) }),
    ("vhangup", || unsafe { libc::syscall(libc::SYS_vhangup) }),
    ("lookup_dcookie", || unsafe { libc::syscall(libc::SYS_lookup_dcookie, 0u64, BAD, 0usize) }),
    ("nfsservctl", || unsafe { libc::syscall(libc::SYS_nfsservctl, 0, BAD, BAD) }),
    ("_sysctl", || unsafe { libc::syscall(libc::SYS__sysctl, BAD) }),
    ("create_module", || unsafe { libc::syscall(SYS_CREATE_MODULE, BAD, 0usize) }),
    ("get_kernel_syms", || unsafe { libc::syscall(SYS_GET_KERNEL_SYMS, BAD) }),
    ("query_module", || unsafe { libc::syscall(SYS_QUERY_MODULE, BAD, 0, BAD, 0usize, BAD) }),
    ("reboot", || unsafe { libc::syscall(libc::SYS_reboot, 0, 0, 0, 0usize) }),
    // The unprivileged mode (FAN_REPORT_FID) with an impossible access mode: EINVAL.
    ("fanotify_init", || unsafe { libc::syscall(libc::SYS_fanotify_init, 0x200u32, libc::O_ACCMODE as u32) }),
    ("pidfd_getfd", || unsafe { libc::syscall(libc::SYS_pidfd_getfd, -1, 0, 0u32) }),
    ("process_madvise", || unsafe { libc::syscall(libc::SYS_process_madvise, -1, 0usize, 0usize, 0, 0u32) }),
    ("set_mempolicy_home_node", || unsafe {
        libc::syscall(libc::SYS_set_mempolicy_home_node, 0usize, 0usize, 0usize, 1usize)
    }),
    ("sethostname", || unsafe { libc::syscall(libc::SYS_sethostname, BAD, 1usize) }),
    ("setdomainname", || unsafe { libc::syscall(libc::SYS_setdomainname, BAD, 1usize) }),
    ("personality_no_aslr", personality_no_aslr),
    // CLONE_NEWNS together with CLONE_FS is always EINVAL: nothing is created when allowed.
    ("clone_newns", || unsafe {
        libc::syscall(libc::SYS_clone, (libc::CLONE_NEWNS | libc::CLONE_FS) as usize, 0usize, 0usize, 0usize, 0usize)
    }),
    ("clone_newuser", || unsafe {
        libc::syscall(libc::SYS_clone, (libc::CLONE_NEWUSER | libc::CLONE_FS) as usize, 0usize, 0usize, 0usize, 0usize)
    }),
    ("clone3_newuser", clone3_newuser),
];

/// personality(ADDR_NO_RANDOMIZE) (ASLR off for what this process execs next); the persona is
/// put back when the call was allowed.
fn personality_no_aslr() -> libc::c_long {
    // SAFETY: personality only changes this process's execution domain flags.
    unsafe {
        let old = libc::syscall(libc::SYS_personality, 0xffff_ffffusize);
        let r = libc::syscall(libc::SYS_personality, libc::ADDR_NO_RANDOMIZE as usize);
        if r >= 0 && old >= 0 {
            libc::syscall(libc::SYS_personality, old as usize);
        }
        r
    }
}

fn clone3_newuser() -> libc::c_long {
    // struct clone_args: flags first; CLONE_NEWUSER|CLONE_FS is EINVAL, so nothing is created.
    let mut args = [0u64; 11];
    args[0] = (libc::CLONE_NEWUSER | libc::CLONE_FS) as u64;
    // SAFETY: args is a valid, fully initialised clone_args of the size passed.
    unsafe { libc::syscall(libc::SYS_clone3, args.as_mut_ptr(), std::mem::size_of_val(&args)) }
}

/// Syscalls that `oz-probe call NAME` can make (for whitelist policies).
pub const SIMPLE: &[(&str, Call)] = &[
    ("getppid", || unsafe { libc::syscall(libc::SYS_getppid) }),
    ("sysinfo", || {
        // SAFETY: sysinfo fills the struct.
        let mut si: libc::sysinfo = unsafe { std::mem::zeroed() };
        unsafe { libc::syscall(libc::SYS_sysinfo, &mut si as *mut libc::sysinfo) }
    }),
    ("uname", || {
        // SAFETY: uname fills the struct.
        let mut u: libc::utsname = unsafe { std::mem::zeroed() };
        unsafe { libc::syscall(libc::SYS_uname, &mut u as *mut libc::utsname) }
    }),
    // A netlink route socket (left open: the probe exits right after).
    ("socket", || unsafe { libc::syscall(libc::SYS_socket, libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) }),
];

/// `OK` or the errno name.
pub fn result_text(call: Call) -> String {
    match sys(call()) {
        Ok(_) => "OK".to_string(),
        Err(e) => format!("{e:?}"),
    }
}

/// Parses a `SYSCALL name RESULT` line.
pub fn parse_line(line: &str) -> Option<(&str, &str)> {
    let mut it = line.trim_end_matches('\r').strip_prefix("SYSCALL ")?.split_whitespace();
    Some((it.next()?, it.next()?))
}

/// The errno name of a raw value (for messages).
pub fn errno_name(n: i32) -> String {
    format!("{:?}", Errno::from_raw(n))
}
