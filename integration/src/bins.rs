//! Locating the built binaries (`oz-agent`, `oz-daemon`, `oz`, `oz-probe`).

use std::path::PathBuf;

/// Environment variable overriding where the binaries are looked up.
pub const BIN_DIR_ENV: &str = "OZ_BIN_DIR";

/// Directories searched, in order: `$OZ_BIN_DIR`, then the test executable's directory and its
/// parents (`target/debug/deps/x` -> `target/debug`), then `target/{debug,release}` beside them.
fn search_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os(BIN_DIR_ENV) {
        dirs.push(PathBuf::from(d));
    }
    if let Ok(exe) = std::env::current_exe() {
        let mut cur = exe.parent().map(PathBuf::from);
        while let Some(d) = cur {
            dirs.push(d.clone());
            cur = d.parent().map(PathBuf::from);
            if dirs.len() > 4 {
                break;
            }
        }
    }
    dirs
}

/// The path of a built binary; panics naming every directory tried (a test cannot go on).
pub fn bin(name: &str) -> PathBuf {
    let dirs = search_dirs();
    for d in &dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    let tried: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    panic!(
        "binary {name} not found in {} (build it with `cargo build -p <crate>` or set {BIN_DIR_ENV})",
        tried.join(", ")
    )
}
