#![no_main]
//! Decoding any bytes as any channel's frame returns a value or an error, never a panic or an
//! oversized allocation.

use libfuzzer_sys::fuzz_target;
use oz_wire::frame::{decode_frame, read_frame, DEFAULT_MAX_FRAME};
use oz_wire::{AgentToDaemon, ClientRequest, DaemonReply, DaemonToAgent};

fuzz_target!(|data: &[u8]| {
    let _ = decode_frame::<ClientRequest>(data, DEFAULT_MAX_FRAME);
    let _ = decode_frame::<DaemonReply>(data, DEFAULT_MAX_FRAME);
    let _ = decode_frame::<DaemonToAgent>(data, DEFAULT_MAX_FRAME);
    let _ = decode_frame::<AgentToDaemon>(data, DEFAULT_MAX_FRAME);
    let _ = read_frame::<_, ClientRequest>(&mut &data[..], DEFAULT_MAX_FRAME);
});
