//! The daemon's end of an agent channel: a non-blocking SOCK_SEQPACKET socket under the tokio
//! reactor, and a bounded queue of frames waiting for it to become writable. No agent can make
//! the daemon wait: a receive or send that would block returns at once, and a request that does
//! not fit the queue is refused. The first frame each way is a bare `Hello`; every later frame is
//! an envelope with a request id (`oz_wire::AgentRequest`, `oz_wire::AgentMessage`).

use oz_wire::channel::decode_message_of;
use oz_wire::channel::AGENT_MAX_MESSAGE;
use oz_wire::fdpass::{self, Limits};
use oz_wire::{
    frame, AgentMessage, AgentRequest, AgentToDaemon, DaemonToAgent, RequestId, WireError, PROTOCOL_VERSION,
};
use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// An answer from the agent and the fds that came with it.
pub type Answer = (AgentToDaemon, Vec<OwnedFd>);
/// A message from the agent (in its envelope) and the fds that came with it.
pub type Incoming = (AgentMessage, Vec<OwnedFd>);

/// Most messages queued for one agent.
pub const MAX_QUEUED: usize = 32;
/// Most bytes queued for one agent.
pub const MAX_QUEUED_BYTES: usize = 2 << 20;
/// Bytes of the socket's send buffer the kernel keeps for itself on a unix datagram.
const SNDBUF_OVERHEAD: usize = 32;

/// The daemon's async end of an agent channel.
pub struct AgentIo {
    fd: AsyncFd<OwnedFd>,
    limits: Limits,
    /// The largest frame (header included) one packet can carry on this socket.
    max_packet: usize,
    /// The agent's bare `Hello` has been received: envelopes follow.
    greeted: Cell<bool>,
    /// The agent's protocol version (older for an agent of a previous release).
    version: u32,
}

impl AgentIo {
    pub fn new(fd: OwnedFd) -> io::Result<AgentIo> {
        set_nonblocking(&fd)?;
        let sndbuf = nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::SndBuf).map_err(io::Error::from)?;
        let max_packet = (frame::HEADER_LEN + AGENT_MAX_MESSAGE as usize).min(sndbuf.saturating_sub(SNDBUF_OVERHEAD));
        // SAFETY: OwnedFd's as_raw_fd always returns the same open fd for as long as the
        // AsyncFd owns it.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE | Interest::WRITABLE) }?;
        Ok(AgentIo { fd, limits: Limits::default(), max_packet, greeted: Cell::new(false), version: PROTOCOL_VERSION })
    }

    /// A channel whose hello was exchanged already (a re-adopted agent), with an agent of
    /// protocol `version`.
    pub fn greeted(mut self, version: u32) -> AgentIo {
        self.greeted.set(true);
        self.version = version;
        self
    }

    /// The agent's protocol version.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The largest message payload one packet can carry (the frame header excluded).
    pub fn max_message(&self) -> usize {
        self.max_packet - frame::HEADER_LEN
    }

    /// Receive one message (waits for readiness; the socket never blocks).
    pub async fn recv(&self) -> Result<Incoming, WireError> {
        loop {
            let mut guard =
                self.fd.readable().await.map_err(|e| WireError::Io { op: "poll agent channel", source: e })?;
            let res = guard.try_io(|fd| match fdpass::try_recv_packet(fd.get_ref().as_fd(), self.limits) {
                Err(e) if e.is_would_block() => Err(io::ErrorKind::WouldBlock.into()),
                other => Ok(other),
            });
            // Err: would block (readiness cleared, wait again); Ok(Err(io)): cannot happen, the
            // closure maps every other outcome to Ok.
            if let Ok(Ok(r)) = res {
                let (payload, fds) = r?;
                if self.greeted.get() {
                    return Ok((decode_message_of(self.version, &payload)?, fds));
                }
                let msg: AgentToDaemon = frame::decode(&payload)?;
                self.greeted.set(matches!(msg, AgentToDaemon::Hello { .. }));
                return Ok((AgentMessage { re: None, msg }, fds));
            }
        }
    }

    /// Send one queued frame now if the socket takes it. WouldBlock clears the write readiness,
    /// so [`AgentIo::writable`] then waits for the agent to make room.
    pub fn try_send(&self, out: &Outgoing) -> io::Result<()> {
        self.fd.try_io(Interest::WRITABLE, |fd| {
            let fds: Vec<_> = out.fds.iter().map(|f| f.as_fd()).collect();
            let sent = fdpass::send_chunk(fd.as_fd(), &out.frame, &fds)?;
            if sent != out.frame.len() {
                return Err(io::Error::other(format!("sent {sent} of {} bytes in one packet", out.frame.len())));
            }
            Ok(())
        })
    }

    /// Wait until the socket may be writable again.
    pub async fn writable(&self) {
        let _ = self.fd.writable().await;
    }
}

