//! Syscall names to numbers, through libseccomp's tables plus the calls newer than the
//! libseccomp this machine ships (Debian 12 has 2.5.4).

use libseccomp::{ScmpArch, ScmpSyscall};

/// x86_64 and aarch64 share the generic numbers for every call added since Linux 5.1.
const NEWER: &[(&str, i32)] = &[
    ("pidfd_send_signal", 424),
    ("io_uring_setup", 425),
    ("io_uring_enter", 426),
    ("io_uring_register", 427),
    ("open_tree", 428),
    ("move_mount", 429),
    ("fsopen", 430),
    ("fsconfig", 431),
    ("fsmount", 432),
    ("fspick", 433),
    ("pidfd_open", 434),
    ("clone3", 435),
    ("close_range", 436),
    ("openat2", 437),
    ("pidfd_getfd", 438),
    ("faccessat2", 439),
    ("process_madvise", 440),
    ("epoll_pwait2", 441),
    ("mount_setattr", 442),
    ("quotactl_fd", 443),
    ("landlock_create_ruleset", 444),
    ("landlock_add_rule", 445),
    ("landlock_restrict_self", 446),
    ("memfd_secret", 447),
    ("process_mrelease", 448),
    ("futex_waitv", 449),
    ("set_mempolicy_home_node", 450),
    ("cachestat", 451),
    ("fchmodat2", 452),
    ("map_shadow_stack", 453),
    ("futex_wake", 454),
    ("futex_wait", 455),
    ("futex_requeue", 456),
    ("statmount", 457),
    ("listmount", 458),
    ("lsm_get_self_attr", 459),
    ("lsm_set_self_attr", 460),
    ("lsm_list_modules", 461),
    ("mseal", 462),
];

/// Architectures a policy's syscall names are checked against.
const ARCHES: [ScmpArch; 2] = [ScmpArch::X8664, ScmpArch::Aarch64];

/// The syscall number of `name` on `arch`. Negative numbers are libseccomp's pseudo-syscalls
/// for calls that do not exist on that architecture (e.g. `open` on aarch64).
pub fn resolve(name: &str, arch: ScmpArch) -> Option<i32> {
    if let Ok(sys) = ScmpSyscall::from_name_by_arch(name, arch) {
        return Some(i32::from(sys));
    }
    let generic = matches!(arch, ScmpArch::X8664 | ScmpArch::Aarch64);
    NEWER.iter().find(|(n, _)| *n == name).filter(|_| generic).map(|(_, nr)| *nr)
}

/// The syscall number of `name` on the architecture oz runs on.
pub fn resolve_native(name: &str) -> Option<i32> {
    resolve(name, ScmpArch::native())
}

/// The name of native syscall number `nr` (as the policy language spells it).
pub fn name_native(nr: i32) -> Option<String> {
    if let Some((name, _)) = NEWER.iter().find(|(_, n)| *n == nr) {
        return Some(name.to_string());
    }
    ScmpSyscall::from(nr).get_name_by_arch(ScmpArch::native()).ok()
}

/// True when `name` is a syscall on x86_64 or aarch64.
pub fn is_known(name: &str) -> bool {
    ARCHES.iter().any(|arch| resolve(name, *arch).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_x86_64_names() {
        assert_eq!(resolve("read", ScmpArch::X8664), Some(0));
        assert_eq!(resolve("getpid", ScmpArch::X8664), Some(39));
        assert_eq!(resolve("ioctl", ScmpArch::X8664), Some(16));
        assert_eq!(resolve("clone3", ScmpArch::X8664), Some(435));
        assert_eq!(resolve("mount_setattr", ScmpArch::X8664), Some(442));
        assert_eq!(resolve("no_such_call", ScmpArch::X8664), None);
    }

    #[test]
    fn native_numbers_have_names() {
        for name in ["read", "socket", "ioctl", "clone3", "openat2"] {
            assert_eq!(name_native(resolve_native(name).unwrap()).as_deref(), Some(name));
        }
    }

    #[test]
    fn resolves_aarch64_names() {
        assert_eq!(resolve("read", ScmpArch::Aarch64), Some(63));
        assert_eq!(resolve("ioctl", ScmpArch::Aarch64), Some(29));
        assert!(is_known("open"));
        assert!(!is_known("no_such_call"));
    }

    #[test]
    fn every_name_the_policy_language_accepts_resolves() {
        let names = oz_profiles::seccomp::names::all();
        assert!(names.len() > 400);
        for name in names {
            assert!(is_known(name), "{name}: accepted by the parser, unknown to libseccomp");
        }
    }
}
