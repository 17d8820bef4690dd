//! `oz run` at a terminal: the program runs on a new pty inside the sandbox (session leader,
//! the pty its controlling terminal, so job control works), relayed like `oz shell`; the exit
//! status is the program's.

use crate::oz::args::profile_ref;
use crate::oz::conn::{unexpected, Conn};
use crate::oz::launch;
use crate::oz::shell_relay::{self, RelayEnd};
use crate::oz::tty;
use anyhow::{anyhow, bail, Context, Result};
use oz_wire::{ClientRequest, DaemonReply, KillTarget};
use std::os::fd::AsFd;

/// Window size used when the terminal does not report one.
const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// True when `oz run` should give the program a pty: our stdin and stdout are terminals.
pub fn wanted() -> bool {
    tty::is_tty(std::io::stdin().as_fd()) && tty::is_tty(std::io::stdout().as_fd())
}

/// Launch on a pty, relay until the program's side of the pty is gone, and exit with the
/// program's status. A terminating signal to `oz run` kills the sandbox this run created.
pub fn run(profile: &str, args: Vec<String>) -> Result<u8> {
    let mut conn = Conn::connect()?;
    let (cols, rows) = tty::window_size(std::io::stdin().as_fd()).unwrap_or(DEFAULT_SIZE);
    let req = ClientRequest::LaunchPty {
        profile: profile_ref(profile),
        args,
        cwd: launch::current_dir(),
        env: launch::caller_env(),
        cols,
        rows,
    };
    conn.send(&req, &[])?;
    let ctx = || format!("run {profile}");
    let (reply, mut fds) = conn.recv_with_fds().with_context(ctx)?;
    let DaemonReply::Launched { id, reused_existing, .. } = reply else {
        return Err(unexpected("Launched", &reply)).with_context(ctx);
    };
    let master = fds
        .pop()
        .filter(|_| fds.is_empty())
        .ok_or_else(|| anyhow!("Launched came without exactly one pty fd"))
        .with_context(ctx)?;
    // Blocks the interrupt signals in this (only) thread; they stay blocked afterwards.
    let end = shell_relay::relay(master)?;
    if reused_existing {
        // The program joined a sandbox someone else's launch created: leave it alone.
        if let RelayEnd::Signal(code) = end {
            return Ok(code);
        }
    } else if let RelayEnd::Signal(code) = end {
        if let Err(e) = Conn::connect().and_then(|mut c| c.call(&ClientRequest::Kill { target: KillTarget::Id(id) })) {
            eprintln!("oz: kill sandbox {id}: {e:#}");
            return Ok(code);
        }
    } else {
        launch::kill_on_interrupt(launch::interrupt_signals(), id);
    }
    let (code, records) = wait_program_exit(&mut conn).with_context(ctx)?;
    if let Some(line) = crate::oz::why::run_summary(&records, id) {
        eprintln!("oz: {line}");
    }
    Ok(code)
}

/// The program's exit code from `ProgramExited` (128 + signal when killed), and the seccomp
/// reports the daemon sent ahead of it.
fn wait_program_exit(conn: &mut Conn) -> Result<(u8, Vec<oz_wire::LogRecord>)> {
    let mut records = Vec::new();
    loop {
        match conn.recv()? {
            DaemonReply::ProgramExited { status } => return Ok((status.shell_code().clamp(0, 255) as u8, records)),
            DaemonReply::LogLine(r) => records.push(r),
            other => bail!("expected ProgramExited, received {}", other.kind()),
        }
    }
}
