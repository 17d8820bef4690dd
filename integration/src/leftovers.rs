//! What a sandbox may not leave behind: host mounts, processes (named `oz-*` or owned by a test
//! user), cgroup directories under `/sys/fs/cgroup/*/oz/`, and files in the state directories.
//!
//! A [`Snapshot`] is taken before a test; [`Snapshot::leftovers`] lists what appeared since.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    mounts: BTreeSet<String>,
    procs: BTreeMap<u32, String>,
    cgroups: BTreeSet<PathBuf>,
}

/// Host mounts as "mount-point fstype source" (ids and options left out).
fn mounts() -> BTreeSet<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            Some(format!("{} {} {}", f.get(4)?, f.get(sep + 1)?, f.get(sep + 2)?))
        })
        .collect()
}

fn proc_uid(pid: &str) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Processes named `oz-*` or running as one of `uids`, as pid -> "comm (uid N)".
fn procs(uids: &[u32]) -> BTreeMap<u32, String> {
    let me = std::process::id();
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<u32>() else { continue };
        if pid == me {
            continue;
        }
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let comm = comm.trim().to_string();
        let Some(uid) = proc_uid(&name) else { continue };
        if comm.starts_with("oz-") || uids.contains(&uid) {
            out.insert(pid, format!("{comm} (uid {uid})"));
        }
    }
    out
}

/// Every directory under `/sys/fs/cgroup/<ctrl>/oz` (v1) and `/sys/fs/cgroup/oz` (v2); the
/// shared `oz` parents themselves may stay.
fn cgroups() -> BTreeSet<PathBuf> {
    let mut roots = vec![PathBuf::from("/sys/fs/cgroup/oz")];
    for e in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
        roots.push(e.path().join("oz"));
    }
    let mut out = BTreeSet::new();
    let mut stack: Vec<PathBuf> = roots.into_iter().filter(|p| p.is_dir()).collect();
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                out.insert(e.path());
                stack.push(e.path());
            }
        }
    }
    out
}

/// Entries of a directory (recursively), for "must be empty" checks.
pub fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(e.path());
            }
            out.push(e.path());
        }
    }
    out
}

impl Snapshot {
    pub fn take(uids: &[u32]) -> Snapshot {
        Snapshot { mounts: mounts(), procs: procs(uids), cgroups: cgroups() }
    }

    /// What is new compared to `self` (empty = clean).
    pub fn diff(&self, uids: &[u32], empty_dirs: &[PathBuf]) -> Vec<String> {
        let now = Snapshot::take(uids);
        let mut found = Vec::new();
        for m in now.mounts.difference(&self.mounts) {
            found.push(format!("mount: {m}"));
        }
        for (pid, what) in &now.procs {
            if !self.procs.contains_key(pid) {
                found.push(format!("process: {pid} {what}"));
            }
        }
        for c in now.cgroups.difference(&self.cgroups) {
            found.push(format!("cgroup: {}", c.display()));
        }
        for dir in empty_dirs {
            for e in entries(dir) {
                found.push(format!("state file: {}", e.display()));
            }
        }
        found
    }

    /// Polls [`Self::diff`] for up to `grace` (teardown is asynchronous) and returns what is
    /// still left at the end.
    pub fn leftovers(&self, uids: &[u32], empty_dirs: &[PathBuf], grace: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let found = self.diff(uids, empty_dirs);
            if found.is_empty() || start.elapsed() > grace {
                return found;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
