//! The blocking client library for the control socket (what `oz` uses).
//!
//! ```no_run
//! use oz_wire::client::Client;
//! use oz_wire::{ClientRequest, DaemonReply};
//! let mut client = Client::connect_default()?;
//! if let DaemonReply::Profiles(list) = client.request(&ClientRequest::ListProfiles)? {
//!     for p in list { println!("{} {}", p.index, p.name); }
//! }
//! # Ok::<(), oz_wire::client::ClientError>(())
//! ```

use crate::channel::decode_control_reply;
use crate::error::WireError;
use crate::fdpass::{self, Limits, SocketKind};
use crate::msg::{
    check_version, ClientRequest, ControlRequest, DaemonError, DaemonReply, LogRecord, RequestId, PROTOCOL_VERSION,
};
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming the control socket (overrides the default).
pub const SOCKET_ENV: &str = "OZ_SOCKET";
/// The control socket's default location.
pub const DEFAULT_SOCKET: &str = "/run/oz/control.sock";

/// How long `connect` waits for the daemon's `Hello`.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(30);

/// Most replies kept for requests other than the one being waited for.
pub const MAX_EARLY_REPLIES: usize = 1024;

/// `$OZ_SOCKET`, else `/run/oz/control.sock`.
pub fn default_socket_path() -> PathBuf {
    match std::env::var_os(SOCKET_ENV) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(DEFAULT_SOCKET),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connect {path}: {source}")]
    Connect { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Wire(#[from] WireError),
    #[error("daemon: {0}")]
    Daemon(#[from] DaemonError),
}

pub type Result<T, E = ClientError> = std::result::Result<T, E>;

/// A connection to oz-daemon, past the hello. Requests are numbered on the connection and every
/// reply is matched to its request by id, so several requests may be in flight at once.
#[derive(Debug)]
pub struct Client {
    stream: UnixStream,
    limits: Limits,
    /// None until the daemon's `Hello` was read.
    daemon_version: Option<String>,
    /// The id of the last request sent (0: only the hello).
    last: RequestId,
    /// Replies that arrived while the reply of another request was awaited.
    early: VecDeque<(RequestId, DaemonReply, Vec<OwnedFd>)>,
}

impl Client {
    /// Connect to the socket at `$OZ_SOCKET` or the default path.
    pub fn connect_default() -> Result<Client> {
        Client::connect(default_socket_path())
    }

    /// Connect and send `Hello`. The daemon's answer is read with the first reply (or by
    /// [`Client::daemon_version`]), so the first request follows the hello without waiting a
    /// round trip; a daemon of another protocol version refuses the hello, and the first
    /// receive reports it.
    pub fn connect_pipelined(path: impl AsRef<Path>) -> Result<Client> {
        let path = path.as_ref();
        let stream =
            UnixStream::connect(path).map_err(|source| ClientError::Connect { path: path.to_path_buf(), source })?;
        let client = Client {
            stream,
            limits: Limits::default(),
            daemon_version: None,
            last: RequestId(0),
            early: VecDeque::new(),
        };
        // The hellos are bare messages (their encoding never changes), never envelopes.
        let hello = ClientRequest::Hello { protocol_version: PROTOCOL_VERSION };
        fdpass::send_msg(client.stream.as_fd(), SocketKind::Stream, &hello, &[], client.limits.max_frame)?;
        Ok(client)
    }

    /// Connect and exchange `Hello`: an error here names a daemon that is down, of another
    /// version, or not answering.
    pub fn connect(path: impl AsRef<Path>) -> Result<Client> {
        let mut client = Client::connect_pipelined(path)?;
        client.greeted()?;
        Ok(client)
    }

    /// Reads the daemon's `Hello` if it was not read yet.
    fn greeted(&mut self) -> Result<&str> {
        if self.daemon_version.is_none() {
            // A daemon that accepts but never answers must not hang the caller; the caller's
            // own timeout is back in place afterwards.
            let before = self.stream.read_timeout().map_err(|e| WireError::io("read SO_RCVTIMEO", e))?;
            self.set_read_timeout(Some(before.map_or(HELLO_TIMEOUT, |t| t.min(HELLO_TIMEOUT))))?;
            let (reply, _fds): (DaemonReply, Vec<OwnedFd>) =
                fdpass::recv_msg(self.stream.as_fd(), SocketKind::Stream, self.limits).map_err(WireError::blocking)?;
            match reply {
                DaemonReply::Hello { protocol_version, daemon_version } => {
                    check_version(protocol_version)?;
                    self.daemon_version = Some(daemon_version);
                }
                DaemonReply::Error(e) => return Err(e.into()),
                other => {
                    return Err(WireError::UnexpectedMessage { expected: "Hello", received: other.kind().into() }.into())
                }
            }
            self.set_read_timeout(before)?;
        }
        Ok(self.daemon_version.as_deref().unwrap_or_default())
    }

    /// The version string the daemon announced (read now if it was not yet).
    pub fn daemon_version(&mut self) -> Result<&str> {
        self.greeted()
    }

    /// Time out blocking receives (`WireError::Timeout`); None waits forever.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        Ok(fdpass::set_read_timeout(self.stream.as_fd(), timeout)?)
    }

    /// Send a request with fds attached, without waiting; returns its id.
    pub fn send_with_fds(&mut self, req: &ClientRequest, fds: &[BorrowedFd<'_>]) -> Result<RequestId> {
        let id = RequestId(self.last.0 + 1);
        let env = ControlRequest { id, msg: req.clone() };
        if let Err(e) = fdpass::send_msg(self.stream.as_fd(), SocketKind::Stream, &env, fds, self.limits.max_frame) {
            // A daemon that refused the hello may have closed the connection already: its
            // answer to the hello says why better than the broken pipe.
            if self.daemon_version.is_none() {
                self.greeted()?;
            }
            return Err(e.into());
        }
        self.last = id;
        Ok(id)
    }

    /// One reply frame; its id must name a request sent on this connection.
    fn recv_envelope(&mut self) -> Result<(Option<RequestId>, DaemonReply, Vec<OwnedFd>)> {
        self.greeted()?;
        let (payload, fds) =
            fdpass::recv_frame(self.stream.as_fd(), SocketKind::Stream, self.limits).map_err(WireError::blocking)?;
        let env = decode_control_reply(&payload)?;
        match env.re {
            Some(id) if id.0 == 0 || id > self.last => {
                Err(WireError::UnknownRequest { id: id.0, received: env.msg.kind().into() }.into())
            }
            re => Ok((re, env.msg, fds)),
        }
    }

    /// Receive the next reply of any request, with its request's id (None: the daemon refused a
    /// frame too short to carry one) and any fds with it.
    pub fn recv_any(&mut self) -> Result<(Option<RequestId>, DaemonReply, Vec<OwnedFd>)> {
        match self.early.pop_front() {
            Some((id, reply, fds)) => Ok((Some(id), reply, fds)),
            None => self.recv_envelope(),
        }
    }

    /// Receive the next reply to request `id` and any fds with it; replies to other requests
    /// that arrive meanwhile are kept for their own `recv_for` (at most `MAX_EARLY_REPLIES`).
    pub fn recv_for(&mut self, id: RequestId) -> Result<(DaemonReply, Vec<OwnedFd>)> {
        if let Some(pos) = self.early.iter().position(|(re, _, _)| *re == id) {
            let (_, reply, fds) = self.early.remove(pos).expect("position is valid");
            return Ok((reply, fds));
        }
        loop {
            match self.recv_envelope()? {
                // `None`: a refused frame, after which the daemon closes the connection.
                (Some(re), reply, fds) if re != id => {
                    if self.early.len() >= MAX_EARLY_REPLIES {
                        return Err(WireError::TooManyRequests { outstanding: self.early.len() }.into());
                    }
                    self.early.push_back((re, reply, fds));
                }
                (_, reply, fds) => return Ok((reply, fds)),
            }
        }
    }

    /// Receive the next reply to the last request sent, and any fds with it.
    pub fn recv_reply_with_fds(&mut self) -> Result<(DaemonReply, Vec<OwnedFd>)> {
        self.recv_for(self.last)
    }

    pub fn recv_reply(&mut self) -> Result<DaemonReply> {
        Ok(self.recv_reply_with_fds()?.0)
    }

    /// Send a request and return the daemon's reply (`DaemonReply::Error` included).
    pub fn request(&mut self, req: &ClientRequest) -> Result<DaemonReply> {
        Ok(self.request_with_fds(req, &[])?.0)
    }

    /// Send a request with fds and return the reply with any fds it carried.
    pub fn request_with_fds(
        &mut self,
        req: &ClientRequest,
        fds: &[BorrowedFd<'_>],
    ) -> Result<(DaemonReply, Vec<OwnedFd>)> {
        let id = self.send_with_fds(req, fds)?;
        self.recv_for(id)
    }

    /// Like `request`, but `DaemonReply::Error` becomes `ClientError::Daemon`.
    pub fn call(&mut self, req: &ClientRequest) -> Result<DaemonReply> {
        match self.request(req)? {
            DaemonReply::Error(e) => Err(e.into()),
            reply => Ok(reply),
        }
    }

    /// Request logs and iterate over the records. Without `follow` the iterator ends at
    /// `LogEnd`; with it, it ends only when the daemon goes away.
    pub fn logs(&mut self, sandbox: Option<u64>, follow: bool, count: Option<u32>) -> Result<LogStream<'_>> {
        let id = self.send_with_fds(&ClientRequest::Logs { sandbox, follow, count }, &[])?;
        Ok(LogStream { client: self, id, done: false })
    }
}

/// Iterator over streamed log records.
#[derive(Debug)]
pub struct LogStream<'a> {
    client: &'a mut Client,
    id: RequestId,
    done: bool,
}

impl Iterator for LogStream<'_> {
    type Item = Result<LogRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.client.recv_for(self.id).map(|(reply, _)| reply) {
            Ok(DaemonReply::LogLine(rec)) => return Some(Ok(rec)),
            Ok(DaemonReply::LogEnd) | Err(ClientError::Wire(WireError::Closed)) => None,
            Ok(DaemonReply::Error(e)) => Some(Err(e.into())),
            Ok(other) => {
                Some(Err(WireError::UnexpectedMessage { expected: "LogLine", received: other.kind().into() }.into()))
            }
            Err(e) => Some(Err(e)),
        };
        self.done = true;
        item
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame;
    use crate::msg::{ControlReply, LogLevel, LogRecord};
    use std::os::unix::net::UnixListener;

    /// A scripted peer: answers each expected request with the given replies (the hello bare,
    /// the rest as envelopes with the request's id).
    fn serve(script: Vec<(ClientRequest, Vec<DaemonReply>)>) -> (tempfile::TempDir, std::thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("s")).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            for (want, replies) in script {
                if let ClientRequest::Hello { .. } = want {
                    let got: ClientRequest = frame::read_frame(&mut s, frame::DEFAULT_MAX_FRAME).unwrap();
                    assert_eq!(got, want);
                    for r in replies {
                        frame::write_frame(&mut s, &r, frame::DEFAULT_MAX_FRAME).unwrap();
                    }
                    continue;
                }
                let got: ControlRequest = frame::read_frame(&mut s, frame::DEFAULT_MAX_FRAME).unwrap();
                assert_eq!(got.msg, want);
                for r in replies {
                    let env = ControlReply { re: Some(got.id), msg: r };
                    frame::write_frame(&mut s, &env, frame::DEFAULT_MAX_FRAME).unwrap();
                }
            }
        });
        (dir, t)
    }

    /// A peer that answers the hello, then runs `rest` on the connection.
    fn serve_greeted(
        rest: impl FnOnce(&mut std::os::unix::net::UnixStream) + Send + 'static,
    ) -> (tempfile::TempDir, std::thread::JoinHandle<()>) {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("s")).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let _: ClientRequest = frame::read_frame(&mut s, frame::DEFAULT_MAX_FRAME).unwrap();
            frame::write_frame(&mut s, &hello_reply(PROTOCOL_VERSION), frame::DEFAULT_MAX_FRAME).unwrap();
            rest(&mut s);
        });
        (dir, t)
    }

    #[test]
    fn pipelined_requests_get_their_own_replies_by_id() {
        let answer = |req: &ClientRequest| match req {
            ClientRequest::Ping => DaemonReply::Pong,
            _ => DaemonReply::Profiles(vec![]),
        };
        // Reads both requests, then answers them last first.
        let (dir, t) = serve_greeted(move |s| {
            let reqs: Vec<ControlRequest> =
                (0..2).map(|_| frame::read_frame(s, frame::DEFAULT_MAX_FRAME).unwrap()).collect();
            for r in reqs.iter().rev() {
                let env = ControlReply { re: Some(r.id), msg: answer(&r.msg) };
                frame::write_frame(s, &env, frame::DEFAULT_MAX_FRAME).unwrap();
            }
        });
        let mut c = Client::connect(dir.path().join("s")).unwrap();
        let ping = c.send_with_fds(&ClientRequest::Ping, &[]).unwrap();
        let list = c.send_with_fds(&ClientRequest::ListProfiles, &[]).unwrap();
        assert_ne!(ping, list);
        // The daemon answered the listing first; the ping still gets the pong.
        assert_eq!(c.recv_for(ping).unwrap().0, DaemonReply::Pong);
        assert_eq!(c.recv_for(list).unwrap().0, DaemonReply::Profiles(vec![]));
        t.join().unwrap();
    }

    #[test]
    fn a_reply_to_a_request_never_sent_is_refused() {
        let (dir, t) = serve_greeted(|s| {
            let req: ControlRequest = frame::read_frame(s, frame::DEFAULT_MAX_FRAME).unwrap();
            let env = ControlReply { re: Some(RequestId(req.id.0 + 5)), msg: DaemonReply::Pong };
            frame::write_frame(s, &env, frame::DEFAULT_MAX_FRAME).unwrap();
        });
        let mut c = Client::connect(dir.path().join("s")).unwrap();
        let err = c.call(&ClientRequest::Ping).unwrap_err();
        assert!(matches!(err, ClientError::Wire(WireError::UnknownRequest { id: 6, .. })), "{err}");
        t.join().unwrap();
    }

    fn hello_reply(v: u32) -> DaemonReply {
        DaemonReply::Hello { protocol_version: v, daemon_version: "9.9".into() }
    }

    fn rec(m: &str) -> LogRecord {
        LogRecord { ts: 0, level: LogLevel::Info, sandbox: None, profile: None, message: m.into() }
    }

    #[test]
    fn hello_request_and_log_stream() {
        let hello = ClientRequest::Hello { protocol_version: PROTOCOL_VERSION };
        let logs = ClientRequest::Logs { sandbox: None, follow: false, count: None };
        let (dir, t) = serve(vec![
            (hello, vec![hello_reply(PROTOCOL_VERSION)]),
            (ClientRequest::Ping, vec![DaemonReply::Error(DaemonError::NotRunning { id: 1 })]),
            (logs, vec![DaemonReply::LogLine(rec("a")), DaemonReply::LogLine(rec("b")), DaemonReply::LogEnd]),
        ]);
        let mut c = Client::connect(dir.path().join("s")).unwrap();
        assert_eq!(c.daemon_version().unwrap(), "9.9");
        assert!(matches!(c.call(&ClientRequest::Ping), Err(ClientError::Daemon(DaemonError::NotRunning { id: 1 }))));
        let got: Vec<String> = c.logs(None, false, None).unwrap().map(|r| r.unwrap().message).collect();
        assert_eq!(got, ["a", "b"]);
        t.join().unwrap();
    }

    #[test]
    fn version_mismatch_and_missing_socket() {
        let hello = ClientRequest::Hello { protocol_version: PROTOCOL_VERSION };
        let (dir, t) = serve(vec![(hello, vec![hello_reply(PROTOCOL_VERSION + 1)])]);
        let err = Client::connect(dir.path().join("s")).unwrap_err();
        assert!(matches!(err, ClientError::Wire(WireError::VersionMismatch { .. })), "{err}");
        t.join().unwrap();
        let err = Client::connect(dir.path().join("nope")).unwrap_err().to_string();
        assert!(err.starts_with("connect ") && err.contains("/nope"), "{err}");
    }

    /// A pipelined client's first request is on the wire before the hello is answered: a peer
    /// that reads the hello and the request before writing anything still gets them both.
    #[test]
    fn a_pipelined_connection_sends_its_first_request_with_the_hello() {
        let dir = tempfile::tempdir().unwrap();
        let listener = UnixListener::bind(dir.path().join("s")).unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _: ClientRequest = frame::read_frame(&mut s, frame::DEFAULT_MAX_FRAME).unwrap();
            let req: ControlRequest =
                frame::read_frame(&mut s, frame::DEFAULT_MAX_FRAME).expect("request before hello");
            frame::write_frame(&mut s, &hello_reply(PROTOCOL_VERSION), frame::DEFAULT_MAX_FRAME).unwrap();
            let env = ControlReply { re: Some(req.id), msg: DaemonReply::Pong };
            frame::write_frame(&mut s, &env, frame::DEFAULT_MAX_FRAME).unwrap();
        });
        let mut c = Client::connect_pipelined(dir.path().join("s")).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(c.call(&ClientRequest::Ping).unwrap(), DaemonReply::Pong);
        assert_eq!(c.daemon_version().unwrap(), "9.9");
        // The caller's timeout is back once the hello was read.
        assert_eq!(c.stream.read_timeout().unwrap(), Some(Duration::from_secs(30)));
        t.join().unwrap();
    }

    /// A daemon of another version refuses a pipelined connection at its first reply.
    #[test]
    fn a_pipelined_connection_reports_a_version_mismatch_at_its_first_reply() {
        let hello = ClientRequest::Hello { protocol_version: PROTOCOL_VERSION };
        let (dir, t) = serve(vec![(hello, vec![hello_reply(PROTOCOL_VERSION + 1)])]);
        let mut c = Client::connect_pipelined(dir.path().join("s")).unwrap();
        let err = c.call(&ClientRequest::Ping).unwrap_err();
        assert!(matches!(err, ClientError::Wire(WireError::VersionMismatch { .. })), "{err}");
        t.join().unwrap();
    }
}
