//! Role-typed channels over a SOCK_SEQPACKET socket: `AgentChannel` is the daemon's end (sends
//! `DaemonToAgent`, receives `AgentToDaemon`), `DaemonChannel` the agent's end. The `wait_for_*`
//! methods accept only the expected reply and return `UnexpectedMessage` otherwise; `Log` and
//! `Health` events that arrive meanwhile are handed to the caller's `on_event`.

use crate::error::{Result, WireError};
use crate::fdpass::{self, Limits, SocketKind};
use crate::msg::{check_version, AgentError, AgentToDaemon, DaemonToAgent, PROTOCOL_VERSION};
use crate::state::AgentRecord;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::path::PathBuf;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

/// The largest frame one agent-channel packet may carry. A unix SOCK_SEQPACKET send fails with
/// EMSGSIZE above the sender's SO_SNDBUF less 32 bytes (`net.core.wmem_default`, 212992 by
/// default); this cap stays well below that, and senders check it before sending.
pub const AGENT_MAX_MESSAGE: u32 = 160 * 1024;

/// One end of a typed blocking channel: sends `Tx`, receives `Rx`.
#[derive(Debug)]
pub struct Channel<Tx, Rx> {
    fd: OwnedFd,
    limits: Limits,
    _dir: PhantomData<fn(Tx) -> Rx>,
}

/// The daemon's end of an agent channel.
pub type AgentChannel = Channel<DaemonToAgent, AgentToDaemon>;
/// The agent's end of its channel to the daemon.
pub type DaemonChannel = Channel<AgentToDaemon, DaemonToAgent>;

