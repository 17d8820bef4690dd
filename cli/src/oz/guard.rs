//! Refuse to run inside a sandbox: the daemon socket is not there, and a sandboxed program must
//! not be able to ask for more sandboxes (the original's `checkRecursingSandbox`).

use std::fs;
use std::path::Path;

/// Written by the agent in every sandbox as a root-owned read-only file.
pub const SANDBOX_MARKER: &str = "/tmp/oz-sandbox";

/// Why we believe we are inside a sandbox, or None on the host.
pub fn inside_sandbox() -> Option<String> {
    inside_sandbox_at(Path::new(SANDBOX_MARKER), Path::new("/proc/1/comm"))
}

fn inside_sandbox_at(marker: &Path, init_comm: &Path) -> Option<String> {
    if fs::symlink_metadata(marker).is_ok() {
        return Some(format!("{} exists", marker.display()));
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

    #[test]
    fn marker_file_means_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("oz-sandbox");
        let comm = tmp.path().join("comm");
        fs::write(&comm, "init\n").unwrap();
        assert_eq!(inside_sandbox_at(&marker, &comm), None);
        fs::write(&marker, "").unwrap();
        assert!(inside_sandbox_at(&marker, &comm).unwrap().contains("oz-sandbox exists"));
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
}
