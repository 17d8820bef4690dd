//! One cgroup per sandbox: always a pids cgroup (to count and kill every process of the
//! sandbox), plus memory and cpu when the profile sets `limits`. Works on the unified hierarchy
//! (cgroup v2) and on v1 controllers mounted under `/sys/fs/cgroup/<controller>`.
//!
//! The init moves itself into the cgroup (v1: `tasks`, pid 0, which skips the global lock a move
//! of another process waits on; v2: the agent moves it) before it forks anything, and only then
//! unshares its cgroup namespace, so nothing in the sandbox runs unaccounted and the sandbox's
//! cgroup namespace is rooted at its own cgroup.

use oz_profiles::profile::Limits;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";
/// Parent directory of the sandboxes' cgroups in each hierarchy.
pub const PARENT: &str = "oz";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{op} {path}: {source}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error },
    #[error("cgroup controller {0} is not available")]
    NoController(&'static str),
    #[error("remove {path}: still busy after {waited_ms} ms")]
    Busy { path: PathBuf, waited_ms: u128 },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io { op, path: path.to_path_buf(), source }
}

/// Which cgroup layout the machine has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// Unified hierarchy at the root, with these controllers available.
    V2 { controllers: Vec<String> },
    /// One hierarchy per controller under `<root>/<controller>`.
    V1,
}

/// Detect the layout under `root` (normally /sys/fs/cgroup).
pub fn detect(root: &Path) -> Layout {
    match std::fs::read_to_string(root.join("cgroup.controllers")) {
        Ok(s) => Layout::V2 { controllers: s.split_whitespace().map(String::from).collect() },
        Err(_) => Layout::V1,
    }
}

/// A value to write into one cgroup file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
}

/// The controllers a sandbox needs: pids always, memory and cpu when limited.
pub fn controllers(limits: &Limits) -> Vec<&'static str> {
    let mut out = vec!["pids"];
    if limits.memory_bytes.is_some() {
        out.push("memory");
    }
    if limits.cpu_weight.is_some() {
        out.push("cpu");
    }
    out
}

/// cgroup v1 cpu.shares for a v2-style weight (1..=10000, default 100 = 1024 shares).
pub fn v1_shares(weight: u32) -> u64 {
    (u64::from(weight.clamp(1, 10000)) * 1024 / 100).max(2)
}

/// The files to write for `limits` on `layout`.
pub fn settings(layout: &Layout, limits: &Limits) -> Vec<Setting> {
    let v2 = matches!(layout, Layout::V2 { .. });
    let mut out = Vec::new();
    if let Some(bytes) = limits.memory_bytes {
        let file = if v2 { "memory.max" } else { "memory.limit_in_bytes" };
        out.push(Setting { controller: "memory", file, value: bytes.to_string() });
    }
    if let Some(pids) = limits.pids {
        out.push(Setting { controller: "pids", file: "pids.max", value: pids.to_string() });
    }
    if let Some(w) = limits.cpu_weight {
        let (file, value) =
            if v2 { ("cpu.weight", w.clamp(1, 10000).to_string()) } else { ("cpu.shares", v1_shares(w).to_string()) };
        out.push(Setting { controller: "cpu", file, value });
    }
    out
}

/// The name of a sandbox's cgroup below `oz/`: `<id>-<tag>`, the tag being 8 hex digits of a
/// stable hash of the canonical state_dir. Every daemon numbers its sandboxes from 1, so two
/// daemons with different state dirs (parallel tests, a second instance) must not share names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupName(String);

