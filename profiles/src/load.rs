//! Loading profiles: JSON with positions -> typed `Profile`, with precise diagnostics.
//!
//! Accepts what the original Oz accepted (`#` comment lines, case-insensitive keys, comma-first
//! style) but is never silent: unknown keys are warnings with file:line, wrong types, bad enum
//! values, relative paths and a missing `path` are errors naming file, line, column and key path.
//! Every decoded profile goes through `validate::validate`; its errors fail the load.
//!
//! Defaults (a key that is absent or null keeps them, also inside present objects): name =
//! basename(path), auto_shutdown yes, xserver off, networking `empty`, seccomp blacklist mode with
//! the built-in policy, **enforced** (also when a profile gives `seccomp.mode` without `enforce`),
//! landlock enabled best effort, no cgroup limits.

mod decode;
mod schema;

pub(crate) use decode::{Decoder, Fields};

use crate::json::{self, Pos};
use crate::profile::Profile;
use crate::validate::{validate, Severity};
use std::fmt;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

/// Larger files are refused before parsing.
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// One positioned finding. Display: `file:line:col: key: message` (`key: ` when there is one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: u32,
    pub col: u32,
    /// Dotted key path, e.g. `networking.sockets[1].proto`; empty for syntax errors.
    pub key_path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.col)?;
        if !self.key_path.is_empty() {
            write!(f, "{}: ", self.key_path)?;
        }
        f.write_str(&self.message)
    }
}

/// A loaded value and the warnings found on the way.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    pub value: T,
    pub warnings: Vec<Diagnostic>,
}

#[derive(Debug, Error)]
pub enum ProfileError {
    #[error("read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: file larger than {MAX_FILE_SIZE} bytes", path.display())]
    TooLarge { path: PathBuf },
    /// Syntax, type, value or validation errors; each is one full diagnostic line.
    #[error("{}", lines(.0))]
    Invalid(Vec<Diagnostic>),
    #[error("{}: duplicate profile name \"{name}\" (already loaded from {})", path.display(), first.display())]
    DuplicateName { name: String, path: PathBuf, first: PathBuf },
}

fn lines(diags: &[Diagnostic]) -> String {
    diags.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}

