//! Which program paths an `oz-setup install|remove|status NAME|PATH` acts on.

use anyhow::{bail, Result};
use oz_profiles::load::{load_profile_dir, ProfileSet};
use oz_profiles::{Config, Profile};
use std::path::{Path, PathBuf};

/// Where `${PATH}/name` program paths are looked up on the host (the sandbox's PATH order).
const HOST_PATH: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"];

/// A program path to act on and the profile it belongs to (None: only known to dpkg).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub path: PathBuf,
    pub profile: Option<String>,
}

/// The profiles of `profile_dir`, printing the ones that failed to load as warnings.
pub fn profiles(config: &Config) -> ProfileSet {
    let set = load_profile_dir(&config.profile_dir);
    for (file, e) in &set.failed {
        for line in e.lines() {
            eprintln!("warning: {}: {line}", file.display());
        }
    }
    set
}

/// The host paths of a profile's `path` and `paths`: `${PATH}/name` is looked up in the host's
/// program directories (installed or already diverted), other variables cannot be wrapped.
pub fn program_paths(profile: &Profile, config: &Config) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for raw in std::iter::once(&profile.path).chain(&profile.paths) {
        let found = if let Some(name) = raw.strip_prefix("${PATH}/") {
            let cands = HOST_PATH.iter().map(|d| Path::new(d).join(name));
            let known = |p: &PathBuf| p.symlink_metadata().is_ok() || config.diverted_path(p).exists();
            cands.clone().find(known).or_else(|| cands.into_iter().nth(1))
        } else if raw.starts_with('/') && !raw.contains("${") {
            Some(PathBuf::from(raw))
        } else {
            eprintln!("warning: profile {}: program path {raw} depends on the user; not wrapped", profile.name);
            None
        };
        if let Some(p) = found.filter(|p| !out.contains(p)) {
            out.push(p);
        }
    }
    out
}

/// The targets NAME (a profile name) or PATH (a program path of a profile) stand for: every
/// program path of that profile. A PATH no profile has stands for itself when `known_path`
/// says so (an existing oz diversion whose profile was deleted, for `remove` and `status`).
pub fn resolve(
    arg: &str,
    config: &Config,
    set: &ProfileSet,
    known_path: impl Fn(&Path) -> bool,
) -> Result<Vec<Target>> {
    let of = |p: &Profile| -> Vec<Target> {
        program_paths(p, config).into_iter().map(|path| Target { path, profile: Some(p.name.clone()) }).collect()
    };
    if arg.contains('/') {
        let wanted = Path::new(arg);
        if let Some(p) = set.profiles.iter().find(|p| program_paths(p, config).iter().any(|x| x == wanted)) {
            return Ok(of(p));
        }
        if known_path(wanted) {
            return Ok(vec![Target { path: wanted.to_path_buf(), profile: None }]);
        }
        bail!("{arg}: no profile in {} has it as its path or paths", config.profile_dir.display());
    }
    match set.profiles.iter().find(|p| p.name == arg) {
        Some(p) => Ok(of(p)),
        None => bail!("{arg}: no such profile in {}", config.profile_dir.display()),
    }
}

/// Every program path of every profile.
pub fn all(config: &Config, set: &ProfileSet) -> Vec<Target> {
    set.profiles
        .iter()
        .flat_map(|p| program_paths(p, config).into_iter().map(|path| Target { path, profile: Some(p.name.clone()) }))
        .collect()
}
