//! The thread that answers seccomp user notifications for one sandbox.
//!
//! Every process the init starts with the program's filter hands its listener to the agent
//! (`InitToAgent::SeccompListener`); [`Monitor::add`] gives it to this thread, which polls all
//! listeners and answers each notification at once: SECCOMP_USER_NOTIF_FLAG_CONTINUE (audit,
//! training, or a call the policy lets through) or the policy's errno. The work per
//! notification is bounded (the policy evaluated for one call, /proc/PID/comm, at most
//! [`MAX_PATH`] bytes of /proc/PID/mem, checked with SECCOMP_IOCTL_NOTIF_ID_VALID afterwards),
//! so no process of the sandbox waits on anything else. A listener whose processes are all gone
//! reports POLLHUP and is dropped.
//!
//! The main loop polls [`Monitor::wake_fd`] and takes the log messages the thread recorded.

use super::book::{Answer, Book, Call};
use nix::errno::Errno;
use oz_profiles::seccomp::train::Training;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};

/// Most bytes of a path argument read from the caller's memory.
pub const MAX_PATH: usize = 4096;
/// Most listeners served at once (one per program start); more are refused (closed).
pub const MAX_LISTENERS: usize = 64;

/// A handle on the monitor thread (clones share it).
#[derive(Clone)]
pub struct Monitor {
    book: Arc<Mutex<Book>>,
    /// Read end: readable when the thread recorded log messages.
    wake_r: Arc<OwnedFd>,
    add: Sender<OwnedFd>,
    /// Write end: tells the thread a listener was added. Closing it (the last handle dropped)
    /// ends the thread.
    kick_w: Arc<OwnedFd>,
}

impl Monitor {
    /// Starts the thread, with no listener yet.
    pub fn start(book: Book) -> Result<Monitor, Errno> {
        use nix::fcntl::OFlag;
        let flags = OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
        let (wake_r, wake_w) = nix::unistd::pipe2(flags)?;
        let (kick_r, kick_w) = nix::unistd::pipe2(flags)?;
        let (add, added) = mpsc::channel();
        let book = Arc::new(Mutex::new(book));
        let shared = Arc::clone(&book);
        // The thread starts with every signal blocked (a new thread inherits its creator's
        // mask): the agent takes its termination signals through a signalfd, and a signal this
        // thread could take would run its default action on the whole agent instead.
        let all = nix::sys::signal::SigSet::all();
        let mut old = nix::sys::signal::SigSet::empty();
        nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&all), Some(&mut old))?;
        let spawned = std::thread::Builder::new()
            .name("seccomp-notify".into())
            .spawn(move || serve(shared, wake_w, kick_r, added))
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(libc::EAGAIN)));
        nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&old), None)?;
        spawned?;
        Ok(Monitor { book, wake_r: Arc::new(wake_r), add, kick_w: Arc::new(kick_w) })
    }

    /// Serve `listener` (from the process `pid` inside the sandbox).
    pub fn add(&self, listener: OwnedFd) {
        if self.add.send(listener).is_ok() {
            let _ = nix::unistd::write(self.kick_w.as_fd(), &[1]);
        }
    }

    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake_r.as_fd()
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The log messages recorded since the last call (the wake pipe drained).
    pub fn take_messages(&self) -> Vec<String> {
        let mut buf = [0u8; 256];
        while matches!(nix::unistd::read(self.wake_r.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
        self.book().take_messages()
    }

    /// The counts message when counts changed (or `force`).
    pub fn counts_message(&self, force: bool) -> Option<String> {
        self.book().counts_message(force)
    }

    /// What training recorded (None when not training or nothing was recorded).
    pub fn take_training(&self) -> Option<Training> {
        self.book().take_training()
    }
}

fn serve(book: Arc<Mutex<Book>>, wake_w: OwnedFd, kick_r: OwnedFd, added: Receiver<OwnedFd>) {
    let mut listeners: Vec<OwnedFd> = Vec::new();
    loop {
        let mut fds: Vec<libc::pollfd> = std::iter::once(&kick_r)
            .chain(&listeners)
            .map(|fd| libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 })
            .collect();
        // SAFETY: poll over a vector of valid pollfds that lives across the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            continue; // EINTR
        }
        if fds[0].revents & libc::POLLIN != 0 {
            let mut buf = [0u8; 64];
            while matches!(nix::unistd::read(kick_r.as_raw_fd(), &mut buf), Ok(n) if n > 0) {}
            while let Ok(fd) = added.try_recv() {
                if listeners.len() < MAX_LISTENERS {
                    listeners.push(fd);
                }
            }
        } else if fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return; // every handle dropped: the agent is done with the sandbox
        }
        let mut gone = Vec::new();
        for (i, pfd) in fds[1..].iter().enumerate() {
            if pfd.revents & libc::POLLIN != 0 {
                if handle_one(&book, pfd.fd) {
                    let _ = nix::unistd::write(wake_w.as_fd(), &[1]);
                }
            } else if pfd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            listeners.remove(i);
        }
    }
}

