//! Wrapper mode: `oz` invoked as a symlink named like an application launches that
//! application's profile (matching rules in `wrapper_paths`).

use crate::oz::conn::{unexpected, Conn};
use crate::oz::launch::{launch_detached, request};
use crate::oz::wrapper_paths::{self, BasenameMatch};
use anyhow::{anyhow, bail, Context, Result};
use oz_wire::{ClientRequest, DaemonError, DaemonReply, ProfileRef};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

pub fn run(argv0: &OsStr, rest: &[OsString]) -> Result<u8> {
    let name = argv0.to_string_lossy().into_owned();
    let args = utf8_args(rest)?;
    let cwd = std::env::current_dir().context("current directory")?;
    let args = wrapper_paths::absolutize_file_args(&args, &cwd, |p| p.exists());
    let candidates = wrapper_paths::path_candidates(
        Path::new(argv0),
        &cwd,
        std::env::var_os("PATH").as_deref(),
        |p| p.is_file(),
        |d| std::fs::canonicalize(d).ok(),
    );
    let mut conn = Conn::connect()?;
    for path in &candidates {
        let req = request(ProfileRef::Path(path.clone()), args.clone(), false, false);
        match launch_detached(&mut conn, &req) {
            Ok(_) => return Ok(0),
            Err(e) if is_no_such_profile(&e) => continue,
            Err(e) => return Err(e).with_context(|| format!("launch {}", path.display())),
        }
    }
    let path = by_basename(&mut conn, argv0)?
        .ok_or_else(|| anyhow!("{name}: no oz profile has this program as its path or paths"))?;
    let req = request(ProfileRef::Path(path.clone()), args, false, false);
    launch_detached(&mut conn, &req).with_context(|| format!("launch {}", path.display()))?;
    Ok(0)
}

/// The one profile path with argv\[0\]'s basename, from the daemon's listing.
fn by_basename(conn: &mut Conn, argv0: &OsStr) -> Result<Option<PathBuf>> {
    let profiles = match conn.call(&ClientRequest::ListProfiles)? {
        DaemonReply::Profiles(p) => p,
        other => return Err(unexpected("Profiles", &other)),
    };
    let paths: Vec<&str> = profiles.iter().map(|p| p.path.as_str()).collect();
    match wrapper_paths::match_basename(argv0, &paths) {
        BasenameMatch::None => Ok(None),
        BasenameMatch::One(p) => Ok(Some(PathBuf::from(p))),
        BasenameMatch::Ambiguous(ps) => {
            bail!(
                "{}: several profiles match by name ({}); invoke it by its full path",
                argv0.to_string_lossy(),
                ps.join(", ")
            )
        }
    }
}

fn is_no_such_profile(e: &anyhow::Error) -> bool {
    e.chain().any(|c| matches!(c.downcast_ref::<DaemonError>(), Some(DaemonError::NoSuchProfile { .. })))
}

fn utf8_args(rest: &[OsString]) -> Result<Vec<String>> {
    rest.iter()
        .enumerate()
        .map(|(i, a)| a.clone().into_string().map_err(|a| anyhow!("argument {}: not valid utf-8: {a:?}", i + 1)))
        .collect()
}
