//! Processes and /proc: host processes, signals, sensitive /proc files, ptrace, leaked fds and
//! environment, the host's UTS name.

use super::{child_code, io_errno, need, read_some, wait_child, Ctx, Outcome, Probe};
use nix::errno::Errno;

pub(super) fn probes() -> Vec<Probe> {
    vec![
        Probe { name: "host-process", run: host_process },
        Probe { name: "kill-host-pid", run: kill_host_pid },
        Probe { name: "kill-all", run: kill_all },
        Probe { name: "proc-sys-write", run: |_| open_for_write("/proc/sys/kernel/core_pattern") },
        Probe { name: "sysrq-trigger", run: |_| open_for_write("/proc/sysrq-trigger") },
        Probe { name: "proc-kcore", run: |_| open_read("/proc/kcore") },
        Probe { name: "proc-timer-list", run: |_| open_read("/proc/timer_list") },
        Probe { name: "proc-kallsyms", run: kallsyms },
        Probe { name: "fds-open", run: fds_open },
        Probe { name: "env-secret", run: env_secret },
        Probe { name: "ptrace-child", run: ptrace_child },
        Probe { name: "ptrace-parent", run: ptrace_parent },
        Probe { name: "process-vm-readv", run: process_vm_readv },
        Probe { name: "uts-hostname", run: uts_hostname },
    ]
}

/// argv\[0\] of a process, if readable.
fn argv0(pid: &str) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let first = raw.split(|b| *b == 0).next()?;
    Some(String::from_utf8_lossy(first).into_owned())
}

fn host_process(ctx: &Ctx) -> Outcome {
    let marker = match need(ctx, "marker") {
        Ok(m) => m,
        Err(o) => return o,
    };
    let me = std::process::id().to_string();
    let mut seen = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        seen += 1;
        if argv0(&name).as_deref() == Some(marker) {
            return Outcome::Escape(format!("host process {marker} visible as pid {name}"));
        }
    }
    Outcome::Blocked(format!("{seen} other processes visible, none is {marker}"))
}

fn kill_host_pid(ctx: &Ctx) -> Outcome {
    let (pid, marker) = match (need(ctx, "host-pid"), need(ctx, "marker")) {
        (Ok(p), Ok(m)) => (p, m),
        (Err(o), _) | (_, Err(o)) => return o,
    };
    let Ok(n) = pid.parse::<libc::pid_t>() else {
        return Outcome::NotApplicable(format!("bad --host-pid {pid}"));
    };
    // Signal 0: the permission and existence check without delivering anything.
    // SAFETY: kill with signal 0 has no effect beyond the check.
    if unsafe { libc::kill(n, 0) } != 0 {
        return Outcome::Blocked(format!("kill({n}, 0): {:?}", Errno::last()));
    }
    match argv0(pid) {
        Some(a) if a == marker => Outcome::Escape(format!("may signal host process {n} ({a})")),
        other => Outcome::Blocked(format!("pid {n} here is {other:?}, not the host process")),
    }
}

fn kill_all(_: &Ctx) -> Outcome {
    // SAFETY: signal 0 to -1 only checks which processes could be signalled.
    if unsafe { libc::kill(-1, 0) } == 0 {
        Outcome::Escape("kill(-1, 0) found processes this user may signal".into())
    } else {
        Outcome::Blocked(format!("kill(-1, 0): {:?}", Errno::last()))
    }
}

/// Opening for writing is the attack; nothing is ever written.
fn open_for_write(path: &str) -> Outcome {
    if let Some(o) = kernel_lacks(path) {
        return o;
    }
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => Outcome::Escape(format!("opened {path} for writing")),
        Err(e) => Outcome::Blocked(format!("open {path} for writing: {}", io_errno(&e))),
    }
}

/// N/A when the kernel has no such /proc file at all (checked through our own /proc, which a
/// sandbox may mask but does not remove).
fn kernel_lacks(path: &str) -> Option<Outcome> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Some(Outcome::NotApplicable(format!("{path}: ENOENT, the kernel lacks it")))
        }
        _ => None,
    }
}

/// ESCAPE when the file has content (masking binds an empty file over it).
fn open_read(path: &str) -> Outcome {
    if let Some(o) = kernel_lacks(path) {
        return o;
    }
    match read_some(path, 16) {
        Ok(b) if b.is_empty() => Outcome::Blocked(format!("{path} reads empty")),
        Ok(_) => Outcome::Escape(format!("read {path}")),
        Err(e) => Outcome::Blocked(format!("read {path}: {}", io_errno(&e))),
    }
}

