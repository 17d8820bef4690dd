//! Daemon acceptance, access control: a second user can neither see, kill, shell into, mount
//! into nor read the logs of the first user's sandbox. Root sees it.

mod common_daemon;

use common_daemon::{profile, user_a, user_b, Daemon};
use serde_json::json;
use std::time::Duration;

/// Marker the first user's program prints into its sandbox log.
const MARKER: &str = "ozt-secret-of-a";

/// A daemon with user A's sandbox running; returns the daemon and the sandbox id.
fn with_a_sandbox() -> (Daemon, u64) {
    let p = profile("ozt-sh", "/bin/sh", json!({}));
    let d = Daemon::start(&[p]);
    let script = format!("while :; do echo {MARKER}; sleep 0.2; done");
    let id = d.launch(&user_a(), "ozt-sh", &["-c", &script]);
    (d, id)
}

fn assert_still_running(d: &Daemon, id: u64) {
    let t = d.tracked(id);
    assert!(d.sandbox(id).is_some(), "sandbox {id} disappeared");
    assert!(t.init.is_some_and(|p| p.alive()), "sandbox {id}'s init died");
}

#[test]
fn other_user_cannot_see_it() {
    let (d, id) = with_a_sandbox();
    assert_eq!(d.list_json(&user_b()), Vec::<serde_json::Value>::new(), "user b sees a's sandbox");
    let human = d.oz(&user_b(), &["list"]);
    human.assert_ok("oz list as b", &d);
    assert!(!human.stdout.contains("ozt-sh"), "user b's table shows a's sandbox: {}", human.stdout);
    let own = d.list_json(&user_a());
    assert!(own.iter().any(|s| s["id"] == id), "user a sees its own sandbox");
    assert!(d.sandbox(id).is_some(), "root sees all");
    d.finish();
}

