//! `oz launch` (detached, returns once the program runs) and `oz run` (attached to our stdio,
//! exits with the program's status).

use crate::oz::args::profile_ref;
use crate::oz::conn::{unexpected, Conn};
use anyhow::{bail, Context, Result};
use nix::sys::signal::{SigSet, Signal};
use oz_wire::{ClientRequest, DaemonError, DaemonReply, KillTarget, LaunchParams, ProfileRef};
use std::os::fd::AsFd;
use std::path::PathBuf;

/// What the daemon answered to a launch.
pub struct Launched {
    pub id: u64,
    pub init_pid: u32,
    pub reused_existing: bool,
}

/// The launch request for `profile` with our cwd and environment.
pub fn request(profile: ProfileRef, args: Vec<String>, noexec: bool, attach_stdio: bool) -> ClientRequest {
    ClientRequest::Launch(params(profile, args, noexec, attach_stdio))
}

fn params(profile: ProfileRef, args: Vec<String>, noexec: bool, attach_stdio: bool) -> LaunchParams {
    LaunchParams { profile, args, cwd: current_dir(), env: caller_env(), noexec, attach_stdio }
}

/// Send a detached launch and wait for `Launched`.
pub fn launch_detached(conn: &mut Conn, req: &ClientRequest) -> Result<Launched> {
    match conn.call(req)? {
        DaemonReply::Launched { id, init_pid, reused_existing } => Ok(Launched { id, init_pid, reused_existing }),
        other => Err(unexpected("Launched", &other)),
    }
}

/// How `oz launch` builds the sandbox.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Build the sandbox without starting the program.
    pub noexec: bool,
    /// Nothing of the user's home in the sandbox.
    pub ephemeral: bool,
}

pub fn launch(profile: &str, args: Vec<String>, opts: Options, json: bool) -> Result<u8> {
    let mut conn = Conn::connect()?;
    let p = params(profile_ref(profile), args, opts.noexec, false);
    let req = if opts.ephemeral { ClientRequest::LaunchEphemeral(p) } else { ClientRequest::Launch(p) };
    let l = match launch_detached(&mut conn, &req) {
        Ok(l) => l,
        Err(e) if names_the_profile(&e) => return Err(e),
        Err(e) => return Err(e.context(format!("launch {profile}"))),
    };
    if json {
        println!("{}", serde_json::json!({"id": l.id, "init_pid": l.init_pid, "reused_existing": l.reused_existing}));
    } else {
        println!("{}", l.id);
    }
    Ok(0)
}

/// Launch with our stdin, stdout and stderr attached, and wait for the program to end. An
/// interrupt (^C, SIGTERM, SIGHUP) kills the sandbox this run created, so the program does not
/// outlive `oz run`; the exit status is then still the program's.
pub fn run(profile: &str, args: Vec<String>) -> Result<u8> {
    if crate::oz::run_pty::wanted() {
        return crate::oz::run_pty::run(profile, args);
    }
    let mut conn = Conn::connect()?;
    let req = request(profile_ref(profile), args, false, true);
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let signals = interrupt_signals();
    // Blocked before any thread exists, so every thread inherits the mask.
    signals.thread_block().context("block signals")?;
    conn.send(&req, &[stdin.as_fd(), stdout.as_fd(), stderr.as_fd()])?;
    let ctx = || format!("run {profile}");
    let id = match conn.recv().with_context(ctx)? {
        DaemonReply::Launched { id, reused_existing: false, .. } => {
            kill_on_interrupt(signals, id);
            id
        }
        DaemonReply::Launched { id, .. } => {
            // The program joined a sandbox someone else's launch created: leave it alone.
            signals.thread_unblock().context("unblock signals")?;
            id
        }
        other => return Err(unexpected("Launched", &other)).with_context(ctx),
    };
    let mut records = Vec::new();
    loop {
        match conn.recv().with_context(ctx)? {
            DaemonReply::ProgramExited { status } => {
                if let Some(line) = crate::oz::why::run_summary(&records, id) {
                    eprintln!("oz: {line}");
                }
                return Ok(status.shell_code().clamp(0, 255) as u8);
            }
            // The run's seccomp reports, sent ahead of the exit for the summary line.
            DaemonReply::LogLine(r) => records.push(r),
            other => bail!("run {profile}: expected ProgramExited, received {}", other.kind()),
        }
    }
}

/// Daemon errors that already say which launch of which profile failed.
fn names_the_profile(e: &anyhow::Error) -> bool {
    matches!(e.downcast_ref::<DaemonError>(), Some(DaemonError::LaunchFailed { .. }))
}

pub(super) fn interrupt_signals() -> SigSet {
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
        set.add(s);
    }
    set
}

/// On the first interrupt, ask the daemon (on a second connection) to kill sandbox `id`; the
/// main thread then receives the program's exit as usual.
pub(super) fn kill_on_interrupt(signals: SigSet, id: u64) {
    std::thread::spawn(move || {
        let Ok(sig) = signals.wait() else { return };
        let killed = Conn::connect().and_then(|mut c| c.call(&ClientRequest::Kill { target: KillTarget::Id(id) }));
        if let Err(e) = killed {
            eprintln!("oz: {sig}: kill sandbox {id}: {e:#}");
            std::process::exit(128 + sig as i32);
        }
    });
}

pub(super) fn current_dir() -> Option<PathBuf> {
    std::env::current_dir().ok()
}

/// Our environment; the agent keeps only what oz.conf and the profile allow.
pub(super) fn caller_env() -> Vec<(String, String)> {
    std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
}
