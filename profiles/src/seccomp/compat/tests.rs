use std::path::Path;

use super::*;
use crate::seccomp::eval::decide;
use crate::seccomp::parse_policy;

fn policy(text: &str) -> Policy {
    parse_policy(text, Path::new("w.seccomp")).unwrap_or_else(|e| panic!("{e}"))
}

fn allows(p: &Policy, syscall: &str, args: [u64; 6]) -> bool {
    !decide(p, true, syscall, &args).denies()
}

const CWD: u64 = libc::AT_FDCWD as i64 as u64;

#[test]
fn getdents_allows_getdents64_with_its_conditions() {
    let (p, derived) = modernize(&policy("read: 1\ngetdents: arg0 == 3\n"));
    assert_eq!(derived.len(), 1);
    assert_eq!(derived[0].rule.span.line, 2, "the derived rule points at the legacy rule");
    assert!(allows(&p, "getdents64", [3, 0, 0, 0, 0, 0]));
    assert!(!allows(&p, "getdents64", [4, 0, 0, 0, 0, 0]));
    let (p, derived) = modernize(&policy("read: 1\n"));
    assert!(derived.is_empty());
    assert!(!allows(&p, "getdents64", [3, 0, 0, 0, 0, 0]));
}

#[test]
fn an_explicit_rule_for_the_modern_call_wins() {
    let (p, derived) = modernize(&policy("getdents: 1\ngetdents64: arg0 == 5\nstat: 1\nnewfstatat: arg3 == 0\n"));
    assert!(derived.is_empty(), "{derived:?}");
    assert!(!allows(&p, "getdents64", [3, 0, 0, 0, 0, 0]));
    assert!(!allows(&p, "newfstatat", [CWD, 0, 0, 0x100, 0, 0]));
}

#[test]
fn stat_calls_allow_newfstatat_only_as_glibc_makes_them() {
    let (p, _) = modernize(&policy("stat: 1\n"));
    assert!(allows(&p, "newfstatat", [CWD, 0, 0, 0, 0, 0]));
    assert!(allows(&p, "newfstatat", [CWD & 0xffff_ffff, 0, 0, 0, 0, 0]));
    assert!(!allows(&p, "newfstatat", [CWD, 0, 0, libc::AT_SYMLINK_NOFOLLOW as u64, 0, 0]), "that is lstat");
    assert!(!allows(&p, "newfstatat", [3, 0, 0, 0, 0, 0]), "a directory fd is no stat");
    let (p, _) = modernize(&policy("lstat: 1\nfstat: arg0 == 7\n"));
    assert!(allows(&p, "newfstatat", [CWD, 0, 0, libc::AT_SYMLINK_NOFOLLOW as u64, 0, 0]));
    assert!(!allows(&p, "newfstatat", [CWD, 0, 0, 0, 0, 0]), "that is stat");
    assert!(allows(&p, "newfstatat", [7, 0, 0, libc::AT_EMPTY_PATH as u64, 0, 0]));
    assert!(!allows(&p, "newfstatat", [8, 0, 0, libc::AT_EMPTY_PATH as u64, 0, 0]), "fstat's condition moves along");
}

#[test]
fn open_allows_openat_on_the_working_directory_with_its_flag_conditions() {
    let (p, _) = modernize(&policy("open: arg1 & O_CREAT == 0\n"));
    assert!(allows(&p, "openat", [CWD, 0, 0, 0, 0, 0]));
    assert!(!allows(&p, "openat", [CWD, 0, libc::O_CREAT as u64, 0, 0, 0]));
    assert!(!allows(&p, "openat", [3, 0, 0, 0, 0, 0]));
}

#[test]
fn rlimit_calls_allow_prlimit64_on_the_caller_only() {
    let (p, _) = modernize(&policy("getrlimit: 1\n"));
    assert!(allows(&p, "prlimit64", [0, 7, 0, 0x1000, 0, 0]));
    assert!(!allows(&p, "prlimit64", [0, 7, 0x1000, 0x1000, 0, 0]), "getrlimit sets nothing");
    assert!(!allows(&p, "prlimit64", [42, 7, 0, 0x1000, 0, 0]), "another process");
    let (p, _) = modernize(&policy("setrlimit: arg0 == 7\n"));
    assert!(allows(&p, "prlimit64", [0, 7, 0x1000, 0, 0, 0]));
    assert!(!allows(&p, "prlimit64", [0, 4, 0x1000, 0, 0, 0]));
    assert!(!allows(&p, "prlimit64", [0, 7, 0, 0x1000, 0, 0]));
}

