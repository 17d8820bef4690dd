//! Processes, files and mounts, read from /proc and the file system, for leftover checks.

use std::fs;

/// A process identified by pid and start time, so a reused pid is not mistaken for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: i32,
    pub start: u64,
}

impl Proc {
    pub fn get(pid: i32) -> Option<Proc> {
        (pid > 0).then_some(())?;
        Some(Proc { pid, start: start_time(pid)? })
    }

    /// Still the same process, and not a zombie waiting to be reaped.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start) && state(self.pid) != Some('Z')
    }
}

fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // comm may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

fn state(pid: i32) -> Option<char> {
    stat_fields(pid)?.first()?.chars().next()
}

pub fn comm(pid: i32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim_end().to_string()
}

/// argv[0] of a process, from its cmdline.
pub fn argv0(pid: i32) -> String {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    String::from_utf8_lossy(raw.split(|b| *b == 0).next().unwrap_or_default()).into_owned()
}

/// Every process whose pid namespace is that of `init_pid`.
pub fn pidns_members(init_pid: i32) -> Vec<Proc> {
    let Ok(ns) = fs::read_link(format!("/proc/{init_pid}/ns/pid")) else { return Vec::new() };
    all_pids()
        .into_iter()
        .filter(|p| fs::read_link(format!("/proc/{p}/ns/pid")).ok().as_ref() == Some(&ns))
        .filter_map(Proc::get)
        .collect()
}

/// Members of `init_pid`'s pid namespace with this comm.
pub fn pidns_members_named(init_pid: i32, name: &str) -> Vec<Proc> {
    pidns_members(init_pid).into_iter().filter(|p| comm(p.pid) == name).collect()
}

pub fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|d| d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

/// Send a signal to one process we started (or that a sandbox we started holds).
pub fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) has no memory effects; pid is a specific positive pid.
    if pid > 0 {
        unsafe { libc::kill(pid, sig) };
    }
}
