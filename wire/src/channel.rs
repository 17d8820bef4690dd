//! Role-typed channels over a SOCK_SEQPACKET socket: `AgentChannel` is the daemon's end (sends
//! `DaemonToAgent`, receives `AgentToDaemon`), `DaemonChannel` the agent's end.
//!
//! The first frame each way is a bare `Hello` (its encoding never changes, so peers of any
//! version can name a version mismatch); every later frame is an envelope with a request id
//! ([`AgentRequest`], [`AgentMessage`]). The daemon's end numbers its requests and accepts a
//! reply only for an outstanding request id and only of a kind that request accepts
//! (`UnknownRequest`, `UnexpectedMessage { expected, received }` otherwise). The `wait_for_*`
//! methods accept only the expected reply; `Log` and `Health` events that arrive meanwhile are
//! handed to the caller's `on_event`.

use crate::error::{Result, WireError};
use crate::fdpass::{self, Limits, SocketKind};
use crate::frame;
use crate::msg::{
    check_agent_version, check_version, v3, AgentError, AgentMessage, AgentRequest, AgentToDaemon, ClientRequest,
    ControlReply, ControlRequest, DaemonReply, DaemonToAgent, RequestId, RequestKind, PROTOCOL_VERSION,
};
use crate::record::SandboxRecord;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The largest frame one agent-channel packet may carry. A unix SOCK_SEQPACKET send fails with
/// EMSGSIZE above the sender's SO_SNDBUF less 32 bytes (`net.core.wmem_default`, 212992 by
/// default); this cap stays well below that, and senders check it before sending.
pub const AGENT_MAX_MESSAGE: u32 = 160 * 1024;

/// Most requests the blocking daemon end keeps outstanding.
pub const MAX_OUTSTANDING: usize = 64;

/// A connected SOCK_SEQPACKET socket with its receive limits.
#[derive(Debug)]
struct Socket {
    fd: OwnedFd,
    limits: Limits,
}

impl Socket {
    fn send<T: serde::Serialize>(&self, msg: &T, fds: &[BorrowedFd<'_>]) -> Result<()> {
        fdpass::send_msg(self.fd.as_fd(), SocketKind::SeqPacket, msg, fds, self.limits.max_frame)
    }

    /// One frame's payload; a read timeout is `Timeout`, EOF is `Closed`.
    fn recv_payload(&self) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
        fdpass::recv_frame(self.fd.as_fd(), SocketKind::SeqPacket, self.limits).map_err(WireError::blocking)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        fdpass::set_read_timeout(self.fd.as_fd(), timeout)
    }
}

/// Decode an envelope; a bare `Hello` where an envelope belongs (a peer of protocol 1, which
/// had no envelopes) is a version mismatch, not garbage.
fn decode_envelope<T: serde::de::DeserializeOwned, H: serde::de::DeserializeOwned>(
    payload: &[u8],
    hello_version: impl Fn(H) -> Option<u32>,
) -> Result<T> {
    frame::decode::<T>(payload).map_err(|e| match frame::decode::<H>(payload).ok().and_then(hello_version) {
        Some(theirs) => WireError::VersionMismatch { ours: PROTOCOL_VERSION, theirs },
        None => e,
    })
}

/// Decode a frame from the daemon (after the hello).
pub fn decode_request(payload: &[u8]) -> Result<AgentRequest> {
    decode_envelope(payload, |h: DaemonToAgent| match h {
        DaemonToAgent::Hello { protocol_version } => Some(protocol_version),
        _ => None,
    })
}

/// Decode a frame from an agent (after the hello).
pub fn decode_message(payload: &[u8]) -> Result<AgentMessage> {
    decode_envelope(payload, |h: AgentToDaemon| match h {
        AgentToDaemon::Hello { protocol_version, .. } => Some(protocol_version),
        _ => None,
    })
}

