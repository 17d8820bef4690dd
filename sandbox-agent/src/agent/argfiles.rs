//! Argument files: a launch's arguments that name files the user may read are bound into the
//! sandbox when the profile has `allow_files`. Which arguments name such files is decided with
//! the user's credentials only (opened beneath the user's home, `/run/user/<uid>` or
//! `/media/<name>`, never as root): an argument naming a file the user cannot reach is treated
//! exactly like one naming nothing, so naming a file grants or reveals nothing.

use oz_sandbox::user::UserInfo;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// The user's arguments that could name files (absolute, or relative to `cwd`): candidates
/// for [`accessible`]; nothing is looked up here.
pub fn arg_files(args: &[String], cwd: Option<&Path>) -> Vec<PathBuf> {
    args.iter()
        .filter(|a| !a.starts_with('-') && !a.is_empty())
        .filter_map(|a| {
            let p = Path::new(a);
            if p.is_absolute() {
                Some(p.to_path_buf())
            } else {
                cwd.map(|c| c.join(p))
            }
        })
        .collect()
}

/// Whether `path` is a regular file the user can read beneath one of their trees, looked up
/// with the user's credentials. Absent, not permitted, outside the trees or not a regular file
/// all give false, so the answer says nothing the user could not learn themselves.
pub fn is_user_file(user: &UserInfo, path: &Path) -> bool {
    let Ok(fd) = oz_sandbox::rootfs::open_user_path(user, path) else { return false };
    nix::sys::stat::fstat(fd.as_raw_fd()).is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG)
}

/// The first candidate outside the user's trees that names a regular file, looked up with the
/// user's credentials (so the answer tells nothing the user could not learn): such a document
/// cannot be opened in a sandbox, and the launch is refused naming it rather than running the
/// program with a path it cannot see.
pub fn outside_user_trees(user: &UserInfo, candidates: &[PathBuf]) -> Option<PathBuf> {
    candidates.iter().find(|f| !oz_sandbox::rootfs::in_user_tree(user, f) && is_file_as_user(user, f)).cloned()
}

fn is_file_as_user(user: &UserInfo, path: &Path) -> bool {
    let Ok(_as_user) = oz_sandbox::rootfs::AsUser::enter(user) else { return false };
    std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// Why [`outside_user_trees`] refused `path`, for the wire.
pub fn refused(user: &UserInfo, path: &Path) -> oz_wire::AgentError {
    let detail = format!(
        "only files below {} or /media/{} can be opened in a sandbox (allow_files)",
        user.home.display(),
        user.name
    );
    oz_wire::AgentError::PathRefused { path: path.to_path_buf(), detail }
}

/// The candidates that are files of the user's (see [`is_user_file`]).
pub fn accessible(user: &UserInfo, candidates: &[PathBuf]) -> Vec<PathBuf> {
    candidates.iter().filter(|f| is_user_file(user, f)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_lexical() {
        let args = vec!["-v".to_string(), "a.txt".into(), "/abs/b".into(), String::new()];
        assert_eq!(arg_files(&args, Some(Path::new("/home/u"))), vec![PathBuf::from("/home/u/a.txt"), "/abs/b".into()]);
        assert_eq!(arg_files(&args, None), vec![PathBuf::from("/abs/b")]);
    }
}
