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
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/compat/oz-profiles/generic-blacklist.seccomp"
        );
        let generic = crate::seccomp::load_policy_file(path, &[]).unwrap();
        for rule in &generic.rules {
            assert!(
                names.contains(&rule.syscall.as_str()),
                "{} missing",
                rule.syscall
            );
        }
        for extra in [
            "bpf",
            "userfaultfd",
            "io_uring_setup",
            "setns",
            "kcmp",
            "clone",
            "clone3",
        ] {
            assert!(names.contains(&extra), "{extra} missing");
        }
    }

    #[test]
    fn training_whitelist_allows_execve() {
        assert_eq!(training_whitelist().rules[0].syscall, "execve");
    }
}
