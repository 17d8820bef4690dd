//! Argument files: a launch's arguments that name existing files are bound into the sandbox
//! when the profile has `allow_files` (the root filesystem opens them as the user, beneath the
//! user's home, so naming a file grants nothing the user could not already read).

use std::path::{Path, PathBuf};

/// The user's arguments that name existing files (absolute, or relative to `cwd`): bound into
/// the sandbox when the profile has `allow_files` (the rootfs opens them as the user).
pub fn arg_files(args: &[String], cwd: Option<&Path>) -> Vec<PathBuf> {
    args.iter()
        .filter(|a| !a.starts_with('-'))
        .filter_map(|a| {
            let p = Path::new(a);
            let full = if p.is_absolute() { p.to_path_buf() } else { cwd?.join(p) };
            full.is_file().then_some(full)
        })
        .collect()
}
