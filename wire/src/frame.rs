//! Framing: a u32 big-endian payload length, then a bincode 1.3 payload (little-endian fixed-width
//! integers, u64 lengths, u32 variant indexes: `bincode::serialize`'s encoding). The length cap is
//! checked before anything is allocated. On SOCK_SEQPACKET one packet carries exactly one frame.

use crate::error::{Result, WireError};
use bincode::Options;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, Read, Write};

/// Default cap on a frame's payload.
pub const DEFAULT_MAX_FRAME: u32 = 1 << 20;
/// Size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// The bincode 1.3 options every oz channel uses, bounded by `limit` bytes.
fn options(limit: u64) -> impl Options {
    bincode::DefaultOptions::new().with_fixint_encoding().with_little_endian().reject_trailing_bytes().with_limit(limit)
}

/// Encode a message to a payload (no length prefix).
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>> {
    options(u64::MAX)
        .serialize(msg)
        .map_err(|e| WireError::Encode { what: std::any::type_name::<T>(), detail: e.to_string() })
}

/// Decode a payload (no length prefix). Trailing bytes are an error; the error names the byte
/// offset at which decoding stopped.
pub fn decode<T: DeserializeOwned>(payload: &[u8]) -> Result<T> {
    let mut reader = CountingReader { buf: payload, pos: 0 };
    let res = options(payload.len() as u64).deserialize_from::<_, T>(&mut reader);
    let decode_err =
        |offset, detail| WireError::Decode { what: short_type_name::<T>(), offset, len: payload.len(), detail };
    let msg = res.map_err(|e| decode_err(reader.pos, e.to_string()))?;
    if reader.pos != payload.len() {
        let trailing = payload.len() - reader.pos;
        return Err(decode_err(reader.pos, format!("{trailing} trailing bytes")));
    }
    Ok(msg)
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    full.rsplit("::").next().unwrap_or(full)
}

/// A slice reader that remembers how far decoding got.
struct CountingReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Read for CountingReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Prefix a payload with its length, checking the cap.
pub fn frame(payload: &[u8], max: u32) -> Result<Vec<u8>> {
    check_len(payload.len() as u64, max)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Encode a message and frame it.
pub fn encode_frame<T: Serialize>(msg: &T, max: u32) -> Result<Vec<u8>> {
    frame(&encode(msg)?, max)
}

/// The payload length a header announces, checked against the cap.
pub fn parse_header(header: [u8; HEADER_LEN], max: u32) -> Result<usize> {
    let len = u32::from_be_bytes(header);
    check_len(len as u64, max)?;
    Ok(len as usize)
}

fn check_len(len: u64, max: u32) -> Result<()> {
    if len > max as u64 {
        return Err(WireError::TooLarge { len, max });
    }
    Ok(())
}

/// The payload of one complete frame held in a buffer (a SOCK_SEQPACKET packet): the header must
/// announce exactly the bytes that follow.
pub fn unframe(packet: &[u8], max: u32) -> Result<&[u8]> {
    if packet.len() < HEADER_LEN {
        return Err(WireError::UnexpectedEof { got: packet.len(), expected: HEADER_LEN });
    }
    let header: [u8; HEADER_LEN] = packet[..HEADER_LEN].try_into().expect("4 bytes");
    let len = parse_header(header, max)?;
    let body = &packet[HEADER_LEN..];
    if body.len() != len {
        return Err(WireError::LengthMismatch { declared: len as u64, packet: body.len() as u64 });
    }
    Ok(body)
}

/// Decode one complete frame held in a buffer.
pub fn decode_frame<T: DeserializeOwned>(packet: &[u8], max: u32) -> Result<T> {
    decode(unframe(packet, max)?)
}

/// Write one frame to a byte stream.
pub fn write_frame<W: Write, T: Serialize>(w: &mut W, msg: &T, max: u32) -> Result<()> {
    let bytes = encode_frame(msg, max)?;
    w.write_all(&bytes).map_err(|e| WireError::io("write frame", e))?;
    w.flush().map_err(|e| WireError::io("flush frame", e))
}

/// Write one already encoded payload as a frame to a byte stream (a pipe).
pub fn write_payload<W: Write>(w: &mut W, payload: &[u8], max: u32) -> Result<()> {
    let bytes = frame(payload, max)?;
    w.write_all(&bytes).map_err(|e| WireError::io("write frame", e))?;
    w.flush().map_err(|e| WireError::io("flush frame", e))
}

/// Read one frame's payload from a byte stream. EOF before the first byte is `Closed`; EOF inside
/// a frame is `UnexpectedEof`; a read timeout (EAGAIN) is `Timeout`.
pub fn read_payload<R: Read>(r: &mut R, max: u32) -> Result<Vec<u8>> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(r, &mut header)?;
    if got == 0 {
        return Err(WireError::Closed);
    }
    if got < HEADER_LEN {
        return Err(WireError::UnexpectedEof { got, expected: HEADER_LEN });
    }
    let len = parse_header(header, max)?;
    let mut payload = vec![0u8; len];
    let got = read_full(r, &mut payload)?;
    if got < len {
        return Err(WireError::UnexpectedEof { got: HEADER_LEN + got, expected: HEADER_LEN + len });
    }
    Ok(payload)
}

