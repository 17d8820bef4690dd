//! The sandbox's processes as seen from the host's /proc: membership (same PID namespace as
//! the init), names for the watchdog scan, and resource usage for the health heartbeat.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One process of the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcInfo {
    /// Host pid.
    pub pid: i32,
    /// Basename of argv\[0\] (empty for kernel threads and zombies).
    pub argv0: String,
    /// `/proc/<pid>/comm`.
    pub comm: String,
    pub rss_bytes: u64,
    /// User + system CPU time.
    pub cpu_usec: u64,
    /// Exited, not yet reaped.
    pub zombie: bool,
}

/// Totals for the `Health` heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub rss_bytes: u64,
    pub pids: u32,
    pub cpu_usec: u64,
}

/// The identity (device, inode) of a process's PID namespace, `None` once it is gone.
fn pid_ns(proc_root: &Path, pid: i32) -> Option<(u64, u64)> {
    let m = fs::metadata(proc_root.join(pid.to_string()).join("ns/pid")).ok()?;
    Some((m.dev(), m.ino()))
}

/// Every process living in the PID namespace whose init is `init_pid` (the init included).
/// Processes that vanish while being read are skipped. Empty when the init is gone.
pub fn sandbox_processes(init_pid: i32) -> Vec<ProcInfo> {
    processes_in_ns_of(Path::new("/proc"), init_pid)
}

/// Like [`sandbox_processes`], looking only at `candidates` (the pids of the sandbox's cgroup)
/// instead of every process of the host: a sandbox's heartbeat costs what the sandbox holds,
/// not what the host runs.
pub fn sandbox_processes_among(init_pid: i32, candidates: &[i32]) -> Vec<ProcInfo> {
    processes_among(Path::new("/proc"), init_pid, candidates.iter().copied())
}

fn processes_in_ns_of(proc_root: &Path, init_pid: i32) -> Vec<ProcInfo> {
    let Ok(entries) = fs::read_dir(proc_root) else { return Vec::new() };
    let pids = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok());
    processes_among(proc_root, init_pid, pids)
}

fn processes_among(proc_root: &Path, init_pid: i32, pids: impl Iterator<Item = i32>) -> Vec<ProcInfo> {
    let Some(ns) = pid_ns(proc_root, init_pid) else { return Vec::new() };
    let mut out: Vec<ProcInfo> =
        pids.filter(|&pid| pid_ns(proc_root, pid) == Some(ns)).filter_map(|pid| read_proc(proc_root, pid)).collect();
    out.sort_by_key(|p| p.pid);
    out
}

fn read_proc(proc_root: &Path, pid: i32) -> Option<ProcInfo> {
    let dir = proc_root.join(pid.to_string());
    let comm = fs::read_to_string(dir.join("comm")).ok()?.trim_end_matches('\n').to_string();
    let cmdline = fs::read(dir.join("cmdline")).unwrap_or_default();
    let stat = fs::read_to_string(dir.join("stat")).ok()?;
    let statm = fs::read_to_string(dir.join("statm")).unwrap_or_default();
    Some(ProcInfo {
        pid,
        argv0: argv0_basename(&cmdline),
        comm,
        rss_bytes: rss_from_statm(&statm, page_size()),
        cpu_usec: cpu_from_stat(&stat, clock_ticks()).unwrap_or(0),
        zombie: state_from_stat(&stat) == Some('Z'),
    })
}

/// The basename of the first NUL-terminated string of a `/proc/<pid>/cmdline`.
pub fn argv0_basename(cmdline: &[u8]) -> String {
    let argv0 = cmdline.split(|&b| b == 0).next().unwrap_or_default();
    let base = argv0.rsplit(|&b| b == b'/').next().unwrap_or(argv0);
    String::from_utf8_lossy(base).into_owned()
}

/// Resident set size from `/proc/<pid>/statm` (second field, in pages).
fn rss_from_statm(statm: &str, page: u64) -> u64 {
    statm.split_whitespace().nth(1).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0) * page
}

