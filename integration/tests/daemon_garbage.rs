//! Daemon acceptance, robustness: 1,000 garbage, oversized, truncated and slow frames on the
//! control socket close only their own connections; the daemon stays up and a concurrent
//! well-behaved client never sees an error.

mod common_daemon;

use common_daemon::{profile, user_a, Daemon};
use oz_wire::client::Client;
use oz_wire::{ClientRequest, DaemonReply, PROTOCOL_VERSION};
use serde_json::json;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A valid hello frame.
fn hello() -> Vec<u8> {
    oz_wire::frame::encode_frame(&ClientRequest::Hello { protocol_version: PROTOCOL_VERSION }, 1 << 20).unwrap()
}

/// Deterministic pseudo-random bytes (xorshift).
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The i-th bad frame: random bytes, an oversized length, garbage after a valid hello, a
/// truncated frame, or a valid length with an undecodable payload.
fn bad_frame(i: u64) -> Vec<u8> {
    let mut f = Vec::new();
    match i % 5 {
        0 => f = noise(i, 1 + (i as usize * 37) % 3000),
        1 => {
            f.extend_from_slice(&u32::MAX.to_be_bytes());
            f.extend_from_slice(&noise(i, 64));
        }
        2 => {
            f = hello();
            f.extend_from_slice(&(200u32).to_be_bytes());
            f.extend_from_slice(&noise(i, 200));
        }
        3 => {
            f.extend_from_slice(&(1000u32).to_be_bytes());
            f.extend_from_slice(&noise(i, 10));
        }
        _ => {
            f.extend_from_slice(&(64u32 << 20).to_be_bytes());
        }
    }
    f
}

#[test]
fn garbage_frames_close_only_their_connection() {
    let d = Daemon::start(&[profile("ozt-sleep", "/bin/sleep", json!({}))]);
    let socket = d.socket.clone();
    let stop = Arc::new(AtomicBool::new(false));

    // A well-behaved client keeps asking throughout.
    let good = {
        let (socket, stop) = (socket.clone(), stop.clone());
        std::thread::spawn(move || -> Result<u32, String> {
            let mut c = Client::connect(&socket).map_err(|e| format!("connect: {e}"))?;
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                match c.call(&ClientRequest::ListProfiles) {
                    Ok(DaemonReply::Profiles(p)) if p.len() == 1 => n += 1,
                    other => return Err(format!("request {n}: {other:?}")),
                }
                if n % 10 == 0 {
                    let mut fresh = Client::connect(&socket).map_err(|e| format!("reconnect {n}: {e}"))?;
                    fresh.call(&ClientRequest::Ping).map_err(|e| format!("ping {n}: {e}"))?;
                }
            }
            Ok(n)
        })
    };

    // Slow clients: half a frame, then silence, held open during the flood.
    let slow: Vec<UnixStream> = (0..10)
        .map(|_| {
            let mut s = UnixStream::connect(&socket).unwrap();
            s.write_all(&hello()[..3]).unwrap();
            s
        })
        .collect();

    for i in 0..1000u64 {
        let Ok(mut s) = UnixStream::connect(&socket) else { panic!("connect {i} refused\n{}", d.log_text()) };
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&bad_frame(i));
        let _ = s.shutdown(std::net::Shutdown::Write);
        // The daemon must close the connection (EOF or reset), not hang on it.
        let mut sink = Vec::new();
        let r = s.read_to_end(&mut sink);
        assert!(
            !matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
            "frame {i}: the daemon kept the connection open 10 s"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let served =
        good.join().unwrap().unwrap_or_else(|e| panic!("well-behaved client saw an error: {e}\n{}", d.log_text()));
    assert!(served > 0, "the well-behaved client was never served");
    // The slow frames are cut off by the daemon's frame timeout (seconds, not forever).
    for (i, mut s) in slow.into_iter().enumerate() {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("slow connection {i}: expected the daemon to close it, got {other:?}"),
        }
    }

    let mut d = d;
    assert!(d.alive(), "oz-daemon died\n{}", d.log_text());
    d.oz(&user_a(), &["profiles", "--json"]).assert_ok("oz profiles after the flood", &d);
    d.finish();
}
