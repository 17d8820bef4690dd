//! The terminal relay of `oz shell` and of `oz run` at a terminal: copies the local terminal
//! (or plain stdin/stdout, for scripts) to and from the pty master the daemon handed us, forwards
//! window resizes, and restores the local terminal on every way out.

use crate::oz::tty::{self, RawMode};
use anyhow::{Context, Result};
use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// End-of-file character sent to the shell when a non-terminal stdin ends.
const VEOF: u8 = 0x04;

/// How the relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayEnd {
    /// The shell side of the pty is gone (the shell ended, or closed its terminal).
    Eof,
    /// A terminating signal reached `oz shell`: exit with this code (128 + signal).
    Signal(u8),
}

/// Relay until the shell side of the pty is gone or a terminating signal arrives.
pub fn relay(master: OwnedFd) -> Result<RelayEnd> {
    let stdin = std::io::stdin();
    let interactive = tty::is_tty(stdin.as_fd());
    let mut signals = SigSet::empty();
    for s in [Signal::SIGWINCH, Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGQUIT] {
        signals.add(s);
    }
    signals.thread_block().context("block signals")?;
    let sfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).context("signalfd")?;
    let flags = OFlag::from_bits_truncate(fcntl(master.as_raw_fd(), FcntlArg::F_GETFL).context("F_GETFL pty master")?);
    fcntl(master.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).context("F_SETFL pty master")?;

    let _raw = if interactive { Some(RawMode::enable(stdin.as_fd())?) } else { None };
    if interactive {
        forward_resize(stdin.as_fd(), master.as_fd());
    }
    let mut state = Relay { stdin_open: true, interactive, to_master: Vec::new() };
    state.run(stdin.as_fd(), master.as_fd(), &sfd)
}

struct Relay {
    stdin_open: bool,
    interactive: bool,
    /// Input read from stdin but not yet accepted by the pty.
    to_master: Vec<u8>,
}

impl Relay {
    fn run(&mut self, stdin: BorrowedFd<'_>, master: BorrowedFd<'_>, sfd: &SignalFd) -> Result<RelayEnd> {
        let mut stdout = std::io::stdout().lock();
        let mut buf = [0u8; 8192];
        loop {
            let want_stdin = self.stdin_open && self.to_master.is_empty();
            let master_events =
                if self.to_master.is_empty() { PollFlags::POLLIN } else { PollFlags::POLLIN | PollFlags::POLLOUT };
            let mut fds = [
                PollFd::new(master, master_events),
                PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(stdin, if want_stdin { PollFlags::POLLIN } else { PollFlags::empty() }),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Err(Errno::EINTR) => continue,
                r => r.context("poll")?,
            };
            let ready = |i: usize| fds[i].revents().unwrap_or(PollFlags::empty());
            let (m, s, i) = (ready(0), ready(1), ready(2));
            if s.contains(PollFlags::POLLIN) {
                if let Some(code) = self.on_signal(sfd, stdin, master)? {
                    return Ok(RelayEnd::Signal(code));
                }
            }
            if m.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                    Ok(0) | Err(Errno::EIO) => return Ok(RelayEnd::Eof),
                    Ok(n) => {
                        stdout.write_all(&buf[..n]).context("write stdout")?;
                        stdout.flush().context("write stdout")?;
                    }
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                    Err(e) => return Err(e).context("read pty master"),
                }
            }
            if m.contains(PollFlags::POLLOUT) && !self.to_master.is_empty() {
                match nix::unistd::write(master, &self.to_master) {
                    Ok(n) => drop(self.to_master.drain(..n)),
                    Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                    Err(Errno::EIO) => return Ok(RelayEnd::Eof),
                    Err(e) => return Err(e).context("write pty master"),
                }
            }
            if want_stdin && i.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                self.read_stdin(stdin, &mut buf)?;
            }
        }
    }

    fn read_stdin(&mut self, stdin: BorrowedFd<'_>, buf: &mut [u8]) -> Result<()> {
        match nix::unistd::read(stdin.as_raw_fd(), buf) {
            Ok(0) => {
                self.stdin_open = false;
                if !self.interactive {
                    // A script's input ended: tell the shell, as ^D at a terminal would.
                    self.to_master.push(VEOF);
                }
            }
            Ok(n) => self.to_master.extend_from_slice(&buf[..n]),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e).context("read stdin"),
        }
        Ok(())
    }

    /// Handle pending signals: resize on SIGWINCH, Some(128 + signal) on a terminating one.
    fn on_signal(&mut self, sfd: &SignalFd, stdin: BorrowedFd<'_>, master: BorrowedFd<'_>) -> Result<Option<u8>> {
        while let Some(info) = sfd.read_signal().context("read signalfd")? {
            let signo = info.ssi_signo as i32;
            if signo == libc::SIGWINCH {
                if self.interactive {
                    forward_resize(stdin, master);
                }
            } else {
                return Ok(Some(128u8.wrapping_add(signo as u8)));
            }
        }
        Ok(None)
    }
}

fn forward_resize(stdin: BorrowedFd<'_>, master: BorrowedFd<'_>) {
    if let Some((cols, rows)) = tty::window_size(stdin) {
        let _ = tty::set_window_size(master, cols, rows);
    }
}
