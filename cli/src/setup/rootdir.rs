//! Directories root may change: every component of the path, as written and as resolved, is
//! owned by root and writable by nobody else, so no other user can swap a component for a
//! symlink between our checks and our changes. Changes are made relative to the opened
//! directory (`*at` calls, no symlink followed in the last component).

use anyhow::{bail, Context, Result};
use nix::fcntl::{openat, readlinkat, renameat2, OFlag, RenameFlags};
use nix::sys::stat::{fstat, fstatat, mkdirat, FileStat, Mode, SFlag};
use nix::unistd::{symlinkat, unlinkat, UnlinkatFlags};
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// A directory verified as root's alone, held open.
pub struct RootDir {
    fd: OwnedFd,
    pub path: PathBuf,
}

/// What is at a name in a [`RootDir`] (never following a symlink).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Missing,
    Symlink { target: PathBuf, uid: u32 },
    File { uid: u32, mode: u32 },
    Other { uid: u32 },
}

fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits())
}

/// The rule for every component: owned by root; a directory also not group- or other-writable.
fn check(st: &FileStat, path: &Path) -> Result<()> {
    if st.st_uid != 0 {
        bail!("{}: owned by uid {}, not root: refusing to change anything beneath it", path.display(), st.st_uid);
    }
    if kind(st) == SFlag::S_IFDIR && st.st_mode & 0o022 != 0 {
        bail!(
            "{}: writable by group or others (mode {:o}): refusing to change anything beneath it",
            path.display(),
            st.st_mode & 0o7777
        );
    }
    Ok(())
}

