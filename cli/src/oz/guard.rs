//! Refuse to run inside a sandbox: the daemon socket is not there, and a sandboxed program must
//! not be able to ask for more sandboxes (the original's `checkRecursingSandbox`).
//!
//! Both signs rest on things no host user can make: the marker lives in `/run` (root 0755 on the
//! host, a root-owned tmpfs in the sandbox) and must be a root-owned regular file, and pid 1's
//! name is set by the kernel's pid 1 only. A world-writable place such as `/tmp` is never
//! consulted, so a user cannot lock everyone out of `oz` by creating a file there.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Written by the sandbox build in every sandbox as a root-owned read-only file.
pub const SANDBOX_MARKER: &str = "/run/oz-sandbox";

/// Why we believe we are inside a sandbox, or None on the host.
pub fn inside_sandbox() -> Option<String> {
    inside_sandbox_at(Path::new(SANDBOX_MARKER), Path::new("/proc/1/comm"))
}

fn inside_sandbox_at(marker: &Path, init_comm: &Path) -> Option<String> {
    if let Ok(m) = fs::symlink_metadata(marker) {
        if m.is_file() && m.uid() == 0 {
            return Some(format!("{} exists", marker.display()));
        }
    }
    let comm = fs::read_to_string(init_comm).unwrap_or_default();
    if comm.starts_with("oz-init") {
        return Some(format!("pid 1 is {}", comm.trim_end()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running_as_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn root_owned_marker_file_means_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("oz-sandbox");
        let comm = tmp.path().join("comm");
        fs::write(&comm, "init\n").unwrap();
        assert_eq!(inside_sandbox_at(&marker, &comm), None);
        fs::write(&marker, "").unwrap();
        let inside = inside_sandbox_at(&marker, &comm);
        // Only a root-owned marker counts: a user's file of that name proves nothing.
        assert_eq!(inside.is_some(), running_as_root(), "{inside:?}");
    }

    #[test]
    fn marker_that_is_a_directory_or_symlink_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let comm = tmp.path().join("comm");
        fs::write(&comm, "init\n").unwrap();
        let dir = tmp.path().join("dir");
        fs::create_dir(&dir).unwrap();
        assert_eq!(inside_sandbox_at(&dir, &comm), None);
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
        assert_eq!(inside_sandbox_at(&link, &comm), None);
    }

    #[test]
    fn oz_init_as_pid_1_means_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let comm = tmp.path().join("comm");
        fs::write(&comm, "oz-init[7]\n").unwrap();
        let why = inside_sandbox_at(&tmp.path().join("none"), &comm).unwrap();
        assert_eq!(why, "pid 1 is oz-init[7]");
    }

    #[test]
    fn unreadable_comm_is_host() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(inside_sandbox_at(&tmp.path().join("a"), &tmp.path().join("b")), None);
    }

    #[test]
    fn marker_is_outside_world_writable_places() {
        assert!(!SANDBOX_MARKER.starts_with("/tmp/") && !SANDBOX_MARKER.starts_with("/var/tmp/"));
        assert!(!SANDBOX_MARKER.starts_with("/dev/shm/"));
    }
}
