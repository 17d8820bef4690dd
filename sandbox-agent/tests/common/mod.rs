//! Helpers shared by the sandbox-agent integration tests.

use std::process::Command;
use std::sync::OnceLock;

pub const TEST_USER: &str = "oz-test-a";

/// Create the throwaway test user once (idempotent; the integration suite uses the same name);
/// returns its uid.
pub fn test_uid() -> u32 {
    static UID: OnceLock<u32> = OnceLock::new();
    *UID.get_or_init(|| {
        let lookup = || Command::new("id").args(["-u", TEST_USER]).output().unwrap();
        let mut out = lookup();
        if !out.status.success() {
            let add =
                Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", TEST_USER]).status().unwrap();
            out = lookup();
            assert!(out.status.success(), "useradd {TEST_USER}: {add}");
        }
        String::from_utf8(out.stdout).unwrap().trim().parse().unwrap()
    })
}
