//! Sending and receiving whole frames together with file descriptors (SCM_RIGHTS) on
//! SOCK_STREAM and SOCK_SEQPACKET unix sockets. Received fds are `OwnedFd`s, close-on-exec
//! (MSG_CMSG_CLOEXEC); a message with more fds than the caller's cap is an error and every fd
//! it carried is closed.

use crate::error::{Result, WireError};
use crate::frame::{self, HEADER_LEN};
use nix::errno::Errno;
use nix::sys::socket::{
    self, sendmsg, setsockopt, sockopt, AddressFamily, ControlMessage, MsgFlags, SockFlag, SockType,
};
use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Default cap on the fds accepted with one message (stdio needs 3).
pub const DEFAULT_MAX_FDS: usize = 4;

/// The unix socket types oz speaks over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    /// Byte stream: frames are delimited by their length prefix (control socket).
    Stream,
    /// Sequenced packets: one frame per packet (agent channels).
    SeqPacket,
}

/// Limits applied when receiving on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_frame: u32,
    pub max_fds: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_frame: frame::DEFAULT_MAX_FRAME, max_fds: DEFAULT_MAX_FDS }
    }
}

/// A connected SOCK_SEQPACKET pair, both ends close-on-exec.
pub fn seqpacket_pair() -> Result<(OwnedFd, OwnedFd)> {
    socket::socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .map_err(|e| WireError::io("socketpair", e.into()))
}

/// Set (or clear, with None) SO_RCVTIMEO: a blocking receive then fails with `Timeout`.
pub fn set_read_timeout(fd: BorrowedFd<'_>, timeout: Option<Duration>) -> Result<()> {
    let tv = nix::sys::time::TimeVal::from(libc::timeval {
        tv_sec: timeout.map_or(0, |t| t.as_secs() as libc::time_t),
        tv_usec: timeout.map_or(0, |t| t.subsec_micros().max(u32::from(t.is_zero())) as libc::suseconds_t),
    });
    setsockopt(&fd, sockopt::ReceiveTimeout, &tv).map_err(|e| WireError::io("set SO_RCVTIMEO", e.into()))
}

/// Send one complete frame (header included) with `fds` attached to its first byte.
pub fn send_frame(fd: BorrowedFd<'_>, kind: SocketKind, frame: &[u8], fds: &[BorrowedFd<'_>]) -> Result<()> {
    let mut sent = send_chunk(fd, frame, fds).map_err(|e| WireError::io("sendmsg", e))?;
    if kind == SocketKind::SeqPacket && sent != frame.len() {
        return Err(WireError::LengthMismatch { declared: frame.len() as u64, packet: sent as u64 });
    }
    while sent < frame.len() {
        match socket::send(fd.as_raw_fd(), &frame[sent..], MsgFlags::MSG_NOSIGNAL) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(WireError::io("send", e.into())),
            Ok(n) => sent += n,
        }
    }
    Ok(())
}

/// Encode, frame and send a message with fds.
pub fn send_msg<T: serde::Serialize>(
    fd: BorrowedFd<'_>,
    kind: SocketKind,
    msg: &T,
    fds: &[BorrowedFd<'_>],
    max_frame: u32,
) -> Result<()> {
    send_frame(fd, kind, &frame::encode_frame(msg, max_frame)?, fds)
}

/// What one `recvmsg` returned.
#[derive(Debug)]
pub struct Chunk {
    /// Bytes received (for SOCK_SEQPACKET with MSG_TRUNC in `flags`: the packet's real size).
    pub len: usize,
    /// The data did not fit the buffer (MSG_TRUNC in the returned flags).
    pub truncated: bool,
    /// More fds were sent than fit the control buffer (MSG_CTRUNC); the extras were closed.
    pub fds_truncated: bool,
}

/// One `recvmsg` into `buf`, appending received fds (close-on-exec) to `fds`. Errors are raw I/O
/// errors (EAGAIN included) so that this also serves non-blocking callers. Fds that arrive with a
/// truncated control buffer are collected too (and closed by the caller), never leaked.
pub fn recv_chunk(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    max_fds: usize,
    flags: MsgFlags,
) -> io::Result<Chunk> {
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE((max_fds.max(1) * std::mem::size_of::<RawFd>()) as u32) } as usize;
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut cmsg_buf = vec![0u64; space.div_ceil(8)];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut mhdr: libc::msghdr = unsafe { std::mem::zeroed() };
    mhdr.msg_iov = &mut iov;
    mhdr.msg_iovlen = 1;
    mhdr.msg_control = cmsg_buf.as_mut_ptr().cast();
    mhdr.msg_controllen = space as _;
    let flags = (flags | MsgFlags::MSG_CMSG_CLOEXEC).bits();
    let n = loop {
        // SAFETY: mhdr points at iov/buf and cmsg_buf, which outlive the call and have the
        // lengths given.
        let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut mhdr, flags) };
        if n >= 0 {
            break n as usize;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    collect_fds(&mhdr, fds);
    Ok(Chunk {
        len: n,
        truncated: mhdr.msg_flags & libc::MSG_TRUNC != 0,
        fds_truncated: mhdr.msg_flags & libc::MSG_CTRUNC != 0,
    })
}

