//! `oz-setup install` and `remove`: divert a program with dpkg-divert and put a symlink to the
//! oz wrapper in its place, or undo exactly that.

use super::dpkg::{self, Diversion};
use super::rootdir::{Entry, RootDir};
use anyhow::{bail, Result};
use oz_profiles::Config;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// What `install` did to one path.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    /// Diverted to `to` and replaced by the symlink; `created_dir` when the divert directory was new.
    Wrapped { to: PathBuf, created_dir: Option<PathBuf> },
    /// Already wrapped: nothing changed.
    Already { to: PathBuf },
    /// Diverted already, the symlink was missing (or replaced with --force) and is back.
    Repaired { to: PathBuf },
}

/// What `remove` did to one path.
#[derive(Debug, PartialEq, Eq)]
pub enum Removed {
    /// The symlink is gone and the real binary is back; `removed_dir` when the divert directory
    /// was left empty and removed.
    Restored { from: PathBuf, removed_dir: Option<PathBuf> },
    /// oz had not diverted it: nothing changed.
    NotWrapped,
}

fn split(path: &Path) -> Result<(&Path, &OsStr)> {
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) if path.is_absolute() => Ok((dir, name)),
        _ => bail!("{}: not an absolute path to a file", path.display()),
    }
}

/// A symlink oz-setup made: to the configured wrapper, or to an `oz` in some `bin` directory
/// (prefix_path may have changed since).
fn is_wrapper_link(target: &Path, wrapper: &Path) -> bool {
    target == wrapper
        || (target.file_name() == Some(OsStr::new("oz")) && target.parent().is_some_and(|d| d.ends_with("bin")))
}

/// The directory a diverted file goes to, created 0755 when missing (it is checked like any other).
fn divert_dir(to: &Path) -> Result<(RootDir, Option<PathBuf>)> {
    let (parent, name) = split(to.parent().unwrap_or(Path::new("/")))?;
    let (dir, created) = RootDir::open(parent)?.subdir(name)?;
    Ok((dir, created.then(|| to.parent().unwrap().to_path_buf())))
}

/// A program that is a relative symlink (`/usr/bin/gimp -> gimp-2.10`) must still lead to the
/// same file from its diverted place, or the sandbox would find no program to run.
fn check_link_survives_move(path: &Path, target: &Path, to: &Path) -> Result<()> {
    if target.is_absolute() {
        return Ok(());
    }
    let now = std::fs::canonicalize(path).ok();
    let moved = to.parent().map(|d| d.join(target)).and_then(|p| std::fs::canonicalize(p).ok());
    if now.is_none() || now != moved {
        bail!(
            "{}: a relative symlink to {} that would not lead to the same file from {}; wrap the file it points to, or set divert_path false",
            path.display(),
            target.display(),
            to.display()
        );
    }
    Ok(())
}

