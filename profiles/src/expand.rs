//! Variable expansion and `*` globbing for profile paths (pure string functions plus a
//! read_dir-based glob).
//!
//! Variables: `${HOME}`, `${PATH}/name` (first match in the search path), `${UID}`, `${USER}`,
//! `${SANDBOXNAME}`, `${DISPLAY}`, `${XDG_<NAME>_DIR}` (from the user's `user-dirs.dirs`, XDG
//! defaults otherwise). Unlike the original, every variable in a path is expanded (it expanded
//! only the first kind found), and an unknown variable is an error instead of a silent skip.
//!
//! `user-dirs.dirs` is written by the user, and the paths it yields are bound into sandboxes by
//! root, so only entries that stay inside the home directory are accepted; anything else falls
//! back to the XDG default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ExpandError {
    #[error("{input}: unknown variable ${{{name}}}")]
    UnknownVariable { input: String, name: String },
    #[error("{input}: unterminated variable (missing '}}')")]
    Unterminated { input: String },
    #[error("{input}: ${{PATH}} must be used as a prefix: ${{PATH}}/name")]
    PathNotPrefix { input: String },
    #[error("{input}: {name} not found in the search path")]
    NotInPath { input: String, name: String },
    #[error("{input}: ${{DISPLAY}} used but the sandbox has no display")]
    NoDisplay { input: String },
    #[error("glob {pattern}: read {}: {reason}", dir.display())]
    ReadDir { pattern: String, dir: PathBuf, reason: String },
}

/// The XDG user directories (`DESKTOP`, `DOWNLOAD`, ...), absolute.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XdgDirs {
    dirs: BTreeMap<String, PathBuf>,
}

/// The XDG defaults, relative to the home directory.
const XDG_DEFAULTS: &[(&str, &str)] = &[
    ("DESKTOP", "Desktop"),
    ("DOWNLOAD", "Downloads"),
    ("TEMPLATES", "Templates"),
    ("PUBLICSHARE", "Public"),
    ("DOCUMENTS", "Documents"),
    ("MUSIC", "Music"),
    ("PICTURES", "Pictures"),
    ("VIDEOS", "Videos"),
];

impl XdgDirs {
    /// The defaults only (`~/Desktop`, `~/Downloads`, ...).
    pub fn defaults(home: &Path) -> Self {
        let dirs = XDG_DEFAULTS.iter().map(|(k, v)| (k.to_string(), home.join(v))).collect();
        XdgDirs { dirs }
    }

    /// Parse `user-dirs.dirs` text (`XDG_DOWNLOAD_DIR="$HOME/Downloads"` lines) over the defaults.
    /// Entries that are not `$HOME/...` or an absolute path inside `home`, or that contain `..`,
    /// are ignored.
    pub fn from_user_dirs_file(text: &str, home: &Path) -> Self {
        let mut xdg = Self::defaults(home);
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let Some(name) = key.trim().strip_prefix("XDG_").and_then(|k| k.strip_suffix("_DIR")) else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            let path = match value.strip_prefix("$HOME") {
                Some(rest) if rest.is_empty() || rest.starts_with('/') => home.join(rest.trim_start_matches('/')),
                Some(_) => continue,
                None => PathBuf::from(value),
            };
            let inside = path.starts_with(home) && !value.split('/').any(|c| c == "..");
            if inside && !name.is_empty() {
                xdg.dirs.insert(name.to_string(), path);
            }
        }
        xdg
    }

    /// Read `<home>/.config/user-dirs.dirs`; a missing, unreadable, non-regular (a FIFO never
    /// blocks us) or oversized file gives the defaults. Symlinks are followed (dotfile managers
    /// use them); only `XDG_*_DIR` lines inside the home are used and nothing else of the content
    /// is ever reported, but callers running as root should read with the user's credentials.
    pub fn load(home: &Path) -> Self {
        match read_small_file(&home.join(".config/user-dirs.dirs")) {
            Some(text) => Self::from_user_dirs_file(&text, home),
            None => Self::defaults(home),
        }
    }

    /// The directory for `NAME` (as in `XDG_NAME_DIR`).
    pub fn get(&self, name: &str) -> Option<&Path> {
        self.dirs.get(name).map(PathBuf::as_path)
    }
}

/// Read a regular file of at most 64 KiB without blocking on FIFOs.
fn read_small_file(path: &Path) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    const MAX: u64 = 64 * 1024;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX {
        return None;
    }
    let mut text = String::new();
    file.take(MAX).read_to_string(&mut text).ok()?;
    Some(text)
}

/// What the variables expand to for one sandbox and user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExpandContext {
    pub home: PathBuf,
    pub uid: u32,
    pub user: String,
    pub sandbox_name: String,
    /// X display number inside the sandbox, if it has one.
    pub display: Option<u32>,
    pub xdg: XdgDirs,
    /// Search path for `${PATH}/name`; the daemon's environment is not trusted for this.
    pub path_dirs: Vec<PathBuf>,
}

/// The search path used when none is configured (the original's fallback).
pub const DEFAULT_PATH_DIRS: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"];

const PATH_PREFIX: &str = "${PATH}/";

