use super::*;
use crate::msg::{AgentToDaemon, ClientRequest, DaemonReply, DaemonToAgent};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;

fn pair(kind: SocketKind) -> (OwnedFd, OwnedFd) {
    match kind {
        SocketKind::SeqPacket => seqpacket_pair().unwrap(),
        SocketKind::Stream => {
            let (a, b) = UnixStream::pair().unwrap();
            (a.into(), b.into())
        }
    }
}

fn temp_file_with(text: &str) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.rewind().unwrap();
    f
}

fn is_cloexec(fd: &OwnedFd) -> bool {
    let flags = nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_GETFD).unwrap();
    flags & libc::FD_CLOEXEC != 0
}

fn fds_travel(kind: SocketKind) {
    let (a, b) = pair(kind);
    let files: Vec<File> = (0..3).map(|i| temp_file_with(&format!("file {i}"))).collect();
    let borrowed: Vec<BorrowedFd> = files.iter().map(|f| f.as_fd()).collect();
    let msg = ClientRequest::Ping;
    send_msg(a.as_fd(), kind, &msg, &borrowed, frame::DEFAULT_MAX_FRAME).unwrap();
    send_msg(a.as_fd(), kind, &DaemonReply::Pong, &[], frame::DEFAULT_MAX_FRAME).unwrap();
    let (got, fds): (ClientRequest, _) = recv_msg(b.as_fd(), kind, Limits::default()).unwrap();
    assert_eq!(got, msg);
    assert_eq!(fds.len(), 3);
    for (i, fd) in fds.into_iter().enumerate() {
        assert!(is_cloexec(&fd));
        let mut s = String::new();
        File::from(fd).read_to_string(&mut s).unwrap();
        assert_eq!(s, format!("file {i}"));
    }
    // the second frame arrives separately, without fds
    let (got, fds): (DaemonReply, _) = recv_msg(b.as_fd(), kind, Limits::default()).unwrap();
    assert_eq!((got, fds.len()), (DaemonReply::Pong, 0));
    drop(a);
    assert!(matches!(recv_frame(b.as_fd(), kind, Limits::default()), Err(WireError::Closed)));
}

#[test]
fn fds_travel_on_stream() {
    fds_travel(SocketKind::Stream);
}

#[test]
fn fds_travel_on_seqpacket() {
    fds_travel(SocketKind::SeqPacket);
}

fn too_many_fds_are_refused_and_closed(kind: SocketKind) {
    let (a, b) = pair(kind);
    let files: Vec<File> = (0..5).map(|_| temp_file_with("x")).collect();
    let borrowed: Vec<BorrowedFd> = files.iter().map(|f| f.as_fd()).collect();
    send_msg(a.as_fd(), kind, &DaemonToAgent::Ping, &borrowed, frame::DEFAULT_MAX_FRAME).unwrap();
    let limits = Limits { max_fds: 2, ..Limits::default() };
    let err = recv_frame(b.as_fd(), kind, limits).unwrap_err();
    assert!(matches!(err, WireError::TooManyFds { max: 2, .. }), "{err}");
}

#[test]
fn too_many_fds_stream() {
    too_many_fds_are_refused_and_closed(SocketKind::Stream);
}

#[test]
fn too_many_fds_seqpacket() {
    too_many_fds_are_refused_and_closed(SocketKind::SeqPacket);
    // The refused fds must not linger in this process: count open fds before and after.
    // The refused fds must not linger in this process: look for the files' inodes.
    let (a, b) = pair(SocketKind::SeqPacket);
    let files: Vec<File> = (0..5).map(|_| temp_file_with("x")).collect();
    let borrowed: Vec<BorrowedFd> = files.iter().map(|f| f.as_fd()).collect();
    send_msg(a.as_fd(), SocketKind::SeqPacket, &DaemonToAgent::Ping, &borrowed, frame::DEFAULT_MAX_FRAME).unwrap();
    let limits = Limits { max_fds: 2, ..Limits::default() };
    assert!(recv_frame(b.as_fd(), SocketKind::SeqPacket, limits).is_err());
    let inodes: Vec<u64> = files.iter().map(|f| std::os::unix::fs::MetadataExt::ino(&f.metadata().unwrap())).collect();
    drop(files);
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        if let Ok(m) = std::fs::metadata(e.path()) {
            let ino = std::os::unix::fs::MetadataExt::ino(&m);
            assert!(!inodes.contains(&ino), "refused fd {:?} still open", e.file_name());
        }
    }
}