/// Decode a frame from an agent of protocol `version` (after the hello), converted to the
/// current types.
pub fn decode_message_of(version: u32, payload: &[u8]) -> Result<AgentMessage> {
    if version != v3::VERSION {
        return decode_message(payload);
    }
    decode_envelope(payload, |h: AgentToDaemon| match h {
        AgentToDaemon::Hello { protocol_version, .. } => Some(protocol_version),
        _ => None,
    })
    .map(|m: v3::AgentMessage| m.into())
}

/// Decode a frame from a client on the control socket (after the hello).
pub fn decode_control_request(payload: &[u8]) -> Result<ControlRequest> {
    decode_envelope(payload, |h: ClientRequest| match h {
        ClientRequest::Hello { protocol_version } => Some(protocol_version),
        _ => None,
    })
}

/// Decode a frame from the daemon on the control socket (after the hello).
pub fn decode_control_reply(payload: &[u8]) -> Result<ControlReply> {
    decode_envelope(payload, |h: DaemonReply| match h {
        DaemonReply::Hello { protocol_version, .. } => Some(protocol_version),
        _ => None,
    })
}

/// The id a request frame starts with, even when the rest does not decode.
pub fn request_id_prefix(payload: &[u8]) -> Option<RequestId> {
    let bytes: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(RequestId(u64::from_le_bytes(bytes)))
}

/// The requests a daemon end has sent and not yet seen answered, by id.
#[derive(Debug, Default)]
pub struct Outstanding {
    next: u64,
    waiting: HashMap<RequestId, RequestKind>,
}

impl Outstanding {
    /// Number a new request of `kind`; refused past `max` outstanding.
    pub fn begin(&mut self, kind: RequestKind, max: usize) -> Result<RequestId> {
        if self.waiting.len() >= max {
            return Err(WireError::TooManyRequests { outstanding: self.waiting.len() });
        }
        self.next += 1;
        let id = RequestId(self.next);
        self.waiting.insert(id, kind);
        Ok(id)
    }

    /// Match a reply to its request: the id must be outstanding and the reply of a kind that
    /// request accepts. Either way the request is no longer outstanding.
    pub fn complete(&mut self, id: RequestId, reply: &AgentToDaemon) -> Result<RequestKind> {
        let Some(kind) = self.waiting.remove(&id) else {
            return Err(WireError::UnknownRequest { id: id.0, received: reply.kind().to_string() });
        };
        if !kind.accepts(reply) {
            return Err(WireError::UnexpectedMessage { expected: kind.expected(), received: reply.kind().to_string() });
        }
        Ok(kind)
    }

    /// Forget a request (its send failed, or its waiter gave up).
    pub fn cancel(&mut self, id: RequestId) -> Option<RequestKind> {
        self.waiting.remove(&id)
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

fn unexpected(expected: &'static str, received: &AgentToDaemon) -> WireError {
    WireError::UnexpectedMessage { expected, received: received.kind().to_string() }
}

/// The agent's answer to the daemon's hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentHello {
    pub sandbox_id: Option<u64>,
    pub agent_pid: u32,
}

/// The daemon's end of an agent channel (blocking).
#[derive(Debug)]
pub struct AgentChannel {
    sock: Socket,
    outstanding: RefCell<Outstanding>,
    /// The bare hello has been received; envelopes follow.
    greeted: Cell<bool>,
    /// The agent's protocol version, ours until its hello says otherwise.
    version: Cell<u32>,
}

impl AgentChannel {
    /// Wrap a connected SOCK_SEQPACKET socket.
    pub fn new(fd: OwnedFd) -> Self {
        AgentChannel {
            sock: Socket { fd, limits: Limits::default() },
            outstanding: RefCell::default(),
            greeted: Cell::new(false),
            version: Cell::new(PROTOCOL_VERSION),
        }
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.sock.limits = limits;
        self
    }

