//! One control connection: async framing with fds over the tokio stream, timeouts, and the
//! request loop. The peer's credentials were taken (SO_PEERCRED) before any byte was read.

use crate::handlers;
use crate::Shared;
use nix::sys::socket::MsgFlags;
use oz_wire::channel::{decode_control_request, request_id_prefix};
use oz_wire::fdpass::{self, Limits};
use oz_wire::frame::{self, HEADER_LEN};
use oz_wire::{ClientRequest, DaemonError, DaemonReply, RequestId, WireError, PROTOCOL_VERSION};
use slog::{debug, o, Logger};
use std::cell::Cell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::UnixStream;

/// The rest of a frame must arrive within this time of its first byte.
pub fn frame_timeout() -> Duration {
    env_ms("OZ_FRAME_TIMEOUT_MS").unwrap_or(Duration::from_secs(10))
}

/// How long a connection may sit idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a reply may take to be accepted by the client.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

fn env_ms(name: &str) -> Option<Duration> {
    std::env::var(name).ok()?.parse().ok().map(Duration::from_millis)
}

/// The authenticated peer.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

pub struct Conn {
    stream: UnixStream,
    pub peer: Peer,
    limits: Limits,
    pub log: Logger,
    /// The hellos were exchanged: every frame is an envelope with a request id from now on.
    greeted: Cell<bool>,
    /// The request being served (requests on one connection are served one after the other):
    /// every reply carries its id. None answers a frame too short to carry one.
    current: Cell<Option<RequestId>>,
    /// A launch on this connection was answered and the next waiting agent is still to be
    /// spawned: [`serve`] does it once the client is done with the connection.
    pub refill_due: Cell<bool>,
}

impl Conn {
    pub fn new(stream: UnixStream, peer: Peer, log: &Logger) -> Conn {
        let log = log.new(o!("peer_uid" => peer.uid, "peer_gid" => peer.gid, "peer_pid" => peer.pid.unwrap_or(0)));
        Conn {
            stream,
            peer,
            limits: Limits::default(),
            log,
            greeted: Cell::new(false),
            current: Cell::new(None),
            refill_due: Cell::new(false),
        }
    }

