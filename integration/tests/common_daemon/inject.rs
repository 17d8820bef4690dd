//! Helpers for the tests of `oz mount` / `oz umount` and argument files: user-owned trees in a
//! test user's home (removed again by root), probes run inside a sandbox through `oz shell`,
//! and the mount table as the sandbox sees it.

use super::{Daemon, TestUser};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A directory in `user`'s home, created by the user; removed (as root) when dropped.
pub struct UserTree {
    pub path: PathBuf,
}

impl UserTree {
    /// `~/<name>` with the files `files` (relative paths; parents made) owned by the user.
    pub fn new(user: &TestUser, name: &str, files: &[&str]) -> UserTree {
        let path = user.home.join(name);
        let mut script = format!("mkdir -p '{}'", path.display());
        for f in files {
            let p = path.join(f);
            script.push_str(&format!(
                " && mkdir -p '{}' && echo data > '{}'",
                p.parent().unwrap().display(),
                p.display()
            ));
        }
        user.sh(&script).expect("make the user's tree");
        UserTree { path }
    }

    pub fn join(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    pub fn str(&self, rel: &str) -> String {
        self.join(rel).to_str().expect("utf-8 test path").to_string()
    }
}

impl Drop for UserTree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Run `script` with /bin/sh inside sandbox `id` as `user` (through `oz shell`); its output
/// (with the pty's echo of the input). Output the relay cut short is retried: a marker computed
/// by the shell (so not in the echo) shows the script ran to its end.
pub fn inside(d: &Daemon, user: &TestUser, id: u64, script: &str) -> String {
    let input = format!("{script}\necho ozt-done-$((6 * 7))\nexit 0\n");
    let mut last = String::new();
    for _ in 0..5 {
        let out = d.oz_input(user, &["shell", &id.to_string()], input.as_bytes(), Duration::from_secs(20));
        out.assert_ok("oz shell probe", d);
        if out.stdout.contains("ozt-done-42") {
            return out.stdout;
        }
        last = out.stdout;
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("probe output incomplete: {last:?}");
}

/// The sandbox's mountinfo lines whose mount point is `path`.
pub fn mounts_at(d: &Daemon, user: &TestUser, id: u64, path: &str) -> Vec<String> {
    // Tagged, as a prompt may precede the first line of output.
    let out =
        inside(d, user, id, &format!("awk -v p='{path}' '$5 == p {{ print \"ozt-mi\", $0 }}' /proc/self/mountinfo"));
    out.lines()
        .filter_map(|l| l.split_once("ozt-mi ").map(|(_, rest)| rest.trim_end_matches('\r')))
        .filter(|l| l.split(' ').nth(4) == Some(path))
        .map(str::to_string)
        .collect()
}

/// The per-mount options (field 6) of a mountinfo line.
pub fn options(line: &str) -> Vec<String> {
    line.split(' ').nth(5).unwrap_or("").split(',').map(str::to_string).collect()
}

/// The mounts `oz list --json` shows for sandbox `id`.
pub fn listed_mounts(d: &Daemon, user: &TestUser, id: u64) -> Vec<String> {
    let list = d.list_json(user);
    let s = list
        .iter()
        .find(|s| s["id"].as_u64() == Some(id))
        .unwrap_or_else(|| panic!("sandbox {id} not listed: {list:?}"));
    s["mounts"].as_array().expect("mounts array").iter().map(|m| m.as_str().unwrap_or_default().to_string()).collect()
}

/// Every entry below `dir` (not following symlinks) owned by uid 0; entries vanishing during
/// the walk are skipped.
pub fn root_owned(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else { continue };
            if m.uid() == 0 {
                found.push(e.path());
            }
            if m.is_dir() {
                todo.push(e.path());
            }
        }
    }
    found.sort();
    found
}
