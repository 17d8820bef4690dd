//! The `oz` client's own behaviour: help everywhere, one-line errors with a non-zero status,
//! and its refusal to run inside a sandbox.

mod common_daemon;

use common_daemon::{bin, bin_dir, profile, run, user_a, user_b, Daemon};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

const COMMANDS: &[&str] =
    &["profiles", "launch", "run", "list", "kill", "shell", "logs", "mount", "umount", "forward", "forwarders", "why"];

fn oz_no_daemon(args: &[&str]) -> run::Out {
    run::oz(Path::new("/nonexistent/ozt.sock"), &user_a(), args, None, Duration::from_secs(10))
}

#[test]
fn help_everywhere() {
    let top = oz_no_daemon(&["--help"]);
    assert!(top.status.success(), "{top:?}");
    for c in COMMANDS {
        assert!(top.stdout.contains(c), "oz --help lacks {c}");
        let out = oz_no_daemon(&[c, "--help"]);
        assert!(out.status.success() && out.stdout.contains("Usage: oz"), "oz {c} --help: {out:?}");
    }
}

#[test]
fn errors_are_one_line_with_a_nonzero_status() {
    for args in [
        vec!["list"],
        vec!["list", "--json"],
        vec!["profiles"],
        vec!["kill", "3"],
        vec!["kill", "nonsense"],
        vec!["no-such-command"],
        vec!["mount", "1"],
    ] {
        let out = oz_no_daemon(&args);
        out.assert_failed(&format!("oz {}", args.join(" ")));
        assert_eq!(out.stderr.lines().count(), 1, "oz {}: {:?}", args.join(" "), out.stderr);
        assert!(out.stdout.is_empty(), "oz {}: stdout {:?}", args.join(" "), out.stdout);
    }
    let out = oz_no_daemon(&["list"]);
    assert!(out.stderr.contains("/nonexistent/ozt.sock"), "names the socket: {}", out.stderr);
}

#[test]
fn refuses_to_run_inside_a_sandbox() {
    let dir = bin_dir();
    let p = profile("ozt-sh", "/bin/sh", json!({"whitelist": [{"path": dir.to_str().unwrap(), "read_only": true}]}));
    let d = Daemon::start(&[p]);
    let script = format!("{} list; echo ozt-rc=$?", bin("oz").display());
    let out = d.oz(&user_a(), &["run", "ozt-sh", "--", "-c", &script]);
    out.assert_ok("oz run", &d);
    assert!(out.stdout.contains("ozt-rc=1"), "oz inside the sandbox must fail: {out:?}");
    assert!(out.stderr.starts_with("oz: refusing"), "clear message: {:?}", out.stderr);
    assert!(out.stderr.contains("sandbox"), "clear message: {:?}", out.stderr);
    d.finish();
}

/// Removes a file this test created, also when an assertion fails.
struct RemoveOnDrop(Vec<&'static str>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn a_host_user_cannot_make_oz_refuse_to_run() {
    let d = Daemon::start(&[profile("ozt-sh", "/bin/sh", json!({}))]);
    let (a, b) = (user_a(), user_b());
    // The places a marker could be looked for: user-creatable ones must not count, the real
    // one must not be creatable by a user.
    let mut created = RemoveOnDrop(Vec::new());
    for p in ["/tmp/oz-sandbox", "/var/tmp/oz-sandbox", "/dev/shm/oz-sandbox"] {
        if !Path::new(p).exists() && a.sh(&format!("touch {p}")).is_ok() {
            created.0.push(p);
        }
    }
    assert!(created.0.contains(&"/tmp/oz-sandbox"), "the test user could not create /tmp/oz-sandbox");
    for p in ["/run/oz-sandbox", "/run/oz-sandbox.d/x", "/oz-sandbox"] {
        assert!(a.sh(&format!("touch {p}")).is_err(), "a host user created {p}");
    }
    for who in [&a, &b] {
        let out = d.oz(who, &["list"]);
        out.assert_ok(&format!("oz list as {} with /tmp/oz-sandbox present", who.name), &d);
    }
    d.oz_root(&["list"], b"").assert_ok("oz list as root with /tmp/oz-sandbox present", &d);
    drop(created);
    d.finish();
}