#[test]
fn a_condition_on_an_argument_without_counterpart_derives_nothing() {
    let (_, derived) = modernize(&policy("stat: arg2 == 0\n"));
    assert!(derived.is_empty());
}

#[test]
fn rules_with_actions_of_their_own_derive_nothing() {
    let (_, derived) = modernize(&policy("getdents[+log]: 1\nfutex: arg1 == 0; return EAGAIN\n"));
    assert!(derived.is_empty(), "{derived:?}");
}

#[test]
fn futex_wait_allows_wait_bitset_with_the_same_flags_and_either_clock() {
    let text = "futex: arg1 == 129 || arg1 == 128\n";
    let (p, derived) = modernize(&policy(text));
    assert!(allows(&p, "futex", [0, 137, 0, 0, 0, u64::from(u32::MAX)]));
    assert!(allows(&p, "futex", [0, 393, 0, 0, 0, 0]));
    assert!(!allows(&p, "futex", [0, 9, 0, 0, 0, 0]), "a shared wait was not allowed");
    assert!(!allows(&p, "futex", [0, 265, 0, 0, 0, 0]));
    assert!(!allows(&p, "futex", [0, 138, 0, 0, 0, 0]), "no FUTEX_WAKE_BITSET");
    assert_eq!(derived.len(), 2);
    let (p, derived) = modernize(&policy("futex: arg1 == 129 || arg1 == 128 || arg1 == 1 || arg1 == 0\n"));
    assert_eq!(derived.len(), 4);
    for op in [9, 137, 265, 393] {
        assert!(allows(&p, "futex", [0, op, 0, 0, 0, 0]), "{op}");
    }
    let (p, derived) = modernize(&policy("futex: arg1 == 129\n"));
    assert!(derived.is_empty(), "no wait, no bitset wait");
    assert!(!allows(&p, "futex", [0, 137, 0, 0, 0, 0]));
}

#[test]
fn futex_conditions_on_other_arguments_stay() {
    let (p, _) = modernize(&policy("futex: arg1 == 128 && arg2 < 5\n"));
    assert!(allows(&p, "futex", [0, 137, 4, 0, 0, 0]));
    assert!(!allows(&p, "futex", [0, 137, 6, 0, 0, 0]));
}

#[test]
fn a_policy_naming_wait_bitset_or_allowing_every_futex_decided_itself() {
    let (p, derived) = modernize(&policy("futex: arg1 == 128 || arg1 == FUTEX_WAIT_BITSET_PRIVATE\n"));
    assert!(derived.is_empty());
    assert!(!allows(&p, "futex", [0, 393, 0, 0, 0, 0]));
    assert!(modernize(&policy("futex: 1\n")).1.is_empty());
}

#[test]
fn modernizing_twice_adds_nothing() {
    let text = "getdents: 1\nstat: 1\nlstat: 1\nfutex: arg1 == 128\ngetrlimit: 1\nsetrlimit: 1\nopen: 1\n";
    let (once, derived) = modernize(&policy(text));
    assert_eq!(derived.len(), 8, "{derived:?}");
    let (twice, again) = modernize(&once);
    assert!(again.is_empty(), "{again:?}");
    assert_eq!(twice, once);
}

#[test]
fn every_equivalent_names_known_calls_and_maps_distinct_arguments() {
    for eq in EQUIVALENTS {
        for name in [eq.legacy, eq.modern] {
            assert!(crate::seccomp::names::all().contains(&name), "{name}");
        }
        let to: Vec<u8> = eq.args.iter().map(|a| a.1).chain(eq.fixed.iter().map(|f| f.0)).collect();
        let mut dedup = to.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), to.len(), "{}: an argument mapped twice", eq.legacy);
    }
}
