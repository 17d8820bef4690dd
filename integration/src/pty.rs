//! Driving a child interactively on a fresh pty (its controlling terminal): type input, wait
//! for output, resize the window, collect the exit status.

use crate::run::status_code;
use anyhow::{anyhow, Context, Result};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A child on a pty of `cols` x `rows`; killed (by pid) if still running when dropped.
pub struct PtySession {
    child: Child,
    master: OwnedFd,
    output: Arc<Mutex<Vec<u8>>>,
}

fn winsize(cols: u16, rows: u16) -> libc::winsize {
    libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 }
}

impl PtySession {
    /// Spawn `cmd` in a new session on a new pty (stdin, stdout and stderr).
    pub fn spawn(mut cmd: Command, cols: u16, rows: u16) -> Result<PtySession> {
        let pty = nix::pty::openpty(Some(&winsize(cols, rows)), None).context("openpty")?;
        cmd.stdin(Stdio::from(pty.slave.try_clone()?));
        cmd.stdout(Stdio::from(pty.slave.try_clone()?));
        cmd.stderr(Stdio::from(pty.slave));
        // SAFETY: only async-signal-safe calls (setsid, ioctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().context("spawn on a pty")?;
        // The slave copies went into `cmd`: drop them so the master sees EIO at the end.
        drop(cmd);
        let output = Arc::new(Mutex::new(Vec::new()));
        let mut reader = std::fs::File::from(pty.master.try_clone()?);
        let sink = output.clone();
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            // EIO once the last slave fd is closed: the end.
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Ok(PtySession { child, master: pty.master, output })
    }

    /// Everything the terminal showed so far, `\r` removed.
    pub fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).replace('\r', "")
    }

    /// Type `bytes` at the terminal.
    pub fn write(&self, bytes: &[u8]) -> Result<()> {
        let mut f = std::fs::File::from(self.master.try_clone()?);
        f.write_all(bytes).context("write pty master")
    }

    /// Wait until the output contains `needle`.
    pub fn wait_for(&self, needle: &str, limit: Duration) -> Result<()> {
        let start = Instant::now();
        while !self.output().contains(needle) {
            if start.elapsed() > limit {
                return Err(anyhow!("{needle:?} not shown within {limit:?}; terminal:\n{}", self.output()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Resize the terminal (the kernel signals its foreground process group).
    pub fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        let ws = winsize(cols, rows);
        // SAFETY: TIOCSWINSZ reads one winsize from a pointer valid for the call.
        if unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) } < 0 {
            return Err(std::io::Error::last_os_error()).context("TIOCSWINSZ");
        }
        Ok(())
    }

    /// Wait for the child's exit (code, or 128 + signal).
    pub fn wait(&mut self, limit: Duration) -> Result<i32> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait()? {
                // Let the reader take what the terminal still holds.
                std::thread::sleep(Duration::from_millis(50));
                return Ok(status_code(s));
            }
            if start.elapsed() > limit {
                return Err(anyhow!("still running after {limit:?}; terminal:\n{}", self.output()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for PtySession {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // Our own child, by pid.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
