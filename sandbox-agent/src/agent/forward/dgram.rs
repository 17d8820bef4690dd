//! Datagram forwarding (udp, unixgram): the bound socket receives from any number of peers;
//! each peer gets a session, a socket connected to the far end, so that replies find their way
//! back. Each datagram is moved whole (one receive, one send) in the agent's loop. Sessions are
//! bounded: the least recently used one is closed when a new peer would exceed the cap, and
//! idle ones are closed after [`IDLE`].

use nix::errno::Errno;
use nix::sys::socket::{self as sock, MsgFlags, SockaddrLike, SockaddrStorage};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// A session without traffic for this long is closed.
pub const IDLE: Duration = Duration::from_secs(120);
/// Largest datagram forwarded (the largest a UDP packet can be).
pub const MAX_DATAGRAM: usize = 65536;

pub struct Session {
    /// The peer's address on the listening side (None: an unnamed unix peer, which cannot get
    /// replies).
    pub peer: Option<SockaddrStorage>,
    key: Vec<u8>,
    pub sock: OwnedFd,
    pub last: Instant,
}

fn key(addr: &Option<SockaddrStorage>) -> Vec<u8> {
    match addr {
        // SAFETY: as_ptr/len describe the initialised sockaddr inside the storage.
        Some(a) => unsafe { std::slice::from_raw_parts(a.as_ptr().cast::<u8>(), a.len() as usize) }.to_vec(),
        None => Vec::new(),
    }
}

/// The sessions of one datagram forwarder, keyed by the peer's address.
#[derive(Default)]
pub struct Sessions {
    pub list: Vec<(u64, Session)>,
}

impl Sessions {
    pub fn find(&self, peer: &Option<SockaddrStorage>) -> Option<u64> {
        let k = key(peer);
        self.list.iter().find(|(_, s)| s.key == k).map(|(id, _)| *id)
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Session> {
        self.list.iter_mut().find(|(i, _)| *i == id).map(|(_, s)| s)
    }

    pub fn insert(&mut self, id: u64, peer: Option<SockaddrStorage>, sock: OwnedFd) {
        let key = key(&peer);
        self.list.push((id, Session { peer, key, sock, last: Instant::now() }));
    }

    pub fn remove(&mut self, id: u64) -> Option<Session> {
        let i = self.list.iter().position(|(i, _)| *i == id)?;
        Some(self.list.swap_remove(i).1)
    }

    /// The session unused for longest.
    pub fn oldest(&self) -> Option<u64> {
        self.list.iter().min_by_key(|(_, s)| s.last).map(|(id, _)| *id)
    }

    /// Sessions idle since before `now - IDLE`.
    pub fn idle(&self, now: Instant) -> Vec<u64> {
        self.list.iter().filter(|(_, s)| now.duration_since(s.last) >= IDLE).map(|(id, _)| *id).collect()
    }
}

/// Receive one datagram from the bound socket: Ok(None) when none is pending.
pub fn recv_from(fd: &OwnedFd, buf: &mut [u8]) -> Result<Option<(usize, Option<SockaddrStorage>)>, Errno> {
    match sock::recvfrom::<SockaddrStorage>(fd.as_raw_fd(), buf) {
        Ok((n, from)) => Ok(Some((n, from))),
        Err(Errno::EAGAIN) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Receive one datagram from a session's connected socket: Ok(None) when none is pending.
pub fn recv(fd: &OwnedFd, buf: &mut [u8]) -> Result<Option<usize>, Errno> {
    match sock::recv(fd.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
        Ok(n) => Ok(Some(n)),
        Err(Errno::EAGAIN) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Send one datagram on a session's connected socket; a full buffer drops it (datagram
/// semantics), a refused peer is reported.
pub fn send(fd: &OwnedFd, data: &[u8]) -> Result<(), Errno> {
    match sock::send(fd.as_raw_fd(), data, MsgFlags::MSG_DONTWAIT) {
        Ok(_) | Err(Errno::EAGAIN) | Err(Errno::ENOBUFS) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Send a reply back to `peer` through the bound socket.
pub fn send_to(fd: &OwnedFd, data: &[u8], peer: &SockaddrStorage) -> Result<(), Errno> {
    match sock::sendto(fd.as_raw_fd(), data, peer, MsgFlags::MSG_DONTWAIT) {
        Ok(_) | Err(Errno::EAGAIN) | Err(Errno::ENOBUFS) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType, UnixAddr};

    fn sock() -> OwnedFd {
        socketpair(AddressFamily::Unix, SockType::Datagram, None, SockFlag::SOCK_CLOEXEC).unwrap().0
    }

    fn peer(name: &str) -> Option<SockaddrStorage> {
        let a = UnixAddr::new_abstract(name.as_bytes()).unwrap();
        // SAFETY: a valid sockaddr_un and its length.
        unsafe { SockaddrStorage::from_raw(a.as_ptr().cast(), Some(a.len())) }
    }

    #[test]
    fn sessions_by_peer_oldest_and_idle() {
        let mut s = Sessions::default();
        s.insert(1, peer("a"), sock());
        s.insert(2, peer("b"), sock());
        s.insert(3, None, sock());
        assert_eq!(s.find(&peer("b")), Some(2));
        assert_eq!(s.find(&None), Some(3));
        assert_eq!(s.find(&peer("c")), None);
        s.get_mut(1).unwrap().last += Duration::from_secs(1);
        assert_eq!(s.oldest(), Some(2));
        let later = Instant::now() + IDLE + Duration::from_millis(500);
        assert_eq!(s.idle(later).len(), 2, "the one used a second later is not idle yet");
        assert!(s.remove(2).is_some() && s.remove(2).is_none());
        assert_eq!(s.list.len(), 2);
    }
}
