//! Commands on one running sandbox: `oz kill`, `oz shell`, `oz mount`, `oz umount`.

use crate::oz::conn::{unexpected, Conn};
use crate::oz::{shell_relay, tty};
use anyhow::{anyhow, Context, Result};
use oz_wire::{ClientRequest, DaemonReply, KillTarget};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

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

/// Default size for a pty when our stdin is not a terminal.
const DEFAULT_SIZE: (u16, u16) = (80, 24);

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
    let master = fds.pop().filter(|_| fds.is_empty()).ok_or_else(|| anyhow!("ShellStarted came without exactly one pty fd"))
        .with_context(ctx)?;
    shell_relay::relay(master)
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