    /// One `recvmsg` into `buf` once readable; 0 means EOF.
    async fn read_some(&self, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> Result<usize, WireError> {
        let room = self.limits.max_fds.saturating_sub(fds.len());
        let chunk = self
            .stream
            .async_io(Interest::READABLE, || fdpass::recv_chunk(self.stream.as_fd(), buf, fds, room, MsgFlags::empty()))
            .await
            .map_err(|e| WireError::Io { op: "recvmsg", source: e })?;
        if chunk.fds_truncated || fds.len() > self.limits.max_fds {
            let got = fds.len() + 1;
            fds.clear();
            return Err(WireError::TooManyFds { got, max: self.limits.max_fds });
        }
        Ok(chunk.len)
    }

    async fn read_exact(
        &self,
        buf: &mut [u8],
        mut got: usize,
        fds: &mut Vec<OwnedFd>,
        base: usize,
    ) -> Result<(), WireError> {
        while got < buf.len() {
            let n = self.read_some(&mut buf[got..], fds).await?;
            if n == 0 {
                return Err(WireError::UnexpectedEof { got: base + got, expected: base + buf.len() });
            }
            got += n;
        }
        Ok(())
    }

    /// Receive one frame's payload: waits up to `idle` for its first byte, then
    /// `frame_timeout()` for the rest. The length cap is checked before the payload is allocated.
    async fn recv_payload(&self, idle: Duration) -> Result<(Vec<u8>, Vec<OwnedFd>), WireError> {
        let mut header = [0u8; HEADER_LEN];
        let mut fds = Vec::new();
        let first = tokio::time::timeout(idle, self.read_some(&mut header, &mut fds))
            .await
            .map_err(|_| WireError::Timeout)??;
        if first == 0 {
            return Err(WireError::Closed);
        }
        let rest = async {
            self.read_exact(&mut header, first, &mut fds, 0).await?;
            let len = frame::parse_header(header, self.limits.max_frame)?;
            let mut payload = vec![0u8; len];
            self.read_exact(&mut payload, 0, &mut fds, HEADER_LEN).await?;
            Ok::<_, WireError>(payload)
        };
        let payload = tokio::time::timeout(frame_timeout(), rest).await.map_err(|_| WireError::Timeout)??;
        Ok((payload, fds))
    }

    /// Receive the bare `Hello` that opens the connection.
    async fn recv_hello(&self) -> Result<(ClientRequest, Vec<OwnedFd>), WireError> {
        let (payload, fds) = self.recv_payload(frame_timeout()).await?;
        Ok((frame::decode(&payload)?, fds))
    }

    /// Receive one request (an envelope) and make it the current one, so that the replies carry
    /// its id. A frame whose id is readable but whose body is not is an error answered to that id.
    pub async fn recv(&self, idle: Duration) -> Result<(ClientRequest, Vec<OwnedFd>), WireError> {
        self.current.set(None);
        let (payload, fds) = self.recv_payload(idle).await?;
        self.current.set(request_id_prefix(&payload));
        let env = decode_control_request(&payload)?;
        Ok((env.msg, fds))
    }

    /// Send one reply, with fds attached to its first byte.
    pub async fn send_with_fds(&self, reply: &DaemonReply, fds: &[BorrowedFd<'_>]) -> Result<(), WireError> {
        let bytes = if self.greeted.get() {
            // A `ControlReply` by reference: bincode encodes a struct as the tuple of its fields.
            frame::encode_frame(&(self.current.get(), reply), self.limits.max_frame)?
        } else {
            frame::encode_frame(reply, self.limits.max_frame)?
        };
        let write = async {
            let mut sent = 0;
            while sent < bytes.len() {
                let attach = if sent == 0 { fds } else { &[] };
                sent += self
                    .stream
                    .async_io(Interest::WRITABLE, || fdpass::send_chunk(self.stream.as_fd(), &bytes[sent..], attach))
                    .await
                    .map_err(|e| WireError::Io { op: "sendmsg", source: e })?;
            }
            Ok(())
        };
        tokio::time::timeout(SEND_TIMEOUT, write).await.map_err(|_| WireError::Timeout)?
    }

    pub async fn send(&self, reply: &DaemonReply) -> Result<(), WireError> {
        self.send_with_fds(reply, &[]).await
    }

    pub async fn send_error(&self, e: DaemonError) -> Result<(), WireError> {
        debug!(self.log, "request refused"; "error" => %e);
        self.send(&DaemonReply::Error(e)).await
    }

    /// Resolves when the client closes its end (or sends anything, which it must not while it
    /// waits for a stream of replies).
    pub async fn closed(&self) {
        let mut b = [0u8; 1];
        loop {
            if self.stream.readable().await.is_err() {
                return;
            }
            match self.stream.try_read(&mut b) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                _ => return,
            }
        }
    }
}

fn invalid(detail: impl Into<String>) -> DaemonError {
    DaemonError::InvalidRequest { detail: detail.into() }
}

/// Serve one connection until it closes or misbehaves.
pub async fn serve(conn: Conn, shared: Rc<Shared>) {
    match hello(&conn).await {
        Ok(true) => {}
        Ok(false) => return,
        Err(e) => {
            debug!(conn.log, "connection closed before hello"; "error" => %e);
            return;
        }
    }
    let _refill = Refill { conn: &conn, shared: &shared };
    loop {
        let next = conn.recv(IDLE_TIMEOUT);
        tokio::pin!(next);
        let next = match conn.refill_due.get() {
            true => tokio::select! {
                got = &mut next => got,
                _ = tokio::time::sleep(REFILL_IDLE) => {
                    refill(&conn, &shared);
                    next.await
                }
            },
            false => next.await,
        };
        let (req, fds) = match next {
            Ok(r) => r,
            Err(WireError::Closed) => return,
            Err(e) => {
                refuse_frame(&conn, e).await;
                return;
            }
        };
        debug!(conn.log, "request"; "kind" => req.kind());
        if let Err(e) = handlers::dispatch(&conn, &shared, req, fds).await {
            debug!(conn.log, "connection ended"; "error" => %e);
            return;
        }
    }
}

/// How long a client may stay silent after its launch was answered before the next waiting
/// agent is spawned anyway.
const REFILL_IDLE: Duration = Duration::from_millis(20);

/// Spawn the next waiting agent if a launch on `conn` left that to the connection. Waiting for
/// the client to finish (`oz run` prints its summary and exits once the program ended) keeps the
/// new agent's fork, exec and start-up off the CPU the client still needs.
fn refill(conn: &Conn, shared: &Shared) {
    if conn.refill_due.take() {
        shared.warm.refill(&shared.config.agent_path(), &shared.hub);
    }
}

/// Refills when [`serve`] returns, whichever way.
struct Refill<'a> {
    conn: &'a Conn,
    shared: &'a Shared,
}

impl Drop for Refill<'_> {
    fn drop(&mut self) {
        refill(self.conn, self.shared);
    }
}

/// Answer a bad frame with an error when that is still possible, then give up the connection.
async fn refuse_frame(conn: &Conn, e: WireError) {
    debug!(conn.log, "bad frame; closing connection"; "error" => %e);
    if matches!(e, WireError::Decode { .. } | WireError::TooLarge { .. } | WireError::TooManyFds { .. }) {
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.send_error(invalid(e.to_string()))).await;
    }
}

async fn hello(conn: &Conn) -> Result<bool, WireError> {
    let (req, fds) = match conn.recv_hello().await {
        Ok(r) => r,
        Err(WireError::Closed) => return Ok(false),
        Err(e) => {
            refuse_frame(conn, e).await;
            return Ok(false);
        }
    };
    if !fds.is_empty() {
        drop(fds);
        conn.send_error(invalid("Hello carries no file descriptors")).await?;
        return Ok(false);
    }
    match req {
        ClientRequest::Hello { protocol_version } => match oz_wire::check_version(protocol_version) {
            Ok(()) => {
                let daemon_version = env!("CARGO_PKG_VERSION").to_string();
                conn.send(&DaemonReply::Hello { protocol_version, daemon_version }).await?;
                conn.greeted.set(true);
                Ok(true)
            }
            Err(_) => {
                conn.send_error(DaemonError::VersionMismatch { daemon: PROTOCOL_VERSION, client: protocol_version })
                    .await?;
                Ok(false)
            }
        },
        other => {
            conn.send_error(invalid(format!("first request must be Hello, got {}", other.kind()))).await?;
            Ok(false)
        }
    }
}
