//! Every policy file of the original Oz corpus parses and compiles.

use std::path::{Path, PathBuf};

use oz_profiles::profile::SeccompMode;
use oz_profiles::seccomp::load_policy_file;
use oz_sandbox::seccomp::compile;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/compat/oz-profiles");

fn policy_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(CORPUS)
        .unwrap_or_else(|e| panic!("{CORPUS}: {e}"))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seccomp"))
        .collect();
    files.sort();
    files
}

#[test]
fn all_sixteen_policy_files_parse() {
    let files = policy_files();
    assert_eq!(files.len(), 16, "{files:?}");
    for file in &files {
        let policy = load_policy_file(file, &[]).unwrap_or_else(|e| panic!("{e}"));
        let constants_only = file.file_name().unwrap() == "futex-consts-x64.seccomp";
        assert_eq!(policy.rules.is_empty(), constants_only, "{}", file.display());
    }
}

#[test]
fn all_policy_files_compile_in_their_mode_and_both_enforce_settings() {
    for file in policy_files() {
        let policy = load_policy_file(&file, &[]).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let mode = if name.contains("whitelist") { SeccompMode::Whitelist } else { SeccompMode::Blacklist };
        for enforce in [true, false] {
            let filter = compile(&policy, mode, enforce).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(filter.programs().len(), 2, "{name}");
        }
        compile(&policy, SeccompMode::Train, true).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn futex_constants_work_as_extradefs() {
    let defs = Path::new(CORPUS).join("futex-consts-x64.seccomp").display().to_string();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.seccomp");
    std::fs::write(&policy, "futex: arg1 == FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME\n").unwrap();
    let p = load_policy_file(&policy, &[defs]).unwrap();
    compile(&p, SeccompMode::Whitelist, true).unwrap();
}

/// Truncated and mangled corpus lines give errors (or valid policies), never a panic.
#[test]
fn mutated_corpus_lines_never_panic() {
    let specials = ['(', ')', '|', '&', '!', '=', ':', '[', ']', '#', '0', 'x', ';', ',', '~', '?'];
    let mut compiled = 0;
    for file in policy_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let chars: Vec<char> = line.chars().collect();
            let mut variants: Vec<String> = (0..chars.len()).map(|i| chars[..i].iter().collect()).collect();
            for (i, c) in specials.iter().enumerate() {
                let mut v = chars.clone();
                let at = (i * 7 + line.len()) % v.len().max(1);
                if !v.is_empty() {
                    v[at] = *c;
                }
                variants.push(v.into_iter().collect());
            }
            for v in variants {
                let Ok(policy) = oz_profiles::seccomp::parse_policy(&v, Path::new("m")) else {
                    continue;
                };
                if compiled < 300 && !policy.rules.is_empty() {
                    compiled += 1;
                    let _ = compile(&policy, SeccompMode::Blacklist, true);
                }
            }
        }
    }
    assert!(compiled > 0);
}
