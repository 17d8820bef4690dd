//! Variable and glob expansion for rootfs planning, on top of `oz_profiles::expand`. Everything
//! that reads the user's files (user-dirs.dirs, directory listings for globs) runs with the user's
//! filesystem credentials.

use super::pathsafe::AsUser;
use super::RootfsError;
use crate::user::UserInfo;
use oz_profiles::expand::{expand_glob, expand_vars, ExpandContext, XdgDirs, DEFAULT_PATH_DIRS};
use std::path::PathBuf;

/// The expansion context of one sandbox.
pub struct Vars {
    pub ctx: ExpandContext,
    user: UserInfo,
}

impl Vars {
    pub fn new(user: &UserInfo, sandbox_name: &str) -> Result<Vars, RootfsError> {
        let xdg = {
            let _as_user = AsUser::enter(user).map_err(|errno| RootfsError::Sys { what: "switch to user credentials", errno })?;
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
        let _as_user = AsUser::enter(&self.user).map_err(|errno| RootfsError::Sys { what: "switch to user credentials", errno })?;
        expand_glob(s, &self.ctx).map_err(|e| RootfsError::Expand { item: s.to_string(), reason: e.to_string() })
    }

    /// `${PATH}/name` in every search directory (all matches, globbed); other strings as
    /// [`Vars::expand_glob`] but listing as root (blacklist paths only hide things).
    pub fn expand_all(&self, s: &str) -> Result<Vec<PathBuf>, RootfsError> {
        let err = |e: oz_profiles::expand::ExpandError| RootfsError::Expand { item: s.to_string(), reason: e.to_string() };
        if let Some(rest) = s.strip_prefix("${PATH}/") {
            let mut out = Vec::new();
            for dir in &self.ctx.path_dirs {
                let pattern = format!("{}/{}", dir.display(), rest);
                out.extend(expand_glob(&pattern, &self.ctx).map_err(err)?);
            }
            return Ok(out);
        }
        expand_glob(s, &self.ctx).map_err(err)
    }
}
