//! Seccomp training round trip: a real workload (python3 opening files, sockets and forking)
//! trained twice into one whitelist (written as the user, merged, parsed by oz's own parser),
//! then run under that whitelist with `enforce: true` without a denial; the same workload with
//! a new syscall and a new socket family is denied and explained.

mod common_daemon;

use common_daemon::{profile, user_a, Daemon};
use oz_profiles::seccomp::parse_policy;
use oz_profiles::seccomp::report::Denial;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;

const WORKLOAD: &str = r#"
import os, socket, sys
with open("/etc/hostname") as f:
    f.read()
for fam, kind in ((socket.AF_UNIX, socket.SOCK_STREAM), (socket.AF_INET, socket.SOCK_DGRAM)):
    socket.socket(fam, kind).close()
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
if len(sys.argv) > 1:
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close()
        print("netlink OK")
    except PermissionError:
        print("netlink EPERM")
    try:
        os.getpriority(os.PRIO_PROCESS, 0)
        print("getpriority OK")
    except PermissionError:
        print("getpriority EPERM")
print("workload done")
"#;

#[test]
fn train_twice_then_enforce_the_trained_whitelist() {
    let a = user_a();
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(a.uid), Some(a.gid)).unwrap();
    let out_path = dir.path().join("python-trained.seccomp");
    let out = out_path.display().to_string();
    let d = Daemon::start(&[
        profile("ozsc-train", "/usr/bin/python3", json!({"seccomp": {"mode": "train", "train_output": out}})),
        profile(
            "ozsc-trained",
            "/usr/bin/python3",
            json!({"seccomp": {"mode": "whitelist", "enforce": true, "whitelist": out}}),
        ),
    ]);
    for run in 1..=2 {
        let r = d.oz(&a, &["run", "ozsc-train", "--", "-c", WORKLOAD]);
        assert_eq!(r.code(), 0, "training run {run}: {}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.contains("workload done"), "{}", r.stdout);
        let text = std::fs::read_to_string(&out_path).unwrap_or_else(|e| panic!("{out}: {e}\n{}", d.log_text()));
        assert!(text.contains(&format!("# runs: {run}\n")), "run {run}:\n{text}");
        let meta = std::fs::metadata(&out_path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (a.uid, a.gid), "the training file is the user's");
        let policy = parse_policy(&text, &out_path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(policy.rules.iter().any(|r| r.syscall == "execve"), "{text}");
        assert!(text.contains("socket: arg0 == AF_UNIX || arg0 == AF_INET\n"), "{text}");
    }
    // The trained whitelist, enforced: the same workload completes without a denial.
    let r = d.oz(&a, &["run", "ozsc-trained", "--", "-c", WORKLOAD]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("workload done"), "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stderr.contains("oz why"), "the trained workload was denied something:\n{}", r.stderr);
    // A new syscall (getpriority) and a new socket family (netlink): denied with EPERM, and
    // explained.
    let r = d.oz(&a, &["run", "ozsc-trained", "--", "-c", WORKLOAD, "more"]);
    assert_eq!(r.code(), 0, "{}\n{}", r.stdout, r.stderr);
    for want in ["netlink EPERM", "getpriority EPERM", "workload done"] {
        assert!(r.stdout.contains(want), "{want}:\n{}\n{}", r.stdout, r.stderr);
    }
    assert!(r.stderr.contains("2 calls denied; oz why "), "{}", r.stderr);
    let id = r.stderr.rsplit_once("oz why ").and_then(|(_, id)| id.trim().parse::<u64>().ok()).unwrap();
    let why = d.oz(&a, &["why", &id.to_string(), "--json"]);
    why.assert_ok("oz why", &d);
    let v: Value = serde_json::from_str(&why.stdout).unwrap();
    let denials: Vec<Denial> = serde_json::from_value(v["denials"].clone()).unwrap();
    assert_eq!(denials.len(), 2, "{}", why.stdout);
    let prio = denials.iter().find(|d| d.syscall == "getpriority").expect("getpriority denied");
    assert_eq!((prio.rule.as_ref(), prio.outcome.as_str()), (None, "EPERM"), "{prio:?}");
    assert_eq!((prio.policy.as_str(), prio.suggestion.as_str()), (out.as_str(), "getpriority: 1"));
    let dn = denials.iter().find(|d| d.syscall == "socket").expect("socket denied");
    assert_eq!((dn.syscall.as_str(), dn.outcome.as_str()), ("socket", "EPERM"), "{dn:?}");
    assert!(dn.args.contains("family=AF_NETLINK"), "{dn:?}");
    let rule = dn.rule.as_ref().expect("the socket rule");
    let text = std::fs::read_to_string(&out_path).unwrap();
    let line = text.lines().position(|l| l.starts_with("socket:")).unwrap() as u32 + 1;
    assert_eq!((rule.file.as_str(), rule.line), (out.as_str(), line), "{dn:?}");
    assert_eq!(dn.suggestion, "socket: arg0 == AF_NETLINK");
    d.finish();
}
