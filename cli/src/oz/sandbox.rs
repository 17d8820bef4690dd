//! Commands on one running sandbox: `oz kill`, `oz shell`, `oz mount`, `oz umount`,
//! `oz forward`, `oz forwarders`.

use crate::oz::conn::{unexpected, Conn};
use crate::oz::shell_relay::{self, RelayEnd};
use crate::oz::tty;
use anyhow::{anyhow, Context, Result};
use oz_wire::{ClientRequest, DaemonReply, ExitStatus, KillTarget};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub fn kill(target: KillTarget) -> Result<u8> {
    let mut conn = Conn::connect()?;
    let what = match target {
        KillTarget::Id(id) => format!("kill sandbox {id}"),
        KillTarget::All => "kill all".to_string(),
    };
    match conn.call(&ClientRequest::Kill { target }).context(what)? {
        DaemonReply::Killed { .. } | DaemonReply::Ok => Ok(0),
        other => Err(unexpected("Killed", &other)),
    }
}

pub fn relaunch_xpra(target: KillTarget) -> Result<u8> {
    let mut conn = Conn::connect()?;
    let what = match target {
        KillTarget::Id(id) => format!("relaunch xpra of sandbox {id}"),
        KillTarget::All => "relaunch xpra of all".to_string(),
    };
    match conn.call(&ClientRequest::RelaunchXpra { target }).context(what.clone())? {
        DaemonReply::XpraRelaunched { ids } if ids.is_empty() => Err(anyhow!("{what}: no sandbox with an xpra client")),
        DaemonReply::XpraRelaunched { ids } => {
            for id in ids {
                println!("{id}");
            }
            Ok(0)
        }
        other => Err(unexpected("XpraRelaunched", &other)),
    }
}

pub fn forward(id: u64, name: String, port: Option<u16>) -> Result<u8> {
    let mut conn = Conn::connect()?;
    let what = format!("forward {name} of sandbox {id}");
    match conn.call(&ClientRequest::Forward { id, name, port }).context(what)? {
        DaemonReply::Forwarded { path } => {
            println!("{}", path.display());
            Ok(0)
        }
        other => Err(unexpected("Forwarded", &other)),
    }
}

pub fn forwarders(id: u64, json: bool) -> Result<u8> {
    let mut conn = Conn::connect()?;
    let list = match conn.call(&ClientRequest::ListForwarders { id }).context(format!("forwarders of sandbox {id}"))? {
        DaemonReply::Forwarders(list) => list,
        other => return Err(unexpected("Forwarders", &other)),
    };
    if json {
        let v: Vec<_> = list
            .iter()
            .map(|f| serde_json::json!({"name": f.name, "listen": f.listen, "target": f.target, "state": f.state}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        for f in &list {
            println!("{}\t{} -> {}\t{}", f.name, f.listen, f.target, f.state);
        }
    }
    Ok(0)
}

/// Default size for a pty when our stdin is not a terminal.
const DEFAULT_SIZE: (u16, u16) = (80, 24);

/// How long `oz shell` waits, after the pty's EOF, for the daemon to say how the shell ended.
const EXIT_WAIT: Duration = Duration::from_secs(2);

pub fn shell(id: u64) -> Result<u8> {
    let mut conn = Conn::connect()?;
    let term = std::env::var("TERM").unwrap_or_else(|_| "dumb".into());
    let (cols, rows) = tty::window_size(std::io::stdin().as_fd()).unwrap_or(DEFAULT_SIZE);
    conn.send(&ClientRequest::Shell { id, term, cols, rows }, &[])?;
    let ctx = || format!("shell in sandbox {id}");
    let (reply, mut fds) = conn.recv_with_fds().with_context(ctx)?;
    if !matches!(reply, DaemonReply::ShellStarted) {
        return Err(unexpected("ShellStarted", &reply)).with_context(ctx);
    }
    let master = fds
        .pop()
        .filter(|_| fds.is_empty())
        .ok_or_else(|| anyhow!("ShellStarted came without exactly one pty fd"))
        .with_context(ctx)?;
    match shell_relay::relay(master)? {
        RelayEnd::Signal(code) => Ok(code),
        RelayEnd::Eof => Ok(shell_exit_code(wait_shell_exit(&mut conn, EXIT_WAIT))),
    }
}

/// The shell's status from `ShellExited`, if it comes within `limit` (older daemons never
/// send it; a lost connection means the same).
fn wait_shell_exit(conn: &mut Conn, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        conn.set_read_timeout(Some(left)).ok()?;
        match conn.recv().ok()? {
            DaemonReply::ShellExited { status } => return Some(status),
            // Log records may be interleaved on some daemons; they are not ours to print.
            DaemonReply::LogLine(_) => {}
            _ => return None,
        }
    }
}

/// `oz shell`'s exit code: the shell's (128 + signal when killed), 0 when unknown.
fn shell_exit_code(status: Option<ExitStatus>) -> u8 {
    status.map_or(0, |s| s.shell_code().clamp(0, 255) as u8)
}

pub fn mount(id: u64, read_only: bool, paths: Vec<PathBuf>) -> Result<u8> {
    let cwd = std::env::current_dir().context("current directory")?;
    let paths: Vec<PathBuf> = paths.iter().map(|p| absolute(&cwd, p)).collect();
    let mut conn = Conn::connect()?;
    let ctx = || format!("mount into sandbox {id}");
    match conn.call(&ClientRequest::Mount { id, paths, read_only }).with_context(ctx)? {
        DaemonReply::Mounted { .. } | DaemonReply::Ok => Ok(0),
        other => Err(unexpected("Mounted", &other)),
    }
}

pub fn umount(id: u64, path: PathBuf) -> Result<u8> {
    let cwd = std::env::current_dir().context("current directory")?;
    let path = absolute(&cwd, &path);
    let mut conn = Conn::connect()?;
    let ctx = || format!("umount {} from sandbox {id}", path.display());
    match conn.call(&ClientRequest::Umount { id, path: path.clone() }).with_context(ctx)? {
        DaemonReply::Unmounted | DaemonReply::Ok => Ok(0),
        other => Err(unexpected("Unmounted", &other)),
    }
}

/// `p` made absolute against `cwd`, lexically (the daemon resolves symlinks safely itself).
fn absolute(cwd: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        cwd.join(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_exit_code_is_the_shells_status() {
        assert_eq!(shell_exit_code(Some(ExitStatus::Code(7))), 7);
        assert_eq!(shell_exit_code(Some(ExitStatus::Code(0))), 0);
        assert_eq!(shell_exit_code(Some(ExitStatus::Signal(9))), 137);
        assert_eq!(shell_exit_code(Some(ExitStatus::Signal(1))), 129);
    }

    #[test]
    fn shell_exit_code_without_status_is_zero() {
        assert_eq!(shell_exit_code(None), 0);
    }

    #[test]
    fn shell_exit_code_stays_in_a_byte() {
        assert_eq!(shell_exit_code(Some(ExitStatus::Code(-1))), 0);
        assert_eq!(shell_exit_code(Some(ExitStatus::Code(300))), 255);
    }
}
