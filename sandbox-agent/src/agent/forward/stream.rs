//! One forwarded stream connection: two sockets and, per direction, a pipe that `splice(2)`
//! moves the data through without copying it to user space. Everything is non-blocking and
//! driven by readiness: [`Conn::pump`] moves what it can and [`Conn::interest`] says what to
//! wait for next. A finished direction shuts the other socket's write side (half-close); the
//! connection ends when both directions have, or at the first error.

use nix::errno::Errno;
use nix::fcntl::{splice, OFlag, SpliceFFlags};
use std::os::fd::OwnedFd;

/// Bytes a direction's pipe holds (F_SETPIPE_SZ; the kernel rounds up to pages).
pub const PIPE_SIZE: usize = 1 << 20;

struct Pipe {
    r: OwnedFd,
    w: OwnedFd,
    cap: usize,
}

impl Pipe {
    fn new() -> Result<Pipe, Errno> {
        let (r, w) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let cap = nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&w),
            nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_SIZE as i32),
        )
        .map(|n| n as usize)
        .unwrap_or(64 * 1024);
        Ok(Pipe { r, w, cap })
    }
}

/// One direction: from a socket into the pipe, from the pipe to the other socket.
struct Dir {
    pipe: Pipe,
    /// Bytes in the pipe.
    held: usize,
    /// The source reached end of file.
    eof: bool,
    /// EOF passed on (the destination's write side is shut).
    done: bool,
}

/// What a socket should be polled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Interest {
    pub read: bool,
    pub write: bool,
}

pub struct Conn {
    /// The accepted socket (index 0) and the connected one (index 1).
    pub socks: [OwnedFd; 2],
    /// Waiting for the connect of `socks[1]` to finish.
    pub connecting: bool,
    /// dirs[0]: socks[0] -> socks[1]; dirs[1]: socks[1] -> socks[0].
    dirs: [Dir; 2],
}

const FLAGS: SpliceFFlags = SpliceFFlags::SPLICE_F_NONBLOCK.union(SpliceFFlags::SPLICE_F_MOVE);

/// Send what each splice brings at once (TCP_NODELAY; a unix socket refuses the option, and
/// has nothing to hold back). The endpoints already chose how to segment their stream: Nagle's
/// algorithm here would keep a small piece until the forwarder's previous segment is
/// acknowledged, and against a receiver that delays its ACK until it can answer, that is 40 ms
/// on every exchange the client writes in two pieces.
fn no_delay(fd: &OwnedFd) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt reads an int from a valid pointer, with its size.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

impl Conn {
    pub fn new(accepted: OwnedFd, connected: OwnedFd, connecting: bool) -> Result<Conn, Errno> {
        no_delay(&accepted);
        no_delay(&connected);
        let dir = || -> Result<Dir, Errno> { Ok(Dir { pipe: Pipe::new()?, held: 0, eof: false, done: false }) };
        Ok(Conn { socks: [accepted, connected], connecting, dirs: [dir()?, dir()?] })
    }

    /// Move what can be moved in both directions. Ok(true) once the connection is over.
    pub fn pump(&mut self) -> Result<bool, Errno> {
        self.pump_dirs([true, true])
    }

    /// Move what can be moved in the directions marked (dirs\[0\]: socks\[0\] -> socks\[1\]).
    pub fn pump_dirs(&mut self, which: [bool; 2]) -> Result<bool, Errno> {
        if self.connecting {
            return Ok(false);
        }
        for d in (0..2).filter(|d| which[*d]) {
            let (src, dst) = (&self.socks[d], &self.socks[1 - d]);
            let dir = &mut self.dirs[d];
            loop {
                let mut progress = false;
                if !dir.eof && dir.held < dir.pipe.cap {
                    match splice(src, None, &dir.pipe.w, None, dir.pipe.cap - dir.held, FLAGS) {
                        Ok(0) => dir.eof = true,
                        Ok(n) => {
                            dir.held += n;
                            progress = true;
                        }
                        Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                        Err(e) => return Err(e),
                    }
                }
                if dir.held > 0 {
                    match splice(&dir.pipe.r, None, dst, None, dir.held, FLAGS) {
                        Ok(n) => {
                            dir.held -= n;
                            progress |= n > 0;
                        }
                        Err(Errno::EAGAIN) | Err(Errno::EINTR) => {}
                        Err(e) => return Err(e),
                    }
                }
                if !progress {
                    break;
                }
            }
            if dir.eof && dir.held == 0 && !dir.done {
                dir.done = true;
                let _ =
                    nix::sys::socket::shutdown(std::os::fd::AsRawFd::as_raw_fd(dst), nix::sys::socket::Shutdown::Write);
            }
        }
        Ok(self.dirs.iter().all(|d| d.done))
    }

    /// What socket `i` waits for.
    pub fn interest(&self, i: usize) -> Interest {
        if self.connecting {
            return Interest { read: false, write: i == 1 };
        }
        let out = &self.dirs[i];
        let inc = &self.dirs[1 - i];
        Interest { read: !out.eof && out.held < out.pipe.cap, write: inc.held > 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    fn pair() -> (UnixStream, OwnedFd) {
        let (a, b) =
            socketpair(AddressFamily::Unix, SockType::Stream, None, SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC)
                .unwrap();
        let a = UnixStream::from(a);
        a.set_nonblocking(false).unwrap();
        (a, b)
    }

    #[test]
    fn data_flows_both_ways_and_eof_half_closes() {
        let (mut left, l_inner) = pair();
        let (mut right, r_inner) = pair();
        let mut c = Conn::new(l_inner, r_inner, false).unwrap();
        left.write_all(b"ping").unwrap();
        right.write_all(b"pong").unwrap();
        assert!(!c.pump().unwrap());
        let mut buf = [0u8; 4];
        right.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        left.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        left.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(!c.pump().unwrap());
        assert_eq!(right.read(&mut buf).unwrap(), 0, "the far side sees EOF");
        assert!(c.interest(1).read && !c.interest(0).read);
        drop(right);
        assert!(c.pump().unwrap(), "both directions done");
    }

    #[test]
    fn connecting_waits_for_the_connected_socket_only() {
        let (_l, li) = pair();
        let (_r, ri) = pair();
        let c = Conn::new(li, ri, true).unwrap();
        assert_eq!(c.interest(0), Interest::default());
        assert_eq!(c.interest(1), Interest { read: false, write: true });
    }
}
