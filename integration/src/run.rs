//! Running a child with captured output, a timeout, optionally on a fresh pty (as its
//! controlling terminal) and with a deliberately leaked fd.

use anyhow::{anyhow, Context, Result};
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The fd number a leaked descriptor lands on in the child.
pub const LEAKED_FD: i32 = 7;

/// What came back from a child.
#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code, or 128 + signal number.
    pub status: i32,
    /// stdout (with a pty: everything the terminal showed, `\r` removed).
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr, for assertion messages.
    pub fn all(&self) -> String {
        format!("status {}\n--- stdout\n{}--- stderr\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Options for [`run`].
#[derive(Debug, Default)]
pub struct Opts {
    /// Give the child a new session with a fresh pty as stdin/stdout/stderr and controlling tty.
    pub pty: bool,
    /// Leave this fd open (no CLOEXEC) in the child as [`LEAKED_FD`].
    pub leak: Option<OwnedFd>,
    /// Default 60 s.
    pub timeout: Option<Duration>,
}

/// Converts a wait status to the shell convention.
pub fn status_code(s: std::process::ExitStatus) -> i32 {
    s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
}

fn reader(mut r: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 8192];
        // A pty master reports EIO once the last slave fd is closed: treat it as EOF.
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf
    })
}

/// Runs `cmd` to completion (killing it by pid after the timeout) and captures its output.
pub fn run(mut cmd: Command, opts: Opts) -> Result<Output> {
    let timeout = opts.timeout.unwrap_or(Duration::from_secs(60));
    let leak_raw = opts.leak.as_ref().map(|f| f.as_raw_fd());
    let mut master = None;
    if opts.pty {
        let pty = nix::pty::openpty(None, None).context("openpty")?;
        cmd.stdin(Stdio::from(pty.slave.try_clone()?));
        cmd.stdout(Stdio::from(pty.slave.try_clone()?));
        cmd.stderr(Stdio::from(pty.slave));
        master = Some(pty.master);
    } else {
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    }
    let pty = opts.pty;
    // SAFETY: only async-signal-safe calls (setsid, ioctl, dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if pty && (libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0) {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(fd) = leak_raw {
                // dup2 leaves the new descriptor without CLOEXEC: the leak is the point.
                if libc::dup2(fd, LEAKED_FD) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd.spawn().with_context(|| format!("spawn {program}"))?;
    // The parent's copies of the slave went into `cmd`; drop them so EOF/EIO can arrive.
    drop(cmd);
    drop(opts.leak);
    let (out, err) = match master {
        Some(m) => (reader(std::fs::File::from(m)), None),
        None => (
            reader(child.stdout.take().expect("piped stdout")),
            Some(reader(child.stderr.take().expect("piped stderr"))),
        ),
    };
    let status = wait_timeout(&mut child, timeout, &program)?;
    let stdout = join_reader(out, pty);
    let stderr = err.map(|h| join_reader(h, false)).unwrap_or_default();
    Ok(Output { status, stdout, stderr })
}

fn wait_timeout(child: &mut Child, timeout: Duration, program: &str) -> Result<i32> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(status_code(s));
        }
        if start.elapsed() > timeout {
            // Our own child, by pid.
            let _ = child.kill();
            let _ = child.wait();
            return Err(anyhow!("{program} did not finish within {timeout:?}; killed"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Waits up to 5 s for a reader (a pty master may stay open in a leftover process: the
/// leftover check reports that).
fn join_reader(h: JoinHandle<Vec<u8>>, pty: bool) -> String {
    let start = Instant::now();
    while !h.is_finished() && start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    if !h.is_finished() {
        return "<output reader still blocked: something kept the terminal open>".into();
    }
    let bytes = h.join().unwrap_or_default();
    let s = String::from_utf8_lossy(&bytes).into_owned();
    if pty {
        s.replace('\r', "")
    } else {
        s
    }
}
