//! Broken profiles: each gives exactly one precise error (file, line, column, key), never a panic.

use oz_profiles::load::{load_profile, ProfileError};
use std::path::PathBuf;

/// Write `bytes` to a temp file and load it; returns the file path and the error lines.
fn load_broken(name: &str, bytes: &[u8]) -> (PathBuf, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let err = load_profile(&path).expect_err("broken profile loaded");
    assert!(matches!(err, ProfileError::Invalid(_)), "{err}");
    let lines = err.lines();
    assert_eq!(lines.len(), 1, "expected exactly one error: {lines:#?}");
    (path, lines)
}

fn expect(name: &str, bytes: &[u8], suffix: &str) {
    let (path, lines) = load_broken(name, bytes);
    assert_eq!(lines[0], format!("{}:{suffix}", path.display()));
}

#[test]
fn invalid_json() {
    expect("syntax.json", b"{\n\"path\": \"/usr/bin/x\"\n\"name\": \"x\"\n}", "3:1: expected ',' or '}', found '\"'");
}

#[test]
fn wrong_types() {
    expect(
        "types.json",
        b"{\"path\": \"/usr/bin/x\",\n \"xserver\": {\"enabled\": \"yes\"}}",
        "2:25: xserver.enabled: expected a boolean, found a string",
    );
    expect(
        "types2.json",
        b"{\"path\": \"/usr/bin/x\", \"whitelist\": {\"path\": \"/a\"}}",
        "1:37: whitelist: expected an array, found an object",
    );
    expect("types3.json", b"{\"path\": [\"/usr/bin/x\"]}", "1:10: path: expected a string, found an array");
}

#[test]
fn unknown_enum_value() {
    expect(
        "enum.json",
        b"{\"path\": \"/usr/bin/x\",\n\"seccomp\": {\"mode\": \"strict\"}}",
        "2:21: seccomp.mode: invalid value \"strict\", expected one of: disabled, blacklist, whitelist, train",
    );
}

#[test]
fn relative_path() {
    expect(
        "relative.json",
        b"{\"path\": \"/usr/bin/x\",\n\"whitelist\": [{\"path\": \".mozilla\"}]}",
        "2:24: whitelist[0].path: path \".mozilla\" must be absolute (or start with ${HOME}, ${PATH}/ or ${XDG_...})",
    );
}

#[test]
fn missing_path() {
    expect("missing.json", b"\n  {\"name\": \"x\"}", "2:3: path: missing required key");
}

#[test]
fn empty_file() {
    expect("empty.json", b"", "1:1: empty file");
}

#[test]
fn ten_megabytes_of_nesting() {
    let deep = vec![b'['; 10 * 1024 * 1024];
    expect("deep.json", &deep, "1:129: nesting deeper than 128 levels");
    let deep_objects = "{\"a\":".repeat(1 << 20);
    let (_, lines) = load_broken("deep2.json", deep_objects.as_bytes());
    assert!(lines[0].ends_with("nesting deeper than 128 levels"), "{lines:?}");
}

#[test]
fn invalid_utf8() {
    expect("utf8.json", b"{\"path\": \"/usr/bin/\xc3\x28\"}", "1:20: invalid utf-8 at byte offset 19");
}

#[test]
fn unreadable_file_is_a_read_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_profile(&dir.path().join("absent.json")).unwrap_err();
    assert!(err.to_string().starts_with(&format!("read {}/absent.json: ", dir.path().display())), "{err}");
}

/// Truncations and byte flips of every corpus profile: errors or profiles, never a panic.
#[test]
fn mutated_corpus_never_panics() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/compat/oz-profiles");
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let origin = std::path::Path::new("mutant.json");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for cut in (0..bytes.len()).step_by(7) {
            let _ = oz_profiles::load::parse_profile(&bytes[..cut], origin);
        }
        for _ in 0..300 {
            let mut m = bytes.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            if let Err(e) = oz_profiles::load::parse_profile(&m, origin) {
                assert!(!e.lines().is_empty());
                assert!(e.lines().iter().all(|l| l.starts_with("mutant.json:")), "{e}");
            }
        }
    }
}

#[test]
fn fifo_and_directory_are_errors_not_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let err = load_profile(&fifo).unwrap_err().to_string();
    assert_eq!(err, format!("read {}: not a regular file", fifo.display()));
    let sub = dir.path().join("sub.json");
    std::fs::create_dir(&sub).unwrap();
    let err = load_profile(&sub).unwrap_err().to_string();
    assert_eq!(err, format!("read {}: a directory", sub.display()));
    // The directory loader skips directories and reports the FIFO.
    let set = oz_profiles::load::load_profile_dir(dir.path());
    assert_eq!(set.failed.len(), 1);
    assert!(set.profiles.is_empty());
}