fn set_nonblocking(fd: &OwnedFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL).map_err(io::Error::from)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map_err(io::Error::from)?;
    Ok(())
}

/// A frame waiting for the socket, with the fds it carries and the id of its request.
pub struct Outgoing {
    pub seq: u64,
    pub kind: &'static str,
    pub frame: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The message alone exceeds what one packet can carry.
    TooLarge { len: usize, max: usize },
    /// The queue is full.
    Full,
    /// The message does not encode.
    Encode(String),
}

/// The bounded queue of frames for one agent, oldest first.
#[derive(Default)]
pub struct Outbox {
    queue: VecDeque<Outgoing>,
    bytes: usize,
    next_seq: u64,
}

impl Outbox {
    /// Frame `msg` and queue it; returns its sequence number, the request id it carries (the
    /// `Hello` that opens the channel goes bare).
    pub fn push(&mut self, msg: &DaemonToAgent, fds: Vec<OwnedFd>, max_message: usize) -> Result<u64, QueueError> {
        let payload = match msg {
            DaemonToAgent::Hello { .. } => frame::encode(msg),
            _ => frame::encode(&AgentRequest { id: RequestId(self.next_seq), msg: msg.clone() }),
        }
        .map_err(|e| QueueError::Encode(e.to_string()))?;
        if payload.len() > max_message {
            return Err(QueueError::TooLarge { len: payload.len(), max: max_message });
        }
        if self.queue.len() >= MAX_QUEUED || self.bytes + payload.len() > MAX_QUEUED_BYTES {
            return Err(QueueError::Full);
        }
        let frame = frame::frame(&payload, u32::MAX).map_err(|e| QueueError::Encode(e.to_string()))?;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.bytes += frame.len();
        self.queue.push_back(Outgoing { seq, kind: msg.kind(), frame, fds });
        Ok(seq)
    }

    pub fn front(&self) -> Option<&Outgoing> {
        self.queue.front()
    }

    pub fn pop(&mut self) -> Option<Outgoing> {
        let out = self.queue.pop_front()?;
        self.bytes -= out.frame.len();
        Some(out)
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn mount(n: usize, len: usize) -> DaemonToAgent {
        let paths = (0..n).map(|i| PathBuf::from(format!("/home/u/{i:0>len$}"))).collect();
        DaemonToAgent::Mount { uid: 1000, paths, read_only: false }
    }

    #[test]
    fn too_large_names_the_size_and_limit() {
        let mut o = Outbox::default();
        match o.push(&mount(1000, 200), Vec::new(), AGENT_MAX_MESSAGE as usize) {
            Err(QueueError::TooLarge { len, max }) => {
                assert!(len > 200_000, "{len}");
                assert_eq!(max, AGENT_MAX_MESSAGE as usize);
            }
            other => panic!("{other:?}"),
        }
        assert!(o.is_empty());
    }

    #[test]
    fn queue_is_bounded_by_count_and_bytes() {
        let mut o = Outbox::default();
        for i in 0..MAX_QUEUED {
            assert_eq!(o.push(&DaemonToAgent::Ping, Vec::new(), 1024), Ok(i as u64));
        }
        assert_eq!(o.push(&DaemonToAgent::Ping, Vec::new(), 1024), Err(QueueError::Full));
        let first = o.pop().unwrap();
        assert_eq!((first.seq, first.kind), (0, "Ping"));
        assert_eq!(o.push(&DaemonToAgent::Ping, Vec::new(), 1024), Ok(MAX_QUEUED as u64));

        let mut o = Outbox::default();
        let big = mount(600, 200);
        let mut queued = 0;
        while o.push(&big, Vec::new(), 1 << 20).is_ok() {
            queued += 1;
        }
        assert!(queued * 600 * 200 <= MAX_QUEUED_BYTES && queued < MAX_QUEUED, "{queued}");
        while o.pop().is_some() {}
        assert_eq!(o.bytes, 0);
    }

    #[test]
    fn socket_cap_fits_the_kernel_limit() {
        let (a, _b) = fdpass::seqpacket_pair().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
        rt.block_on(async {
            let io = AgentIo::new(a).unwrap();
            assert!(io.max_message() <= AGENT_MAX_MESSAGE as usize);
            // A frame of exactly the cap goes through in one packet.
            let payload = vec![0u8; io.max_message()];
            let out =
                Outgoing { seq: 0, kind: "test", frame: frame::frame(&payload, u32::MAX).unwrap(), fds: Vec::new() };
            io.writable().await;
            io.try_send(&out).unwrap();
            // Soon the socket is full: a send would block, and returns instead of waiting.
            let full = (0..8).find_map(|_| io.try_send(&out).err());
            assert_eq!(full.map(|e| e.kind()), Some(io::ErrorKind::WouldBlock));
        });
    }
}
