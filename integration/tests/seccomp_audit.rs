//! Seccomp denials explained: audit mode (`enforce: false`) lets every call the policy denies
//! run and reports it through user notification with the rule's file:line; enforcing mode
//! fails the same calls with EPERM and reports them the same way.

mod common_daemon;

use common_daemon::{profile as daemon_profile, user_a, user_b, Daemon};
use oz_integration::env::{probe_item, TestEnv, PROBE_TARGET};
use oz_integration::probes::syscalls;
use oz_integration::workspace::strict_profile;
use oz_profiles::seccomp::report::{self, Denial};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// A blacklist denying three calls the probe makes, each on a known line.
const POLICY: &str =
    "# three calls the probe makes\nsysinfo: 1\n\nuname: 1\n# netlink only\nsocket: arg0 == AF_NETLINK\n";
const LINES: &[(&str, u32)] = &[("sysinfo", 2), ("uname", 4), ("socket", 6)];

fn profile(env: &TestEnv, name: &str, seccomp: Value) -> std::path::PathBuf {
    let mut p = strict_profile(PROBE_TARGET, json!([probe_item()]), json!([]));
    p["seccomp"] = seccomp;
    env.profile(name, p)
}

fn denials(text: &str) -> Vec<Denial> {
    text.lines()
        .filter_map(|l| l.find(report::DENIAL_PREFIX).map(|i| &l[i..]))
        .filter_map(|m| report::parse(report::DENIAL_PREFIX, m))
        .collect()
}

fn results(text: &str) -> BTreeMap<String, String> {
    text.lines().filter_map(syscalls::parse_line).map(|(n, r)| (n.to_string(), r.to_string())).collect()
}

fn check_three(found: &[Denial], policy: &str, outcome: &str, all: &str) {
    let mut got: Vec<(String, u32)> =
        found.iter().map(|d| (d.syscall.clone(), d.rule.as_ref().map_or(0, |r| r.line))).collect();
    got.sort();
    let mut want: Vec<(String, u32)> = LINES.iter().map(|(s, l)| (s.to_string(), *l)).collect();
    want.sort();
    assert_eq!(got, want, "denials:\n{all}");
    for d in found {
        assert_eq!(d.rule.as_ref().unwrap().file, policy);
        assert_eq!(d.outcome, outcome, "{d:?}");
    }
    let socket = found.iter().find(|d| d.syscall == "socket").unwrap();
    assert!(socket.args.contains("family=AF_NETLINK type=SOCK_RAW|SOCK_CLOEXEC"), "{socket:?}");
}

#[test]
fn standalone_audit_allows_and_reports_and_enforce_denies_and_reports() {
    let env = TestEnv::new(json!({}));
    let policy = env.ws.path().join("three.seccomp");
    std::fs::write(&policy, POLICY).unwrap();
    let policy = policy.display().to_string();
    let calls = ["call", "sysinfo", "uname", "socket", "getppid"];

    let p = profile(&env, "ozscaudit", json!({"mode": "blacklist", "enforce": false, "blacklist": policy}));
    let out = env.agent(&p, &calls).run();
    let all = out.all();
    let r = results(&out.stdout);
    for (name, _) in LINES {
        assert_eq!(r.get(*name).map(String::as_str), Some("OK"), "audit denied {name}:\n{all}");
    }
    check_three(&denials(&out.stderr), &policy, "allowed (audit)", &all);

    let p = profile(&env, "ozscenf", json!({"mode": "blacklist", "enforce": true, "blacklist": policy}));
    let out = env.agent(&p, &calls).run();
    let all = out.all();
    let r = results(&out.stdout);
    for (name, _) in LINES {
        assert_eq!(r.get(*name).map(String::as_str), Some("EPERM"), "enforce allowed {name}:\n{all}");
    }
    assert_eq!(r.get("getppid").map(String::as_str), Some("OK"), "{all}");
    check_three(&denials(&out.stderr), &policy, "EPERM", &all);
}

/// The sandbox id of an `oz run` summary line (`... ; oz why ID`).
fn summary_id(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|l| l.rsplit_once("; oz why ").and_then(|(_, id)| id.trim().parse().ok()))
}

fn why_json(d: &Daemon, id: u64) -> Vec<Denial> {
    let out = d.oz(&user_a(), &["why", &id.to_string(), "--json"]);
    out.assert_ok("oz why --json", d);
    let v: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
    serde_json::from_value(v["denials"].clone()).unwrap()
}

