//! Log files under `log_dir`: the directory is root's alone (0700, or 0711), files are 0600
//! and opened with O_NOFOLLOW; a file is rotated at `log_max_bytes` keeping `log_keep` old
//! ones, and sandbox files are created with O_EXCL under a name no later sandbox reuses
//! (`sandbox-<id>-<profile>-<daemon start in ms>.log`), and only once there is a line to write.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How files are sized and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Rotate at this size (0 = never).
    pub max_bytes: u64,
    /// Rotated files kept.
    pub keep: u32,
    /// Delete sandbox files untouched for this many days (0 = never).
    pub retention_days: u32,
}

impl Policy {
    pub fn from_config(c: &oz_profiles::Config) -> Policy {
        Policy { max_bytes: c.log_max_bytes, keep: c.log_keep, retention_days: c.log_retention_days }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogDirError {
    #[error("log_dir {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("log_dir {path}: not a directory")]
    NotDir { path: PathBuf },
    #[error("log_dir {path}: owned by uid {uid}, must be owned by root")]
    NotRoot { path: PathBuf, uid: u32 },
}

/// Create `dir` (0700) or check it: root-owned, a directory, no access for group and others
/// beyond search (0711). Wider modes of the directory and of the files in it are repaired;
/// the returned notes say what was changed.
pub fn secure_dir(dir: &Path) -> Result<Vec<String>, LogDirError> {
    use std::os::unix::fs::DirBuilderExt;
    let io = |source| LogDirError::Io { path: dir.to_path_buf(), source };
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io)?;
    let meta = std::fs::symlink_metadata(dir).map_err(io)?;
    if !meta.is_dir() {
        return Err(LogDirError::NotDir { path: dir.to_path_buf() });
    }
    if meta.uid() != 0 {
        return Err(LogDirError::NotRoot { path: dir.to_path_buf(), uid: meta.uid() });
    }
    let mut notes = Vec::new();
    let mode = meta.mode() & 0o7777;
    if mode & 0o7066 != 0 {
        let fixed = (mode & 0o700) | 0o700;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(fixed)).map_err(io)?;
        notes
            .push(format!("log_dir {} was mode {mode:04o}, other users could list it; now {fixed:04o}", dir.display()));
    }
    for entry in std::fs::read_dir(dir).map_err(io)?.flatten() {
        let Ok(m) = entry.path().symlink_metadata() else { continue };
        if m.is_file() && m.mode() & 0o077 != 0 {
            let path = entry.path();
            match File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(&path) {
                Ok(f) if f.set_permissions(std::fs::Permissions::from_mode(0o600)).is_ok() => {
                    notes.push(format!("log file {} was mode {:04o}; now 0600", path.display(), m.mode() & 0o7777));
                }
                _ => notes.push(format!(
                    "log file {} is mode {:04o} and could not be repaired",
                    path.display(),
                    m.mode() & 0o7777
                )),
            }
        }
    }
    Ok(notes)
}

