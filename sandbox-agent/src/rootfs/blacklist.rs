//! Hiding paths behind empty read-only placeholders (oz-inventory.md §3.3, fixed): the profile
//! blacklist plus, unless `nodefaults`, the default one. `${PATH}/name` means every match in
//! every search directory (globs included); paths are resolved inside the new root, so a symlink
//! leads to the real object and hides it under every name.

use super::build::Builder;
use super::pathsafe;
use super::vars::Vars;
use super::RootfsError;
use nix::errno::Errno;
use oz_profiles::profile::BlacklistItem;
use std::collections::HashSet;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// The original's default blacklist directories.
pub const DEFAULT_PATHS: &[&str] = &[
    "/usr/lib/gvfs",
    "/usr/sbin",
    "/sbin",
    "/usr/include",
    "/usr/lib/klibc",
    "/usr/share/doc",
    "/usr/src",
    "/lib/udev/rules.d",
    "/lib/firmware",
    "/lib/modules",
    "/usr/local/include",
    "/usr/local/src",
];

/// The original's default blacklisted programs, looked up in every search directory.
pub const DEFAULT_PROGRAMS: &[&str] = &[
    "sudo", "su", "xinput", "strace", "mount", "umount", "fusermount", "fusermount3", "fuser", "kmod", "mknod", "udevadm",
    "systemd", "systemd-*",
];

/// The default blacklist as profile-style strings.
pub fn defaults() -> Vec<String> {
    DEFAULT_PATHS
        .iter()
        .map(|p| p.to_string())
        .chain(DEFAULT_PROGRAMS.iter().map(|p| format!("${{PATH}}/{p}")))
        .collect()
}

/// Expand every entry; an entry that cannot be expanded is a warning (not silent), and no_follow
/// (which cannot be honoured: a symlink cannot be a mount point) is reported.
pub fn plan(vars: &Vars, items: &[BlacklistItem], nodefaults: bool, warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let mut entries: Vec<String> = if nodefaults { Vec::new() } else { defaults() };
    for item in items {
        if item.no_follow {
            warnings.push(format!("blacklist {}: no_follow is not supported, the symlink's target is hidden", item.path));
        }
        entries.push(item.path.clone());
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for e in &entries {
        match vars.expand_all(e) {
            Ok(paths) => out.extend(paths.into_iter().filter(|p| p.is_absolute())),
            Err(err) => warnings.push(format!("blacklist {err}, skipped")),
        }
    }
    let mut seen = HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// Step 12 of the build: hide every planned path present in the new root.
pub fn apply(b: &mut Builder<'_>) -> Result<(), RootfsError> {
    let mut hidden: HashSet<(u64, u64)> = b.placeholder_ids().into_iter().collect();
    for path in &b.plan.blacklist {
        let at = match b.open(path, libc::O_PATH) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {
                b.report.debug.push(format!("blacklist {}: not present", path.display()));
                continue;
            }
            Err(e) => return Err(RootfsError::fs("open", path, e)),
        };
        let st = pathsafe::fstat(at.as_fd()).map_err(|e| RootfsError::fs("stat", path, e))?;
        if hidden.insert((st.st_dev, st.st_ino)) {
            b.hide(at.as_fd(), path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::UserInfo;

    fn vars() -> (tempfile::TempDir, Vars) {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().to_path_buf();
        let user = UserInfo {
            uid: 0,
            gid: 0,
            name: "root".into(),
            home,
            shell: "/bin/sh".into(),
            memberships: vec![("root".into(), 0)],
        };
        (dir, Vars::new(&user, "test").unwrap())
    }

    #[test]
    fn defaults_expand_in_every_path_dir_with_globs() {
        let (_home, v) = vars();
        let mut w = Vec::new();
        let paths = plan(&v, &[], false, &mut w);
        assert!(w.is_empty(), "{w:?}");
        for d in DEFAULT_PATHS {
            assert!(paths.contains(&PathBuf::from(d)), "{d}");
        }
        // Every search directory gets the name, present or not (resolved at build time).
        assert!(paths.contains(&PathBuf::from("/usr/bin/su")));
        assert!(paths.contains(&PathBuf::from("/bin/su")));
        assert!(paths.contains(&PathBuf::from("/usr/local/bin/sudo")));
        // The glob works: every systemd-* present on the host is listed.
        for e in std::fs::read_dir("/usr/bin").unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("systemd-") {
                assert!(paths.contains(&e.path()), "{name}");
            }
        }
    }

    #[test]
    fn nodefaults_keeps_only_the_profile_list_and_reports_bad_entries() {
        let (_home, v) = vars();
        let mut w = Vec::new();
        let items = vec![
            BlacklistItem { path: "${HOME}/.ssh".into(), no_follow: false },
            BlacklistItem { path: "${NOPE}/x".into(), no_follow: false },
            BlacklistItem { path: "/etc/passwd".into(), no_follow: true },
        ];
        let paths = plan(&v, &items, true, &mut w);
        assert_eq!(paths, vec![v.ctx.home.join(".ssh"), PathBuf::from("/etc/passwd")]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|m| m.contains("NOPE")));
    }
}
