//! Starting a process inside the sandbox: fork from the init, then in the child, in order:
//! new session, stdio, groups/gid/uid with every capability dropped and securebits locked,
//! no_new_privs, Landlock, every other fd closed at exec, cwd, seccomp, execve.
//!
//! Exec failures travel back over a close-on-exec pipe (a successful exec closes it), so the
//! caller knows "exec'd" from "execve /usr/bin/x: ENOENT" before it replies to anyone.

pub mod creds;
pub mod listener;

use crate::landlock::LandlockPlan;
use crate::step::{InitError, Step};
pub use creds::Credentials;
use nix::errno::Errno;
use nix::unistd::{ForkResult, Pid};
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;

/// A seccomp filter ready to load: `install` must be async-signal-safe and sets no_new_privs
/// itself. Implemented for the compiled filter of [`crate::seccomp`].
pub trait SeccompFilter {
    /// Loads the filter; returns its user-notification listener when it has one.
    fn install(&self) -> Result<Option<RawFd>, Errno>;
    /// True when `install` returns a listener.
    fn has_listener(&self) -> bool;
    /// True when the installed filter lets this call run without a notification or a denial.
    fn allows(&self, nr: i64, args: &[u64; 6]) -> bool;
}

/// Everything needed to exec one program, prepared before forking.
#[derive(Clone)]
pub struct ExecPlan {
    pub path: CString,
    pub argv: Vec<CString>,
    pub env: Vec<CString>,
    /// Working directories tried in order (caller's cwd, home, "/").
    pub cwds: Vec<CString>,
    pub creds: Credentials,
    pub landlock: Option<LandlockPlan>,
    pub seccomp: Option<Rc<dyn SeccompFilter>>,
    pub last_cap: u32,
}

impl std::fmt::Debug for ExecPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecPlan")
            .field("path", &self.path)
            .field("argv", &self.argv)
            .field("env", &self.env)
            .field("cwds", &self.cwds)
            .field("creds", &self.creds)
            .field("landlock", &self.landlock)
            .field("seccomp", &self.seccomp.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{what}: contains a NUL byte")]
pub struct NulError {
    pub what: String,
}

/// A C string, or an error naming the value.
pub fn cstring(s: &str) -> Result<CString, NulError> {
    CString::new(s).map_err(|_| NulError { what: s.replace('\0', "\\0") })
}

pub fn cstrings(v: &[String]) -> Result<Vec<CString>, NulError> {
    v.iter().map(|s| cstring(s)).collect()
}

/// Where the process's stdin/stdout/stderr come from.
pub enum ProgramStdio {
    /// The caller's three fds.
    Fds([OwnedFd; 3]),
    /// stdin /dev/null, stdout and stderr to this pipe (the sandbox log).
    Log(OwnedFd),
    /// A pty slave on all three, made the controlling terminal.
    Pty(OwnedFd),
}

/// Fork and exec `plan`. Returns once the program was exec'd (or failed to be).
pub fn spawn(plan: &ExecPlan, stdio: ProgramStdio) -> Result<Pid, InitError> {
    spawn_with_listener(plan, stdio, &mut |_, _| {})
}

/// As [`spawn`]; when the plan's seccomp filter has a user-notification listener, `listener`
/// gets it (with the child's pid) before the child execs, so that whoever answers the
/// notifications has it before the program's first call (execve may already be one).
pub fn spawn_with_listener(
    plan: &ExecPlan,
    stdio: ProgramStdio,
    listener: &mut dyn FnMut(Pid, OwnedFd),
) -> Result<Pid, InitError> {
    let object = Some(plan.path.to_string_lossy().into_owned());
    let (err_r, err_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| InitError::new(Step::Fork, None, e as i32))?;
    let handoff = match plan.seccomp.as_ref().filter(|f| f.has_listener()) {
        Some(f) => Some(
            listener::Handoff::new(|nr, args| f.allows(nr, args))
                .map_err(|e| InitError::new(Step::Seccomp, None, e as i32))?,
        ),
        None => None,
    };
    // SAFETY: the init is single-threaded, so the child inherits no lock held by another thread.
    match unsafe { nix::unistd::fork() }.map_err(|e| InitError::new(Step::Fork, object.clone(), e as i32))? {
        ForkResult::Child => {
            drop(err_r);
            // A panic must never unwind out of the child into the init's frames.
            let (step, errno) =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| child(plan, &stdio, handoff.as_ref())))
                    .unwrap_or((Step::Exec, Errno::EFAULT));
            report_and_exit(err_w.as_raw_fd(), step, errno)
        }
        ForkResult::Parent { child } => {
            drop(err_w);
            drop(stdio);
            if let Some(h) = &handoff {
                let taken =
                    h.wait(err_r.as_raw_fd()).and_then(|fd| fd.map(|fd| h.take(child.as_raw(), fd)).transpose());
                match taken {
                    Ok(Some(fd)) => listener(child, fd),
                    Ok(None) => {} // the child failed before its filter: its report follows
                    Err(e) => {
                        let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                        let _ = nix::sys::wait::waitpid(child, None);
                        return Err(InitError::new(Step::Seccomp, Some("seccomp listener".into()), e as i32));
                    }
                }
            }
            let mut buf = [0u8; 8];
            let n = read_full(&err_r, &mut buf);
            if n < 8 {
                return Ok(child);
            }
            // The child _exits right after reporting; reap it here so no one counts it.
            let _ = nix::sys::wait::waitpid(child, None);
            let step = step_from(u32::from_ne_bytes(buf[..4].try_into().unwrap()));
            let errno = i32::from_ne_bytes(buf[4..].try_into().unwrap());
            Err(InitError::new(step, object, errno))
        }
    }
}

fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    got
}

const STEPS: &[Step] = &[
    Step::Setsid,
    Step::Stdio,
    Step::Groups,
    Step::Gid,
    Step::Uid,
    Step::CapBound,
    Step::Securebits,
    Step::Capabilities,
    Step::NoNewPrivs,
    Step::Landlock,
    Step::CloseFds,
    Step::Chdir,
    Step::Seccomp,
    Step::Exec,
];

fn step_from(n: u32) -> Step {
    STEPS.get(n as usize).copied().unwrap_or(Step::Exec)
}

fn step_index(step: Step) -> u32 {
    STEPS.iter().position(|s| *s == step).unwrap_or(STEPS.len() - 1) as u32
}

fn report_and_exit(fd: RawFd, step: Step, errno: Errno) -> ! {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&step_index(step).to_ne_bytes());
    buf[4..].copy_from_slice(&(errno as i32).to_ne_bytes());
    // SAFETY: write(2) of a local buffer, then _exit without running destructors (we are a
    // forked child sharing nothing we should flush).
    unsafe {
        libc::write(fd, buf.as_ptr() as *const libc::c_void, buf.len());
        libc::_exit(127)
    }
}

/// The child's side; returns only on failure.
fn child(plan: &ExecPlan, stdio: &ProgramStdio, handoff: Option<&listener::Handoff>) -> (Step, Errno) {
    match child_steps(plan, stdio, handoff) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

enum Never {}

fn child_steps(
    plan: &ExecPlan,
    stdio: &ProgramStdio,
    handoff: Option<&listener::Handoff>,
) -> Result<Never, (Step, Errno)> {
    reset_signals();
    // A known umask, whatever the agent was started with.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::unistd::setsid().map_err(|e| (Step::Setsid, e))?;
    attach_stdio(stdio).map_err(|e| (Step::Stdio, e))?;
    creds::drop_privileges(&plan.creds, plan.last_cap)?;
    if let Some(ll) = &plan.landlock {
        crate::landlock::restrict_self(ll).map_err(|e| match e {
            crate::landlock::LandlockError::Unsupported(errno) => (Step::Landlock, errno),
            crate::landlock::LandlockError::Sys { errno, .. } => (Step::Landlock, errno),
        })?;
    }
    // Every fd but 0-2 closes at exec (the error pipe must live until then).
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets flags on our own descriptors.
    Errno::result(unsafe { libc::close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) })
        .map_err(|e| (Step::CloseFds, e))?;
    chdir_first(&plan.cwds).map_err(|e| (Step::Chdir, e))?;
    if let Some(filter) = &plan.seccomp {
        // From here every call may be a notification: no syscall until the listener is handed
        // over (it is close-on-exec, so the program never holds it).
        let listener = filter.install().map_err(|e| (Step::Seccomp, e))?;
        if let (Some(fd), Some(h)) = (listener, handoff) {
            h.publish(fd);
        }
    }
    let argv: Vec<*const libc::c_char> =
        plan.argv.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    let envp: Vec<*const libc::c_char> =
        plan.env.iter().map(|a| a.as_ptr()).chain(std::iter::once(std::ptr::null())).collect();
    // SAFETY: path, argv and envp are NUL-terminated strings in null-terminated arrays that live
    // across the call.
    unsafe { libc::execve(plan.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Err((Step::Exec, Errno::last()))
}

/// Undo the agent's and init's signal setup: empty mask, every disposition back to default
/// (ignored signals would otherwise stay ignored across exec, e.g. Rust's SIGPIPE).
fn reset_signals() {
    use nix::sys::signal::{sigprocmask, SigSet, SigmaskHow};
    // The kernel's struct sigaction; all zeroes is SIG_DFL with no flags and an empty mask.
    // Raw syscall: glibc refuses its internal signals (32, 33), which a parent may have ignored.
    let dfl = [0u64; 4];
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: rt_sigaction reads a valid kernel sigaction (8-byte sigset) and installs
            // no handler code.
            unsafe {
                libc::syscall(libc::SYS_rt_sigaction, sig, dfl.as_ptr(), std::ptr::null_mut::<u64>(), 8usize);
            }
        }
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

fn attach_stdio(stdio: &ProgramStdio) -> Result<(), Errno> {
    let devnull;
    let fds: [RawFd; 3] = match stdio {
        ProgramStdio::Fds(f) => [f[0].as_raw_fd(), f[1].as_raw_fd(), f[2].as_raw_fd()],
        ProgramStdio::Log(out) => {
            devnull = nix::fcntl::open(
                "/dev/null",
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )?;
            [devnull, out.as_raw_fd(), out.as_raw_fd()]
        }
        ProgramStdio::Pty(slave) => {
            // SAFETY: TIOCSCTTY on our pty slave, after setsid made us a session leader.
            Errno::result(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) })?;
            [slave.as_raw_fd(); 3]
        }
    };
    // Move the sources above 2 first so dup2 never clobbers one with another.
    let mut high = [0; 3];
    for (i, fd) in fds.iter().enumerate() {
        high[i] = nix::fcntl::fcntl(*fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))?;
    }
    for (i, fd) in high.iter().enumerate() {
        nix::unistd::dup2(*fd, i as RawFd)?;
    }
    Ok(())
}

fn chdir_first(cwds: &[CString]) -> Result<(), Errno> {
    let mut last = Errno::ENOENT;
    for dir in cwds {
        // SAFETY: chdir on a NUL-terminated path.
        if unsafe { libc::chdir(dir.as_ptr()) } == 0 {
            return Ok(());
        }
        last = Errno::last();
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_codes_round_trip() {
        for s in STEPS {
            assert_eq!(step_from(step_index(*s)), *s);
        }
    }
}