/// Keep what the file name makes of a profile name: letters, digits and `-_.`.
pub fn safe_name(profile: &str) -> String {
    profile.chars().map(|c| if c.is_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect()
}

/// One log file: opened on the first write, rotated at the size cap.
pub struct LogFile {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    /// Created by this daemon with O_EXCL (sandbox files), else appended to (the daemon's).
    exclusive: bool,
    /// Opening failed: do not retry on every line.
    failed: bool,
}

impl LogFile {
    /// A sandbox's file; the first free name among `base.log`, `base-2.log`, ... is taken
    /// when the first line is written.
    pub fn sandbox(dir: &Path, base: &str) -> LogFile {
        LogFile { path: dir.join(format!("{base}.log")), file: None, size: 0, exclusive: true, failed: false }
    }

    /// The daemon's own file, appended to across restarts.
    pub fn daemon(dir: &Path) -> LogFile {
        LogFile { path: dir.join("oz-daemon.log"), file: None, size: 0, exclusive: false, failed: false }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, line: &[u8], policy: &Policy) {
        if self.failed {
            return;
        }
        if self.file.is_none() && !self.open_first() {
            self.failed = true;
            return;
        }
        if policy.max_bytes > 0 && self.size > 0 && self.size + line.len() as u64 > policy.max_bytes {
            self.file = None;
            rotate(&self.path, policy.keep);
            match open(&self.path, true) {
                Ok(f) => self.file = Some(f),
                Err(_) => {
                    self.failed = true;
                    return;
                }
            }
            self.size = 0;
        }
        if let Some(f) = self.file.as_mut() {
            if f.write_all(line).is_ok() {
                self.size += line.len() as u64;
            }
        }
    }

    fn open_first(&mut self) -> bool {
        if !self.exclusive {
            let Ok(f) = open(&self.path, false) else { return false };
            self.size = f.metadata().map_or(0, |m| m.len());
            self.file = Some(f);
            return true;
        }
        let stem = self.path.with_extension("");
        for n in 1..100 {
            let path = if n == 1 { self.path.clone() } else { PathBuf::from(format!("{}-{n}.log", stem.display())) };
            match open(&path, true) {
                Ok(f) => {
                    self.path = path;
                    self.file = Some(f);
                    return true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(_) => return false,
            }
        }
        false
    }
}

/// 0600, never through a symlink; `exclusive` = the file must not exist yet.
fn open(path: &Path, exclusive: bool) -> std::io::Result<File> {
    let mut o = OpenOptions::new();
    o.append(true).mode(0o600).custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    if exclusive {
        o.create_new(true);
    } else {
        o.create(true);
    }
    o.open(path)
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

/// `path` -> `path.1` -> ... -> `path.<keep>`; the oldest is deleted.
fn rotate(path: &Path, keep: u32) {
    if keep == 0 {
        let _ = std::fs::remove_file(path);
        return;
    }
    let _ = std::fs::remove_file(numbered(path, keep));
    for n in (1..keep).rev() {
        let _ = std::fs::rename(numbered(path, n), numbered(path, n + 1));
    }
    let _ = std::fs::rename(path, numbered(path, 1));
}

/// Delete sandbox and agent log files (and rotated copies) not modified for `days` days, except
/// the ones in `open`. Returns how many were deleted.
pub fn sweep(dir: &Path, days: u32, open: &[PathBuf]) -> usize {
    if days == 0 {
        return 0;
    }
    let Some(cutoff) = SystemTime::now().checked_sub(Duration::from_secs(u64::from(days) * 86_400)) else { return 0 };
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut deleted = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if !(name.starts_with("sandbox-") || name.starts_with("agent-")) || !name.contains(".log") {
            continue;
        }
        let path = e.path();
        if open.iter().any(|o| path.to_string_lossy().starts_with(&*o.to_string_lossy())) {
            continue;
        }
        let old = e.metadata().ok().filter(|m| m.is_file()).and_then(|m| m.modified().ok()).is_some_and(|t| t < cutoff);
        if old && std::fs::remove_file(&path).is_ok() {
            deleted += 1;
        }
    }
    deleted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().mode() & 0o7777
    }

    #[test]
    fn rotation_keeps_log_keep_files() {
        let dir = tempfile::tempdir().unwrap();
        let policy = Policy { max_bytes: 100, keep: 2, retention_days: 0 };
        let mut f = LogFile::sandbox(dir.path(), "sandbox-1-x-5");
        for i in 0..40 {
            f.write(format!("line {i:04}\n").as_bytes(), &policy);
        }
        let mut names: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["sandbox-1-x-5.log", "sandbox-1-x-5.log.1", "sandbox-1-x-5.log.2"]);
        for n in &names {
            let p = dir.path().join(n);
            assert!(std::fs::metadata(&p).unwrap().len() <= 100);
            assert_eq!(mode(&p), 0o600);
        }
        assert!(std::fs::read_to_string(dir.path().join("sandbox-1-x-5.log")).unwrap().ends_with("line 0039\n"));
    }

    #[test]
    fn sandbox_files_are_new_files_and_made_on_first_write() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.log"), "old\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("s-2.log")).unwrap();
        let policy = Policy { max_bytes: 0, keep: 0, retention_days: 0 };
        drop(LogFile::sandbox(dir.path(), "u"));
        assert!(!dir.path().join("u.log").exists());
        let mut f = LogFile::sandbox(dir.path(), "s");
        f.write(b"new\n", &policy);
        assert_eq!(f.path(), dir.path().join("s-3.log"));
        assert_eq!(std::fs::read_to_string(dir.path().join("s.log")).unwrap(), "old\n");
    }

    #[test]
    fn dir_modes_are_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        assert!(secure_dir(&logs).unwrap().is_empty());
        assert_eq!(mode(&logs), 0o700);
        std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(logs.join("oz-daemon.stderr"), "x").unwrap();
        std::fs::set_permissions(logs.join("oz-daemon.stderr"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let notes = secure_dir(&logs).unwrap();
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert_eq!((mode(&logs), mode(&logs.join("oz-daemon.stderr"))), (0o700, 0o600));
        std::fs::set_permissions(&logs, std::fs::Permissions::from_mode(0o711)).unwrap();
        assert!(secure_dir(&logs).unwrap().is_empty());
    }

    #[test]
    fn sweep_deletes_old_sandbox_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let old = SystemTime::now() - Duration::from_secs(3 * 86_400);
        for n in [
            "sandbox-1-a-1.log",
            "sandbox-1-a-1.log.1",
            "agent-1-1.log",
            "sandbox-2-b-1.log",
            "oz-daemon.log",
            "sandbox-3-c-1.log",
        ] {
            let f = File::create(dir.path().join(n)).unwrap();
            if n != "sandbox-3-c-1.log" {
                f.set_modified(old).unwrap();
            }
        }
        let open = [dir.path().join("sandbox-2-b-1.log")];
        assert_eq!(sweep(dir.path(), 2, &open), 3);
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, ["oz-daemon.log", "sandbox-2-b-1.log", "sandbox-3-c-1.log"]);
        assert_eq!(sweep(dir.path(), 0, &[]), 0);
    }
}