/// Receives and answers one notification; true when it produced log messages.
fn handle_one(book: &Mutex<Book>, listener: RawFd) -> bool {
    // SAFETY: an all-zero seccomp_notif is what SECCOMP_IOCTL_NOTIF_RECV expects.
    let mut req: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: the ioctl writes a seccomp_notif into `req`, which is large enough.
    if unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_RECV, &mut req) } != 0 {
        return false; // the caller died meanwhile (ENOENT) or a signal (EINTR)
    }
    let args = req.data.args;
    let pid = req.pid as i32;
    let nr = req.data.nr as u64;
    let mut guard = book.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(answer) = guard.repeat(pid, nr, &args) {
        drop(guard);
        respond(listener, req.id, answer);
        return false;
    }
    let syscall =
        oz_sandbox::seccomp::syscalls::name_native(req.data.nr).unwrap_or_else(|| format!("syscall{}", req.data.nr));
    let (comm, path) = if guard.training() {
        (String::new(), None)
    } else {
        drop(guard);
        let comm = read_comm(pid);
        let path = oz_profiles::seccomp::decode::path_arg(&syscall)
            .and_then(|i| read_path(pid, args[usize::from(i)]))
            .filter(|_| id_valid(listener, req.id));
        guard = book.lock().unwrap_or_else(|p| p.into_inner());
        (comm, path)
    };
    let path = path.filter(|_| guard.wants_path(&syscall));
    let call = Call { syscall, args, pid, comm, path };
    let answer = guard.on_call(&call);
    guard.remember(pid, nr, &call, answer);
    let hint = answer == Answer::Continue && guard.wants_hint(&call);
    let mut noted = guard.has_messages();
    drop(guard);
    respond(listener, req.id, answer);
    // After the answer, so the program does not wait for it: only a hint.
    if let (true, Some(path)) = (hint, call.path.as_deref()) {
        if missing_in_sandbox(pid, path) && visible_on_host(path) {
            let mut guard = book.lock().unwrap_or_else(|p| p.into_inner());
            guard.on_missing_path(&call, path);
            noted = true;
        }
    }
    noted
}

/// True when `path` does not resolve inside the root of `pid` (its sandbox), symlinks
/// followed within that root.
fn missing_in_sandbox(pid: i32, path: &str) -> bool {
    let Ok(root) = std::fs::File::open(format!("/proc/{pid}/root")) else { return false };
    let resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    let found = oz_sandbox::rootfs::openat2(root.as_fd(), std::path::Path::new(path), libc::O_PATH, resolve);
    matches!(found, Err(Errno::ENOENT))
}

/// True when `path` exists on the host and every directory above it is searchable by anyone, so
/// the hint tells the user nothing they could not see themselves.
fn visible_on_host(path: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::path::Path::new(path);
    if std::fs::symlink_metadata(path).is_err() {
        return false;
    }
    path.ancestors()
        .skip(1)
        .all(|dir| std::fs::metadata(dir).is_ok_and(|m| m.is_dir() && m.permissions().mode() & 0o001 != 0))
}

/// Answers notification `id`: let the call run, or fail it with an errno.
fn respond(listener: RawFd, id: u64, answer: Answer) {
    let (error, flags) = match answer {
        Answer::Continue => (0, libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32),
        Answer::Errno(n) => (-n, 0),
    };
    let mut resp = libc::seccomp_notif_resp { id, val: 0, error, flags };
    // SAFETY: the ioctl reads a seccomp_notif_resp; ENOENT (the caller died) is fine.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_SEND, &mut resp) };
}

