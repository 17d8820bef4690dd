//! The agent's bounded queue of frames for the daemon. The daemon channel is non-blocking: what
//! the socket does not take now waits here and goes out when poll() reports it writable, so the
//! agent never stops serving its sandbox for a slow daemon. `Log` and `Health` events are dropped
//! once [`LOG_ROOM`] bytes are waiting; past [`MAX_BYTES`] the daemon is not reading at all.

use oz_wire::channel::AGENT_MAX_MESSAGE;
use oz_wire::{frame, AgentToDaemon, RequestId, WireError};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Bytes waiting above which `Log` and `Health` events are dropped.
pub const LOG_ROOM: usize = 512 << 10;
/// Bytes waiting above which nothing more is queued.
pub const MAX_BYTES: usize = 4 << 20;

/// What became of a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// A `Log` or `Health` event dropped for lack of room.
    Dropped,
    /// The queue is full: the daemon has stopped reading.
    Overflow,
}

/// `oz_wire::AgentMessage` by reference (the same encoding, no copy of the message).
#[derive(serde::Serialize)]
struct Envelope<'a> {
    re: Option<RequestId>,
    msg: &'a AgentToDaemon,
}

struct Packet {
    frame: Vec<u8>,
    fds: Vec<OwnedFd>,
}

#[derive(Default)]
pub struct Outbox {
    queue: VecDeque<Packet>,
    bytes: usize,
}

impl Outbox {
    /// Frame `msg` in its envelope (`re`: the request it answers; fds duplicated) and queue it.
    pub fn push(
        &mut self,
        re: Option<RequestId>,
        msg: &AgentToDaemon,
        fds: &[BorrowedFd<'_>],
    ) -> Result<Push, WireError> {
        let frame = frame::encode_frame(&Envelope { re, msg }, AGENT_MAX_MESSAGE)?;
        let droppable = matches!(msg, AgentToDaemon::Log(_) | AgentToDaemon::Health { .. });
        if droppable && self.bytes > LOG_ROOM {
            return Ok(Push::Dropped);
        }
        if self.bytes + frame.len() > MAX_BYTES {
            return Ok(Push::Overflow);
        }
        let fds = fds
            .iter()
            .map(|f| f.try_clone_to_owned())
            .collect::<io::Result<Vec<_>>>()
            .map_err(|e| WireError::Io { op: "dup fd for the daemon", source: e })?;
        self.bytes += frame.len();
        self.queue.push_back(Packet { frame, fds });
        Ok(Push::Queued)
    }

    /// Send what the socket takes now. A packet the socket refuses for good is dropped and its
    /// error returned.
    pub fn flush(&mut self, fd: BorrowedFd<'_>) -> io::Result<()> {
        while let Some(p) = self.queue.front() {
            let fds: Vec<_> = p.fds.iter().map(|f| f.as_fd()).collect();
            let res = oz_wire::fdpass::send_chunk(fd, &p.frame, &fds);
            match res {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => {
                    self.pop();
                    return Err(e);
                }
                Ok(n) if n != p.frame.len() => {
                    let len = p.frame.len();
                    self.pop();
                    return Err(io::Error::other(format!("sent {n} of {len} bytes in one packet")));
                }
                Ok(_) => self.pop(),
            }
        }
        Ok(())
    }

    fn pop(&mut self) {
        if let Some(p) = self.queue.pop_front() {
            self.bytes -= p.frame.len();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn clear(&mut self) {
        self.queue.clear();
        self.bytes = 0;
    }
}

/// Make the daemon channel non-blocking.
pub fn set_nonblocking(fd: BorrowedFd<'_>) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
    fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oz_wire::channel::AgentChannel;
    use oz_wire::{fdpass, LogLevel, LogRecord};

    fn log(n: usize) -> AgentToDaemon {
        AgentToDaemon::Log(LogRecord {
            ts: 0,
            level: LogLevel::Info,
            sandbox: Some(1),
            profile: None,
            message: "y".repeat(n),
        })
    }

    #[test]
    fn a_full_socket_queues_and_drops_logs_but_keeps_answers() {
        let (ours, theirs) = fdpass::seqpacket_pair().unwrap();
        set_nonblocking(ours.as_fd()).unwrap();
        let mut o = Outbox::default();
        // Nobody reads: the socket fills, then the queue, then logs are dropped.
        let mut pushed = 0;
        loop {
            match o.push(None, &log(4000), &[]).unwrap() {
                Push::Queued => pushed += 1,
                Push::Dropped => break,
                Push::Overflow => panic!("logs are dropped before the queue overflows"),
            }
            o.flush(ours.as_fd()).unwrap();
        }
        assert!(!o.is_empty());
        assert!(pushed > LOG_ROOM / 4000, "{pushed}");
        // Answers still queue, up to the hard cap.
        assert_eq!(o.push(Some(RequestId(1)), &AgentToDaemon::Pong, &[]).unwrap(), Push::Queued);
        // The reader catches up: everything arrives in order, the answer last.
        let ch = AgentChannel::new(theirs);
        let mut got = 0;
        loop {
            o.flush(ours.as_fd()).unwrap();
            let (payload, _) =
                fdpass::recv_frame(ch.as_fd(), fdpass::SocketKind::SeqPacket, Default::default()).unwrap();
            match oz_wire::channel::decode_message(&payload).unwrap().msg {
                AgentToDaemon::Log(_) => got += 1,
                AgentToDaemon::Pong => break,
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(got, pushed);
        assert!(o.is_empty());
    }

    #[test]
    fn overflow_when_the_daemon_never_reads() {
        let (ours, _theirs) = fdpass::seqpacket_pair().unwrap();
        set_nonblocking(ours.as_fd()).unwrap();
        let mut o = Outbox::default();
        let big = AgentToDaemon::Mounted { paths: (0..500).map(|i| format!("/home/u/{i:0>200}").into()).collect() };
        let mut n = 0;
        while o.push(None, &big, &[]).unwrap() == Push::Queued {
            o.flush(ours.as_fd()).unwrap();
            n += 1;
            assert!(n < 100, "the queue is bounded");
        }
        assert!(o.bytes <= MAX_BYTES);
    }
}
