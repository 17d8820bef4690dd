//! Seccomp through a real sandbox: the built-in blacklist answers EPERM, x32 is killed,
//! whitelist policy files allow only what they list, `enforce: false` denies nothing and
//! reports every call the policy names.

use oz_integration::env::{probe_item, TestEnv, PROBE_TARGET};
use oz_integration::probes::syscalls::{self, BLACKLIST};
use oz_integration::run::Output;
use oz_integration::workspace::strict_profile;
use oz_profiles::seccomp::report::{self, Denial};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// 128 + SIGSYS.
const KILLED_BY_SIGSYS: i32 = 128 + libc::SIGSYS;

/// Calls that answer EPERM to an unprivileged caller even without a filter (the kernel checks
/// the capability before the arguments), so they cannot show the filter's work by errno alone.
const EPERM_WITHOUT_FILTER: &[(&str, &str)] = &[
    ("acct", "CAP_SYS_PACCT is checked first"),
    ("pivot_root", "may_mount() is checked first"),
    ("swapoff", "CAP_SYS_ADMIN is checked first"),
    ("swapon", "CAP_SYS_ADMIN is checked first"),
    ("syslog", "kernel.dmesg_restrict=1 is checked first"),
    ("vhangup", "CAP_SYS_TTY_CONFIG is its only check"),
    ("reboot", "CAP_SYS_BOOT is checked first"),
    ("sethostname", "CAP_SYS_ADMIN is checked first"),
    ("setdomainname", "CAP_SYS_ADMIN is checked first"),
];

fn profile_with(env: &TestEnv, name: &str, seccomp: Value) -> std::path::PathBuf {
    let mut p = strict_profile(PROBE_TARGET, json!([probe_item()]), json!([]));
    p["seccomp"] = seccomp;
    env.profile(name, p)
}

fn results(out: &Output) -> BTreeMap<String, String> {
    out.stdout.lines().filter_map(syscalls::parse_line).map(|(n, r)| (n.to_string(), r.to_string())).collect()
}

fn run_syscalls(env: &TestEnv, profile: &std::path::Path) -> BTreeMap<String, String> {
    let out = env.agent(profile, &["syscalls"]).run();
    assert_eq!(out.status, 0, "oz-probe syscalls failed:\n{}", out.all());
    let r = results(&out);
    for (name, _) in BLACKLIST {
        assert!(r.contains_key(*name), "no result for {name}:\n{}", out.all());
    }
    r
}

/// Without a filter, every call except the capability-first ones answers something else than
/// EPERM: the EPERM seen under the blacklist is the filter's.
fn assert_unfiltered(r: &BTreeMap<String, String>, what: &str) {
    let mut wrong = Vec::new();
    for (name, res) in r {
        let exempt = EPERM_WITHOUT_FILTER.iter().any(|(n, _)| n == name);
        if res == "EPERM" && !exempt {
            wrong.push(name.clone());
        }
    }
    assert!(wrong.is_empty(), "{what}: these calls were still denied: {wrong:?} (all: {r:?})");
}

#[test]
fn the_default_blacklist_answers_eperm_and_disabled_does_not() {
    let env = TestEnv::new(json!({}));
    let p = profile_with(&env, "ozscblack", json!({"mode": "blacklist", "enforce": true}));
    let r = run_syscalls(&env, &p);
    let mut wrong = Vec::new();
    for (name, res) in &r {
        // seccomp cannot look into clone3's argument struct: ENOSYS (so libc falls back to
        // clone, which is filtered by flags) is as good as EPERM there.
        let ok = res == "EPERM" || (name == "clone3_newuser" && res == "ENOSYS");
        if !ok {
            wrong.push(format!("{name}={res}"));
        }
    }
    assert!(wrong.is_empty(), "not denied with EPERM by the default blacklist: {wrong:?}");

    let p = profile_with(&env, "ozscoff", json!({"mode": "disabled"}));
    assert_unfiltered(&run_syscalls(&env, &p), "seccomp disabled");
}