/// SECCOMP_IOCTL_NOTIF_ID_VALID: the caller is still blocked in this very call, so what was
/// read from its memory belonged to it.
fn id_valid(listener: RawFd, id: u64) -> bool {
    let mut id = id;
    // SAFETY: the ioctl reads a u64 notification id.
    unsafe { libc::ioctl(listener, libc::SECCOMP_IOCTL_NOTIF_ID_VALID, &mut id) == 0 }
}

fn read_comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim_end().to_string()).unwrap_or_default()
}

/// A NUL-terminated string at `addr` in `pid`'s memory (at most [`MAX_PATH`] bytes).
fn read_path(pid: i32, addr: u64) -> Option<String> {
    if addr == 0 {
        return None;
    }
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    let mut buf = vec![0u8; MAX_PATH];
    let mut got = 0;
    // Read page by page: a string near the end of a mapping must not fail the whole read.
    while got < MAX_PATH {
        let at = addr + got as u64;
        let page_left = 4096 - (at % 4096) as usize;
        let want = page_left.min(MAX_PATH - got);
        match mem.read_at(&mut buf[got..got + want], at) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(end) = buf[got..got + n].iter().position(|b| *b == 0) {
                    return Some(String::from_utf8_lossy(&buf[..got + end]).into_owned());
                }
                got += n;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use oz_profiles::profile::SeccompMode;
    use oz_profiles::seccomp::parse_policy;
    use oz_profiles::seccomp::report::{self, Denial};
    use oz_sandbox::exec::listener::Handoff;
    use oz_sandbox::seccomp::{compile_reporting, Reporting};
    use std::path::Path;

    /// A forked child installs the filter, hands its listener over, calls sysinfo and exits 0
    /// when the call gave `want` (an errno, or 0 for success).
    fn child_calls_sysinfo(enforce: bool, want: i32) -> Vec<String> {
        let policy = parse_policy("# test\nsysinfo: 1\n", Path::new("/t.seccomp")).unwrap();
        let filter = compile_reporting(&policy, SeccompMode::Blacklist, enforce, Reporting::Notify).unwrap();
        let monitor = Monitor::start(Book::new(policy, SeccompMode::Blacklist, enforce)).unwrap();
        let handoff = Handoff::new(|nr, args| filter.allows(nr, args)).unwrap();
        assert!(handoff.sleeps(), "the blacklist lets the handoff's futex calls run");
        let (er, ew) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        // SAFETY: the child makes only raw syscalls and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let Ok(Some(fd)) = filter.install_with_listener() else {
                    // SAFETY: leave the forked test harness at once.
                    unsafe { libc::_exit(2) }
                };
                handoff.publish(fd);
                // SAFETY: sysinfo fills a zeroed struct of ours.
                let got = unsafe {
                    let mut si: libc::sysinfo = std::mem::zeroed();
                    if libc::syscall(libc::SYS_sysinfo, &mut si) == 0 {
                        0
                    } else {
                        *libc::__errno_location()
                    }
                };
                // SAFETY: as above.
                unsafe { libc::_exit(i32::from(got != want)) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(ew);
                let fd = handoff.wait(er.as_raw_fd()).unwrap().expect("listener published");
                monitor.add(handoff.take(child.as_raw(), fd).unwrap());
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
                let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
                loop {
                    let msgs = monitor.take_messages();
                    if !msgs.is_empty() || std::time::Instant::now() > end {
                        return msgs;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
    }

    #[test]
    fn enforcing_fails_the_call_and_audit_lets_it_run_both_reported_with_the_rule() {
        for (enforce, want, outcome) in [(true, libc::EPERM, "EPERM"), (false, 0, "allowed (audit)")] {
            let msgs = child_calls_sysinfo(enforce, want);
            assert_eq!(msgs.len(), 1, "{msgs:?}");
            let d: Denial = report::parse(report::DENIAL_PREFIX, &msgs[0]).unwrap();
            assert_eq!((d.syscall.as_str(), d.outcome.as_str()), ("sysinfo", outcome));
            assert_eq!(d.rule.map(|r| (r.file, r.line)), Some(("/t.seccomp".to_string(), 2)));
        }
    }
}