/// Take ownership of every fd in the SCM_RIGHTS messages of `mhdr`'s control buffer.
fn collect_fds(mhdr: &libc::msghdr, fds: &mut Vec<OwnedFd>) {
    // SAFETY: mhdr's control pointer and length describe the buffer recvmsg just filled; the
    // CMSG_* macros stay within msg_controllen.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(mhdr) };
    while !cmsg.is_null() {
        // SAFETY: cmsg is non-null and within the control buffer (CMSG_FIRSTHDR/CMSG_NXTHDR).
        let hdr = unsafe { &*cmsg };
        if hdr.cmsg_level == libc::SOL_SOCKET && hdr.cmsg_type == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) is a pure size computation.
            let data_len = hdr.cmsg_len as usize - unsafe { libc::CMSG_LEN(0) } as usize;
            // SAFETY: CMSG_DATA points at data_len bytes of this cmsg.
            let data = unsafe { libc::CMSG_DATA(cmsg) };
            for i in 0..data_len / std::mem::size_of::<RawFd>() {
                // SAFETY: reading the i-th int of the SCM_RIGHTS payload (possibly unaligned).
                let raw = unsafe { std::ptr::read_unaligned(data.cast::<RawFd>().add(i)) };
                // SAFETY: the kernel just installed this fd for us; nothing else owns it.
                fds.push(unsafe { OwnedFd::from_raw_fd(raw) });
            }
        }
        // SAFETY: as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(mhdr, cmsg) };
    }
}

/// Receive one frame's payload and its fds. On a blocking socket an SO_RCVTIMEO expiry is
/// `Timeout`; on a non-blocking socket nothing pending is an `Io` error of kind WouldBlock
/// (see [`WireError::is_would_block`]).
pub fn recv_frame(fd: BorrowedFd<'_>, kind: SocketKind, limits: Limits) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut fds = Vec::new();
    let payload = match kind {
        SocketKind::SeqPacket => recv_packet(fd, limits, &mut fds, MsgFlags::empty())?,
        SocketKind::Stream => recv_stream(fd, limits, &mut fds)?,
    };
    if fds.len() > limits.max_fds {
        return Err(WireError::TooManyFds { got: fds.len(), max: limits.max_fds });
    }
    Ok((payload, fds))
}

/// Receive and decode one message with its fds.
pub fn recv_msg<T: serde::de::DeserializeOwned>(
    fd: BorrowedFd<'_>,
    kind: SocketKind,
    limits: Limits,
) -> Result<(T, Vec<OwnedFd>)> {
    let (payload, fds) = recv_frame(fd, kind, limits)?;
    Ok((frame::decode(&payload)?, fds))
}

fn recv_io(op: &'static str, e: io::Error) -> WireError {
    WireError::Io { op, source: e }
}

/// One packet = one frame. Peek at the header and the packet's true size first, so that nothing
/// larger than the cap is allocated; an oversized packet is consumed and dropped.
fn recv_packet(fd: BorrowedFd<'_>, limits: Limits, fds: &mut Vec<OwnedFd>, extra: MsgFlags) -> Result<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    let peek = recv_chunk(fd, &mut header, &mut Vec::new(), 0, extra | MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC)
        .map_err(|e| recv_io("recvmsg peek", e))?;
    // fds duplicated by MSG_PEEK went into the temporary vector above and are closed.
    if peek.len == 0 {
        // A zero-length packet is never sent by oz; on SOCK_SEQPACKET 0 also means EOF.
        let consumed =
            recv_chunk(fd, &mut header, fds, limits.max_fds, MsgFlags::empty()).map_err(|e| recv_io("recvmsg", e))?;
        fds.clear();
        return Err(if consumed.len == 0 {
            WireError::Closed
        } else {
            WireError::UnexpectedEof { got: 0, expected: HEADER_LEN }
        });
    }
    let packet_len = peek.len;
    let max_packet = HEADER_LEN + limits.max_frame as usize;
    if packet_len > max_packet {
        discard_packet(fd);
        return Err(WireError::TooLarge { len: (packet_len - HEADER_LEN) as u64, max: limits.max_frame });
    }
    let mut buf = vec![0u8; packet_len];
    let chunk = recv_chunk(fd, &mut buf, fds, limits.max_fds, MsgFlags::empty()).map_err(|e| recv_io("recvmsg", e))?;
    if chunk.fds_truncated {
        let got = fds.len();
        fds.clear();
        return Err(WireError::TooManyFds { got: got + 1, max: limits.max_fds });
    }
    if chunk.truncated {
        fds.clear();
        return Err(WireError::Truncated { buf: buf.len() });
    }
    buf.truncate(chunk.len);
    if let Err(e) = frame::unframe(&buf, limits.max_frame) {
        fds.clear();
        return Err(e);
    }
    buf.drain(..HEADER_LEN);
    Ok(buf)
}

