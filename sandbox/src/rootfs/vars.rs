//! Variable and glob expansion for rootfs planning, on top of `oz_profiles::expand`. Everything
//! that reads the user's files (user-dirs.dirs, directory listings for globs) runs with the user's
//! filesystem credentials.

use super::pathsafe::AsUser;
use super::RootfsError;
use crate::user::UserInfo;
use oz_profiles::expand::{expand_glob, expand_vars, ExpandContext, XdgDirs, DEFAULT_PATH_DIRS};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The expansion context of one sandbox.
pub struct Vars {
    pub ctx: ExpandContext,
    user: UserInfo,
}

impl Vars {
    pub fn new(user: &UserInfo, sandbox_name: &str) -> Result<Vars, RootfsError> {
        let xdg = {
            let _as_user =
                AsUser::enter(user).map_err(|errno| RootfsError::Sys { what: "switch to user credentials", errno })?;
            XdgDirs::load(&user.home)
        };
        let ctx = ExpandContext {
            home: user.home.clone(),
            uid: user.uid,
            user: user.name.clone(),
            sandbox_name: sandbox_name.to_string(),
            display: None,
            xdg,
            path_dirs: DEFAULT_PATH_DIRS.iter().map(PathBuf::from).collect(),
        };
        Ok(Vars { ctx, user: user.clone() })
    }

    /// Expand variables in `s` (no globbing).
    pub fn expand(&self, s: &str) -> Result<PathBuf, RootfsError> {
        expand_vars(s, &self.ctx)
            .map(PathBuf::from)
            .map_err(|e| RootfsError::Expand { item: s.to_string(), reason: e.to_string() })
    }

    /// Expand variables and `*` globs, listing directories as the user.
    pub fn expand_glob(&self, s: &str) -> Result<Vec<PathBuf>, RootfsError> {
        let _as_user = AsUser::enter(&self.user)
            .map_err(|errno| RootfsError::Sys { what: "switch to user credentials", errno })?;
        expand_glob(s, &self.ctx).map_err(|e| RootfsError::Expand { item: s.to_string(), reason: e.to_string() })
    }

    /// `${PATH}/name` in every search directory (all matches, globbed); other strings as
    /// [`Vars::expand_glob`] but listing as root (blacklist paths only hide things).
    pub fn expand_all(&self, s: &str) -> Result<Vec<PathBuf>, RootfsError> {
        self.expand_all_except(s, &|_| false)
    }

    /// As [`Vars::expand_all`], leaving out the search directories for which `skip` is true.
    /// A directory that is the same as an earlier one (`/bin` -> `usr/bin`) is listed once: its
    /// matches are the earlier one's under its own name.
    pub fn expand_all_except(&self, s: &str, skip: &dyn Fn(&Path) -> bool) -> Result<Vec<PathBuf>, RootfsError> {
        let err =
            |e: oz_profiles::expand::ExpandError| RootfsError::Expand { item: s.to_string(), reason: e.to_string() };
        let Some(rest) = s.strip_prefix("${PATH}/") else { return expand_glob(s, &self.ctx).map_err(err) };
        // Globs are matched against the directory's entries: same directory, same matches
        // (`..` aside, which is resolved from the name).
        let reuse = rest.contains('*') && !rest.split('/').any(|c| c == "..");
        let mut listed: Vec<((u64, u64), &Path, Vec<PathBuf>)> = Vec::new();
        let mut out = Vec::new();
        for dir in self.ctx.path_dirs.iter().filter(|d| !skip(d)) {
            let id = if reuse { std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino())) } else { None };
            if let Some((_, first, found)) = id.and_then(|id| listed.iter().find(|(i, _, _)| *i == id)) {
                out.extend(found.iter().filter_map(|p| p.strip_prefix(first).ok()).map(|r| dir.join(r)));
                continue;
            }
            let pattern = format!("{}/{}", dir.display(), rest);
            let found = expand_glob(&pattern, &self.ctx).map_err(err)?;
            out.extend(found.iter().cloned());
            if let Some(id) = id {
                listed.push((id, dir, found));
            }
        }
        Ok(out)
    }
}
