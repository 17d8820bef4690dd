//! Reaping: PID 1 collects every process of the sandbox (its own children and re-parented
//! orphans) and reports each exit with the process's name, read before the zombie goes away.

use super::Init;
use crate::common::proto::{ExitStatus, InitToAgent, ProcessRole};
use nix::errno::Errno;

/// An exited child not yet reaped: (pid, status), or None when none is waiting. With `block`,
/// waits for one.
fn peek_exited(block: bool) -> Result<Option<(i32, ExitStatus)>, Errno> {
    // SAFETY: siginfo_t is plain old data; waitid fills it.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOWAIT | if block { 0 } else { libc::WNOHANG };
    // SAFETY: waitid writes into our siginfo_t.
    let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, flags) };
    Errno::result(r)?;
    // SAFETY: after a successful waitid with WEXITED, si_pid and si_status are valid (si_pid is
    // 0 when WNOHANG found nothing).
    let (pid, code, status) = unsafe { (info.si_pid(), info.si_code, info.si_status()) };
    if pid == 0 {
        return Ok(None);
    }
    let status = match code {
        libc::CLD_EXITED => ExitStatus::Code(status),
        _ => ExitStatus::Signal(status),
    };
    Ok(Some((pid, status)))
}

/// Whether the init still has children (running or zombie).
pub fn has_children() -> bool {
    // SAFETY: as in peek_exited; WNOHANG|WNOWAIT neither blocks nor reaps.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waitid writes into our siginfo_t.
    let r = unsafe { libc::waitid(libc::P_ALL, 0, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
    !(r == -1 && Errno::last() == Errno::ECHILD)
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim_end().to_string()).unwrap_or_default()
}

impl Init {
    /// Reap every exited process without blocking, reporting each.
    pub(super) fn reap(&mut self) {
        while let Ok(Some((pid, status))) = peek_exited(false) {
            self.collect(pid, status);
        }
    }

    /// Wait for one process to exit, then reap and report it.
    pub(super) fn reap_blocking(&mut self) {
        loop {
            match peek_exited(true) {
                Ok(Some((pid, status))) => return self.collect(pid, status),
                Err(Errno::EINTR) => continue,
                _ => return,
            }
        }
    }

    fn collect(&mut self, pid: i32, status: ExitStatus) {
        let comm = comm(pid);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        let role = self.tracked.remove(&pid).unwrap_or(ProcessRole::Other);
        self.send(&InitToAgent::Exited { pid, comm, role, status }, &[]);
    }
}
