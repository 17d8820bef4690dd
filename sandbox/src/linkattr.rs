//! Integer attributes of a network link, read and set with one rtnetlink request on a raw
//! `NETLINK_ROUTE` socket: small enough for the init, which runs it right after unsharing its
//! network namespace (no runtime, no allocation beyond the message buffers).

use nix::errno::Errno;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// `lo`'s index in every network namespace.
pub const LOOPBACK_IFINDEX: i32 = 1;

/// `IFLA_*` attributes (linux/if_link.h).
pub const IFLA_GSO_MAX_SIZE: u16 = 41;
pub const IFLA_GRO_MAX_SIZE: u16 = 58;
pub const IFLA_TSO_MAX_SIZE: u16 = 59;
pub const IFLA_GSO_IPV4_MAX_SIZE: u16 = 63;
pub const IFLA_GRO_IPV4_MAX_SIZE: u16 = 64;

const NLMSG_HDR: usize = 16;
const IFINFOMSG: usize = 16;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;

fn socket() -> Result<OwnedFd, Errno> {
    // SAFETY: plain socket(2); the fd is owned right away.
    let raw = unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) };
    if raw < 0 {
        return Err(Errno::last());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// A request about link `index` with `attrs` (u32 each).
fn request(kind: u16, flags: u16, index: i32, attrs: &[(u16, u32)]) -> Vec<u8> {
    let len = NLMSG_HDR + IFINFOMSG + attrs.len() * 8;
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&(flags | libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port: the kernel
    m.extend_from_slice(&[0, 0, 0, 0]); // family, pad, type
    m.extend_from_slice(&index.to_ne_bytes());
    m.extend_from_slice(&[0; 8]); // flags, change
    for (kind, value) in attrs {
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&value.to_ne_bytes());
    }
    m
}

/// Send `msg` and return the first answer.
fn exchange(msg: &[u8]) -> Result<Vec<u8>, Errno> {
    let sock = socket()?;
    // SAFETY: sends from and receives into buffers we own, with their lengths.
    let sent = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if sent < 0 {
        return Err(Errno::last());
    }
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: as above.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(Errno::last());
    }
    buf.truncate(n as usize);
    if buf.len() < NLMSG_HDR + 4 {
        return Err(Errno::EPROTO);
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    match (kind, code) {
        (NLMSG_ERROR, 0) => Ok(buf),
        (NLMSG_ERROR, c) => Err(Errno::from_raw(-c)),
        _ => Ok(buf),
    }
}

/// Set u32 attributes of link `index` (RTM_NEWLINK on an existing link).
pub fn set(index: i32, attrs: &[(u16, u32)]) -> Result<(), Errno> {
    exchange(&request(RTM_NEWLINK, libc::NLM_F_ACK as u16, index, attrs)).map(drop)
}

/// The value of u32 attribute `kind` of link `index` (None: the kernel does not report it).
pub fn get(index: i32, kind: u16) -> Result<Option<u32>, Errno> {
    let answer = exchange(&request(RTM_GETLINK, 0, index, &[]))?;
    let mut at = NLMSG_HDR + IFINFOMSG;
    while at + 4 <= answer.len() {
        let len = u16::from_ne_bytes([answer[at], answer[at + 1]]) as usize;
        let this = u16::from_ne_bytes([answer[at + 2], answer[at + 3]]) & 0x3fff;
        if len < 4 {
            break;
        }
        if this == kind && len == 8 && at + 8 <= answer.len() {
            let v = &answer[at + 4..at + 8];
            return Ok(Some(u32::from_ne_bytes([v[0], v[1], v[2], v[3]])));
        }
        at += (len + 3) & !3;
    }
    Ok(None)
}