/// Read and decode one frame from a byte stream.
pub fn read_frame<R: Read, T: DeserializeOwned>(r: &mut R, max: u32) -> Result<T> {
    decode(&read_payload(r, max)?)
}

/// Fill `buf` unless EOF comes first; returns the bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(WireError::io("read frame", e).blocking()),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msg::{ClientRequest, DaemonReply};

    #[test]
    fn header_is_big_endian_and_payload_is_bincode_fixint() {
        let bytes = encode_frame(&ClientRequest::Hello { protocol_version: 1 }, DEFAULT_MAX_FRAME).unwrap();
        // payload: u32 variant 0 (LE), u32 version 1 (LE)
        assert_eq!(bytes, [0, 0, 0, 8, 0, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn oversized_header_is_refused_before_reading_the_body() {
        let mut data: &[u8] = &[0x7f, 0xff, 0xff, 0xff];
        let err = read_payload(&mut data, DEFAULT_MAX_FRAME).unwrap_err();
        assert!(matches!(err, WireError::TooLarge { len: 0x7fff_ffff, max: DEFAULT_MAX_FRAME }), "{err}");
    }

    #[test]
    fn per_channel_cap_applies() {
        let msg = ClientRequest::Umount { id: 1, path: "/x".repeat(100).into() };
        assert!(matches!(encode_frame(&msg, 16), Err(WireError::TooLarge { .. })));
        let bytes = encode_frame(&msg, DEFAULT_MAX_FRAME).unwrap();
        assert!(matches!(read_payload(&mut &bytes[..], 16), Err(WireError::TooLarge { .. })));
    }

    #[test]
    fn short_reads_are_reassembled() {
        struct Trickle(Vec<u8>, usize);
        impl Read for Trickle {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                if self.1 >= self.0.len() || out.is_empty() {
                    return Ok(0);
                }
                out[0] = self.0[self.1];
                self.1 += 1;
                Ok(1)
            }
        }
        let msg = ClientRequest::Logs { sandbox: Some(3), follow: true, count: None };
        let mut r = Trickle(encode_frame(&msg, DEFAULT_MAX_FRAME).unwrap(), 0);
        assert_eq!(read_frame::<_, ClientRequest>(&mut r, DEFAULT_MAX_FRAME).unwrap(), msg);
        assert!(matches!(read_frame::<_, ClientRequest>(&mut r, DEFAULT_MAX_FRAME), Err(WireError::Closed)));
    }

    #[test]
    fn truncated_frames_are_errors() {
        let bytes = encode_frame(&DaemonReply::Killed { ids: vec![1, 2, 3] }, DEFAULT_MAX_FRAME).unwrap();
        for cut in 1..bytes.len() {
            let err = read_frame::<_, DaemonReply>(&mut &bytes[..cut], DEFAULT_MAX_FRAME).unwrap_err();
            assert!(matches!(err, WireError::UnexpectedEof { .. }), "cut {cut}: {err}");
            assert!(decode_frame::<DaemonReply>(&bytes[..cut], DEFAULT_MAX_FRAME).is_err());
        }
    }

    #[test]
    fn garbage_payload_reports_offset() {
        // variant index 200 does not exist
        let err = decode::<ClientRequest>(&[200, 0, 0, 0]).unwrap_err();
        match err {
            WireError::Decode { offset, len, .. } => assert_eq!((offset, len), (4, 4)),
            other => panic!("{other}"),
        }
        let err = decode::<ClientRequest>(&[1, 0, 0, 0, 9]).unwrap_err();
        assert!(err.to_string().contains("byte offset"), "{err}");
    }

    #[test]
    fn huge_inner_length_does_not_allocate() {
        // Kill? no: Launch (variant 2) with ProfileRef::Name whose string claims u64::MAX bytes
        let mut payload = vec![2, 0, 0, 0, 0, 0, 0, 0];
        payload.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(decode::<ClientRequest>(&payload), Err(WireError::Decode { .. })));
    }

    #[test]
    fn seqpacket_length_must_match_packet() {
        let mut bytes = encode_frame(&DaemonReply::Pong, DEFAULT_MAX_FRAME).unwrap();
        bytes.push(0);
        assert!(matches!(unframe(&bytes, DEFAULT_MAX_FRAME), Err(WireError::LengthMismatch { .. })));
    }
}