#[test]
fn oversized_packet_is_dropped_and_channel_stays_usable() {
    let (a, b) = seqpacket_pair().unwrap();
    let big = AgentToDaemon::ShuttingDown { reason: "x".repeat(5000) };
    send_msg(a.as_fd(), SocketKind::SeqPacket, &big, &[], frame::DEFAULT_MAX_FRAME).unwrap();
    send_msg(a.as_fd(), SocketKind::SeqPacket, &AgentToDaemon::Pong, &[], frame::DEFAULT_MAX_FRAME).unwrap();
    let limits = Limits { max_frame: 1024, ..Limits::default() };
    let err = recv_frame(b.as_fd(), SocketKind::SeqPacket, limits).unwrap_err();
    assert!(matches!(err, WireError::TooLarge { max: 1024, .. }), "{err}");
    let (got, _): (AgentToDaemon, _) = recv_msg(b.as_fd(), SocketKind::SeqPacket, limits).unwrap();
    assert_eq!(got, AgentToDaemon::Pong);
}

#[test]
fn seqpacket_header_must_match_packet_length() {
    let (a, b) = seqpacket_pair().unwrap();
    // header claims 100 bytes, packet carries 4
    let bogus = [0u8, 0, 0, 100, 1, 2, 3, 4];
    socket::send(a.as_raw_fd(), &bogus, MsgFlags::empty()).unwrap();
    let err = recv_frame(b.as_fd(), SocketKind::SeqPacket, Limits::default()).unwrap_err();
    assert!(matches!(err, WireError::LengthMismatch { declared: 100, packet: 4 }), "{err}");
}

#[test]
fn stream_read_timeout() {
    let (_a, b) = UnixStream::pair().unwrap();
    set_read_timeout(b.as_fd(), Some(Duration::from_millis(50))).unwrap();
    let err = recv_frame(b.as_fd(), SocketKind::Stream, Limits::default()).unwrap_err();
    assert!(err.is_would_block(), "{err}");
    assert!(matches!(err.blocking(), WireError::Timeout));
}

#[test]
fn stream_oversized_header_refused() {
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(&[0xff, 0xff, 0xff, 0xff]).unwrap();
    let err = recv_frame(b.as_fd(), SocketKind::Stream, Limits::default()).unwrap_err();
    assert!(matches!(err, WireError::TooLarge { len: 0xffff_ffff, .. }), "{err}");
}

#[test]
fn stream_eof_mid_frame() {
    let (mut a, b) = UnixStream::pair().unwrap();
    a.write_all(&[0, 0, 0, 10, 1, 2]).unwrap();
    drop(a);
    let err = recv_frame(b.as_fd(), SocketKind::Stream, Limits::default()).unwrap_err();
    assert!(matches!(err, WireError::UnexpectedEof { got: 6, expected: 14 }), "{err}");
}

#[test]
fn try_recv_packet_does_not_block() {
    let (a, b) = seqpacket_pair().unwrap();
    let err = try_recv_packet(b.as_fd(), Limits::default()).unwrap_err();
    assert!(err.is_would_block(), "{err}");
    send_msg(a.as_fd(), SocketKind::SeqPacket, &AgentToDaemon::Pong, &[], frame::DEFAULT_MAX_FRAME).unwrap();
    let (payload, fds) = try_recv_packet(b.as_fd(), Limits::default()).unwrap();
    assert_eq!(frame::decode::<AgentToDaemon>(&payload).unwrap(), AgentToDaemon::Pong);
    assert!(fds.is_empty());
}
