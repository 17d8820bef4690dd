//! Running the real `oz` as a test user (setuid/setgid in the child, groups cleared), with a
//! time limit so that a hung client fails the test instead of hanging it.

use super::{bin, Daemon, TestUser};
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The exit code, or 128 + signal.
    pub fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| 128 + self.status.signal().unwrap_or(0))
    }

    pub fn assert_ok(&self, what: &str, d: &Daemon) {
        assert!(
            self.status.success(),
            "{what}: exit {}\nstdout: {}\nstderr: {}\ndaemon log:\n{}",
            self.code(),
            self.stdout,
            self.stderr,
            d.log_text()
        );
    }

    pub fn assert_failed(&self, what: &str) {
        assert!(!self.status.success(), "{what} should fail\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        assert!(self.stderr.starts_with("oz: "), "{what}: one-line error expected, got {:?}", self.stderr);
    }
}

/// `oz` (or `program`) as `user` with a clean environment naming the daemon's socket.
pub fn command(program: &Path, socket: &Path, user: &TestUser) -> Command {
    let mut cmd = user.command(program);
    cmd.env("TERM", "dumb").env("OZ_SOCKET", socket);
    cmd
}

pub fn oz(socket: &Path, user: &TestUser, args: &[&str], stdin: Option<&[u8]>, limit: Duration) -> Out {
    let mut cmd = command(&bin("oz"), socket, user);
    cmd.args(args);
    output(cmd, stdin, limit, &format!("oz {}", args.join(" ")))
}

/// Run to completion within `limit`, feeding `stdin` (then closing it).
pub fn output(mut cmd: Command, stdin: Option<&[u8]>, limit: Duration, what: &str) -> Out {
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let data = data.to_vec();
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
    }
    let out = reader(child.stdout.take().unwrap());
    let err = reader(child.stderr.take().unwrap());
    let Some(status) = wait_limit(&mut child, limit) else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what}: still running after {limit:?}");
    };
    // Another holder of our pipes (a leaked copy in the daemon or agent) would keep them open.
    let grace = Duration::from_secs(5);
    let collect = |rx: Receiver<String>, name: &str| {
        rx.recv_timeout(grace)
            .unwrap_or_else(|_| panic!("{what}: {name} still open {grace:?} after oz exited ({status})"))
    };
    Out { status, stdout: collect(out, "stdout"), stderr: collect(err, "stderr") }
}

/// Read a pipe to its end on a thread; the text arrives on the channel.
pub fn reader(mut r: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

pub fn wait_limit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() >= end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