impl CgroupName {
    /// The cgroup name of sandbox `id` of the daemon (or standalone agent) using `state_dir`.
    pub fn new(state_dir: &Path, id: u64) -> CgroupName {
        CgroupName(format!("{id}-{}", state_dir_tag(state_dir)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CgroupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// 8 hex digits of FNV-1a (32 bit) over the canonical `state_dir` (the path as given when it
/// cannot be resolved): the same for the daemon, its agents and a restarted daemon.
pub fn state_dir_tag(state_dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let canonical = std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
    let hash = canonical
        .as_os_str()
        .as_bytes()
        .iter()
        .fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193));
    format!("{hash:08x}")
}

/// The sandbox's directory in the hierarchy holding `controller`.
pub fn dir_for(root: &Path, layout: &Layout, controller: &str, name: &CgroupName) -> PathBuf {
    match layout {
        Layout::V2 { .. } => root.join(PARENT).join(name.as_str()),
        Layout::V1 => root.join(controller).join(PARENT).join(name.as_str()),
    }
}

/// A sandbox's cgroup (one directory on v2, one per controller on v1).
#[derive(Debug)]
pub struct Cgroup {
    /// (controller, directory); on v2 a single entry named "unified".
    dirs: Vec<(&'static str, PathBuf)>,
}

fn write_file(path: &Path, value: &str) -> Result<(), CgroupError> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(io_err("open", path))?;
    f.write_all(value.as_bytes()).map_err(io_err("write", path))
}

fn mkdir(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(CgroupError::Io { op: "mkdir", path: path.to_path_buf(), source: e }),
    }
}

impl Cgroup {
    /// Create the cgroup `name` under /sys/fs/cgroup and apply `limits`.
    pub fn create(name: &CgroupName, limits: &Limits) -> Result<Cgroup, CgroupError> {
        Cgroup::create_in(Path::new(CGROUP_ROOT), name, limits)
    }

    pub fn create_in(root: &Path, name: &CgroupName, limits: &Limits) -> Result<Cgroup, CgroupError> {
        let layout = detect(root);
        let wanted = controllers(limits);
        let mut cg = Cgroup { dirs: Vec::new() };
        match &layout {
            Layout::V2 { controllers: available } => {
                // pids is wanted for counting, but cgroup.procs/cgroup.kill work without it.
                let enable: Vec<&str> = wanted.iter().copied().filter(|c| available.iter().any(|a| a == c)).collect();
                for s in settings(&layout, limits) {
                    if !enable.contains(&s.controller) {
                        return Err(CgroupError::NoController(s.controller));
                    }
                }
                let parent = root.join(PARENT);
                mkdir(&parent)?;
                let spec: String = enable.iter().map(|c| format!("+{c} ")).collect();
                if !spec.is_empty() {
                    write_file(&root.join("cgroup.subtree_control"), spec.trim_end())?;
                    write_file(&parent.join("cgroup.subtree_control"), spec.trim_end())?;
                }
                let dir = dir_for(root, &layout, "unified", name);
                cg.make_dir("unified", dir)?;
            }
            Layout::V1 => {
                for c in wanted {
                    let hier = root.join(c);
                    if !hier.join("cgroup.procs").exists() {
                        return Err(CgroupError::NoController(c));
                    }
                    mkdir(&hier.join(PARENT))?;
                    cg.make_dir(c, dir_for(root, &layout, c, name))?;
                }
            }
        }
        for s in settings(&layout, limits) {
            let path = cg.dir(s.controller).join(s.file);
            write_file(&path, &s.value)?;
        }
        Ok(cg)
    }

    /// Remove what a dead agent left of cgroup `name` (its processes are killed). For the
    /// daemon's reconciliation after an agent crash; a missing cgroup is fine.
    pub fn remove_stale(name: &CgroupName) -> Result<(), CgroupError> {
        Cgroup::remove_stale_in(Path::new(CGROUP_ROOT), name)
    }

    pub fn remove_stale_in(root: &Path, name: &CgroupName) -> Result<(), CgroupError> {
        let layout = detect(root);
        let names: &[&'static str] = match layout {
            Layout::V2 { .. } => &["unified"],
            Layout::V1 => &["pids", "memory", "cpu"],
        };
        let dirs = names.iter().map(|c| (*c, dir_for(root, &layout, c, name))).filter(|(_, d)| d.exists()).collect();
        let mut cg = Cgroup { dirs };
        cg.remove_dirs()
    }

    fn make_dir(&mut self, controller: &'static str, dir: PathBuf) -> Result<(), CgroupError> {
        // A directory left by a crashed agent with the same id is reused only when empty.
        std::fs::create_dir(&dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => std::fs::remove_dir(&dir).and_then(|_| std::fs::create_dir(&dir)),
                _ => Err(e),
            })
            .map_err(io_err("mkdir", &dir))?;
        self.dirs.push((controller, dir));
        Ok(())
    }