/// Wrap `path`: check it (and everything above it) is root's, divert it, place the symlink.
pub fn install(config: &Config, path: &Path, force: bool) -> Result<Installed> {
    let (dir_path, name) = split(path)?;
    let dir = RootDir::open(dir_path)?;
    let wrapper = config.oz_wrapper();
    let to = config.diverted_path(path);
    match dpkg::of(path)? {
        Some(Diversion { package: Some(p), to: existing, .. }) if p == dpkg::PACKAGE => {
            if existing != to {
                bail!(
                    "{}: diverted by oz to {} (divert_path/divert_suffix changed since?); `oz-setup remove` it first",
                    path.display(),
                    existing.display()
                );
            }
            return match dir.entry(name)? {
                Entry::Symlink { target, .. } if target == wrapper => Ok(Installed::Already { to }),
                Entry::Missing => {
                    dir.place_symlink(name, &wrapper)?;
                    Ok(Installed::Repaired { to })
                }
                _ if force => {
                    dir.unlink(name)?;
                    dir.place_symlink(name, &wrapper)?;
                    Ok(Installed::Repaired { to })
                }
                other => bail!(
                    "{}: diverted by oz, but holds {other:?} instead of the symlink to {}; --force replaces it",
                    path.display(),
                    wrapper.display()
                ),
            };
        }
        Some(d) => {
            let by = d.package.map(|p| format!("package {p}")).unwrap_or_else(|| "a local diversion".into());
            bail!("{}: already diverted to {} by {by}; not touching it", path.display(), d.to.display());
        }
        None => {}
    }
    let entry = dir.entry(name)?;
    match &entry {
        Entry::Missing => bail!("{}: not installed", path.display()),
        Entry::Symlink { target, .. } if is_wrapper_link(target, &wrapper) => {
            bail!("{}: already a symlink to {} but not diverted; remove it by hand", path.display(), target.display())
        }
        Entry::File { uid, .. } | Entry::Symlink { uid, .. } if *uid != 0 => {
            bail!("{}: owned by uid {uid}, not root", path.display())
        }
        Entry::Other { .. } => bail!("{}: not a file or symlink", path.display()),
        _ => {}
    }
    if let Entry::Symlink { target, .. } = &entry {
        check_link_survives_move(path, target, &to)?;
    }
    if !force && std::fs::metadata(&wrapper).is_err() {
        bail!(
            "{}: the wrapper {} does not exist (prefix_path in oz.conf); --force wraps anyway",
            path.display(),
            wrapper.display()
        );
    }
    let (todir, created_dir) = divert_dir(&to)?;
    let to_name = to.file_name().unwrap_or_default();
    if todir.entry(to_name)? != Entry::Missing {
        bail!("{}: {} exists already; move it away first", path.display(), to.display());
    }
    let undo_dir = |created: &Option<PathBuf>| {
        if let (Some(_), Ok((parent, name))) = (created, split(&todir.path)) {
            if let Ok(p) = RootDir::open(parent) {
                p.remove_empty_subdir(name);
            }
        }
    };
    if let Err(e) = dpkg::add(path, &to) {
        undo_dir(&created_dir);
        return Err(e);
    }
    if let Err(e) = dir.place_symlink(name, &wrapper) {
        let undone = dpkg::remove(path, &to);
        undo_dir(&created_dir);
        return Err(match undone {
            Ok(()) => e.context(format!("{}: diversion undone", path.display())),
            Err(u) => e.context(format!("{}: and undoing the diversion failed too: {u:#}", path.display())),
        });
    }
    Ok(Installed::Wrapped { to, created_dir })
}

/// Unwrap `path`: remove oz's symlink, rename the real binary back, drop the diversion, and
/// remove the divert directory when it is left empty.
pub fn remove(config: &Config, path: &Path, force: bool) -> Result<Removed> {
    let (dir_path, name) = split(path)?;
    let Some(d) = dpkg::of(path)? else { return Ok(Removed::NotWrapped) };
    if d.package.as_deref() != Some(dpkg::PACKAGE) {
        return Ok(Removed::NotWrapped);
    }
    let dir = RootDir::open(dir_path)?;
    let wrapper = config.oz_wrapper();
    match dir.entry(name)? {
        Entry::Missing => {}
        Entry::Symlink { target, .. } if is_wrapper_link(&target, &wrapper) => dir.remove_symlink(name, &target)?,
        _ if force => dir.unlink(name)?,
        other => bail!("{}: holds {other:?}, not oz's symlink; --force removes it", path.display()),
    }
    dpkg::remove(path, &d.to)?;
    let mut removed_dir = None;
    if let Some(to_dir) = d.to.parent().filter(|p| Some(*p) != path.parent()) {
        if let (Some(parent), Some(dname)) = (to_dir.parent(), to_dir.file_name()) {
            if dname.to_string_lossy().ends_with("-oz") && RootDir::open(parent)?.remove_empty_subdir(dname) {
                removed_dir = Some(to_dir.to_path_buf());
            }
        }
    }
    Ok(Removed::Restored { from: d.to, removed_dir })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_symlinks_must_survive_the_move() {
        let t = tempfile::tempdir().unwrap();
        let (bin, binoz, lib) = (t.path().join("bin"), t.path().join("bin-oz"), t.path().join("lib"));
        for d in [&bin, &binoz, &lib] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(bin.join("gimp-2.10"), "").unwrap();
        std::fs::write(lib.join("soffice"), "").unwrap();
        std::os::unix::fs::symlink("gimp-2.10", bin.join("gimp")).unwrap();
        std::os::unix::fs::symlink("../lib/soffice", bin.join("lo")).unwrap();
        let e = check_link_survives_move(&bin.join("gimp"), Path::new("gimp-2.10"), &binoz.join("gimp.unsafe"))
            .unwrap_err();
        assert!(e.to_string().contains("would not lead to the same file"), "{e}");
        check_link_survives_move(&bin.join("lo"), Path::new("../lib/soffice"), &binoz.join("lo.unsafe")).unwrap();
        check_link_survives_move(&bin.join("gimp"), Path::new("gimp-2.10"), &bin.join("gimp.unsafe")).unwrap();
    }
}
