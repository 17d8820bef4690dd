//! The dpkg diversion database: queries and changes through `dpkg-divert`, so that package
//! upgrades install a wrapped program's new binary at its diverted name and the wrapper stays.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The package name oz's diversions are registered under.
pub const PACKAGE: &str = "oz";
const DPKG_DIVERT: &str = "/usr/bin/dpkg-divert";
/// dpkg's diversion database: three lines per diversion (from, to, package; `:` = local).
const DIVERSIONS_DB: &str = "/var/lib/dpkg/diversions";

/// One diversion: dpkg installs the package's `from` at `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diversion {
    pub from: PathBuf,
    pub to: PathBuf,
    /// The owning package, or None for a local diversion.
    pub package: Option<String>,
}

fn dpkg_divert(args: &[&OsStr]) -> Result<String> {
    let out = Command::new(DPKG_DIVERT)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .with_context(|| format!("run {DPKG_DIVERT}"))?;
    let shown = args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ");
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        bail!("dpkg-divert {shown}: {}", err.trim());
    }
    String::from_utf8(out.stdout).with_context(|| format!("dpkg-divert {shown}: output is not utf-8"))
}

/// Parse the diversion database: triples of lines.
pub fn parse_db(bytes: &[u8]) -> Vec<Diversion> {
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    lines
        .chunks_exact(3)
        .map(|t| Diversion {
            from: PathBuf::from(OsStr::from_bytes(t[0])),
            to: PathBuf::from(OsStr::from_bytes(t[1])),
            package: (t[2] != b":").then(|| String::from_utf8_lossy(t[2]).into_owned()),
        })
        .collect()
}

/// Every diversion dpkg knows.
pub fn all() -> Result<Vec<Diversion>> {
    match std::fs::read(DIVERSIONS_DB) {
        Ok(bytes) => Ok(parse_db(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("read {DIVERSIONS_DB}")),
    }
}

/// The diversion of `path`, if any.
pub fn of(path: &Path) -> Result<Option<Diversion>> {
    Ok(all()?.into_iter().find(|d| d.from == path))
}

/// Divert `path` to `to` for package oz, renaming the file dpkg installed there.
pub fn add(path: &Path, to: &Path) -> Result<()> {
    let args = ["--package", PACKAGE, "--add", "--rename", "--divert"].map(OsStr::new);
    let mut argv: Vec<&OsStr> = args.to_vec();
    argv.extend([to.as_os_str(), path.as_os_str()]);
    dpkg_divert(&argv).map(drop)
}

/// Remove oz's diversion of `path`, renaming the diverted file back.
pub fn remove(path: &Path, to: &Path) -> Result<()> {
    let args = ["--package", PACKAGE, "--remove", "--rename", "--divert"].map(OsStr::new);
    let mut argv: Vec<&OsStr> = args.to_vec();
    argv.extend([to.as_os_str(), path.as_os_str()]);
    dpkg_divert(&argv).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_triples() {
        let db = b"/usr/bin/evince\n/usr/bin-oz/evince.unsafe\noz\n/bin/sh\n/bin/sh.distrib\ndash\n/x\n/x.local\n:\n";
        let d = parse_db(db);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0].from, Path::new("/usr/bin/evince"));
        assert_eq!(d[0].to, Path::new("/usr/bin-oz/evince.unsafe"));
        assert_eq!(d[0].package.as_deref(), Some("oz"));
        assert_eq!(d[2].package, None);
        assert!(parse_db(b"").is_empty());
    }
}
