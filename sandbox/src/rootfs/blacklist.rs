//! Hiding paths behind empty read-only placeholders: the profile blacklist plus, unless
//! `nodefaults`, the default one. `${PATH}/name` means every match in every search directory
//! (globs included), not only the first as in the original Oz; paths are resolved inside the new
//! root, not in the host's view, so a symlink leads to the real object and hides it under every
//! name.

use super::build::Builder;
use super::pathsafe;
use super::vars::Vars;
use super::RootfsError;
use nix::errno::Errno;
use oz_profiles::profile::BlacklistItem;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

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
    "sudo",
    "su",
    "xinput",
    "strace",
    "mount",
    "umount",
    "fusermount",
    "fusermount3",
    "fuser",
    "kmod",
    "mknod",
    "udevadm",
    "systemd",
    "systemd-*",
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
            warnings
                .push(format!("blacklist {}: no_follow is not supported, the symlink's target is hidden", item.path));
        }
        entries.push(item.path.clone());
    }
    // Literal entries first: a search directory at or below one of them is hidden whole, so
    // `${PATH}/...` is not listed there (a big directory's listing is the costly part).
    let mut out: Vec<PathBuf> = Vec::new();
    let (path_entries, others): (Vec<&String>, Vec<&String>) = entries.iter().partition(|e| e.starts_with("${PATH}/"));
    for e in others {
        match vars.expand_all(e) {
            Ok(paths) => out.extend(paths.into_iter().filter(|p| p.is_absolute())),
            Err(err) => warnings.push(format!("blacklist {err}, skipped")),
        }
    }
    let literal: Vec<PathBuf> = out.iter().filter(|p| is_plain(p)).cloned().collect();
    let covered = |p: &Path| literal.iter().any(|l| p.starts_with(l));
    for e in path_entries {
        match vars.expand_all_except(e, &covered) {
            Ok(paths) => out.extend(paths.into_iter().filter(|p| p.is_absolute())),
            Err(err) => warnings.push(format!("blacklist {err}, skipped")),
        }
    }
    let mut seen = HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// A path whose hiding hides everything below it: no glob, no `..` (resolved at build time from
/// the name, not from the object hidden).
fn is_plain(p: &Path) -> bool {
    p.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_))) && !p.to_string_lossy().contains('*')
}

/// Write `paths` to `pipe` for [`receive`] (the agent plans the blacklist after the clone, while
/// the init builds the rest): an 8-byte little-endian length, then each path NUL-terminated.
pub fn send(pipe: OwnedFd, paths: &[PathBuf]) -> std::io::Result<()> {
    let mut payload = Vec::new();
    for p in paths {
        payload.extend_from_slice(p.as_os_str().as_bytes());
        payload.push(0);
    }
    let mut f = std::fs::File::from(pipe);
    f.write_all(&(payload.len() as u64).to_le_bytes())?;
    f.write_all(&payload)
}

/// Read what [`send`] wrote; a short message (the agent failed or died) is an error.
pub fn receive(pipe: OwnedFd) -> Result<Vec<PathBuf>, RootfsError> {
    let err = |e: std::io::Error| RootfsError::Sys {
        what: "receive the blacklist",
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EPIPE)),
    };
    let mut f = std::fs::File::from(pipe);
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(err)?;
    let len = usize::try_from(u64::from_le_bytes(len))
        .map_err(|_| RootfsError::Sys { what: "receive the blacklist", errno: Errno::E2BIG })?;
    let mut payload = Vec::new();
    (&mut f).take(len as u64).read_to_end(&mut payload).map_err(err)?;
    if payload.len() != len || payload.last().is_some_and(|b| *b != 0) {
        return Err(RootfsError::Sys { what: "receive the blacklist", errno: Errno::EPIPE });
    }
    Ok(payload
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(std::ffi::OsStr::from_bytes(p)))
        .collect())
}

/// Step 12 of the build: hide every planned path present in the new root.
pub fn apply(b: &mut Builder<'_>, list: &[PathBuf]) -> Result<(), RootfsError> {
    let mut hidden: HashSet<(u64, u64)> = b.placeholder_ids().into_iter().collect();
    let aliases = system_aliases(b);
    let listed: HashSet<&Path> = list.iter().map(|p| p.as_path()).collect();
    for path in list {
        if let Some(same) = alias_listed(&aliases, &listed, path) {
            b.report.debug.push(format!("blacklist {}: hidden as {}", path.display(), same.display()));
            continue;
        }
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
            b.hide_stat(at.as_fd(), &st, path)?;
        }
    }
    Ok(())
}

/// The system symlinks of the new root (Debian's `/bin -> usr/bin`), as (link, target), that
/// the build made and that are still in place: resolving `/bin/x` in the new root is resolving
/// `/usr/bin/x`, so an entry below a link is the same object as its twin below the target.
fn system_aliases(b: &Builder<'_>) -> Vec<(PathBuf, PathBuf)> {
    use super::plan::SystemKind;
    let mut out = Vec::new();
    for entry in &b.plan.system {
        let SystemKind::Symlink(text) = &entry.kind else { continue };
        if entry.path.parent() != Some(Path::new("/")) {
            continue;
        }
        let target = Path::new("/").join(text);
        let plain = target.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
        if !plain || target.starts_with(&entry.path) {
            continue;
        }
        let in_place = b
            .open(&entry.path, libc::O_PATH | libc::O_NOFOLLOW)
            .and_then(|fd| pathsafe::read_link(fd.as_fd()))
            .is_ok_and(|found| Path::new(&found) == text.as_path());
        if in_place {
            out.push((entry.path.clone(), target));
        }
    }
    out
}

