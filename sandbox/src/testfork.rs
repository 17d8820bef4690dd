//! Tests that change the calling process for good (Landlock, namespaces) run in a forked child.

/// Runs `f` in a forked child and asserts it succeeded. `f` returns the number of the step that
/// failed, which becomes the child's exit status, so a failure names its step.
pub fn assert_in_child(f: impl FnOnce() -> Result<(), i32>) {
    // SAFETY: the child only runs `f`, which makes syscalls, and leaves with _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let code = f().err().unwrap_or(0);
            // SAFETY: leave the forked test child without running the parent's destructors.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            let st = nix::sys::wait::waitpid(child, None).unwrap();
            assert_eq!(st, nix::sys::wait::WaitStatus::Exited(child, 0));
        }
    }
}