/// The state letter (field 3 of `/proc/<pid>/stat`).
fn state_from_stat(stat: &str) -> Option<char> {
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// utime + stime (fields 14 and 15 of `/proc/<pid>/stat`) in microseconds. The comm field
/// (2) may contain spaces and parentheses, so parsing starts after the last ')'.
fn cpu_from_stat(stat: &str, ticks_per_sec: u64) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // rest starts at field 3 (state): utime is field 14, i.e. index 11 here.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) * 1_000_000 / ticks_per_sec.max(1))
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// Sum the usage of a process list.
pub fn usage(procs: &[ProcInfo]) -> Usage {
    procs.iter().fold(Usage::default(), |u, p| Usage {
        rss_bytes: u.rss_bytes + p.rss_bytes,
        pids: u.pids + 1,
        cpu_usec: u.cpu_usec + p.cpu_usec,
    })
}

/// The names the watchdog scan matches against: argv\[0\] basename and comm of every live
/// (not zombie) process.
pub fn watchdog_names(procs: &[ProcInfo]) -> Vec<String> {
    let mut names: Vec<String> = procs
        .iter()
        .filter(|p| !p.zombie)
        .flat_map(|p| [p.argv0.clone(), p.comm.clone()])
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv0_basename_variants() {
        assert_eq!(argv0_basename(b"/usr/bin/torbrowser\0--x\0"), "torbrowser");
        assert_eq!(argv0_basename(b"dog\0"), "dog");
        assert_eq!(argv0_basename(b""), "");
        assert_eq!(argv0_basename(b"/a/b/"), "");
    }

    #[test]
    fn stat_parsing_survives_odd_comm() {
        // comm with spaces and a ')' inside.
        let stat = "123 (we ird) x) S 1 123 123 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 1000 1000 10";
        assert_eq!(cpu_from_stat(stat, 100), Some(3_000_000));
        assert_eq!(cpu_from_stat("garbage", 100), None);
        assert_eq!(cpu_from_stat("1 (x) S 1", 100), None);
        assert_eq!(state_from_stat(stat), Some('S'));
        assert_eq!(state_from_stat("9 (a) b) Z 1"), Some('Z'));
    }

    #[test]
    fn statm_parsing() {
        assert_eq!(rss_from_statm("1000 25 10 1 0 50 0\n", 4096), 25 * 4096);
        assert_eq!(rss_from_statm("", 4096), 0);
    }

    #[test]
    fn own_namespace_lists_this_process_with_real_numbers() {
        let me = std::process::id() as i32;
        let procs = sandbox_processes(me);
        let mine = procs.iter().find(|p| p.pid == me).expect("this process is in its own pid ns");
        assert!(mine.rss_bytes > 0);
        assert!(!mine.comm.is_empty());
        let u = usage(&procs);
        assert!(u.pids as usize == procs.len() && u.pids >= 1);
        assert!(watchdog_names(&procs).contains(&mine.comm));
    }

    #[test]
    fn gone_init_means_no_processes() {
        // pid_max is at most 2^22: this pid cannot exist.
        assert!(sandbox_processes(i32::MAX).is_empty());
    }

    #[test]
    fn other_namespace_excludes_host_processes() {
        // A child in a new PID namespace (unshare + fork): the scan of its namespace must list
        // it and not this test process.
        use std::process::Command;
        let mut child = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "sleep", "30"])
            .spawn()
            .expect("unshare(1) runs");
        // The forked sleep is the new namespace's init; find it as unshare's child.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let init = loop {
            let kids =
                fs::read_to_string(format!("/proc/{}/task/{}/children", child.id(), child.id())).unwrap_or_default();
            if let Some(pid) = kids.split_whitespace().next().and_then(|s| s.parse::<i32>().ok()) {
                // Wait until it exec'd sleep.
                if fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep") {
                    break pid;
                }
            }
            assert!(std::time::Instant::now() < deadline, "unshare child did not start");
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let procs = sandbox_processes(init);
        // Given the candidates (a cgroup's pids), only those in the namespace count.
        let me = std::process::id() as i32;
        let among = sandbox_processes_among(init, &[me, init]);
        let host_only = sandbox_processes_among(init, &[me]);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(procs.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![init]);
        assert_eq!(procs[0].argv0, "sleep");
        assert_eq!(watchdog_names(&procs), vec!["sleep".to_string()]);
        assert_eq!(among, procs);
        assert!(host_only.is_empty(), "{host_only:?}");
    }
}
