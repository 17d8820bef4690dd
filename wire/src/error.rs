//! Errors of framing, fd passing and channels.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{op}: {source}")]
    Io { op: &'static str, source: io::Error },
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: u64, max: u32 },
    #[error("decode {what} at byte offset {offset} of {len}: {detail}")]
    Decode { what: &'static str, offset: usize, len: usize, detail: String },
    #[error("encode {what}: {detail}")]
    Encode { what: &'static str, detail: String },
    #[error("connection closed after {got} of {expected} bytes of a frame")]
    UnexpectedEof { got: usize, expected: usize },
    #[error("connection closed by peer")]
    Closed,
    #[error("timed out waiting for a frame")]
    Timeout,
    #[error("packet truncated: larger than the {buf} byte buffer")]
    Truncated { buf: usize },
    #[error("frame header says {declared} bytes but the packet holds {packet}")]
    LengthMismatch { declared: u64, packet: u64 },
    #[error("{got} file descriptors exceed the limit of {max}")]
    TooManyFds { got: usize, max: usize },
    #[error("expected {expected} file descriptors, got {got}")]
    FdCount { expected: usize, got: usize },
    #[error("expected {expected}, received {received}")]
    UnexpectedMessage { expected: &'static str, received: String },
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    VersionMismatch { ours: u32, theirs: u32 },
    #[error("{received} answers request {id}, which is not outstanding")]
    UnknownRequest { id: u64, received: String },
    #[error("{outstanding} requests outstanding: no more until some are answered")]
    TooManyRequests { outstanding: usize },
    #[error("agent speaks protocol {theirs}: this daemon manages agents of protocol {oldest} to {ours}")]
    AgentVersion { theirs: u32, oldest: u32, ours: u32 },
    #[error("{request} is not a request an agent of protocol {version} understands")]
    NotInProtocol { request: &'static str, version: u32 },
}

impl WireError {
    pub(crate) fn io(op: &'static str, source: io::Error) -> WireError {
        WireError::Io { op, source }
    }

    /// The errno of a failed system call, if that is what the error is.
    pub fn errno(&self) -> Option<i32> {
        match self {
            WireError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the peer went away (clean close or mid-frame EOF, reset, broken pipe).
    pub fn is_disconnect(&self) -> bool {
        match self {
            WireError::Closed | WireError::UnexpectedEof { .. } => true,
            WireError::Io { source, .. } => matches!(
                source.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::NotConnected
            ),
            _ => false,
        }
    }
}

pub type Result<T, E = WireError> = std::result::Result<T, E>;
