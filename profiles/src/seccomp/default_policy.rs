//! Built-in policies: oz's default blacklist and the training whitelist.

use std::path::Path;

use super::ir::Policy;
use super::parser::parse_policy;

/// Origin of [`default_blacklist`] in errors.
pub const DEFAULT_BLACKLIST_ORIGIN: &str = "<builtin:default-blacklist>";
/// Origin of [`training_whitelist`] in errors.
pub const TRAINING_ORIGIN: &str = "<builtin:training>";

/// The original's generic blacklist (`blacklist-generic.seccomp`) plus the kernel attack surface
/// and escape routes added since. Denied calls fail with EPERM so applications degrade.
pub const DEFAULT_BLACKLIST: &str = "\
# The original Oz generic blacklist (blacklist-generic.seccomp)
acct: 1
add_key: 1
delete_module: 1
finit_module: 1
get_mempolicy: 1
init_module: 1
io_cancel: 1
io_destroy: 1
io_getevents: 1
ioperm: 1
iopl: 1
io_setup: 1
kexec_load: 1
keyctl: 1
mbind: 1
migrate_pages: 1
modify_ldt: 1
mount: 1
move_pages: 1
open_by_handle_at: 1
perf_event_open: 1
pivot_root: 1
ptrace: 1
remap_file_pages: 1
request_key: 1
set_mempolicy: 1
get_robust_list: 1
set_thread_area: 1
swapoff: 1
swapon: 1
syslog: 1
umount2: 1
unshare: 1
uselib: 1
vmsplice: 1

# Added by oz: kernel attack surface and namespace or process escapes
bpf: 1
userfaultfd: 1
io_uring_setup: 1
io_uring_enter: 1
io_uring_register: 1
setns: 1
process_vm_readv: 1
process_vm_writev: 1
kcmp: 1
name_to_handle_at: 1
kexec_file_load: 1
chroot: 1

# What Docker's default profile (moby profiles/seccomp/default.json) leaves out, or grants
# only with a capability the sandbox never has. One reason each; kept out of this list are
# calls desktop programs need, and calls that do not exist on x86_64 (stime, umount, vm86,
# vm86old: the filter kills every non-native architecture anyway).
# Setting the clock needs CAP_SYS_TIME; glibc reads the clock with clock_gettime, not these.
clock_adjtime: 1
clock_settime: 1
settimeofday: 1
# Disk quotas are administration (CAP_SYS_ADMIN in Docker).
quotactl: 1
quotactl_fd: 1
# Obsolete filesystem queries: /proc/filesystems and statfs answer the same.
sysfs: 1
ustat: 1
# Hangs up the controlling terminal of other sessions (CAP_SYS_TTY_CONFIG in Docker).
vhangup: 1
# Profiling and NFS daemon interfaces, removed or root-only: nothing to gain, surface only.
lookup_dcookie: 1
nfsservctl: 1
_sysctl: 1
# Kernel modules from before 2.6 (ENOSYS today); the modern ones are denied above.
create_module: 1
get_kernel_syms: 1
query_module: 1
# Rebooting is the host's business (CAP_SYS_BOOT in Docker).
reboot: 1
# Whole-filesystem event monitoring (CAP_SYS_ADMIN in Docker); inotify serves desktop programs.
fanotify_init: 1
# Another process's fds and memory advice: the ptrace family, denied like ptrace.
pidfd_getfd: 1
process_madvise: 1
# NUMA policy, like mbind and set_mempolicy above (CAP_SYS_NICE in Docker).
set_mempolicy_home_node: 1
# The sandbox's UTS names are set by oz (CAP_SYS_ADMIN in Docker).
sethostname: 1
setdomainname: 1
# Execution domains other than Linux, PER_LINUX32, UNAME26 and the query, as Docker allows:
# ADDR_NO_RANDOMIZE would turn ASLR off, READ_IMPLIES_EXEC make data executable.
personality: arg0 != 0 && arg0 != 0x8 && arg0 != 0x20000 && arg0 != 0x20008 && arg0 != 0xffffffff

# The new mount API
fsopen: 1
fsmount: 1
fsconfig: 1
fspick: 1
move_mount: 1
open_tree: 1
mount_setattr: 1

# New namespaces through clone; clone3 passes its flags in memory seccomp cannot read, so it
# fails with ENOSYS and libc falls back to clone (as flatpak does).
NAMESPACE_FLAGS = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP | CLONE_NEWTIME
clone: arg0 &? NAMESPACE_FLAGS
clone3: return ENOSYS
";

/// What the original trained with (`training-generic.seccomp`): only execve is expected.
pub const TRAINING_WHITELIST: &str = "execve: 1\n";

/// oz's built-in default blacklist, parsed.
pub fn default_blacklist() -> Policy {
    parse_builtin(DEFAULT_BLACKLIST, DEFAULT_BLACKLIST_ORIGIN)
}

/// The whitelist used by `train` mode when the profile names none.
pub fn training_whitelist() -> Policy {
    parse_builtin(TRAINING_WHITELIST, TRAINING_ORIGIN)
}

fn parse_builtin(text: &str, origin: &str) -> Policy {
    // The texts are constants covered by the tests below; failing here is a bug in oz.
    parse_policy(text, Path::new(origin)).unwrap_or_else(|e| panic!("built-in policy: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_blacklist_covers_the_generic_list_and_more() {
        let p = default_blacklist();
        let names: Vec<&str> = p.rules.iter().map(|r| r.syscall.as_str()).collect();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/compat/oz-profiles/generic-blacklist.seccomp");
        let generic = crate::seccomp::load_policy_file(path, &[]).unwrap();
        for rule in &generic.rules {
            assert!(names.contains(&rule.syscall.as_str()), "{} missing", rule.syscall);
        }
        for extra in [
            "bpf",
            "userfaultfd",
            "io_uring_setup",
            "setns",
            "kcmp",
            "clone",
            "clone3",
            "clock_adjtime",
            "clock_settime",
            "settimeofday",
            "quotactl",
            "sysfs",
            "ustat",
            "vhangup",
            "lookup_dcookie",
            "nfsservctl",
            "_sysctl",
            "personality",
        ] {
            assert!(names.contains(&extra), "{extra} missing");
        }
    }

    #[test]
    fn training_whitelist_allows_execve() {
        assert_eq!(training_whitelist().rules[0].syscall, "execve");
    }
}