#[test]
fn listings_have_json_output() {
    let d = Daemon::start(&[profile("ozt-sh", "/bin/sh", json!({"multi": true}))]);
    let a = user_a();
    let out = d.oz(&a, &["profiles", "--json"]);
    out.assert_ok("oz profiles --json", &d);
    let profiles: serde_json::Value = serde_json::from_str(&out.stdout).expect("profiles json");
    assert_eq!(profiles[0]["name"], "ozt-sh", "{profiles}");
    assert_eq!(profiles[0]["path"], "/bin/sh");
    assert_eq!(profiles[0]["index"], 1, "indexes are 1-based, as the original's: {profiles}");

    // `oz launch INDEX` takes the number `oz profiles` shows.
    let out = d.oz(&a, &["launch", "--json", "1", "--", "-c", "echo ozt-json-line; sleep 600"]);
    out.assert_ok("oz launch --json", &d);
    let launched: serde_json::Value = serde_json::from_str(&out.stdout).expect("launch json");
    let id = launched["id"].as_u64().expect("id");
    assert!(launched["init_pid"].as_u64().is_some_and(|p| p > 1), "{launched}");
    let _ = d.sandbox(id);

    assert!(common_daemon::wait_until(Duration::from_secs(5), || {
        d.oz(&a, &["logs", "--json", "--sandbox", &id.to_string()]).stdout.contains("ozt-json-line")
    }));
    let out = d.oz(&a, &["logs", "--json", "--sandbox", &id.to_string()]);
    for line in out.stdout.lines() {
        let rec: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        for key in ["ts", "level", "sandbox", "message"] {
            assert!(rec.get(key).is_some(), "log record lacks {key}: {line}");
        }
        assert_eq!(rec["sandbox"], id);
    }
    d.finish();
}

#[test]
fn usage_errors_name_what_is_missing() {
    for (args, missing) in
        [(vec!["launch"], "<PROFILE>"), (vec!["mount", "1"], "<PATHS>"), (vec!["umount", "1"], "<PATH>")]
    {
        let out = oz_no_daemon(&args);
        out.assert_failed(&format!("oz {}", args.join(" ")));
        assert_eq!(out.stderr.lines().count(), 1, "{:?}", out.stderr);
        assert!(
            out.stderr.contains("not provided") && out.stderr.contains(missing),
            "names {missing}: {:?}",
            out.stderr
        );
        assert!(out.stderr.contains(&format!("usage: oz {}", args[0])), "{:?}", out.stderr);
    }
}

#[test]
fn profiles_mark_programs_that_are_not_installed() {
    let d = Daemon::start(&[
        profile("ozt-sh", "/bin/sh", json!({})),
        profile("ozt-missing", "/usr/bin/ozt-not-installed", json!({})),
    ]);
    let a = user_a();
    let out = d.oz(&a, &["profiles"]);
    out.assert_ok("oz profiles", &d);
    let line =
        |name: &str| out.stdout.lines().find(|l| l.contains(name)).unwrap_or_else(|| panic!("{name}: {}", out.stdout));
    assert!(line("ozt-missing").ends_with("/usr/bin/ozt-not-installed (not installed)"), "{}", out.stdout);
    assert!(!line("ozt-sh").contains("not installed"), "{}", out.stdout);
    let out = d.oz(&a, &["profiles", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("profiles json");
    let installed: Vec<(String, serde_json::Value)> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap().to_string(), p["installed"].clone()))
        .collect();
    assert!(
        installed.contains(&("ozt-missing".into(), json!(false)))
            && installed.contains(&("ozt-sh".into(), json!(true))),
        "{v}"
    );
    d.finish();
}

/// Through the real daemon: several requests in flight on one connection each get their replies
/// by request id (a stream's replies included), whatever order the client reads them in.
#[test]
fn pipelined_requests_are_answered_by_id() {
    use oz_wire::{ClientRequest, DaemonReply};
    let d = Daemon::start(&[profile("ozt-pipe", "/bin/sleep", json!({}))]);
    let mut c = d.root_client();
    let ping = c.send_with_fds(&ClientRequest::Ping, &[]).unwrap();
    let profiles = c.send_with_fds(&ClientRequest::ListProfiles, &[]).unwrap();
    let logs = c.send_with_fds(&ClientRequest::Logs { sandbox: None, follow: false, count: Some(2) }, &[]).unwrap();
    let list = c.send_with_fds(&ClientRequest::ListSandboxes, &[]).unwrap();
    assert!(ping < profiles && profiles < logs && logs < list, "ids count up: {ping} {profiles} {logs} {list}");
    // Read the last request's reply first: the earlier replies are kept for their own requests.
    assert_eq!(c.recv_for(list).unwrap().0, DaemonReply::Sandboxes(vec![]));
    match c.recv_for(profiles).unwrap().0 {
        DaemonReply::Profiles(p) => assert_eq!(p.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["ozt-pipe"]),
        other => panic!("ListProfiles answered {other:?}"),
    }
    loop {
        match c.recv_for(logs).unwrap().0 {
            DaemonReply::LogLine(_) => {}
            DaemonReply::LogEnd => break,
            other => panic!("Logs answered {other:?}"),
        }
    }
    assert_eq!(c.recv_for(ping).unwrap().0, DaemonReply::Pong);
    // Each reply names its request.
    let again = c.send_with_fds(&ClientRequest::Ping, &[]).unwrap();
    let (re, reply, _) = c.recv_any().unwrap();
    assert_eq!((re, reply), (Some(again), DaemonReply::Pong));
    d.finish();
}
