//! The generic blacklist: `<etc_prefix>/blacklist-generic.seccomp` when the file exists (the
//! package ships oz's default there and an admin may edit it), else the built-in default.

use super::default_policy::default_blacklist;
use super::error::{ErrorKind, PolicyError};
use super::ir::Policy;
use super::parser::{parse_policy, MAX_POLICY_BYTES};
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The file name under `etc_prefix` (the original's name).
pub const GENERIC_BLACKLIST_FILE: &str = "blacklist-generic.seccomp";

/// `<etc_prefix>/blacklist-generic.seccomp`.
pub fn generic_blacklist_path(etc_prefix: &Path) -> PathBuf {
    etc_prefix.join(GENERIC_BLACKLIST_FILE)
}

/// The blacklist for blacklist-mode profiles that name no file of their own. The file must be a
/// regular file (not a symlink) owned by root and writable by no one else: it decides what every
/// sandbox may do. Errors name the file (and line and column for a bad rule).
pub fn generic_blacklist(etc_prefix: &Path) -> Result<Policy, PolicyError> {
    let path = generic_blacklist_path(etc_prefix);
    let err = |kind| PolicyError::new(&path, 0, 0, kind);
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(default_blacklist()),
        Err(e) => return Err(err(ErrorKind::Read(e.to_string()))),
    };
    let meta = file.metadata().map_err(|e| err(ErrorKind::Read(e.to_string())))?;
    if !meta.is_file() {
        return Err(err(ErrorKind::Read("not a regular file".into())));
    }
    if meta.uid() != 0 || meta.mode() & 0o022 != 0 {
        return Err(err(ErrorKind::Permissions { uid: meta.uid(), mode: meta.mode() & 0o7777 }));
    }
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1).read_to_end(&mut bytes).map_err(|e| err(ErrorKind::Read(e.to_string())))?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(err(ErrorKind::TooLarge(bytes.len() as u64, MAX_POLICY_BYTES)));
    }
    let text = String::from_utf8(bytes).map_err(|_| err(ErrorKind::NotUtf8))?;
    parse_policy(&text, &path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seccomp::default_policy::DEFAULT_BLACKLIST;
    use std::os::unix::fs::PermissionsExt;

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn missing_file_means_the_builtin_default() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(generic_blacklist(dir.path()).unwrap().rules, default_blacklist().rules);
    }

    #[test]
    fn the_file_replaces_the_default_and_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = generic_blacklist_path(dir.path());
        std::fs::write(&path, "# local\nptrace: 1\n").unwrap();
        let owned_by_root = is_root();
        match generic_blacklist(dir.path()) {
            Ok(p) => {
                assert!(owned_by_root);
                assert_eq!(p.rules.len(), 1);
            }
            Err(e) => {
                assert!(!owned_by_root, "{e}");
                assert!(matches!(e.kind, ErrorKind::Permissions { .. }), "{e}");
            }
        }
        if !owned_by_root {
            return;
        }
        std::fs::write(&path, "ptrace: 1\nno_such_call: 1\n").unwrap();
        let e = generic_blacklist(dir.path()).unwrap_err();
        assert_eq!(e.to_string(), format!("{}:2:1: unknown syscall \"no_such_call\"", path.display()));
        std::fs::write(&path, DEFAULT_BLACKLIST).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = generic_blacklist(dir.path()).unwrap_err();
        assert!(e.to_string().contains("must be owned by root and not writable by group or others"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(generic_blacklist(dir.path()).unwrap().rules, default_blacklist().rules);
    }
}
