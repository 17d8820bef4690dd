//! The profiles shipped in `profiles/cells.d` (installed to /var/lib/oz/cells.d) pass
//! `oz-setup profile check` without warnings and keep to the shipping rules: an X server,
//! seccomp on and enforced, no host network, and a `path` under /usr.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../profiles/cells.d");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_shipped_profile_passes_profile_check() {
    let files = shipped();
    assert!(files.len() >= 16, "expected at least 16 shipped profiles, found {}", files.len());
    let out = Command::new(env!("CARGO_BIN_EXE_oz-setup")).args(["profile", "check"]).args(&files).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "oz-setup profile check failed:\n{stderr}");
    assert!(stderr.trim().is_empty(), "warnings or errors:\n{stderr}");
}

#[test]
fn shipped_profiles_keep_to_the_rules() {
    for f in shipped() {
        let shown = f.display();
        assert_eq!(f.extension().and_then(|e| e.to_str()), Some("json"), "{shown}: only profiles belong in cells.d");
        let p: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let name = p["name"].as_str().unwrap_or_else(|| panic!("{shown}: no name"));
        assert_eq!(f.file_stem().unwrap(), name, "{shown}: file named after the profile");
        assert!(p["path"].as_str().is_some_and(|s| s.starts_with("/usr/bin/")), "{shown}: path under /usr/bin");
        assert_eq!(p["xserver"]["enabled"], true, "{shown}: xserver enabled");
        let net = p["networking"]["type"].as_str().unwrap_or("");
        assert!(["none", "empty", "bridge"].contains(&net), "{shown}: networking type {net:?}");
        let mode = p["seccomp"]["mode"].as_str().unwrap_or("");
        assert!(["blacklist", "whitelist"].contains(&mode), "{shown}: seccomp mode {mode:?}");
        assert_eq!(p["seccomp"]["enforce"], true, "{shown}: seccomp enforced");
    }
}