    /// Send a request with `fds`; returns its id. `Hello` goes bare (it opens the channel).
    pub fn send(&self, msg: &DaemonToAgent, fds: &[BorrowedFd<'_>]) -> Result<RequestId> {
        if let DaemonToAgent::Hello { .. } = msg {
            self.sock.send(msg, fds)?;
            return Ok(RequestId(0));
        }
        if self.version.get() == v3::VERSION && !v3::understands(msg) {
            return Err(WireError::NotInProtocol { request: msg.kind(), version: v3::VERSION });
        }
        let id = self.outstanding.borrow_mut().begin(RequestKind::of(msg), MAX_OUTSTANDING)?;
        let env = AgentRequest { id, msg: msg.clone() };
        self.sock.send(&env, fds).inspect_err(|_| {
            self.outstanding.borrow_mut().cancel(id);
        })?;
        Ok(id)
    }

    /// Receive one message and its fds, a reply checked against its request (see
    /// [`Outstanding::complete`]); a read timeout is `Timeout`, EOF is `Closed`.
    pub fn recv_message(&self) -> Result<(AgentMessage, Vec<OwnedFd>)> {
        let (payload, fds) = self.sock.recv_payload()?;
        if !self.greeted.get() {
            let msg: AgentToDaemon = frame::decode(&payload)?;
            return Ok((AgentMessage { re: None, msg }, fds));
        }
        let env = decode_message_of(self.version.get(), &payload)?;
        if let Some(id) = env.re {
            self.outstanding.borrow_mut().complete(id, &env.msg)?;
        }
        Ok((env, fds))
    }

    /// Receive one message and its fds (see [`AgentChannel::recv_message`]).
    pub fn recv(&self) -> Result<(AgentToDaemon, Vec<OwnedFd>)> {
        self.recv_message().map(|(env, fds)| (env.msg, fds))
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.sock.set_read_timeout(timeout)
    }

    pub fn into_fd(self) -> OwnedFd {
        self.sock.fd
    }

    /// Receive, handing events (`Log`, `Health`, `Children`, `State`, `Phase`) to `on_event`,
    /// until another message arrives.
    fn next_reply(&self, on_event: &mut dyn FnMut(AgentToDaemon)) -> Result<(AgentToDaemon, Vec<OwnedFd>)> {
        loop {
            let (msg, fds) = self.recv()?;
            match msg {
                AgentToDaemon::Log(_)
                | AgentToDaemon::Health { .. }
                | AgentToDaemon::Children { .. }
                | AgentToDaemon::State(_)
                | AgentToDaemon::Phase(_) => on_event(msg),
                other => return Ok((other, fds)),
            }
        }
    }

    /// Send `Hello` and wait for the agent's `Hello`, checking the protocol version.
    pub fn hello(&self) -> Result<AgentHello> {
        self.send(&DaemonToAgent::Hello { protocol_version: PROTOCOL_VERSION }, &[])?;
        self.wait_for_hello()
    }

    /// Greet an agent of an older protocol `version` (which its answer to our own `Hello`
    /// named: such an agent closes the connection after a hello of another version, so this is
    /// a new connection) and speak it from then on.
    pub fn hello_as(&self, version: u32) -> Result<AgentHello> {
        check_agent_version(version)?;
        self.send(&DaemonToAgent::Hello { protocol_version: version }, &[])?;
        match self.next_reply(&mut |_| {})?.0 {
            AgentToDaemon::Hello { protocol_version, sandbox_id, agent_pid } if protocol_version == version => {
                self.version.set(version);
                self.greeted.set(true);
                Ok(AgentHello { sandbox_id, agent_pid })
            }
            AgentToDaemon::Hello { protocol_version, .. } => {
                Err(WireError::VersionMismatch { ours: version, theirs: protocol_version })
            }
            other => Err(unexpected("Hello", &other)),
        }
    }

    /// The agent's protocol version.
    pub fn version(&self) -> u32 {
        self.version.get()
    }

    pub fn wait_for_hello(&self) -> Result<AgentHello> {
        match self.next_reply(&mut |_| {})?.0 {
            AgentToDaemon::Hello { protocol_version, sandbox_id, agent_pid } => {
                check_version(protocol_version)?;
                self.greeted.set(true);
                Ok(AgentHello { sandbox_id, agent_pid })
            }
            other => Err(unexpected("Hello", &other)),
        }
    }

    /// Wait for `Ready { init_pid, program_pid }`; `LaunchFailed` and `Error` give the agent's error.
    pub fn wait_for_ready(
        &self,
        on_event: &mut dyn FnMut(AgentToDaemon),
    ) -> Result<std::result::Result<(u32, Option<u32>), AgentError>> {
        match self.next_reply(on_event)?.0 {
            AgentToDaemon::Ready { init_pid, program_pid } => Ok(Ok((init_pid, program_pid))),
            AgentToDaemon::LaunchFailed(e) | AgentToDaemon::Error(e) => Ok(Err(e)),
            other => Err(unexpected("Ready", &other)),
        }
    }

    /// Wait for the `State` record an agent sends after `Hello` on a rendezvous connection;
    /// other events go to `on_event`.
    pub fn wait_for_state(&self, on_event: &mut dyn FnMut(AgentToDaemon)) -> Result<SandboxRecord> {
        loop {
            match self.recv()?.0 {
                AgentToDaemon::State(rec) => return Ok(rec),
                msg @ (AgentToDaemon::Log(_)
                | AgentToDaemon::Health { .. }
                | AgentToDaemon::Children { .. }
                | AgentToDaemon::Phase(_)) => on_event(msg),
                other => return Err(unexpected("State", &other)),
            }
        }
    }
}

impl AsFd for AgentChannel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd.as_fd()
    }
}

