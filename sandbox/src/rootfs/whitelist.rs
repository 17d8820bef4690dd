//! Whitelist planning: expansion, globs, classification of sources, probing them safely, shared
//! folders and argument files (with the original Oz's semantics), and the safe source opening
//! shared with `build` and `open_user_path`.

use super::build::host_open;
use super::pathsafe::{self, AsUser};
use super::plan::{normalize, BindItem, LinkItem, Source};
use super::vars::Vars;
use super::RootfsError;
use crate::user::UserInfo;
use nix::errno::Errno;
use oz_profiles::profile::WhitelistItem;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// The trees below which a user controls every name: their home, `/run/user/<uid>` and
/// `/media/<name>` (removable media, where argument files often live).
pub fn user_roots(user: &UserInfo) -> [PathBuf; 3] {
    [user.home.clone(), PathBuf::from(format!("/run/user/{}", user.uid)), Path::new("/media").join(&user.name)]
}

/// How `path` (absolute, expanded) must be opened; None when it is not absolute or has `..`.
pub fn classify_any(user: &UserInfo, path: &Path) -> Option<Source> {
    if !path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return None;
    }
    let path = normalize(path);
    Some(classify(user, &path).unwrap_or(Source::Host(path)))
}

/// `Source::User` when `path` is below (or is) one of the user's roots.
pub fn classify(user: &UserInfo, path: &Path) -> Option<Source> {
    let path = normalize(path);
    user_roots(user).into_iter().find_map(|root| {
        pathsafe::below(&path, &root).map(|rel| Source::User { rel: rel.to_path_buf(), root: root.clone() })
    })
}

fn as_user(user: &UserInfo) -> Result<AsUser, RootfsError> {
    AsUser::enter(user).map_err(|errno| RootfsError::Sys { what: "switch to user credentials", errno })
}

/// Open a whitelist source with the user's credentials: beneath its root for user sources, from
/// `/` otherwise; `no_follow` keeps a final symlink as itself. The object must be accessible to
/// the user (read for files, search for directories) unless it is a kept symlink.
pub fn open_source(user: &UserInfo, source: &Source, no_follow: bool) -> Result<OwnedFd, RootfsError> {
    let path = source.path();
    let _as_user = as_user(user)?;
    let fd = match source {
        Source::User { root, rel } => {
            let root_fd = open_root(root)?;
            pathsafe::open_beneath(root_fd.as_fd(), root, rel, !no_follow).map_err(|e| RootfsError::open(&path, e))?
        }
        Source::Host(p) => {
            let flags = libc::O_PATH | if no_follow { libc::O_NOFOLLOW } else { 0 };
            let slash = host_open(Path::new("/"), libc::O_PATH | libc::O_DIRECTORY)?;
            pathsafe::openat2(slash.as_fd(), p, flags, libc::RESOLVE_NO_MAGICLINKS)
                .map_err(|e| RootfsError::fs("open", p, e))?
        }
    };
    let st = pathsafe::fstat(fd.as_fd()).map_err(|e| RootfsError::fs("stat", &path, e))?;
    if pathsafe::is_symlink(&st) {
        return Ok(fd);
    }
    let mode = if pathsafe::is_dir(&st) { libc::X_OK } else { libc::R_OK };
    if !pathsafe::may_access(fd.as_fd(), mode).map_err(|e| RootfsError::fs("access", &path, e))? {
        return Err(RootfsError::NotPermitted { path, user: user.name.clone() });
    }
    Ok(fd)
}

/// Create a user source directory (can_create) as the user, beneath its root, with the root's
/// permission bits.
pub fn create_source(user: &UserInfo, source: &Source) -> Result<(), RootfsError> {
    let Source::User { root, rel } = source else {
        return Ok(());
    };
    let _as_user = as_user(user)?;
    let root_fd = open_root(root)?;
    let st = pathsafe::fstat(root_fd.as_fd()).map_err(|e| RootfsError::fs("stat", root, e))?;
    pathsafe::create_dirs_beneath(root_fd.as_fd(), root, rel, st.st_mode & 0o7777)
        .map(drop)
        .map_err(|e| RootfsError::open(root.join(rel), e))
}

/// A user root (home, /run/user/<uid>) is named by the system databases, not by the user:
/// opened normally.
fn open_root(root: &Path) -> Result<OwnedFd, RootfsError> {
    host_open(root, libc::O_PATH | libc::O_DIRECTORY)
}

