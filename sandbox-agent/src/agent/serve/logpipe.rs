//! Program output to log lines: the read end of a pipe whose write end is a program's stdout
//! and stderr, split into lines (long lines cut at [`MAX_LINE`] bytes) without ever blocking.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

/// Longest log line; longer output is cut into several lines.
pub const MAX_LINE: usize = 4096;

/// A non-blocking pipe read end and its partial last line.
#[derive(Debug)]
pub struct LogPipe {
    fd: OwnedFd,
    partial: Vec<u8>,
}

/// A pipe for one program's output: the read end stays with the agent, the write end (for
/// stdout and stderr) goes to the program.
pub fn pipe() -> Result<(LogPipe, OwnedFd), nix::errno::Errno> {
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    Ok((LogPipe::new(r)?, w))
}

impl LogPipe {
    /// Take over a pipe's read end, making it non-blocking.
    pub fn new(fd: OwnedFd) -> Result<LogPipe, nix::errno::Errno> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let flags = OFlag::from_bits_truncate(fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?);
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        Ok(LogPipe { fd, partial: Vec::new() })
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Read what is available; returns the complete lines and whether the pipe reached EOF (the
    /// partial line is then returned as a last line).
    pub fn drain(&mut self) -> (Vec<String>, bool) {
        let mut buf = [0u8; 8192];
        let mut eof = false;
        loop {
            match nix::unistd::read(self.fd.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => self.partial.extend_from_slice(&buf[..n]),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
            if self.partial.len() > 16 * MAX_LINE {
                break;
            }
        }
        (split_lines(&mut self.partial, eof), eof)
    }
}

/// Take the complete lines out of `buf` (and the rest when `flush`), cutting at MAX_LINE.
pub fn split_lines(buf: &mut Vec<u8>, flush: bool) -> Vec<String> {
    let mut lines = Vec::new();
    let mut start = 0;
    loop {
        let rest = &buf[start..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) if i <= MAX_LINE => {
                lines.push(String::from_utf8_lossy(&rest[..i]).into_owned());
                start += i + 1;
            }
            _ if rest.len() >= MAX_LINE => {
                lines.push(String::from_utf8_lossy(&rest[..MAX_LINE]).into_owned());
                start += MAX_LINE;
            }
            _ => break,
        }
    }
    if flush && start < buf.len() {
        lines.push(String::from_utf8_lossy(&buf[start..]).into_owned());
        start = buf.len();
    }
    buf.drain(..start);
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_complete_lines_and_keeps_the_rest() {
        let mut b = b"one\ntwo\nthr".to_vec();
        assert_eq!(split_lines(&mut b, false), vec!["one", "two"]);
        assert_eq!(b, b"thr");
        b.extend_from_slice(b"ee\n\n");
        assert_eq!(split_lines(&mut b, false), vec!["three", ""]);
        b.extend_from_slice(b"tail");
        assert_eq!(split_lines(&mut b, true), vec!["tail"]);
        assert!(b.is_empty());
    }

    #[test]
    fn long_lines_are_cut() {
        let mut b = vec![b'x'; MAX_LINE * 2 + 10];
        let lines = split_lines(&mut b, false);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.len() == MAX_LINE));
        assert_eq!(b.len(), 10);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let mut b = b"a\xffb\n".to_vec();
        assert_eq!(split_lines(&mut b, false), vec!["a\u{fffd}b"]);
    }

    #[test]
    fn pipe_drains_without_blocking_and_sees_eof() {
        let (mut p, w) = pipe().unwrap();
        assert_eq!(p.drain(), (vec![], false));
        nix::unistd::write(&w, b"hi\npartial").unwrap();
        assert_eq!(p.drain(), (vec!["hi".to_string()], false));
        drop(w);
        assert_eq!(p.drain(), (vec!["partial".to_string()], true));
    }
}
