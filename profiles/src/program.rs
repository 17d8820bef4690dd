//! The executable a profile names: `${PATH}/name` resolved in the sandbox's search path, other
//! variables expanded, and oz-setup's divert mapping applied. Used by the daemon (a missing
//! program fails before any sandbox is built) and by the agent (the path it executes).

use crate::expand::{expand_vars, ExpandContext};
use crate::{Config, Profile};
use std::path::{Path, PathBuf};

/// The search path inside a sandbox (also used to resolve `${PATH}/` in program paths).
pub const SANDBOX_PATH: &str = "/usr/bin:/bin";

pub use crate::divert::diverted_path;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProgramError {
    #[error("profile {profile}: program path {path}: must be absolute")]
    NotAbsolute { profile: String, path: String },
    #[error("profile {profile}: program {name}: not found in {SANDBOX_PATH}")]
    NotInPath { profile: String, name: String },
    #[error("profile {profile}: program path: {reason}")]
    Expand { profile: String, reason: String },
    #[error("profile {profile}: program {path} leads back to the oz wrapper {wrapper} and no diverted binary exists at {diverted}")]
    Recursion { profile: String, path: PathBuf, wrapper: PathBuf, diverted: PathBuf },
}

/// The executable to run for `profile.path`: `${PATH}/name` resolved in the sandbox's PATH, other
/// variables expanded with `vars`, then the diverted binary when oz-setup diverted it. `exists`
/// is the file test (the host's view of /usr equals the sandbox's).
pub fn program_path(
    profile: &Profile,
    config: &Config,
    vars: &ExpandContext,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<PathBuf, ProgramError> {
    let expanded;
    let raw = if profile.path.contains("${") && !profile.path.starts_with("${PATH}/") {
        expanded = expand_vars(&profile.path, vars)
            .map_err(|e| ProgramError::Expand { profile: profile.name.clone(), reason: e.to_string() })?;
        expanded.as_str()
    } else {
        profile.path.as_str()
    };
    let path = if let Some(name) = raw.strip_prefix("${PATH}/") {
        SANDBOX_PATH
            .split(':')
            .map(|d| Path::new(d).join(name))
            .find(|p| exists(p) || exists(&diverted_path(p, &config.divert_suffix, config.divert_path)))
            .ok_or_else(|| ProgramError::NotInPath { profile: profile.name.clone(), name: name.to_string() })?
    } else if raw.starts_with('/') {
        PathBuf::from(raw)
    } else {
        return Err(ProgramError::NotAbsolute { profile: profile.name.clone(), path: raw.to_string() });
    };
    let diverted = diverted_path(&path, &config.divert_suffix, config.divert_path);
    if exists(&diverted) {
        return Ok(diverted);
    }
    let wrapper = config.prefix_path.join("bin/oz");
    if std::fs::canonicalize(&path).map(|p| p == wrapper).unwrap_or(false) {
        return Err(ProgramError::Recursion { profile: profile.name.clone(), path, wrapper, diverted });
    }
    Ok(path)
}
