//! Every policy file of the original Oz corpus parses and compiles.

use std::path::{Path, PathBuf};

use oz_profiles::profile::SeccompMode;
use oz_profiles::seccomp::{compile, load_policy_file};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/compat/oz-profiles"
);

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
        assert_eq!(
            policy.rules.is_empty(),
            constants_only,
            "{}",
            file.display()
        );
    }
}

#[test]
fn all_policy_files_compile_in_their_mode_and_both_enforce_settings() {
    for file in policy_files() {
        let policy = load_policy_file(&file, &[]).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let mode = if name.contains("whitelist") {
            SeccompMode::Whitelist
        } else {
            SeccompMode::Blacklist
        };
        for enforce in [true, false] {
            let filter = compile(&policy, mode, enforce).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(filter.programs().len(), 2, "{name}");
        }
        compile(&policy, SeccompMode::Train, true).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn futex_constants_work_as_extradefs() {
    let defs = Path::new(CORPUS)
        .join("futex-consts-x64.seccomp")
        .display()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.seccomp");
    std::fs::write(
        &policy,
        "futex: arg1 == FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME\n",
    )
    .unwrap();
    let p = load_policy_file(&policy, &[defs]).unwrap();
    compile(&p, SeccompMode::Whitelist, true).unwrap();
}