impl<Tx: Serialize, Rx: DeserializeOwned> Channel<Tx, Rx> {
    /// Wrap a connected SOCK_SEQPACKET socket.
    pub fn new(fd: OwnedFd) -> Self {
        Channel { fd, limits: Limits::default(), _dir: PhantomData }
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn send(&self, msg: &Tx, fds: &[BorrowedFd<'_>]) -> Result<()> {
        fdpass::send_msg(self.fd.as_fd(), SocketKind::SeqPacket, msg, fds, self.limits.max_frame)
    }

    /// Receive one message and its fds; a read timeout is `Timeout`, EOF is `Closed`.
    pub fn recv(&self) -> Result<(Rx, Vec<OwnedFd>)> {
        fdpass::recv_msg(self.fd.as_fd(), SocketKind::SeqPacket, self.limits).map_err(WireError::blocking)
    }

    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        fdpass::set_read_timeout(self.fd.as_fd(), timeout)
    }

    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

impl<Tx, Rx> AsFd for Channel<Tx, Rx> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
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

impl AgentChannel {
    /// Receive, handing `Log`/`Health` events to `on_event`, until another message arrives.
    fn next_reply(&self, on_event: &mut dyn FnMut(AgentToDaemon)) -> Result<(AgentToDaemon, Vec<OwnedFd>)> {
        loop {
            let (msg, fds) = self.recv()?;
            match msg {
                AgentToDaemon::Log(_) | AgentToDaemon::Health { .. } => on_event(msg),
                other => return Ok((other, fds)),
            }
        }
    }

    /// Send `Hello` and wait for the agent's `Hello`, checking the protocol version.
    pub fn hello(&self) -> Result<AgentHello> {
        self.send(&DaemonToAgent::Hello { protocol_version: PROTOCOL_VERSION }, &[])?;
        self.wait_for_hello()
    }

    pub fn wait_for_hello(&self) -> Result<AgentHello> {
        match self.next_reply(&mut |_| {})?.0 {
            AgentToDaemon::Hello { protocol_version, sandbox_id, agent_pid } => {
                check_version(protocol_version)?;
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

    /// Wait for the `State` record an agent sends after `Hello` on a rendezvous connection.
    pub fn wait_for_state(&self, on_event: &mut dyn FnMut(AgentToDaemon)) -> Result<AgentRecord> {
        match self.next_reply(on_event)?.0 {
            AgentToDaemon::State(rec) => Ok(rec),
            other => Err(unexpected("State", &other)),
        }
    }

    /// Wait for the `Mounts` an agent sends after `State` on a rendezvous connection.
    pub fn wait_for_mounts(&self, on_event: &mut dyn FnMut(AgentToDaemon)) -> Result<Vec<PathBuf>> {
        match self.next_reply(on_event)?.0 {
            AgentToDaemon::Mounts { paths } => Ok(paths),
            other => Err(unexpected("Mounts", &other)),
        }
    }
}

impl DaemonChannel {
    /// Agent side of the hello: wait for the daemon's `Hello`, check its version, answer.
    pub fn accept_hello(&self, sandbox_id: Option<u64>, agent_pid: u32) -> Result<()> {
        match self.recv()?.0 {
            DaemonToAgent::Hello { protocol_version } => {
                check_version(protocol_version)?;
                let reply = AgentToDaemon::Hello { protocol_version: PROTOCOL_VERSION, sandbox_id, agent_pid };
                self.send(&reply, &[])
            }
            other => Err(WireError::UnexpectedMessage { expected: "Hello", received: other.kind().to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{LogLevel, LogRecord};

    fn channels() -> (AgentChannel, DaemonChannel) {
        let (a, b) = fdpass::seqpacket_pair().unwrap();
        (AgentChannel::new(a), DaemonChannel::new(b))
    }

    #[test]
    fn hello_then_ready_with_logs_in_between() {
        let (daemon, agent) = channels();
        let t = std::thread::spawn(move || {
            agent.accept_hello(None, 77).unwrap();
            let log = LogRecord { ts: 1, level: LogLevel::Info, sandbox: Some(1), profile: None, message: "m".into() };
            agent.send(&AgentToDaemon::Log(log), &[]).unwrap();
            agent.send(&AgentToDaemon::Ready { init_pid: 10, program_pid: Some(11) }, &[]).unwrap();
        });
        assert_eq!(daemon.hello().unwrap(), AgentHello { sandbox_id: None, agent_pid: 77 });
        let mut logs = 0;
        let ready = daemon.wait_for_ready(&mut |m| logs += matches!(m, AgentToDaemon::Log(_)) as i32).unwrap();
        assert_eq!(ready, Ok((10, Some(11))));
        assert_eq!(logs, 1);
        t.join().unwrap();
    }

    #[test]
    fn wrong_reply_is_unexpected_message() {
        let (daemon, agent) = channels();
        agent.send(&AgentToDaemon::Pong, &[]).unwrap();
        let err = daemon.wait_for_ready(&mut |_| {}).unwrap_err();
        match err {
            WireError::UnexpectedMessage { expected, received } => assert_eq!((expected, received.as_str()), ("Ready", "Pong")),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn version_mismatch_is_detected_on_both_sides() {
        let (daemon, agent) = channels();
        daemon.send(&DaemonToAgent::Hello { protocol_version: 99 }, &[]).unwrap();
        assert!(matches!(agent.accept_hello(None, 1), Err(WireError::VersionMismatch { theirs: 99, .. })));
        agent.send(&AgentToDaemon::Hello { protocol_version: 98, sandbox_id: None, agent_pid: 1 }, &[]).unwrap();
        assert!(matches!(daemon.wait_for_hello(), Err(WireError::VersionMismatch { theirs: 98, .. })));
    }

    #[test]
    fn launch_failed_is_the_agents_error() {
        let (daemon, agent) = channels();
        let e = AgentError::Exec { path: "/usr/bin/x".into(), errno: 2 };
        agent.send(&AgentToDaemon::LaunchFailed(e.clone()), &[]).unwrap();
        assert_eq!(daemon.wait_for_ready(&mut |_| {}).unwrap(), Err(e));
    }

    #[test]
    fn recv_timeout() {
        let (daemon, _agent) = channels();
        daemon.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert!(matches!(daemon.recv(), Err(WireError::Timeout)));
    }
}
