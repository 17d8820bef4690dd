#![no_main]
//! The agent's message decoders never panic, whatever one packet holds: the daemon <-> agent
//! channel (both ends, through the real SOCK_SEQPACKET receive path) and the agent <-> init
//! channel (both directions), and the compiled seccomp filter the init reads from the agent.

use libfuzzer_sys::fuzz_target;
use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use oz_agent::common::proto;
use oz_wire::channel::{AgentChannel, DaemonChannel};
use std::os::fd::{AsFd, OwnedFd};

fn pair() -> (OwnedFd, OwnedFd) {
    socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).expect("socketpair")
}

/// `data` as one packet on a fresh socket pair; the receiving end.
fn packet(data: &[u8]) -> OwnedFd {
    let (tx, rx) = pair();
    nix::unistd::write(tx.as_fd(), data).expect("write packet");
    drop(tx);
    rx
}

fuzz_target!(|data: &[u8]| {
    // The agent's end: every frame after the hello is a request with its id.
    let _ = DaemonChannel::new(packet(data)).recv_request();
    // The daemon's end before the hello (a bare message), and the enveloped replies after it.
    let _ = AgentChannel::new(packet(data)).recv();
    let _ = oz_wire::channel::decode_message(data);
    // A re-adopted agent of the previous protocol.
    let _ = oz_wire::channel::decode_message_of(oz_wire::v3::VERSION, data);
    let _ = oz_wire::channel::decode_request(data);
    // The init channel: requests with their ids (the init's end), replies and events (the agent's).
    let _ = proto::recv_request(packet(data).as_fd());
    let _ = proto::recv_message(packet(data).as_fd());
    let _ = oz_sandbox::seccomp::from_bytes(data);
});
