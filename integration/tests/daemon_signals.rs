//! Daemon acceptance, signals: SIGTERM stops the daemon and leaves sandboxes running for the
//! next daemon (unless stop_sandboxes_on_exit); SIGHUP reloads profiles and keeps the old set
//! when the new one is broken.

mod common_daemon;

use common_daemon::{profile, user_a, wait_until, Daemon};
use serde_json::json;
use std::time::Duration;

fn sleeper() -> serde_json::Value {
    profile("ozt-sleep", "/bin/sleep", json!({"multi": true}))
}

#[test]
fn sigterm_leaves_sandboxes_running_for_the_next_daemon() {
    let mut d = Daemon::start(&[sleeper()]);
    let a = user_a();
    let ids = [d.launch(&a, "ozt-sleep", &["600"]), d.launch(&a, "ozt-sleep", &["600"])];
    let st = d.signal_and_wait(libc::SIGTERM, Duration::from_secs(5)).expect("daemon stops on SIGTERM");
    assert!(st.success(), "SIGTERM is a clean stop: {st}");
    std::thread::sleep(Duration::from_millis(300));
    for id in ids {
        assert!(d.tracked(id).init.unwrap().alive(), "sandbox {id} stopped with the daemon");
    }
    d.spawn();
    assert!(wait_until(Duration::from_secs(5), || d.list_json(&a).len() == 2), "not re-adopted: {:?}", d.list_json(&a));
    d.finish();
}

#[test]
fn sigterm_with_stop_sandboxes_on_exit_stops_them() {
    let mut d = Daemon::start_with(&[sleeper()], json!({"stop_sandboxes_on_exit": true}));
    let a = user_a();
    let id = d.launch(&a, "ozt-sleep", &["600"]);
    let t = d.tracked(id);
    d.signal_and_wait(libc::SIGTERM, Duration::from_secs(10)).expect("daemon stops on SIGTERM");
    assert!(
        wait_until(Duration::from_secs(3), || common_daemon::leftovers(&t).is_empty()),
        "sandbox processes outlived the daemon: {:?}",
        common_daemon::leftovers(&t)
    );
    let files = d.state_files();
    assert!(files.is_empty(), "state left after stopping: {files:?}");
    d.finish();
}

#[test]
fn sighup_reloads_profiles_and_keeps_them_when_broken() {
    let mut d = Daemon::start(&[sleeper()]);
    let a = user_a();
    let names = |d: &Daemon| -> Vec<String> {
        let out = d.oz(&a, &["profiles", "--json"]);
        out.assert_ok("oz profiles --json", d);
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let mut n: Vec<String> =
            v.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();
        n.sort();
        n
    };
    assert_eq!(names(&d), ["ozt-sleep"]);
    d.ws.write_profile("ozt-true", profile("ozt-true", "/bin/true", json!({}))).unwrap();
    common_daemon::procs::kill(d.pid(), libc::SIGHUP);
    assert!(wait_until(Duration::from_secs(3), || names(&d) == ["ozt-sleep", "ozt-true"]), "{:?}", names(&d));

    // Every profile broken: the daemon keeps serving the previous set.
    for name in ["ozt-sleep", "ozt-true"] {
        std::fs::write(d.ws.profile_dir.join(format!("{name}.json")), "{ \"name\": ").unwrap();
    }
    common_daemon::procs::kill(d.pid(), libc::SIGHUP);
    std::thread::sleep(Duration::from_millis(500));
    assert!(d.alive(), "daemon died on a broken reload\n{}", d.log_text());
    assert_eq!(names(&d), ["ozt-sleep", "ozt-true"]);
    d.launch(&a, "ozt-sleep", &["600"]);
    d.finish();
}