    fn dir(&self, controller: &str) -> &Path {
        self.dirs
            .iter()
            .find(|(c, _)| *c == controller || *c == "unified")
            .map(|(_, d)| d.as_path())
            .expect("settings only name created controllers")
    }

    /// The directories of this cgroup.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.dirs.iter().map(|(_, d)| d.as_path())
    }

    /// Move process `pid` (0 = the caller) into every directory of the cgroup.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        for (_, dir) in &self.dirs {
            write_file(&dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The processes in the cgroup.
    pub fn procs(&self) -> Result<Vec<i32>, CgroupError> {
        let Some((_, dir)) = self.dirs.first() else { return Ok(Vec::new()) };
        let path = dir.join("cgroup.procs");
        let s = std::fs::read_to_string(&path).map_err(io_err("read", &path))?;
        Ok(s.split_whitespace().filter_map(|p| p.parse().ok()).collect())
    }

    /// SIGKILL every process in the cgroup until it is empty (or `timeout` passes).
    pub fn kill_all(&self, timeout: Duration) -> Result<(), CgroupError> {
        let start = Instant::now();
        loop {
            let me = std::process::id() as i32;
            let procs: Vec<i32> = self.procs()?.into_iter().filter(|p| *p != me).collect();
            if procs.is_empty() || start.elapsed() > timeout {
                return Ok(());
            }
            for pid in procs {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Kill what is left and remove every directory (retrying while the kernel still holds it).
    pub fn remove(mut self) -> Result<(), CgroupError> {
        self.remove_dirs()
    }

    fn remove_dirs(&mut self) -> Result<(), CgroupError> {
        if self.dirs.is_empty() {
            return Ok(());
        }
        self.kill_all(Duration::from_secs(2))?;
        let mut first_err = None;
        for (_, dir) in std::mem::take(&mut self.dirs) {
            if let Err(e) = rmdir_retry(&dir, Duration::from_secs(2)) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = self.remove_dirs();
    }
}

fn rmdir_retry(dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    let start = Instant::now();
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < timeout => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(CgroupError::Busy { path: dir.to_path_buf(), waited_ms: start.elapsed().as_millis() })
            }
            Err(e) => return Err(CgroupError::Io { op: "rmdir", path: dir.to_path_buf(), source: e }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_per_layout() {
        let limits = Limits { memory_bytes: Some(1 << 30), pids: Some(64), cpu_weight: Some(50) };
        let v1 = settings(&Layout::V1, &limits);
        assert_eq!(v1[0], Setting { controller: "memory", file: "memory.limit_in_bytes", value: "1073741824".into() });
        assert_eq!(v1[1], Setting { controller: "pids", file: "pids.max", value: "64".into() });
        assert_eq!(v1[2], Setting { controller: "cpu", file: "cpu.shares", value: "512".into() });
        let v2 = settings(&Layout::V2 { controllers: vec![] }, &limits);
        assert_eq!(v2[0].file, "memory.max");
        assert_eq!(v2[2], Setting { controller: "cpu", file: "cpu.weight", value: "50".into() });
        assert!(settings(&Layout::V1, &Limits::default()).is_empty());
        assert_eq!(controllers(&Limits::default()), vec!["pids"]);
        assert_eq!(controllers(&limits), vec!["pids", "memory", "cpu"]);
    }

    #[test]
    fn shares_and_paths() {
        assert_eq!(v1_shares(100), 1024);
        assert_eq!(v1_shares(1), 10);
        assert_eq!(v1_shares(0), 10);
        assert_eq!(v1_shares(10000), 102400);
        let root = Path::new("/sys/fs/cgroup");
        let name = CgroupName::new(Path::new("/nonexistent/oz-state"), 7);
        let tag = state_dir_tag(Path::new("/nonexistent/oz-state"));
        assert_eq!(name.as_str(), format!("7-{tag}"));
        assert_eq!(dir_for(root, &Layout::V1, "pids", &name), root.join(format!("pids/oz/7-{tag}")));
        assert_eq!(dir_for(root, &Layout::V2 { controllers: vec![] }, "pids", &name), root.join(format!("oz/7-{tag}")));
    }

    #[test]
    fn names_differ_per_state_dir_and_follow_symlinks() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        assert_ne!(CgroupName::new(a.path(), 1), CgroupName::new(b.path(), 1));
        assert_ne!(CgroupName::new(a.path(), 1), CgroupName::new(a.path(), 2));
        let tag = state_dir_tag(a.path());
        assert_eq!(tag.len(), 8);
        assert!(tag.chars().all(|c| c.is_ascii_hexdigit()));
        // The same directory reached through a symlink or a `.` detour has the same name.
        let link = b.path().join("link");
        std::os::unix::fs::symlink(a.path(), &link).unwrap();
        assert_eq!(CgroupName::new(&link, 3), CgroupName::new(a.path(), 3));
        assert_eq!(CgroupName::new(&b.path().join("./link/."), 3), CgroupName::new(a.path(), 3));
    }

    #[test]
    fn creates_joins_and_a_stale_one_is_removed() {
        let state = tempfile::tempdir().unwrap();
        let name = CgroupName::new(state.path(), 900_000 + std::process::id() as u64);
        let limits = Limits { memory_bytes: Some(256 << 20), pids: Some(32), cpu_weight: Some(100) };
        let cg = Cgroup::create(&name, &limits).unwrap();
        let dirs: Vec<PathBuf> = cg.dirs().map(Path::to_path_buf).collect();
        assert!(!dirs.is_empty());
        let mut child = std::process::Command::new("/bin/sleep").arg("30").spawn().unwrap();
        cg.add(child.id() as i32).unwrap();
        assert_eq!(cg.procs().unwrap(), vec![child.id() as i32]);
        let pids_dir = dirs
            .iter()
            .find(|d| {
                d.to_string_lossy().contains("pids") || matches!(detect(Path::new(CGROUP_ROOT)), Layout::V2 { .. })
            })
            .unwrap();
        assert_eq!(std::fs::read_to_string(pids_dir.join("pids.max")).unwrap().trim(), "32");
        std::mem::forget(cg); // as if the agent died
        Cgroup::remove_stale(&name).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
        for d in dirs {
            assert!(!d.exists(), "{} remains", d.display());
        }
    }

    /// The unified-hierarchy code path, on whichever v2 mount the machine has (the root on a
    /// pure v2 machine, /sys/fs/cgroup/unified on a hybrid one like CI's).
    #[test]
    fn v2_layout_creates_joins_and_removes() {
        let root = [Path::new(CGROUP_ROOT), &Path::new(CGROUP_ROOT).join("unified")]
            .into_iter()
            .find(|r| r.join("cgroup.controllers").exists())
            .expect("a cgroup v2 mount")
            .to_path_buf();
        let Layout::V2 { controllers } = detect(&root) else { panic!("{} is not v2", root.display()) };
        let state = tempfile::tempdir().unwrap();
        let name = CgroupName::new(state.path(), 910_000 + std::process::id() as u64);
        let parent_existed = root.join(PARENT).exists();
        let cg = Cgroup::create_in(&root, &name, &Limits::default()).unwrap();
        let dir = root.join(PARENT).join(name.as_str());
        assert_eq!(cg.dirs().collect::<Vec<_>>(), vec![dir.as_path()]);
        let mut child = std::process::Command::new("/bin/sleep").arg("30").spawn().unwrap();
        cg.add(child.id() as i32).unwrap();
        assert_eq!(cg.procs().unwrap(), vec![child.id() as i32]);
        cg.remove().unwrap();
        child.wait().unwrap();
        assert!(!dir.exists());
        if !parent_existed {
            let _ = std::fs::remove_dir(root.join(PARENT));
        }
        if !controllers.iter().any(|c| c == "memory") {
            let limits = Limits { memory_bytes: Some(1 << 30), ..Limits::default() };
            let err = Cgroup::create_in(&root, &name, &limits).unwrap_err();
            assert!(matches!(err, CgroupError::NoController("memory")), "{err}");
        }
    }
}
