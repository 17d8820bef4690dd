//! Handing a seccomp user-notification listener from the forked child, which must install the
//! filter on itself, to the parent, without a syscall in the child: once the filter is in, any
//! call may be a notification that only the listener's holder can answer, so the child cannot
//! send the fd (sendmsg could wait forever for an answer to itself).
//!
//! The parent maps a shared page before fork. The child stores the listener's fd number there
//! and spins on the page (plain memory, no syscall) until the parent has copied the fd with
//! `pidfd_getfd` and acknowledged. The parent waits for that with a deadline, and kills the child
//! when it passes.

use nix::errno::Errno;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How long the parent waits for the child to publish its listener.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// No fd published yet.
const EMPTY: i32 = -1;

/// A page shared between the parent and its forked child.
pub struct Handoff {
    page: *mut AtomicI32,
}

impl Handoff {
    pub fn new() -> Result<Handoff, Errno> {
        // SAFETY: a fresh anonymous shared mapping; the result is checked.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let h = Handoff { page: page as *mut AtomicI32 };
        h.slot(0).store(EMPTY, Ordering::SeqCst);
        h.slot(1).store(0, Ordering::SeqCst);
        Ok(h)
    }

    /// Slot 0: the child's fd number; slot 1: the parent's acknowledgement.
    fn slot(&self, i: usize) -> &AtomicI32 {
        // SAFETY: the page is 4096 bytes, mapped for the life of `self`, zero-initialised or
        // written only through these atomics.
        unsafe { &*self.page.add(i) }
    }

    /// In the child: publish `fd` and wait (spinning, no syscall) until the parent took it.
    pub fn publish(&self, fd: RawFd) {
        self.slot(0).store(fd, Ordering::SeqCst);
        while self.slot(1).load(Ordering::SeqCst) == 0 {
            std::hint::spin_loop();
        }
    }

    /// In the parent: the fd the child published, if it did yet.
    pub fn published(&self) -> Option<RawFd> {
        Some(self.slot(0).load(Ordering::SeqCst)).filter(|fd| *fd != EMPTY)
    }

    /// In the parent: copy the child's fd `fd` and let the child go on.
    pub fn take(&self, child: libc::pid_t, fd: RawFd) -> Result<OwnedFd, Errno> {
        let result = copy_fd(child, fd);
        self.slot(1).store(1, Ordering::SeqCst);
        result
    }

    /// Waits for the child to publish, polling `until_readable` (the exec error pipe) so a child
    /// that failed before publishing is noticed. `Ok(None)`: the pipe became readable first.
    pub fn wait(&self, err_pipe: RawFd) -> Result<Option<RawFd>, Errno> {
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(fd) = self.published() {
                return Ok(Some(fd));
            }
            let mut pfd = libc::pollfd { fd: err_pipe, events: libc::POLLIN, revents: 0 };
            // SAFETY: poll on one valid pollfd for at most 1 ms.
            let n = unsafe { libc::poll(&mut pfd, 1, 1) };
            if n > 0 {
                return Ok(self.published());
            }
            if Instant::now() > end {
                return Err(Errno::ETIMEDOUT);
            }
        }
    }
}

impl Drop for Handoff {
    fn drop(&mut self) {
        // SAFETY: unmapping the page mapped in `new`; no reference outlives `self`.
        unsafe { libc::munmap(self.page as *mut libc::c_void, 4096) };
    }
}

/// `pidfd_getfd` of `child`'s descriptor `fd` (close-on-exec in this process).
fn copy_fd(child: libc::pid_t, fd: RawFd) -> Result<OwnedFd, Errno> {
    // SAFETY: pidfd_open takes a pid and flags; the result is checked.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child, 0) };
    if pidfd < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `pidfd` is a fresh descriptor nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as RawFd) };
    use std::os::fd::AsRawFd;
    // SAFETY: pidfd_getfd with a valid pidfd, a target fd number and no flags.
    let copy = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if copy < 0 {
        return Err(Errno::last());
    }
    // SAFETY: a fresh descriptor the kernel just gave us.
    Ok(unsafe { OwnedFd::from_raw_fd(copy as RawFd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_hands_over_a_descriptor_without_syscalls() {
        let h = Handoff::new().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let (er, ew) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: the child only stores to shared memory, spins and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                h.publish(w.as_raw_fd());
                // SAFETY: leave without running the test harness's destructors.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(ew);
                let fd = h.wait(er.as_raw_fd()).unwrap().expect("published");
                let copy = h.take(child.as_raw(), fd).unwrap();
                drop(w);
                nix::sys::wait::waitpid(child, None).unwrap();
                nix::unistd::write(&copy, b"x").unwrap();
                let mut b = [0u8; 1];
                assert_eq!(nix::unistd::read(r.as_raw_fd(), &mut b).unwrap(), 1);
            }
        }
    }
}
