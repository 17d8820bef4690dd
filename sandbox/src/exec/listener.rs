//! Handing a seccomp user-notification listener from the forked child, which must install the
//! filter on itself, to the parent: once the filter is in, a call the filter denies is a
//! notification that only the listener's holder can answer, so the child cannot send the fd
//! (sendmsg could wait forever for an answer to itself).
//!
//! The parent maps a shared page before fork. The child stores the listener's fd number there
//! and waits until the parent has copied the fd with `pidfd_getfd` and acknowledged. When the
//! filter lets the futex calls of the handoff run (checked before fork on the compiled filter
//! itself, [`crate::exec::SeccompFilter::allows`]), both sides sleep on the page with futexes
//! and wake each other; otherwise the child spins without a syscall and the parent checks every
//! millisecond. Either way the parent watches the exec error pipe, so a child that failed before
//! publishing is noticed, and gives up after a deadline (the caller kills the child).

use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// How long the parent waits for the child to publish its listener.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// No fd published yet.
const EMPTY: i32 = -1;

/// A page shared between the parent and its forked child.
pub struct Handoff {
    page: *mut AtomicI32,
    /// The filter lets the child's futex calls run: wait and wake with futexes, not spinning.
    futex: bool,
}

impl Handoff {
    /// Maps the page. `allows(nr, args)` says whether the filter the child installs lets that
    /// call run (no notification, no denial).
    pub fn new(allows: impl Fn(i64, &[u64; 6]) -> bool) -> Result<Handoff, Errno> {
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
        let mut h = Handoff { page: page as *mut AtomicI32, futex: false };
        h.slot(0).store(EMPTY, Ordering::SeqCst);
        h.slot(1).store(0, Ordering::SeqCst);
        // The child's calls, with the very arguments it passes.
        let wake = [h.addr(0), libc::FUTEX_WAKE as u64, 1, 0, 0, 0];
        let wait = [h.addr(1), libc::FUTEX_WAIT as u64, 0, 0, 0, 0];
        h.futex = allows(libc::SYS_futex, &wake) && allows(libc::SYS_futex, &wait);
        Ok(h)
    }

    /// Slot 0: the child's fd number; slot 1: the parent's acknowledgement.
    fn slot(&self, i: usize) -> &AtomicI32 {
        // SAFETY: the page is 4096 bytes, mapped for the life of `self`, zero-initialised or
        // written only through these atomics.
        unsafe { &*self.page.add(i) }
    }

    fn addr(&self, i: usize) -> u64 {
        self.slot(i) as *const AtomicI32 as u64
    }

    /// True when both sides wait on futexes rather than spinning and polling.
    pub fn sleeps(&self) -> bool {
        self.futex
    }

    /// In the child: publish `fd` and wait until the parent took it. Makes no syscall but the
    /// two futex calls checked in [`Handoff::new`], and none at all when they are not allowed.
    pub fn publish(&self, fd: RawFd) {
        self.slot(0).store(fd, Ordering::SeqCst);
        if self.futex {
            futex(self.slot(0), libc::FUTEX_WAKE, 1, None);
        }
        while self.slot(1).load(Ordering::SeqCst) == 0 {
            match self.futex {
                true => futex(self.slot(1), libc::FUTEX_WAIT, 0, None),
                false => std::hint::spin_loop(),
            }
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
        if self.futex {
            futex(self.slot(1), libc::FUTEX_WAKE, 1, None);
        }
        result
    }

    /// Waits for the child to publish, watching `err_pipe` (the exec error pipe) so a child that
    /// failed before publishing is noticed. `Ok(None)`: the error pipe became readable first.
    pub fn wait(&self, err_pipe: RawFd) -> Result<Option<RawFd>, Errno> {
        let end = Instant::now() + DEADLINE;
        let tick = libc::timespec { tv_sec: 0, tv_nsec: 1_000_000 };
        loop {
            if let Some(fd) = self.published() {
                return Ok(Some(fd));
            }
            // With futexes the child's wake ends this sleep at once; the error pipe is then
            // checked without waiting. Without, the pipe is the sleep.
            let timeout = match self.futex {
                true => {
                    futex(self.slot(0), libc::FUTEX_WAIT, EMPTY as u32, Some(&tick));
                    0
                }
                false => 1,
            };
            let mut pfd = libc::pollfd { fd: err_pipe, events: libc::POLLIN, revents: 0 };
            // SAFETY: poll on one valid pollfd for at most 1 ms.
            let n = unsafe { libc::poll(&mut pfd, 1, timeout) };
            if n > 0 {
                return Ok(self.published());
            }
            if Instant::now() > end {
                return Err(Errno::ETIMEDOUT);
            }
        }
    }
}

/// A futex call on a word of the shared page (not FUTEX_PRIVATE: two processes share it). Its
/// result does not matter: every caller re-checks the word.
fn futex(word: &AtomicI32, op: libc::c_int, val: u32, timeout: Option<&libc::timespec>) {
    let timeout = timeout.map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: futex on a live, aligned word of a shared mapping; `timeout` is null or points at
    // a timespec that outlives the call.
    unsafe { libc::syscall(libc::SYS_futex, word as *const AtomicI32, op, val, timeout) };
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

    /// Forks a child that publishes the write end of a pipe; the parent takes it and writes.
    fn hand_over(h: &Handoff) {
        let (r, w) = nix::unistd::pipe().unwrap();
        let (er, ew) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        // SAFETY: the child only stores to shared memory, waits and _exits.
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

    #[test]
    fn a_forked_child_hands_over_a_descriptor_sleeping_on_futexes() {
        let h = Handoff::new(|nr, args| nr == libc::SYS_futex && args[1] <= 1).unwrap();
        assert!(h.sleeps());
        hand_over(&h);
    }

    #[test]
    fn a_forked_child_hands_over_a_descriptor_without_syscalls_when_futex_is_filtered() {
        let h = Handoff::new(|nr, _| nr != libc::SYS_futex).unwrap();
        assert!(!h.sleeps());
        hand_over(&h);
    }

    #[test]
    fn a_child_that_dies_before_publishing_is_noticed() {
        for futex in [true, false] {
            let h = Handoff::new(|_, _| futex).unwrap();
            let (er, ew) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
            // SAFETY: the child only _exits.
            match unsafe { nix::unistd::fork() }.unwrap() {
                nix::unistd::ForkResult::Child => unsafe { libc::_exit(3) },
                nix::unistd::ForkResult::Parent { child } => {
                    drop(ew);
                    assert_eq!(h.wait(er.as_raw_fd()).unwrap(), None);
                    nix::sys::wait::waitpid(child, None).unwrap();
                }
            }
        }
    }
}