fn open_dir_at(dir: Option<&OwnedFd>, name: &Path, follow: bool) -> nix::Result<OwnedFd> {
    let mut flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    if !follow {
        flags |= OFlag::O_NOFOLLOW;
    }
    let raw = openat(dir.map(|d| d.as_raw_fd()), name, flags, Mode::empty())?;
    // SAFETY: `openat` just returned this fd and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// Walk `path` from `/`, checking each component. A root-owned symlink in a checked directory
/// is followed (the resolved path is walked separately by the caller).
fn walk(path: &Path, follow_root_symlinks: bool) -> Result<OwnedFd> {
    let mut cur = open_dir_at(None, Path::new("/"), false).context("open /")?;
    check(&fstat(cur.as_raw_fd()).context("stat /")?, Path::new("/"))?;
    let mut so_far = PathBuf::from("/");
    for c in path.components() {
        let name = match c {
            Component::RootDir => continue,
            Component::Normal(n) => n,
            _ => bail!("{}: must be absolute, without . or ..", path.display()),
        };
        so_far.push(name);
        let st = fstatat(Some(cur.as_raw_fd()), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .with_context(|| format!("stat {}", so_far.display()))?;
        check(&st, &so_far)?;
        let is_link = kind(&st) == SFlag::S_IFLNK;
        if is_link && !follow_root_symlinks {
            bail!("{}: a symlink where a directory was expected", so_far.display());
        }
        cur = open_dir_at(Some(&cur), Path::new(name), is_link)
            .with_context(|| format!("open directory {}", so_far.display()))?;
        if is_link {
            check(&fstat(cur.as_raw_fd())?, &so_far)?;
        }
    }
    Ok(cur)
}

impl RootDir {
    /// Open `dir` after checking it both as written (root-owned symlinks such as `/bin` ->
    /// `usr/bin` allowed) and fully resolved (no symlink at all): both walks must reach the
    /// same directory.
    pub fn open(dir: &Path) -> Result<RootDir> {
        if !dir.is_absolute() {
            bail!("{}: must be an absolute path", dir.display());
        }
        let lexical = walk(dir, true)?;
        let resolved_path = std::fs::canonicalize(dir).with_context(|| format!("resolve {}", dir.display()))?;
        let fd = walk(&resolved_path, false)?;
        let (a, b) = (fstat(lexical.as_raw_fd())?, fstat(fd.as_raw_fd())?);
        if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
            bail!("{}: changed while being checked", dir.display());
        }
        Ok(RootDir { fd, path: dir.to_path_buf() })
    }

    fn raw(&self) -> Option<i32> {
        Some(self.fd.as_raw_fd())
    }

    /// What is at `name`, without following a symlink.
    pub fn entry(&self, name: &OsStr) -> Result<Entry> {
        let st = match fstatat(self.raw(), name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => return Ok(Entry::Missing),
            Err(e) => return Err(e).with_context(|| format!("stat {}", self.path.join(name).display())),
        };
        Ok(match kind(&st) {
            SFlag::S_IFLNK => {
                let target = readlinkat(self.raw(), name)
                    .with_context(|| format!("readlink {}", self.path.join(name).display()))?;
                Entry::Symlink { target: target.into(), uid: st.st_uid }
            }
            SFlag::S_IFREG => Entry::File { uid: st.st_uid, mode: st.st_mode & 0o7777 },
            _ => Entry::Other { uid: st.st_uid },
        })
    }

    /// The directory `name` in here, created 0755 when missing; either way it must pass the
    /// same checks (a real directory, root's alone). Returns it and whether it was created.
    pub fn subdir(&self, name: &OsStr) -> Result<(RootDir, bool)> {
        let path = self.path.join(name);
        let created = match mkdirat(self.raw(), name, Mode::from_bits_truncate(0o755)) {
            Ok(()) => true,
            Err(nix::errno::Errno::EEXIST) => false,
            Err(e) => return Err(e).with_context(|| format!("create directory {}", path.display())),
        };
        let fd = open_dir_at(Some(&self.fd), Path::new(name), false)
            .with_context(|| format!("open directory {} (it must be a directory, not a symlink)", path.display()))?;
        check(&fstat(fd.as_raw_fd())?, &path)?;
        Ok((RootDir { fd, path }, created))
    }

    /// Remove the directory `name` when it is empty; whether it was removed.
    pub fn remove_empty_subdir(&self, name: &OsStr) -> bool {
        unlinkat(self.raw(), name, UnlinkatFlags::RemoveDir).is_ok()
    }

    /// Put a symlink `name` -> `target` in place atomically: made under a temporary name, then
    /// renamed over nothing (RENAME_NOREPLACE), so whatever appeared at `name` meanwhile is kept.
    pub fn place_symlink(&self, name: &OsStr, target: &Path) -> Result<()> {
        let mut tmp = OsString::from(".");
        tmp.push(name);
        tmp.push(format!(".oz-setup.{}", std::process::id()));
        let _ = unlinkat(self.raw(), tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        symlinkat(target, self.raw(), tmp.as_os_str())
            .with_context(|| format!("create symlink {}", self.path.join(&tmp).display()))?;
        let renamed = renameat2(self.raw(), tmp.as_os_str(), self.raw(), name, RenameFlags::RENAME_NOREPLACE);
        if let Err(e) = renamed {
            let _ = unlinkat(self.raw(), tmp.as_os_str(), UnlinkatFlags::NoRemoveDir);
            return Err(e).with_context(|| format!("rename symlink into place at {}", self.path.join(name).display()));
        }
        Ok(())
    }

    /// Remove the file or symlink `name`.
    pub fn unlink(&self, name: &OsStr) -> Result<()> {
        unlinkat(self.raw(), name, UnlinkatFlags::NoRemoveDir)
            .with_context(|| format!("remove {}", self.path.join(name).display()))
    }

    /// Remove the symlink `name` if it still points at `target`.
    pub fn remove_symlink(&self, name: &OsStr, target: &Path) -> Result<()> {
        match self.entry(name)? {
            Entry::Symlink { target: t, .. } if t == target => {}
            other => {
                bail!("{}: expected a symlink to {}, found {other:?}", self.path.join(name).display(), target.display())
            }
        }
        unlinkat(self.raw(), name, UnlinkatFlags::NoRemoveDir)
            .with_context(|| format!("remove symlink {}", self.path.join(name).display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_directories_pass_and_writable_ones_do_not() {
        RootDir::open(Path::new("/usr/bin")).expect("/usr/bin is root's");
        if Path::new("/bin").is_symlink() {
            RootDir::open(Path::new("/bin")).expect("a root-owned symlink to a root directory");
        }
        let e = RootDir::open(Path::new("/tmp")).err().expect("/tmp is world-writable");
        assert!(e.to_string().contains("/tmp: writable by group or others"), "{e}");
        assert!(RootDir::open(Path::new("relative")).is_err());
        assert!(RootDir::open(Path::new("/usr/../usr/bin")).is_err());
    }
}