impl ProfileError {
    /// Each error as one line (an `Invalid` error may hold several).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ProfileError::Invalid(d) => d.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// The result of loading a directory: good profiles (sorted by name) and each failure.
#[derive(Debug, Default)]
pub struct ProfileSet {
    pub profiles: Vec<Profile>,
    pub failed: Vec<(PathBuf, ProfileError)>,
    pub warnings: Vec<Diagnostic>,
}

/// Turn a JSON syntax error into a positioned diagnostic.
pub(crate) fn syntax_diag(file: &Path, e: json::JsonError) -> Diagnostic {
    Diagnostic {
        file: file.to_path_buf(),
        line: e.pos.line,
        col: e.pos.col,
        key_path: String::new(),
        message: e.message,
    }
}

/// Parse the file into a tree, converting the parser's warnings.
pub(crate) fn parse_tree(bytes: &[u8], origin: &Path) -> Result<(json::Node, Vec<Diagnostic>), Vec<Diagnostic>> {
    let doc = json::parse(bytes).map_err(|e| vec![syntax_diag(origin, e)])?;
    let warnings = doc
        .warnings
        .into_iter()
        .map(|w| Diagnostic {
            file: origin.to_path_buf(),
            line: w.pos.line,
            col: w.pos.col,
            key_path: String::new(),
            message: w.message,
        })
        .collect();
    Ok((doc.root, warnings))
}

/// Read a whole file, refusing oversized ones before allocating for them.
pub(crate) fn read_capped(path: &Path) -> Result<Vec<u8>, ProfileError> {
    let read_err = |source| ProfileError::Read { path: path.to_path_buf(), source };
    // O_NONBLOCK: opening a FIFO must not hang; only regular files are read.
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    if !meta.is_file() {
        let kind = if meta.is_dir() { "a directory" } else { "not a regular file" };
        return Err(read_err(std::io::Error::new(std::io::ErrorKind::InvalidInput, kind)));
    }
    let mut buf = Vec::new();
    file.take(MAX_FILE_SIZE + 1).read_to_end(&mut buf).map_err(read_err)?;
    if buf.len() as u64 > MAX_FILE_SIZE {
        return Err(ProfileError::TooLarge { path: path.to_path_buf() });
    }
    Ok(buf)
}

/// Parse, decode and validate a profile. `origin` names the file in diagnostics and becomes
/// `profile_path`.
pub fn parse_profile(bytes: &[u8], origin: &Path) -> Result<Loaded<Profile>, ProfileError> {
    let c = diagnose(bytes, origin);
    match c.profile {
        Some(value) if c.errors.is_empty() => Ok(Loaded { value, warnings: c.warnings }),
        _ => Err(ProfileError::Invalid(c.errors)),
    }
}

/// Everything a profile file's check finds: the profile when it has no error, and every error
/// and warning (warnings are kept also when the file has errors).
#[derive(Debug)]
pub struct ProfileCheck {
    pub profile: Option<Profile>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl ProfileCheck {
    /// Errors and warnings in file order (line, column); `true` marks an error.
    pub fn in_file_order(&self) -> Vec<(bool, &Diagnostic)> {
        let mut all: Vec<(bool, &Diagnostic)> =
            self.errors.iter().map(|d| (true, d)).chain(self.warnings.iter().map(|d| (false, d))).collect();
        all.sort_by_key(|(_, d)| (d.line, d.col));
        all
    }
}

/// Every key a profile may have, as a key path (`xserver.enabled`, `whitelist[].path`): what
/// the loader accepts, for documentation and its tests.
pub fn profile_keys() -> Vec<String> {
    schema::profile_keys()
}

/// Read one profile file and report all it finds (unreadable or oversized files are errors).
pub fn check_profile(path: &Path) -> Result<ProfileCheck, ProfileError> {
    Ok(diagnose(&read_capped(path)?, path))
}

fn diagnose(bytes: &[u8], origin: &Path) -> ProfileCheck {
    let (root, mut warnings) = match parse_tree(bytes, origin) {
        Ok(t) => t,
        Err(errors) => return ProfileCheck { profile: None, errors, warnings: Vec::new() },
    };
    let mut d = Decoder::new(origin);
    let profile = schema::decode_profile(&mut d, &root);
    let mut errors = d.errors;
    warnings.append(&mut d.warnings);
    let Some(mut profile) = profile.filter(|_| errors.is_empty()) else {
        return ProfileCheck { profile: None, errors, warnings };
    };
    for issue in validate(&profile) {
        let key_path = decode::json_key_path(&d.index_map, &issue.key_path);
        let pos = position(&d.positions, &key_path);
        let diag =
            Diagnostic { file: origin.to_path_buf(), line: pos.line, col: pos.col, key_path, message: issue.message };
        match issue.severity {
            Severity::Error => errors.push(diag),
            Severity::Warning => warnings.push(diag),
        }
    }
    profile.profile_path = Some(origin.to_path_buf());
    let profile = errors.is_empty().then_some(profile);
    ProfileCheck { profile, errors, warnings }
}

/// The position of a key path, or of its closest recorded ancestor (1:1 if none).
fn position(positions: &std::collections::HashMap<String, Pos>, key_path: &str) -> Pos {
    let mut k = key_path;
    loop {
        if let Some(p) = positions.get(k) {
            return *p;
        }
        match k.rfind(['.', '[']) {
            Some(i) => k = &k[..i],
            None => return Pos { offset: 0, line: 1, col: 1 },
        }
    }
}

/// Read and parse one profile file.
pub fn load_profile(path: &Path) -> Result<Loaded<Profile>, ProfileError> {
    let bytes = read_capped(path)?;
    parse_profile(&bytes, path)
}

/// Load every `*.json` in `dir`. A bad file is reported in `failed` and never takes the others
/// down; of two profiles with the same name the first (by file name) wins and the second fails.
pub fn load_profile_dir(dir: &Path) -> ProfileSet {
    let mut set = ProfileSet::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(source) => {
            set.failed.push((dir.to_path_buf(), ProfileError::Read { path: dir.to_path_buf(), source }));
            return set;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.is_dir())
        .collect();
    files.sort();
    for file in files {
        match load_profile(&file) {
            Ok(loaded) => {
                set.warnings.extend(loaded.warnings);
                let p = loaded.value;
                if let Some(first) = set.profiles.iter().find(|q| q.name == p.name) {
                    let first = first.profile_path.clone().unwrap_or_default();
                    let err = ProfileError::DuplicateName { name: p.name.clone(), path: file.clone(), first };
                    set.failed.push((file, err));
                } else {
                    set.profiles.push(p);
                }
            }
            Err(e) => set.failed.push((file, e)),
        }
    }
    set.profiles.sort_by(|a, b| a.name.cmp(&b.name));
    set
}

/// Serialize a profile to JSON that `parse_profile` loads back to an equal profile
/// (except `profile_path`, which is not a key).
pub fn to_json(profile: &Profile) -> String {
    // The serde names of the model are the JSON keys, and None becomes null, which the loader
    // treats as absent.
    serde_json::to_string_pretty(profile).unwrap_or_default()
}

#[cfg(test)]
mod tests;