/// The listed entry that names the same object as `path` through one of `aliases`, if any.
fn alias_listed(aliases: &[(PathBuf, PathBuf)], listed: &HashSet<&Path>, path: &Path) -> Option<PathBuf> {
    aliases.iter().find_map(|(link, target)| {
        let rest = path.strip_prefix(link).ok()?;
        let twin = if rest.as_os_str().is_empty() { target.clone() } else { target.join(rest) };
        listed.contains(twin.as_path()).then_some(twin)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_entry_below_a_system_link_is_its_listed_twin() {
        let aliases = vec![
            (PathBuf::from("/bin"), PathBuf::from("/usr/bin")),
            (PathBuf::from("/sbin"), PathBuf::from("/usr/sbin")),
        ];
        let list = [
            PathBuf::from("/usr/bin/su"),
            PathBuf::from("/bin/su"),
            PathBuf::from("/bin/mount"),
            PathBuf::from("/usr/sbin"),
            PathBuf::from("/sbin"),
        ];
        let listed: HashSet<&Path> = list.iter().map(|p| p.as_path()).collect();
        assert_eq!(alias_listed(&aliases, &listed, Path::new("/bin/su")), Some(PathBuf::from("/usr/bin/su")));
        assert_eq!(alias_listed(&aliases, &listed, Path::new("/sbin")), Some(PathBuf::from("/usr/sbin")));
        // The twin is not listed: the entry stays.
        assert_eq!(alias_listed(&aliases, &listed, Path::new("/bin/mount")), None);
        assert_eq!(alias_listed(&aliases, &listed, Path::new("/usr/bin/su")), None);
        assert_eq!(alias_listed(&aliases, &listed, Path::new("/binx/su")), None);
    }

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
        // Every search directory gets the name, present or not (resolved at build time)...
        assert!(paths.contains(&PathBuf::from("/usr/bin/su")));
        assert!(paths.contains(&PathBuf::from("/bin/su")));
        assert!(paths.contains(&PathBuf::from("/usr/local/bin/sudo")));
        // ...except those hidden whole (/usr/sbin and /sbin are default entries).
        assert!(!paths.iter().any(|p| p.starts_with("/usr/sbin") && p != Path::new("/usr/sbin")), "{paths:?}");
        assert!(!paths.iter().any(|p| p.starts_with("/sbin") && p != Path::new("/sbin")), "{paths:?}");
        // The glob works: every systemd-* present on the host is listed, under each name of a
        // directory (/bin is usr/bin on merged-/usr systems: listed once, named twice).
        for dir in ["/usr/bin", "/bin", "/usr/local/bin"] {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("systemd-") {
                    assert!(paths.contains(&e.path()), "{}", e.path().display());
                }
            }
        }
    }

    #[test]
    fn the_list_crosses_a_pipe_whole_or_not_at_all() {
        let paths = vec![PathBuf::from("/usr/bin/su"), PathBuf::from("/home/u/a b\nc")];
        let (r, w) = nix::unistd::pipe().unwrap();
        send(w, &paths).unwrap();
        assert_eq!(receive(r).unwrap(), paths);
        let (r, w) = nix::unistd::pipe().unwrap();
        send(w, &[]).unwrap();
        assert_eq!(receive(r).unwrap(), Vec::<PathBuf>::new());
        // The writer gone early (nothing, or a cut message): an error, never a shorter list.
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(w);
        assert!(receive(r).is_err());
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut f = std::fs::File::from(w);
        f.write_all(&20u64.to_le_bytes()).unwrap();
        f.write_all(b"/usr/bin/su\0").unwrap();
        drop(f);
        assert!(receive(r).is_err());
    }

    #[test]
    fn a_search_directory_seen_twice_is_listed_once_with_the_same_matches() {
        let (home, mut v) = vars();
        let real = home.path().join("real");
        std::fs::create_dir(&real).unwrap();
        for f in ["tool-a", "tool-b", "other"] {
            std::fs::write(real.join(f), "").unwrap();
        }
        std::os::unix::fs::symlink(&real, home.path().join("link")).unwrap();
        v.ctx.path_dirs = vec![real.clone(), home.path().join("link"), home.path().join("missing")];
        let got = v.expand_all("${PATH}/tool-*").unwrap();
        let link = home.path().join("link");
        assert_eq!(got, vec![real.join("tool-a"), real.join("tool-b"), link.join("tool-a"), link.join("tool-b")]);
        // Skipped directories are not searched; `..` is never reused across names.
        let got = v.expand_all_except("${PATH}/tool-*", &|d| d == real.as_path()).unwrap();
        assert_eq!(got, vec![link.join("tool-a"), link.join("tool-b")]);
        let items = vec![
            BlacklistItem { path: real.display().to_string(), no_follow: false },
            BlacklistItem { path: "${PATH}/tool-a".into(), no_follow: false },
        ];
        let mut w = Vec::new();
        let planned = plan(&v, &items, true, &mut w);
        assert_eq!(planned, vec![real.clone(), link.join("tool-a"), home.path().join("missing/tool-a")], "{w:?}");
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