#[test]
fn oz_run_summarises_and_oz_why_explains_audit_and_enforce() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("three.seccomp");
    std::fs::write(&policy, POLICY).unwrap();
    let policy = policy.display().to_string();
    // The daemon checks the program on the host: the probe runs at its host path.
    let probe = common_daemon::bin("oz-probe").display().to_string();
    let seccomp = |enforce: bool| {
        json!({"seccomp": {"mode": "blacklist", "enforce": enforce, "blacklist": policy},
               "whitelist": [{"path": probe, "read_only": true}]})
    };
    let d = Daemon::start(&[
        daemon_profile("ozsc-audit", &probe, seccomp(false)),
        daemon_profile("ozsc-enforce", &probe, seccomp(true)),
        daemon_profile("ozsc-hint", "/bin/sh", json!({"seccomp": {"mode": "blacklist", "enforce": false}})),
    ]);
    let a = user_a();
    for (profile, outcome, result, summary) in [
        ("ozsc-audit", "allowed (audit)", "OK", "3 calls would be denied (audit); oz why "),
        ("ozsc-enforce", "EPERM", "EPERM", "3 calls denied; oz why "),
    ] {
        let out = d.oz(&a, &["run", profile, "--", "call", "sysinfo", "uname", "socket", "getppid"]);
        let all = format!("{}\n{}", out.stdout, out.stderr);
        assert_eq!(out.code(), 0, "{all}");
        let r = results(&out.stdout);
        for (name, _) in LINES {
            assert_eq!(r.get(*name).map(String::as_str), Some(result), "{profile}: {name}:\n{all}");
        }
        assert_eq!(r.get("getppid").map(String::as_str), Some("OK"), "{all}");
        assert!(out.stderr.contains(summary), "{profile}: no summary:\n{all}");
        let id = summary_id(&out.stderr).expect("sandbox id in the summary");
        // oz why, as JSON and as text, for the (ended) sandbox.
        check_three(&why_json(&d, id), &policy, outcome, &all);
        let text = d.oz(&a, &["why", &id.to_string()]);
        text.assert_ok("oz why", &d);
        for (name, line) in LINES {
            assert!(text.stdout.contains(&format!("{policy}:{line}: {name}")), "{}", text.stdout);
        }
        assert!(text.stdout.contains("to allow: socket: (arg0 == 16) && arg0 != AF_NETLINK"), "{}", text.stdout);
        // The JSON log carries the same records.
        let logs = d.oz(&a, &["logs", "--sandbox", &id.to_string(), "--json"]);
        logs.assert_ok("oz logs --json", &d);
        let messages: Vec<String> = logs
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["message"].as_str().map(str::to_string))
            .collect();
        check_three(&denials(&messages.join("\n")), &policy, outcome, &logs.stdout);
        // Only the owner (and root) may read them.
        let other = d.oz(&user_b(), &["why", &id.to_string()]);
        assert_ne!(other.code(), 0, "another user read the denials: {}", other.stdout);
    }
    // A path that exists on the host (in a world-searchable directory) but not in the sandbox.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let missing = dir.path().join("host-only.txt");
    std::fs::write(&missing, "x").unwrap();
    let script = format!("cat {} 2>/dev/null; echo done", missing.display());
    let out = d.oz(&a, &["run", "ozsc-hint", "--", "-c", &script]);
    assert!(out.stdout.contains("done"), "{}\n{}", out.stdout, out.stderr);
    // (the shell may miss other host paths too: locale files and the like)
    assert!(out.stderr.contains(" missing in the sandbox exist"), "{}", out.stderr);
    assert!(out.stderr.contains(" on the host; oz why "), "{}", out.stderr);
    let id = summary_id(&out.stderr).unwrap();
    let why = d.oz(&a, &["why", &id.to_string()]);
    let want = format!("{} (openat by cat) does not exist in the sandbox but does on the host", missing.display());
    assert!(why.stdout.contains(&want), "{}", why.stdout);
    assert!(
        why.stdout.contains(&format!("\"whitelist\": [{{\"path\":\"{}\",\"read_only\":true}}]", missing.display())),
        "{}",
        why.stdout
    );
    d.finish();
}