fn kallsyms(_: &Ctx) -> Outcome {
    let text = match read_some("/proc/kallsyms", 64 * 1024) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => return Outcome::Blocked(format!("read /proc/kallsyms: {}", io_errno(&e))),
    };
    let leaked = text.lines().filter_map(|l| l.split_whitespace().next()).find(|addr| addr.bytes().any(|b| b != b'0'));
    match leaked {
        Some(a) => Outcome::Escape(format!("kernel address {a} in /proc/kallsyms")),
        None if text.is_empty() => Outcome::Blocked("/proc/kallsyms is empty".into()),
        None => Outcome::Blocked("/proc/kallsyms addresses are zeroed".into()),
    }
}

fn fds_open(_: &Ctx) -> Outcome {
    let Ok(rd) = std::fs::read_dir("/proc/self/fd") else {
        return Outcome::Blocked("cannot list /proc/self/fd".into());
    };
    let mut extra = Vec::new();
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if matches!(name.as_str(), "0" | "1" | "2") {
            continue;
        }
        let target = std::fs::read_link(entry.path()).map(|t| t.display().to_string());
        match target {
            // The directory handle read_dir itself holds.
            Ok(t) if t.starts_with("/proc/") && t.ends_with("/fd") => continue,
            Ok(t) => extra.push(format!("{name}->{t}")),
            Err(_) => continue,
        }
    }
    if extra.is_empty() {
        Outcome::Blocked("only fds 0-2 are open".into())
    } else {
        Outcome::Escape(format!("open fds: {}", extra.join(" ")))
    }
}

fn env_secret(ctx: &Ctx) -> Outcome {
    let name = match need(ctx, "secret-env") {
        Ok(n) => n,
        Err(o) => return o,
    };
    match std::env::var_os(name) {
        Some(_) => Outcome::Escape(format!("{name} reached the program")),
        None => Outcome::Blocked(format!("{name} is not set")),
    }
}

/// Forks a child that just waits to be killed.
fn sleeper() -> libc::pid_t {
    // SAFETY: single-threaded; the child only pauses until killed.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        loop {
            // SAFETY: pause has no arguments.
            unsafe { libc::pause() };
        }
    }
    pid
}

fn reap(pid: libc::pid_t) {
    // SAFETY: pid is our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    wait_child(pid);
}

fn ptrace_attach(pid: libc::pid_t) -> Result<(), Errno> {
    // SAFETY: PTRACE_ATTACH takes no pointers; we detach again on success.
    let r = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0, 0) };
    if r != 0 {
        return Err(Errno::last());
    }
    let mut status = 0;
    // SAFETY: wait for the attach stop of the tracee, then detach it.
    unsafe {
        libc::waitpid(pid, &mut status, libc::__WALL);
        libc::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
    }
    Ok(())
}

fn ptrace_child(_: &Ctx) -> Outcome {
    let pid = sleeper();
    if pid < 0 {
        return Outcome::Blocked(format!("fork: {:?}", Errno::last()));
    }
    let r = ptrace_attach(pid);
    reap(pid);
    super::verdict(&format!("ptrace(PTRACE_ATTACH, {pid})"), r)
}

fn ptrace_parent(_: &Ctx) -> Outcome {
    // SAFETY: getppid has no arguments.
    let ppid = unsafe { libc::getppid() };
    let end = super::in_child(move || child_code(ptrace_attach(ppid)));
    super::child_verdict(&format!("ptrace(PTRACE_ATTACH, parent {ppid})"), end)
}

fn process_vm_readv(_: &Ctx) -> Outcome {
    let secret: u64 = 0x6f7a_7072_6f62_6521;
    let pid = sleeper();
    if pid < 0 {
        return Outcome::Blocked(format!("fork: {:?}", Errno::last()));
    }
    let mut out: u64 = 0;
    let local = libc::iovec { iov_base: (&mut out as *mut u64).cast(), iov_len: 8 };
    let remote = libc::iovec { iov_base: (&secret as *const u64 as *mut u64).cast(), iov_len: 8 };
    // SAFETY: both iovecs describe 8 valid bytes; the child shares our address layout.
    let r = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    let err = Errno::last();
    reap(pid);
    if r == 8 && out == secret {
        Outcome::Escape(format!("read memory of pid {pid}"))
    } else {
        Outcome::Blocked(format!("process_vm_readv({pid}): {err:?}"))
    }
}

fn uts_hostname(ctx: &Ctx) -> Outcome {
    let host = match need(ctx, "host-hostname") {
        Ok(h) => h,
        Err(o) => return o,
    };
    match nix::unistd::gethostname() {
        Ok(h) if h.to_string_lossy() == host => Outcome::Escape(format!("hostname is the host's {host}")),
        Ok(h) => Outcome::Blocked(format!("hostname is {}", h.to_string_lossy())),
        Err(e) => Outcome::Blocked(format!("gethostname: {e:?}")),
    }
}