/// One request as the agent's end receives it: the id to answer, and the request or why its body
/// did not decode.
pub type Incoming = (RequestId, Result<DaemonToAgent>, Vec<OwnedFd>);

/// The agent's end of its channel to the daemon (blocking).
#[derive(Debug)]
pub struct DaemonChannel {
    sock: Socket,
}

impl DaemonChannel {
    /// Wrap a connected SOCK_SEQPACKET socket.
    pub fn new(fd: OwnedFd) -> Self {
        DaemonChannel { sock: Socket { fd, limits: Limits::default() } }
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.sock.limits = limits;
        self
    }

    /// Wait for the daemon's bare `Hello`, check its version, answer with ours. On a version
    /// mismatch our hello still goes out, so that the daemon can name the mismatch too.
    pub fn accept_hello(&self, sandbox_id: Option<u64>, agent_pid: u32) -> Result<()> {
        let (payload, _fds) = self.sock.recv_payload()?;
        let reply = AgentToDaemon::Hello { protocol_version: PROTOCOL_VERSION, sandbox_id, agent_pid };
        match frame::decode::<DaemonToAgent>(&payload)? {
            DaemonToAgent::Hello { protocol_version } => {
                let checked = check_version(protocol_version);
                self.sock.send(&reply, &[])?;
                checked
            }
            other => Err(WireError::UnexpectedMessage { expected: "Hello", received: other.kind().to_string() }),
        }
    }

    /// Receive one request. The outer error is the channel's (closed, timeout, too large); a
    /// request whose body does not decode still gives its id, to answer it with an error.
    pub fn recv_request(&self) -> Result<Incoming> {
        let (payload, fds) = self.sock.recv_payload()?;
        match decode_request(&payload) {
            Ok(env) => Ok((env.id, Ok(env.msg), fds)),
            Err(e @ WireError::VersionMismatch { .. }) => Err(e),
            Err(e) => match request_id_prefix(&payload) {
                Some(id) => Ok((id, Err(e), fds)),
                None => Err(e),
            },
        }
    }

    /// Answer request `re`.
    pub fn reply(&self, re: RequestId, msg: AgentToDaemon, fds: &[BorrowedFd<'_>]) -> Result<()> {
        self.sock.send(&AgentMessage { re: Some(re), msg }, fds)
    }

    /// Send an event (a message that answers no request).
    pub fn event(&self, msg: AgentToDaemon, fds: &[BorrowedFd<'_>]) -> Result<()> {
        self.sock.send(&AgentMessage { re: None, msg }, fds)
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        self.sock.set_read_timeout(timeout)
    }

    pub fn into_fd(self) -> OwnedFd {
        self.sock.fd
    }
}

impl AsFd for DaemonChannel {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.fd.as_fd()
    }
}

#[cfg(test)]
mod tests;
