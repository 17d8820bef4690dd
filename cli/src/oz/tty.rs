//! The local terminal: raw mode that is always restored, and window sizes.

use anyhow::{Context, Result};
use nix::sys::termios::{self, SetArg, Termios};
use std::os::fd::{AsFd, BorrowedFd};

/// Puts a terminal in raw mode; the saved settings come back on drop (normal return, error
/// return, or a terminating signal turned into a return by the shell loop).
pub struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    pub fn enable(fd: BorrowedFd<'a>) -> Result<RawMode<'a>> {
        let saved = termios::tcgetattr(fd).context("tcgetattr stdin")?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSAFLUSH, &raw).context("tcsetattr stdin raw")?;
        Ok(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// True when `fd` is a terminal.
pub fn is_tty(fd: impl AsFd) -> bool {
    nix::unistd::isatty(std::os::fd::AsRawFd::as_raw_fd(&fd.as_fd())).unwrap_or(false)
}

nix::ioctl_read_bad!(tiocgwinsz, libc::TIOCGWINSZ, libc::winsize);
nix::ioctl_write_ptr_bad!(tiocswinsz, libc::TIOCSWINSZ, libc::winsize);

/// The window size of the terminal `fd` as (cols, rows), None when it is not a terminal.
pub fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the pointed-to struct, which lives on our stack.
    unsafe { tiocgwinsz(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut ws) }.ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Resize the pty whose master is `fd`; the kernel sends SIGWINCH to its foreground group.
pub fn set_window_size(fd: BorrowedFd<'_>, cols: u16, rows: u16) -> Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the call.
    unsafe { tiocswinsz(std::os::fd::AsRawFd::as_raw_fd(&fd), &ws) }.context("TIOCSWINSZ on the pty master")?;
    Ok(())
}