/// Planned binds (parents first), symlinks, and warnings.
pub type Planned = (Vec<BindItem>, Vec<LinkItem>, Vec<String>);

/// Collects the whitelist binds and symlinks of one sandbox.
pub struct Planner<'a> {
    user: &'a UserInfo,
    vars: &'a Vars,
    binds: Vec<BindItem>,
    links: Vec<LinkItem>,
    warnings: Vec<String>,
}

impl<'a> Planner<'a> {
    pub fn new(user: &'a UserInfo, vars: &'a Vars) -> Self {
        Planner { user, vars, binds: Vec::new(), links: Vec::new(), warnings: Vec::new() }
    }

    pub fn add_all(&mut self, items: &[WhitelistItem]) -> Result<(), RootfsError> {
        items.iter().try_for_each(|i| self.add(i))
    }

    /// One profile whitelist item: expanded, globbed (each match bound to itself), probed.
    pub fn add(&mut self, item: &WhitelistItem) -> Result<(), RootfsError> {
        let target = match &item.target {
            Some(t) if t.contains('*') => {
                return Err(RootfsError::Invalid { item: t.clone(), reason: "target must not contain a glob".into() })
            }
            Some(t) => Some(self.vars.expand(t)?),
            None => None,
        };
        let sources = if item.path.contains('*') {
            if target.is_some() {
                return Err(RootfsError::Invalid {
                    item: item.path.clone(),
                    reason: "a globbed path cannot have a target".into(),
                });
            }
            self.vars.expand_glob(&item.path)?
        } else {
            vec![self.vars.expand(&item.path)?]
        };
        if sources.is_empty() {
            self.warnings.push(format!("whitelist {}: no match", item.path));
        }
        let globbed = item.path.contains('*');
        for source in sources {
            let target = target.clone().unwrap_or_else(|| source.clone());
            match self.add_bind(&item.path, &source, &target, item) {
                // A glob with ignore may match other users' files (`/dev/shm/pulse-shm-*`):
                // those are refused (not mounted) without failing the launch.
                Err(e @ RootfsError::NotPermitted { .. }) if globbed && item.ignore => {
                    self.warnings.push(format!("whitelist {e}, skipped"));
                    continue;
                }
                other => other?,
            }
            if let Some(link) = &item.symlink {
                let link = self.vars.expand(link)?;
                self.links.push(LinkItem { link, target: normalize(&target) });
            }
        }
        Ok(())
    }

    fn add_bind(&mut self, name: &str, source: &Path, target: &Path, item: &WhitelistItem) -> Result<(), RootfsError> {
        let invalid = |reason: &str| RootfsError::Invalid { item: name.to_string(), reason: reason.to_string() };
        let src = classify_any(self.user, source).ok_or_else(|| invalid("path must be absolute, without '..'"))?;
        if !target.is_absolute()
            || target.components().any(|c| c == Component::ParentDir)
            || normalize(target) == Path::new("/")
        {
            return Err(invalid("target must be absolute, without '..', and not /"));
        }
        let can_create = item.can_create && matches!(&src, Source::User { root, .. } if *root == self.user.home);
        let bind = BindItem {
            source: src,
            target: normalize(target),
            read_only: item.read_only || item.allow_suid,
            can_create,
            ignore: item.ignore,
            force: item.force,
            no_follow: item.no_follow,
            allow_suid: item.allow_suid,
        };
        match open_source(self.user, &bind.source, bind.no_follow) {
            Ok(_) => {}
            Err(RootfsError::Fs { errno: Errno::ENOENT, .. }) if bind.can_create => {}
            Err(RootfsError::Fs { errno: Errno::ENOENT, path, .. }) if bind.ignore => {
                self.warnings.push(format!("whitelist {}: missing, ignored", path.display()));
                return Ok(());
            }
            Err(RootfsError::Fs { errno: Errno::ENOENT, path, .. }) => return Err(RootfsError::Missing { path }),
            Err(e) => return Err(e),
        }
        self.binds.push(bind);
        Ok(())
    }