/// Expand every variable in `s`. `${PATH}/name` resolves to the first existing match (a glob
/// name: the first match of the first directory that has one).
pub fn expand_vars(s: &str, ctx: &ExpandContext) -> Result<String, ExpandError> {
    if let Some(rest) = s.strip_prefix(PATH_PREFIX) {
        let name = expand_simple(rest, s, ctx)?;
        let found = path_lookup(s, &name, ctx)?;
        return found
            .into_iter()
            .next()
            .map(|p| p.to_string_lossy().into_owned())
            .ok_or(ExpandError::NotInPath { input: s.to_string(), name });
    }
    expand_simple(s, s, ctx)
}

/// Expand variables other than `${PATH}`; `input` is the full original string for errors.
fn expand_simple(s: &str, input: &str, ctx: &ExpandContext) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| ExpandError::Unterminated { input: input.to_string() })?;
        out.push_str(&variable(&after[..end], input, ctx)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn variable(name: &str, input: &str, ctx: &ExpandContext) -> Result<String, ExpandError> {
    let value = match name {
        "HOME" => ctx.home.to_string_lossy().into_owned(),
        "UID" => ctx.uid.to_string(),
        "USER" => ctx.user.clone(),
        "SANDBOXNAME" => ctx.sandbox_name.clone(),
        "DISPLAY" => match ctx.display {
            Some(d) => d.to_string(),
            None => return Err(ExpandError::NoDisplay { input: input.to_string() }),
        },
        "PATH" => return Err(ExpandError::PathNotPrefix { input: input.to_string() }),
        _ => {
            let xdg = name.strip_prefix("XDG_").and_then(|n| n.strip_suffix("_DIR")).and_then(|n| ctx.xdg.get(n));
            match xdg {
                Some(p) => p.to_string_lossy().into_owned(),
                None => return Err(ExpandError::UnknownVariable { input: input.to_string(), name: name.to_string() }),
            }
        }
    };
    Ok(value)
}

/// Every existing `dir/name` over the search path, in search-path order (globbed when `name`
/// has a `*`; the first hit only otherwise).
fn path_lookup(input: &str, name: &str, ctx: &ExpandContext) -> Result<Vec<PathBuf>, ExpandError> {
    let mut found = Vec::new();
    for dir in &ctx.path_dirs {
        let candidate = dir.join(name);
        if name.contains('*') {
            found.extend(glob(&candidate.to_string_lossy())?);
        } else if candidate.exists() {
            found.push(candidate);
            break;
        }
    }
    if found.is_empty() {
        return Err(ExpandError::NotInPath { input: input.to_string(), name: name.to_string() });
    }
    Ok(found)
}

/// Expand variables, then `*` globs. A path without `*` is returned as is (existing or not);
/// a glob returns the existing matches, sorted (possibly none). `${PATH}/glob*` matches in every
/// search directory.
pub fn expand_glob(s: &str, ctx: &ExpandContext) -> Result<Vec<PathBuf>, ExpandError> {
    if let Some(rest) = s.strip_prefix(PATH_PREFIX) {
        let name = expand_simple(rest, s, ctx)?;
        if name.contains('*') {
            let mut all = path_lookup(s, &name, ctx)?;
            all.sort();
            all.dedup();
            return Ok(all);
        }
    }
    let expanded = expand_vars(s, ctx)?;
    if !expanded.contains('*') {
        return Ok(vec![PathBuf::from(expanded)]);
    }
    glob(&expanded)
}

/// Match `pattern` (with `*` in any component) against the file system, sorted.
pub fn glob(pattern: &str) -> Result<Vec<PathBuf>, ExpandError> {
    let absolute = pattern.starts_with('/');
    let mut current = vec![PathBuf::from(if absolute { "/" } else { "." })];
    for component in pattern.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let mut next = Vec::new();
        for base in &current {
            if !component.contains('*') {
                let p = base.join(component);
                if p.symlink_metadata().is_ok() {
                    next.push(p);
                }
                continue;
            }
            next.extend(match_dir(pattern, base, component)?);
        }
        current = next;
    }
    if !absolute {
        current = current.into_iter().map(|p| p.strip_prefix(".").map(Path::to_path_buf).unwrap_or(p)).collect();
    }
    current.sort();
    Ok(current)
}

/// Entries of `dir` whose names match `component`; a missing or non-directory `dir` matches
/// nothing.
fn match_dir(pattern: &str, dir: &Path, component: &str) -> Result<Vec<PathBuf>, ExpandError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT) | Some(libc::ENOTDIR)) => return Ok(Vec::new()),
        Err(e) => {
            return Err(ExpandError::ReadDir {
                pattern: pattern.to_string(),
                dir: dir.to_path_buf(),
                reason: e.to_string(),
            })
        }
    };
    let mut out = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        if wildcard_match(component.as_bytes(), name.as_encoded_bytes()) {
            out.push(dir.join(&name));
        }
    }
    Ok(out)
}

/// `*` matches any run of bytes (including none); everything else matches itself.
fn wildcard_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pat.len() && pat[p] == b'*' {
            star = Some((p, n));
            p += 1;
        } else if p < pat.len() && pat[p] == name[n] {
            p += 1;
            n += 1;
        } else if let Some((sp, sn)) = star {
            p = sp + 1;
            n = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests;
