//! oz-flood: a hostile client of the control socket, run as an unprivileged user by the tests.
//! It opens connections, pipelines requests on each without ever reading an answer, says how
//! many it sent, then holds every connection open until its stdin closes.
//!
//! ```text
//! oz-flood SOCKET CONNECTIONS PER_CONNECTION relaunchxpra ID
//! oz-flood SOCKET CONNECTIONS PER_CONNECTION forward ID NAME
//! oz-flood SOCKET CONNECTIONS PER_CONNECTION forwarders ID
//! oz-flood SOCKET CONNECTIONS PER_CONNECTION launch-ephemeral PROFILE [ARG...]
//! oz-flood SOCKET CONNECTIONS PER_CONNECTION run PROFILE [ARG...]
//! ```
//!
//! `run` is an attached launch (`oz run`) with /dev/null as the program's stdio: the daemon
//! answers it with `Launched`, then the run's seccomp reports and `ProgramExited`, none read.

use oz_wire::client::Client;
use oz_wire::{ClientRequest, KillTarget, LaunchParams, ProfileRef};
use std::io::Read;
use std::os::fd::AsFd;
use std::process::ExitCode;

const USAGE: &str = "usage: oz-flood SOCKET CONNECTIONS PER_CONNECTION \
                     (relaunchxpra ID | forward ID NAME | forwarders ID | launch-ephemeral PROFILE [ARG...] | \
                     run PROFILE [ARG...])";

/// The request a verb and its arguments stand for.
fn request(verb: &str, rest: &[String]) -> Option<ClientRequest> {
    let id = |s: &String| s.parse::<u64>().ok();
    match (verb, rest) {
        ("relaunchxpra", [sid]) => Some(ClientRequest::RelaunchXpra { target: KillTarget::Id(id(sid)?) }),
        ("forward", [sid, name]) => Some(ClientRequest::Forward { id: id(sid)?, name: name.clone(), port: None }),
        ("forwarders", [sid]) => Some(ClientRequest::ListForwarders { id: id(sid)? }),
        ("launch-ephemeral", [profile, args @ ..]) => {
            Some(ClientRequest::LaunchEphemeral(launch(profile, args, false)))
        }
        ("run", [profile, args @ ..]) => Some(ClientRequest::Launch(launch(profile, args, true))),
        _ => None,
    }
}

fn launch(profile: &str, args: &[String], attach_stdio: bool) -> LaunchParams {
    LaunchParams {
        profile: ProfileRef::Name(profile.to_string()),
        args: args.to_vec(),
        cwd: None,
        env: Vec::new(),
        noexec: false,
        attach_stdio,
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [socket, conns, per, verb, rest @ ..] => match (conns.parse::<usize>(), per.parse::<usize>()) {
            (Ok(c), Ok(p)) => request(verb, rest).map(|req| (socket, c, p, req)),
            _ => None,
        },
        _ => None,
    };
    let Some((socket, conns, per, req)) = parsed else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    // An attached launch carries the program's stdin, stdout and stderr.
    let devnull = match std::fs::File::open("/dev/null") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("oz-flood: /dev/null: {e}");
            return ExitCode::from(1);
        }
    };
    let stdio = [devnull.as_fd(), devnull.as_fd(), devnull.as_fd()];
    let fds: &[std::os::fd::BorrowedFd<'_>] =
        if matches!(req, ClientRequest::Launch(LaunchParams { attach_stdio: true, .. })) { &stdio } else { &[] };
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
            if c.send_with_fds(&req, fds).is_err() {
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
