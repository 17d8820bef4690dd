//! oz-flood: a hostile client of the control socket, run as an unprivileged user by the tests.
//! It opens connections, pipelines requests on each without ever reading an answer, says how
//! many it sent, then holds every connection open until its stdin closes.
//!
//! ```text
//! oz-flood SOCKET CONNECTIONS PER_CONNECTION relaunchxpra ID
//! ```

use oz_wire::client::Client;
use oz_wire::{ClientRequest, KillTarget};
use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [socket, conns, per, verb, id] if verb == "relaunchxpra" => {
            match (conns.parse::<usize>(), per.parse::<usize>(), id.parse::<u64>()) {
                (Ok(c), Ok(p), Ok(id)) => {
                    Some((socket, c, p, ClientRequest::RelaunchXpra { target: KillTarget::Id(id) }))
                }
                _ => None,
            }
        }
        _ => None,
    };
    let Some((socket, conns, per, req)) = parsed else {
        eprintln!("usage: oz-flood SOCKET CONNECTIONS PER_CONNECTION relaunchxpra ID");
        return ExitCode::from(2);
    };
    let mut held = Vec::new();
    let mut sent = 0usize;
    for i in 0..conns {
        let mut c = match Client::connect(socket) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("oz-flood: connection {i}: {e}");
                break;
            }
        };
        for _ in 0..per {
            if c.send_with_fds(&req, &[]).is_err() {
                break;
            }
            sent += 1;
        }
        held.push(c);
    }
    println!("sent {sent} on {} connections", held.len());
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    ExitCode::SUCCESS
}