/// Receive one SOCK_SEQPACKET frame without blocking (MSG_DONTWAIT), whatever the socket's
/// O_NONBLOCK flag: nothing pending is an `Io` error with [`WireError::is_would_block`]. For
/// readiness-driven callers (tokio `AsyncFd`).
pub fn try_recv_packet(fd: BorrowedFd<'_>, limits: Limits) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut fds = Vec::new();
    let payload = recv_packet(fd, limits, &mut fds, MsgFlags::MSG_DONTWAIT)?;
    if fds.len() > limits.max_fds {
        return Err(WireError::TooManyFds { got: fds.len(), max: limits.max_fds });
    }
    Ok((payload, fds))
}

/// One `sendmsg` of (the start of) `bytes` with `fds` attached; returns the bytes sent. Raw I/O
/// errors (EAGAIN included), for non-blocking callers that send the rest themselves.
pub fn send_chunk(fd: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> io::Result<usize> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsgs };
    loop {
        match sendmsg::<()>(fd.as_raw_fd(), &[IoSlice::new(bytes)], cmsgs, MsgFlags::MSG_NOSIGNAL, None) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(n) => return Ok(n),
        }
    }
}

/// Drop the pending packet and any fds it carries.
fn discard_packet(fd: BorrowedFd<'_>) {
    let mut small = [0u8; HEADER_LEN];
    let mut fds = Vec::new();
    let _ = recv_chunk(fd, &mut small, &mut fds, DEFAULT_MAX_FDS, MsgFlags::empty());
}

fn recv_stream(fd: BorrowedFd<'_>, limits: Limits, fds: &mut Vec<OwnedFd>) -> Result<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    let got = recv_exact(fd, &mut header, fds, limits)?;
    if got == 0 {
        return Err(WireError::Closed);
    }
    if got < HEADER_LEN {
        return Err(WireError::UnexpectedEof { got, expected: HEADER_LEN });
    }
    let len = frame::parse_header(header, limits.max_frame)?;
    let mut payload = vec![0u8; len];
    let got = recv_exact(fd, &mut payload, fds, limits)?;
    if got < len {
        return Err(WireError::UnexpectedEof { got: HEADER_LEN + got, expected: HEADER_LEN + len });
    }
    Ok(payload)
}

/// Fill `buf` from a stream socket unless EOF comes first, collecting fds.
fn recv_exact(fd: BorrowedFd<'_>, buf: &mut [u8], fds: &mut Vec<OwnedFd>, limits: Limits) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        let room = limits.max_fds.saturating_sub(fds.len());
        let chunk = recv_chunk(fd, &mut buf[got..], fds, room, MsgFlags::empty()).map_err(|e| recv_io("recvmsg", e))?;
        if chunk.fds_truncated {
            let got_fds = fds.len();
            fds.clear();
            return Err(WireError::TooManyFds { got: got_fds + 1, max: limits.max_fds });
        }
        if chunk.len == 0 {
            break;
        }
        got += chunk.len;
    }
    Ok(got)
}

impl WireError {
    /// True for EAGAIN on a non-blocking socket (no complete message available yet).
    pub fn is_would_block(&self) -> bool {
        matches!(self, WireError::Io { source, .. } if source.kind() == io::ErrorKind::WouldBlock)
    }

    /// Map EAGAIN of a blocking socket with SO_RCVTIMEO to `Timeout`.
    pub(crate) fn blocking(self) -> WireError {
        if self.is_would_block() {
            WireError::Timeout
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests;
