//! A level-triggered epoll instance: the forwarders' sockets are many and change often, so
//! they are watched by one epoll fd that the agent's poll() loop includes.

use nix::errno::Errno;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub struct Epoll(OwnedFd);

pub const IN: u32 = libc::EPOLLIN as u32;
pub const OUT: u32 = libc::EPOLLOUT as u32;
pub const ERR: u32 = (libc::EPOLLERR | libc::EPOLLHUP) as u32;

impl Epoll {
    pub fn new() -> Result<Epoll, Errno> {
        // SAFETY: plain syscall; the fd returned is owned below.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(Errno::last());
        }
        // SAFETY: a fresh descriptor from the kernel.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> Result<(), Errno> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: valid epoll fd and event struct.
        let rc = unsafe { libc::epoll_ctl(self.0.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            return Err(Errno::last());
        }
        Ok(())
    }

    pub fn add(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> Result<(), Errno> {
        self.ctl(libc::EPOLL_CTL_ADD, fd.as_raw_fd(), events, token)
    }

    pub fn modify(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> Result<(), Errno> {
        self.ctl(libc::EPOLL_CTL_MOD, fd.as_raw_fd(), events, token)
    }

    pub fn delete(&self, fd: BorrowedFd<'_>) {
        let _ = self.ctl(libc::EPOLL_CTL_DEL, fd.as_raw_fd(), 0, 0);
    }

    /// The events ready now (never blocks): (events, token).
    pub fn ready(&self, max: usize) -> Vec<(u32, u64)> {
        let mut evs = vec![libc::epoll_event { events: 0, u64: 0 }; max];
        // SAFETY: the buffer holds `max` events.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), evs.as_mut_ptr(), max as i32, 0) };
        evs.truncate(n.max(0) as usize);
        evs.into_iter().map(|e| (e.events, e.u64)).collect()
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}
