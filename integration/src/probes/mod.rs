//! Escape probes: each one tries a real attack and says whether it got through.
//!
//! A probe prints `ESCAPE <name>: <detail>` when the attack worked, `BLOCKED <name>: <detail>`
//! when it did not, and `N/A <name>: <reason>` only when the attack cannot apply at all (the test
//! did not give the probe its target, or the kernel lacks the feature everywhere). The same probes
//! run inside a sandbox (everything must be BLOCKED) and unsandboxed (they must ESCAPE wherever
//! the host allows it), so each one is known to be able to fail.
//!
//! Probes that could crash, change the probe's own credentials or namespaces, or leave state
//! behind run in a forked child (the probe binary is single-threaded).

mod creds;
mod dev;
mod fs;
mod kernel;
mod net;
mod proc;
pub mod syscalls;

use nix::errno::Errno;
use std::collections::BTreeMap;
use std::fmt;

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Escape(String),
    Blocked(String),
    NotApplicable(String),
}

impl Outcome {
    pub fn tag(&self) -> &'static str {
        match self {
            Outcome::Escape(_) => "ESCAPE",
            Outcome::Blocked(_) => "BLOCKED",
            Outcome::NotApplicable(_) => "N/A",
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Outcome::Escape(d) | Outcome::Blocked(d) | Outcome::NotApplicable(d) => d,
        }
    }
}

/// One attack.
pub struct Probe {
    pub name: &'static str,
    pub run: fn(&Ctx) -> Outcome,
}

/// Targets the test hands to the probes (`--key value` on the command line).
#[derive(Debug, Default, Clone)]
pub struct Ctx {
    values: BTreeMap<String, String>,
}

impl Ctx {
    pub fn new(values: BTreeMap<String, String>) -> Ctx {
        Ctx { values }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }
}

/// Every probe, in the order they run.
pub fn all() -> Vec<Probe> {
    let mut v = Vec::new();
    v.extend(creds::probes());
    v.extend(fs::probes());
    v.extend(proc::probes());
    v.extend(kernel::probes());
    v.extend(dev::probes());
    v.extend(net::probes());
    v
}

/// One output line.
pub struct Line<'a>(pub &'a str, pub &'a Outcome);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = self.1.detail().replace('\n', " ");
        write!(f, "{} {}: {}", self.1.tag(), self.0, detail)
    }
}

/// Parses a line printed by [`Line`]: (tag, name, detail).
pub fn parse_line(line: &str) -> Option<(&str, &str, &str)> {
    let line = line.trim_end_matches('\r');
    let (tag, rest) = line.split_once(' ')?;
    if !matches!(tag, "ESCAPE" | "BLOCKED" | "N/A") {
        return None;
    }
    let (name, detail) = rest.split_once(": ").unwrap_or((rest.trim_end_matches(':'), ""));
    Some((tag, name, detail))
}

// ---- helpers shared by the probe modules ----

/// `Ok` = the attack worked.
pub(crate) fn verdict<T>(what: &str, r: Result<T, Errno>) -> Outcome {
    match r {
        Ok(_) => Outcome::Escape(format!("{what} succeeded")),
        Err(e) => Outcome::Blocked(format!("{what}: {e:?}")),
    }
}

/// A raw syscall result as `Result`.
pub(crate) fn sys(ret: libc::c_long) -> Result<libc::c_long, Errno> {
    if ret < 0 {
        Err(Errno::last())
    } else {
        Ok(ret)
    }
}

/// How a forked child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChildEnd {
    Exited(i32),
    Signaled(i32),
}

/// Runs `f` in a forked child and returns how it ended; `f`'s return value is the exit code.
/// Children report errno values as their exit code (0 = success).
pub(crate) fn in_child(f: impl FnOnce() -> i32) -> ChildEnd {
    // SAFETY: the probe binary is single-threaded, so the child may run arbitrary code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return ChildEnd::Exited(255);
    }
    if pid == 0 {
        let code = f();
        // SAFETY: leave the child without running the parent's exit handlers.
        unsafe { libc::_exit(code) };
    }
    wait_child(pid)
}

pub(crate) fn wait_child(pid: libc::pid_t) -> ChildEnd {
    let mut status = 0;
    loop {
        // SAFETY: plain waitpid on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && Errno::last() != Errno::EINTR {
            return ChildEnd::Exited(255);
        }
    }
    if libc::WIFSIGNALED(status) {
        ChildEnd::Signaled(libc::WTERMSIG(status))
    } else {
        ChildEnd::Exited(libc::WEXITSTATUS(status))
    }
}

/// Exit code for a child: 0 on success, errno otherwise (capped below 255).
pub(crate) fn child_code<T>(r: Result<T, Errno>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => (e as i32).clamp(1, 254),
    }
}

/// Verdict for a child that reported with [`child_code`].
pub(crate) fn child_verdict(what: &str, end: ChildEnd) -> Outcome {
    match end {
        ChildEnd::Exited(0) => Outcome::Escape(format!("{what} succeeded")),
        ChildEnd::Exited(code) => Outcome::Blocked(format!("{what}: {:?}", Errno::from_raw(code))),
        ChildEnd::Signaled(sig) => Outcome::Blocked(format!("{what}: killed by signal {sig}")),
    }
}

/// A C string for a syscall argument.
pub(crate) fn cstr(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).expect("probe strings have no NUL")
}

/// A unique name in `dir` for files the probes create (and remove at once).
pub(crate) fn scratch_name(dir: &str, what: &str) -> String {
    let dir = dir.trim_end_matches('/');
    format!("{dir}/.oz-probe-{what}-{}", std::process::id())
}

/// Reads up to `max` bytes of a file.
pub(crate) fn read_some(path: &str, max: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?.take(max as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

pub(crate) fn io_errno(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => format!("{:?}", Errno::from_raw(n)),
        None => e.to_string(),
    }
}

/// Ctx value or an N/A outcome naming the missing key.
pub(crate) fn need<'a>(ctx: &'a Ctx, key: &str) -> Result<&'a str, Outcome> {
    ctx.get(key).ok_or_else(|| Outcome::NotApplicable(format!("no --{key} given")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let o = Outcome::Blocked("open /etc/shadow: EACCES".into());
        let s = Line("shadow-read", &o).to_string();
        assert_eq!(parse_line(&s), Some(("BLOCKED", "shadow-read", "open /etc/shadow: EACCES")));
        assert_eq!(parse_line("N/A tiocsti: no tty\r"), Some(("N/A", "tiocsti", "no tty")));
        assert_eq!(parse_line("oz-agent: error"), None);
    }

    #[test]
    fn probe_names_are_unique_and_many() {
        let probes = all();
        let mut names: Vec<_> = probes.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), probes.len());
        assert!(names.len() >= 40, "only {} probes", names.len());
    }
}
