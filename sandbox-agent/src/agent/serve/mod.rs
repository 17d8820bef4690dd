//! `oz-agent serve --fd N`: the agent as the daemon drives it.
//!
//! 1. Hello on the socketpair (protocol version checked), then `Launch` (+3 stdio fds when
//!    attached).
//! 2. The sandbox is launched while the agent is still single-threaded (the init is cloned).
//! 3. `Ready { init_pid, program_pid }` only once the init reported the program exec'd, else
//!    `LaunchFailed` and exit.
//! 4. A single-threaded poll() loop ([`runtime`]): init events become daemon events, program
//!    output becomes `Log` records, a `Health` heartbeat goes out every few seconds, daemon
//!    requests are served, and the supervision decision ([`crate::agent::supervise`]) is applied.
//! 5. If the daemon goes away the sandbox keeps running; a new daemon reconnects on the
//!    rendezvous socket ([`crate::agent::rendezvous`]) and gets `State(record)`.
//!
//! Pids: `init_pid` is a host pid; `program_pid` and the pids of `ProgramExited` /
//! `ProcessExited` / `ShellOpened` / `ShellExited` are pids inside the sandbox's PID namespace
//! (what the init sees).

pub(crate) mod launch;
pub(crate) use launch::agent_error;
mod forwarding;
mod loglimit;
pub mod logpipe;
mod outbox;
mod requests;
pub(crate) mod runtime;

use oz_wire::channel::DaemonChannel;
use oz_wire::{AgentError, AgentToDaemon, DaemonToAgent, WireError};
use std::os::fd::OwnedFd;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("daemon channel: {0}")]
    Wire(#[from] WireError),
    #[error("expected {expected} from the daemon, received {received}")]
    Unexpected { expected: &'static str, received: &'static str },
    #[error("launch: {0}")]
    Launch(AgentError),
    #[error("rendezvous: {0}")]
    Rendezvous(#[from] crate::agent::rendezvous::RendezvousError),
}

/// How long the daemon may take to send `Launch` after its `Hello`.
const START_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Serve one sandbox over `daemon_fd` (a SOCK_SEQPACKET socket) and exit when it has ended.
pub fn run(daemon_fd: OwnedFd) -> ! {
    let code = match serve(daemon_fd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("oz-agent: {e}");
            1
        }
    };
    std::process::exit(code)
}

fn serve(daemon_fd: OwnedFd) -> Result<i32, ServeError> {
    let daemon = DaemonChannel::new(daemon_fd);
    // The daemon spawns an agent ahead of the launch that will claim it: the hello may come
    // much later, or never (the channel then closes with the daemon). The launch follows the
    // hello at once.
    daemon.set_read_timeout(None)?;
    warm_up();
    // On a version mismatch our hello goes out all the same, so the daemon can name it.
    daemon.accept_hello(None, std::process::id())?;
    daemon.set_read_timeout(Some(START_TIMEOUT))?;
    let (launch, msg, fds) = daemon.recv_request()?;
    let mut spec = match msg? {
        DaemonToAgent::Launch(spec) => spec,
        // A daemon may ping or stop an agent before it launched anything.
        DaemonToAgent::Shutdown { reason } => {
            let _ = daemon.reply(launch, AgentToDaemon::ShuttingDown { reason }, &[]);
            return Ok(0);
        }
        other => return Err(ServeError::Unexpected { expected: "Launch", received: other.kind() }),
    };
    daemon.set_read_timeout(None)?;
    crate::common::procname::set(&crate::common::procname::agent_name(spec.sandbox_id, &spec.profile.name));
    let started = match launch::start(&mut spec, fds) {
        Ok(s) => s,
        Err(e) => {
            let _ = daemon.reply(launch, AgentToDaemon::LaunchFailed(e.clone()), &[]);
            return Err(ServeError::Launch(e));
        }
    };
    // From here on the daemon may vanish at any time: never die of it.
    ignore_hangup_signals();
    let mut rt = runtime::Runtime::new(spec, started, daemon, launch)?;
    Ok(rt.run())
}

/// Work every launch needs that does not depend on it, done while the agent waits for its
/// launch: the first user lookup loads the C library's NSS modules (nsswitch.conf, and on Debian
/// libnss_systemd with its libraries), about 0.5 ms that a launch then no longer waits for; and
/// the default seccomp filter is compiled (with the default `etc_prefix`), about 1.3 ms, which a
/// launch with those settings reuses after checking its policy is equal.
fn warm_up() {
    let _ = oz_sandbox::user::UserInfo::resolve(0);
    oz_sandbox::seccomp::precompile_default(&oz_profiles::Config::default().etc_prefix);
}

/// SIGPIPE and SIGHUP must not kill the agent when the daemon dies. Done after the init was
/// cloned so that the sandbox's processes keep default dispositions.
fn ignore_hangup_signals() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    for sig in [Signal::SIGPIPE, Signal::SIGHUP] {
        // SAFETY: installing SIG_IGN runs no handler code.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
}