#[test]
fn x32_syscalls_are_killed_in_blacklist_and_whitelist_modes() {
    let env = TestEnv::new(json!({}));
    let p = profile_with(&env, "ozscx32", json!({"mode": "blacklist", "enforce": true}));
    let out = env.agent(&p, &["x32-kill"]).run();
    assert_eq!(out.status, KILLED_BY_SIGSYS, "x32 syscall not killed by SIGSYS:\n{}", out.all());
    assert!(!out.stdout.contains("returned"), "{}", out.all());

    let policy = write_policy(&env);
    let p = profile_with(&env, "ozscx32w", json!({"mode": "whitelist", "enforce": true, "whitelist": policy}));
    let out = env.agent(&p, &["x32-kill"]).run();
    assert_eq!(out.status, KILLED_BY_SIGSYS, "x32 syscall not killed under a whitelist:\n{}", out.all());
}

/// What a Rust program needs to start, print and exit, plus getppid (but not sysinfo or uname).
const POLICY_SYSCALLS: &[&str] = &[
    "execve",
    "exit",
    "exit_group",
    "brk",
    "mmap",
    "munmap",
    "mprotect",
    "mremap",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "rseq",
    "prlimit64",
    "read",
    "write",
    "writev",
    "openat",
    "open",
    "close",
    "fstat",
    "newfstatat",
    "statx",
    "stat",
    "lstat",
    "pread64",
    "access",
    "readlink",
    "getrandom",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sigaltstack",
    "sched_getaffinity",
    "sched_yield",
    "poll",
    "ppoll",
    "futex",
    "gettid",
    "getpid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "ioctl",
    "fcntl",
    "lseek",
    "madvise",
    "clock_gettime",
    "close_range",
    "dup2",
    "dup3",
    "getppid",
];

fn write_policy(env: &TestEnv) -> String {
    let path = env.ws.path().join("probe-whitelist.seccomp");
    let text: String = POLICY_SYSCALLS.iter().map(|s| format!("{s}: 1\n")).collect();
    std::fs::write(&path, text).expect("write policy");
    path.display().to_string()
}

#[test]
fn a_whitelist_policy_allows_only_what_it_lists() {
    let env = TestEnv::new(json!({}));
    let policy = write_policy(&env);
    let p = profile_with(&env, "ozscwhite", json!({"mode": "whitelist", "enforce": true, "whitelist": policy}));
    let out = env.agent(&p, &["call", "getppid", "sysinfo"]).run();
    let r = results(&out);
    assert_eq!(r.get("getppid").map(String::as_str), Some("OK"), "a listed call was denied:\n{}", out.all());
    // An unlisted call is denied: EPERM, or the program is killed on the spot.
    let denied = out.status == KILLED_BY_SIGSYS || r.get("sysinfo").is_some_and(|v| v != "OK");
    assert!(denied, "an unlisted call (sysinfo) was allowed:\n{}", out.all());
}

#[test]
fn enforce_false_reports_every_denial_but_denies_nothing() {
    let env = TestEnv::new(json!({}));
    let p = profile_with(&env, "ozsclog", json!({"mode": "blacklist", "enforce": false}));
    let out = env.agent(&p, &["syscalls"]).run();
    assert_eq!(out.status, 0, "oz-probe syscalls failed:\n{}", out.all());
    assert_unfiltered(&results(&out), "enforce: false");
    // Each call the blacklist names was reported (through user notification) with its rule.
    let reported: Vec<Denial> = out
        .stderr
        .lines()
        .filter_map(|l| l.find(report::DENIAL_PREFIX).map(|i| &l[i..]))
        .filter_map(|m| report::parse(report::DENIAL_PREFIX, m))
        .collect();
    let policy = oz_profiles::seccomp::default_blacklist();
    for rule in &policy.rules {
        if !BLACKLIST.iter().any(|(n, _)| *n == rule.syscall) {
            continue;
        }
        let found = reported.iter().find(|d| d.syscall == rule.syscall);
        let found = found.unwrap_or_else(|| panic!("{} allowed but not reported:\n{}", rule.syscall, out.all()));
        assert_eq!(found.rule.as_ref().map(|r| r.line), Some(rule.span.line), "{found:?}");
        assert_eq!(found.outcome, "allowed (audit)");
    }
}
