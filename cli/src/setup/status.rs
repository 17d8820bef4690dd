//! `oz-setup status`: per program path, whether oz diverted it, where the real binary is, and
//! whether the symlink to the wrapper is intact.

use super::dpkg;
use super::rootdir::{Entry, RootDir};
use anyhow::Result;
use oz_profiles::Config;
use std::path::Path;

/// One line describing `path`; the bool is false when something oz made is broken.
pub fn describe(config: &Config, path: &Path) -> Result<(String, bool)> {
    let shown = path.display();
    let wrapper = config.oz_wrapper();
    let entry = match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => RootDir::open(dir).and_then(|d| d.entry(name)).map_err(|e| format!("{e:#}")),
        _ => Err("not an absolute path to a file".into()),
    };
    let Some(d) = dpkg::of(path)? else {
        let what = match entry {
            Ok(Entry::Missing) => "not installed".to_string(),
            Ok(Entry::Symlink { target, .. }) if target == wrapper => {
                return Ok((
                    format!(
                        "{shown}: not diverted, but a symlink to {} (the program it stood for is gone)",
                        wrapper.display()
                    ),
                    false,
                ));
            }
            Ok(_) => "installed, runs unsandboxed".to_string(),
            Err(e) => e,
        };
        return Ok((format!("{shown}: not wrapped ({what})"), true));
    };
    if d.package.as_deref() != Some(dpkg::PACKAGE) {
        let by = d.package.unwrap_or_else(|| "a local diversion".into());
        return Ok((format!("{shown}: not wrapped (diverted to {} by {by})", d.to.display()), true));
    }
    let real = if d.to.symlink_metadata().is_ok() { "present" } else { "MISSING" };
    let (link, ok_link) = match entry {
        Ok(Entry::Symlink { target, .. }) if target == wrapper && wrapper.exists() => {
            (format!("symlink to {} intact", wrapper.display()), true)
        }
        Ok(Entry::Symlink { target, .. }) if target == wrapper => {
            (format!("symlink to {} whose target is MISSING", wrapper.display()), false)
        }
        Ok(Entry::Missing) => ("symlink MISSING (`oz-setup install` repairs it)".into(), false),
        Ok(other) => (format!("symlink REPLACED by {other:?}"), false),
        Err(e) => (e, false),
    };
    let ok = ok_link && real == "present";
    Ok((format!("{shown}: wrapped: diverted by oz, real binary at {} ({real}), {link}", d.to.display()), ok))
}