    /// `shared_folders`, laid out as the original Oz did: `${HOME}/<rel>` becomes the host folder
    /// `${HOME}/OZ/<Title-cased profile>/<rel with / as ->`, created by the user, bound at
    /// `${HOME}/.shared/<dname>`, with a symlink at `${HOME}/<rel>`.
    pub fn add_shared_folders(&mut self, profile: &str, folders: &[String]) -> Result<(), RootfsError> {
        let home = self.user.home.clone();
        for f in folders {
            let path = self.vars.expand(f)?;
            let rel = pathsafe::below(&path, &home).filter(|r| !r.as_os_str().is_empty()).ok_or_else(|| {
                RootfsError::Invalid {
                    item: f.clone(),
                    reason: format!("shared folder must be below {}", home.display()),
                }
            })?;
            let dname = rel.to_string_lossy().trim_matches('/').replace('/', "-");
            let source = home.join("OZ").join(title_case(profile)).join(&dname);
            let target = home.join(".shared").join(&dname);
            let item = WhitelistItem { path: f.clone(), can_create: true, ..Default::default() };
            self.add_bind(f, &source, &target, &item)?;
            self.links.push(LinkItem { link: normalize(&path), target });
        }
        Ok(())
    }

    /// An argument file (allow_files): below a user root, accessible to the user, bound
    /// read-write (noexec) at the same place.
    pub fn add_argument_file(&mut self, path: &Path) -> Result<(), RootfsError> {
        let name = path.display().to_string();
        let source = classify_any(self.user, path).filter(|s| matches!(s, Source::User { .. })).ok_or_else(|| {
            RootfsError::Invalid {
                item: name.clone(),
                reason: format!("argument file must be below {}", self.user.home.display()),
            }
        })?;
        let item = WhitelistItem { path: name.clone(), ..Default::default() };
        self.add_bind(&name, &source.path(), path, &item)
    }

    /// The binds sorted parents first (stable), the symlinks, and the warnings.
    pub fn finish(mut self) -> Planned {
        self.binds.sort_by_key(|b| b.target.components().count());
        (self.binds, self.links, self.warnings)
    }
}

/// Go's `strings.Title`: upper-case every letter that follows a non-letter/digit/underscore.
pub fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = !(c.is_alphanumeric() || c == '_');
    }
    out
}

/// Build step 9, per item: create (as the user) when can_create, re-open the source the same
/// safe way as planning did, decide about an existing target (force), and bind by fd.
pub fn apply(b: &mut super::build::Builder<'_>, item: &BindItem) -> Result<(), RootfsError> {
    let user = b.plan.user.clone();
    if item.can_create {
        create_source(&user, &item.source)?;
    }
    let src = match open_source(&user, &item.source, item.no_follow) {
        Ok(fd) => fd,
        Err(RootfsError::Fs { errno: Errno::ENOENT, path, .. }) if item.ignore => {
            b.report.warnings.push(format!("whitelist {}: missing, ignored", path.display()));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let source_path = item.source.path();
    let st = pathsafe::fstat(src.as_fd()).map_err(|e| RootfsError::fs("stat", &source_path, e))?;
    if pathsafe::is_symlink(&st) {
        // no_follow: the link itself, recreated; nothing is resolved or mounted.
        let text = pathsafe::read_link(src.as_fd()).map_err(|e| RootfsError::fs("readlink", &source_path, e))?;
        return b.symlink(&item.target, &text);
    }
    let target = match b.open(&item.target, libc::O_PATH) {
        Ok(fd) => {
            let tst = pathsafe::fstat(fd.as_fd()).map_err(|e| RootfsError::fs("stat", &item.target, e))?;
            let fresh = b.created.contains(&item.target);
            let same = (tst.st_dev, tst.st_ino) == (st.st_dev, st.st_ino);
            if !(fresh || same || item.force) {
                b.report.warnings.push(format!(
                    "whitelist {} -> {}: target exists, skipped (set force to cover it)",
                    source_path.display(),
                    item.target.display()
                ));
                return Ok(());
            }
            if pathsafe::is_dir(&tst) != pathsafe::is_dir(&st) {
                return Err(RootfsError::Invalid {
                    item: format!("{} -> {}", source_path.display(), item.target.display()),
                    reason: "source and target are not both directories or both files".into(),
                });
            }
            fd
        }
        Err(Errno::ENOENT) if pathsafe::is_dir(&st) => b.ensure_dir(&item.target)?,
        Err(Errno::ENOENT) => b.ensure_file(&item.target)?,
        Err(e) => return Err(RootfsError::fs("open", &item.target, e)),
    };
    b.bind_at(src.as_fd(), &source_path, target.as_fd(), &item.target, item.attrs())
}