#[test]
fn other_user_cannot_kill_it() {
    let (d, id) = with_a_sandbox();
    d.oz(&user_b(), &["kill", &id.to_string()]).assert_failed("oz kill by user b");
    d.oz(&user_b(), &["kill", "all"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_still_running(&d, id);
    d.finish();
}

#[test]
fn other_user_cannot_shell_into_it() {
    let (d, id) = with_a_sandbox();
    let out = d.oz_input(&user_b(), &["shell", &id.to_string()], b"echo ozt-inside; exit\n", Duration::from_secs(10));
    out.assert_failed("oz shell by user b");
    assert!(!out.stdout.contains("ozt-inside"), "user b got a shell: {}", out.stdout);
    assert_still_running(&d, id);
    d.finish();
}

#[test]
fn other_user_cannot_mount_into_it() {
    let (d, id) = with_a_sandbox();
    let b = user_b();
    let file = b.home.join("ozt-b-file.txt");
    std::fs::write(&file, "b").unwrap();
    std::os::unix::fs::chown(&file, Some(b.uid), Some(b.gid)).unwrap();
    d.oz(&b, &["mount", &id.to_string(), file.to_str().unwrap()]).assert_failed("oz mount by user b");
    assert!(d.sandbox(id).unwrap().mounts.is_empty(), "a mount was recorded");
    d.oz(&b, &["umount", &id.to_string(), file.to_str().unwrap()]).assert_failed("oz umount by user b");
    std::fs::remove_file(&file).unwrap();
    assert_still_running(&d, id);
    d.finish();
}

#[test]
fn other_user_cannot_read_its_logs() {
    let (d, id) = with_a_sandbox();
    // The marker reaches the log (as a sanity check of the test itself); the program prints it
    // asynchronously, so wait for it.
    let seen = common_daemon::wait_until(Duration::from_secs(5), || {
        d.oz(&user_a(), &["logs", "--sandbox", &id.to_string()]).stdout.contains(MARKER)
    });
    let own = d.oz(&user_a(), &["logs", "--sandbox", &id.to_string()]);
    own.assert_ok("oz logs as a", &d);
    assert!(seen && own.stdout.contains(MARKER), "user a's logs lack the marker: {}", own.stdout);

    let out = d.oz(&user_b(), &["logs", "--sandbox", &id.to_string()]);
    out.assert_failed("oz logs --sandbox by user b");
    assert!(!out.stdout.contains(MARKER), "user b read a's log: {}", out.stdout);
    let all = d.oz(&user_b(), &["logs", "--json"]);
    assert!(!all.stdout.contains(MARKER), "user b's unfiltered logs contain a's records: {}", all.stdout);
    d.finish();
}

#[test]
fn kill_all_kills_only_the_callers_sandboxes() {
    let p = profile("ozt-sleep", "/bin/sleep", json!({"multi": true}));
    let d = Daemon::start(&[p]);
    let (a, b) = (user_a(), user_b());
    let a1 = d.launch(&a, "ozt-sleep", &["600"]);
    let a2 = d.launch(&a, "ozt-sleep", &["600"]);
    let b1 = d.launch(&b, "ozt-sleep", &["600"]);
    d.oz(&b, &["kill", "all"]).assert_ok("oz kill all as b", &d);
    d.wait_gone(b1, Duration::from_secs(5)).unwrap();
    assert_still_running(&d, a1);
    assert_still_running(&d, a2);
    d.oz(&a, &["kill", "all"]).assert_ok("oz kill all as a", &d);
    d.wait_gone(a1, Duration::from_secs(5)).unwrap();
    d.wait_gone(a2, Duration::from_secs(5)).unwrap();
    d.finish();
}

#[test]
fn second_launch_joins_only_the_same_users_sandbox() {
    let d = Daemon::start(&[profile("ozt-sleep", "/bin/sleep", json!({}))]);
    let (a, b) = (user_a(), user_b());
    let first = d.launch(&a, "ozt-sleep", &["600"]);
    let out = d.oz(&a, &["launch", "--json", "ozt-sleep", "--", "601"]);
    out.assert_ok("second launch by a", &d);
    let again: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(again["id"], first, "a single-instance profile runs the second launch in the same sandbox");
    assert_eq!(again["reused_existing"], true);
    let init = d.tracked(first).init.unwrap().pid;
    let sleeps = || common_daemon::procs::pidns_members_named(init, "sleep").len();
    assert_eq!(sleeps(), 2, "both programs run in the sandbox");

    // User b never gets into a's sandbox: refused, or a sandbox of b's own.
    let out = d.oz(&b, &["launch", "--json", "ozt-sleep", "--", "602"]);
    if out.status.success() {
        let theirs: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let id = theirs["id"].as_u64().unwrap();
        assert_ne!(id, first, "user b's launch joined user a's sandbox");
        assert_eq!(d.sandbox(id).unwrap().uid, b.uid);
    }
    assert_eq!(sleeps(), 2, "user b's program ran in user a's sandbox");
    d.finish();
}

#[test]
fn multi_profiles_get_one_sandbox_per_launch() {
    let d = Daemon::start(&[profile("ozt-sleep", "/bin/sleep", json!({"multi": true}))]);
    let a = user_a();
    let one = d.launch(&a, "ozt-sleep", &["600"]);
    let two = d.launch(&a, "ozt-sleep", &["600"]);
    assert_ne!(one, two);
    assert_ne!(d.sandbox(one).unwrap().init_pid, d.sandbox(two).unwrap().init_pid);
    d.finish();
}

#[test]
fn root_shell_needs_allow_root_shell() {
    let (d, id) = with_a_sandbox();
    let out = d.oz_root(&["shell", &id.to_string()], b"echo ozt-root=$(id -u); exit\n");
    out.assert_failed("oz shell as root without allow_root_shell");
    assert!(!out.stdout.contains("ozt-root=0"), "{}", out.stdout);
    d.finish();

    let p = profile("ozt-sleep", "/bin/sleep", json!({}));
    let d = Daemon::start_with(&[p], json!({"allow_root_shell": true}));
    let id = d.launch(&user_a(), "ozt-sleep", &["600"]);
    let out = d.oz_root(&["shell", &id.to_string()], b"echo ozt-root=$(id -u); exit\n");
    out.assert_ok("oz shell as root with allow_root_shell", &d);
    assert!(out.stdout.split_whitespace().any(|w| w == "ozt-root=0"), "{}", out.stdout);
    d.finish();
}

#[test]
fn a_user_cannot_start_sandboxes_without_bound() {
    let p = profile("ozt-sleep", "/bin/sleep", json!({"multi": true}));
    let d = Daemon::start_with(&[p], json!({"max_sandboxes_per_user": 2}));
    let (a, b) = (user_a(), user_b());
    let a1 = d.launch(&a, "ozt-sleep", &["600"]);
    let a2 = d.launch(&a, "ozt-sleep", &["600"]);
    let out = d.oz(&a, &["launch", "ozt-sleep", "--", "600"]);
    out.assert_failed("a third sandbox for user a");
    assert!(out.stderr.contains("too many sandboxes"), "clear message: {:?}", out.stderr);
    // Another user has their own allowance, and a freed place can be used again.
    let b1 = d.launch(&b, "ozt-sleep", &["600"]);
    d.oz(&a, &["kill", &a1.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(a1, Duration::from_secs(5)).unwrap();
    let a3 = d.launch(&a, "ozt-sleep", &["600"]);
    for id in [a2, a3] {
        d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill", &d);
        d.wait_gone(id, Duration::from_secs(5)).unwrap();
    }
    d.oz(&b, &["kill", &b1.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(b1, Duration::from_secs(5)).unwrap();
    d.finish();
}
