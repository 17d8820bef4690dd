#![no_main]
//! Decoding any bytes as any channel's frame returns a value or an error, never a panic or an
//! oversized allocation.

use libfuzzer_sys::fuzz_target;
use oz_wire::frame::{decode_frame, read_frame, DEFAULT_MAX_FRAME};
use oz_wire::{AgentToDaemon, ClientRequest, ControlReply, ControlRequest, DaemonReply, DaemonToAgent};

fuzz_target!(|data: &[u8]| {
    let _ = decode_frame::<ClientRequest>(data, DEFAULT_MAX_FRAME);
    let _ = decode_frame::<DaemonReply>(data, DEFAULT_MAX_FRAME);
    let _ = decode_frame::<DaemonToAgent>(data, DEFAULT_MAX_FRAME);
    let _ = decode_frame::<AgentToDaemon>(data, DEFAULT_MAX_FRAME);
    let _ = read_frame::<_, ClientRequest>(&mut &data[..], DEFAULT_MAX_FRAME);
    // The control socket's envelopes after the hello.
    let _ = decode_frame::<ControlRequest>(data, DEFAULT_MAX_FRAME);
    let _ = decode_frame::<ControlReply>(data, DEFAULT_MAX_FRAME);
    let _ = oz_wire::channel::decode_control_request(data);
    let _ = oz_wire::channel::decode_control_reply(data);
});
