//! The connection to oz-daemon as the commands use it (a thin layer over `oz_wire::client`):
//! daemon `Error` replies and client errors become one-line `anyhow` errors, and a dropped
//! connection says so plainly.

use anyhow::{anyhow, Result};
use oz_wire::client::{default_socket_path, Client, ClientError};
use oz_wire::{ClientRequest, DaemonReply};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

pub struct Conn {
    client: Client,
}

impl Conn {
    /// Connect to `$OZ_SOCKET` (else /run/oz/control.sock) and send the hello; the daemon's
    /// answer to it is read with the first reply, so a command costs one round trip.
    pub fn connect() -> Result<Conn> {
        let path = default_socket_path();
        let client = Client::connect_pipelined(&path).map_err(|e| match e {
            ClientError::Connect { path, source } => {
                anyhow!("connect {}: {source} (is oz-daemon running?)", path.display())
            }
            other => convert(other),
        })?;
        Ok(Conn { client })
    }

    /// Send a request and wait for its first reply.
    pub fn call(&mut self, req: &ClientRequest) -> Result<DaemonReply> {
        self.send(req, &[])?;
        self.recv()
    }

    /// Send a request with file descriptors attached.
    pub fn send(&mut self, req: &ClientRequest, fds: &[BorrowedFd<'_>]) -> Result<()> {
        self.client.send_with_fds(req, fds).map(drop).map_err(convert)
    }

    /// Bound how long each following `recv` waits (None: forever).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) -> Result<()> {
        self.client.set_read_timeout(timeout).map_err(convert)
    }

    /// The next reply to the last request sent.
    pub fn recv(&mut self) -> Result<DaemonReply> {
        Ok(self.recv_with_fds()?.0)
    }

    /// The next reply to the last request sent and the fds that came with it.
    pub fn recv_with_fds(&mut self) -> Result<(DaemonReply, Vec<OwnedFd>)> {
        match self.client.recv_reply_with_fds().map_err(convert)? {
            (DaemonReply::Error(e), _) => Err(e.into()),
            ok => Ok(ok),
        }
    }
}

fn convert(e: ClientError) -> anyhow::Error {
    match e {
        ClientError::Daemon(d) => d.into(),
        ClientError::Wire(w) if w.is_disconnect() => anyhow!("oz-daemon closed the connection"),
        other => anyhow!(other),
    }
}

/// The error for a reply of the wrong kind.
pub fn unexpected(expected: &str, got: &DaemonReply) -> anyhow::Error {
    anyhow!("unexpected reply from oz-daemon: expected {expected}, received {}", got.kind())
}
