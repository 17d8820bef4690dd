//! Daemon acceptance, wrapper mode: `oz` invoked through a symlink named like a profile's
//! program launches that profile; an unknown name fails with a message and a non-zero status.

mod common_daemon;

use common_daemon::{bin, profile, run, user_a, Daemon};
use serde_json::json;
use std::time::Duration;

#[test]
fn symlink_named_like_a_profile_program_launches_it() {
    let d = Daemon::start(&[profile("ozt-nap", "/bin/sleep", json!({}))]);
    let a = user_a();
    // A symlink located elsewhere maps by basename to the profile whose path is /bin/sleep.
    let link = d.ws.path().join("sleep");
    std::os::unix::fs::symlink(bin("oz"), &link).unwrap();
    let mut cmd = run::command(&link, &d.socket, &a);
    cmd.arg("600");
    let out = run::output(cmd, None, Duration::from_secs(10), "wrapper sleep 600");
    out.assert_ok("wrapper launch through a symlink", &d);
    let listed = d.list_json(&a);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["profile"], "ozt-nap");
    let id = listed[0]["id"].as_u64().unwrap();
    let init = d.sandbox(id).unwrap().init_pid as i32;
    let progs = common_daemon::procs::pidns_members_named(init, "sleep");
    assert_eq!(progs.len(), 1, "the profile's program runs in the sandbox");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", progs[0].pid)).unwrap();
    assert!(cmdline.ends_with(b"600\0"), "the wrapper's argument reached the program: {cmdline:?}");
    d.finish();
}

#[test]
fn symlink_with_no_matching_profile_fails() {
    let d = Daemon::start(&[profile("ozt-nap", "/bin/sleep", json!({}))]);
    let link = d.ws.path().join("ozt-no-such-program");
    std::os::unix::fs::symlink(bin("oz"), &link).unwrap();
    let out = run::output(run::command(&link, &d.socket, &user_a()), None, Duration::from_secs(10), "wrapper");
    out.assert_failed("wrapper without a profile");
    assert!(out.stderr.contains("ozt-no-such-program"), "the error names the program: {}", out.stderr);
    assert!(d.sandboxes().is_empty());
    d.finish();
}

#[test]
fn wrapper_file_arguments_reach_the_sandbox_with_allow_files() {
    let d = Daemon::start(&[profile("ozt-cat", "/bin/cat", json!({"allow_files": true}))]);
    let a = user_a();
    let marker = format!("ozt-file-{}", std::process::id());
    let plain = a.home.join("ozt-note.txt");
    let spaced = a.home.join("ozt note.txt");
    for (f, text) in [(&plain, format!("{marker}-plain")), (&spaced, format!("{marker}-uri"))] {
        std::fs::write(f, text).unwrap();
        std::os::unix::fs::chown(f, Some(a.uid), Some(a.gid)).unwrap();
    }
    let link = d.ws.path().join("cat");
    std::os::unix::fs::symlink(bin("oz"), &link).unwrap();
    let uri = format!("file://{}", spaced.display().to_string().replace(' ', "%20"));
    // A relative path (taken from the cwd, the user's home) and a percent-encoded file:// URI.
    let mut cmd = run::command(&link, &d.socket, &a);
    cmd.args(["ozt-note.txt", &uri]);
    let out = run::output(cmd, None, Duration::from_secs(10), "wrapper cat");
    let logs = || d.oz(&a, &["logs"]).stdout;
    let seen = common_daemon::wait_until(Duration::from_secs(5), || {
        let l = logs();
        l.contains(&format!("{marker}-plain")) && l.contains(&format!("{marker}-uri"))
    });
    let _ = std::fs::remove_file(&plain);
    let _ = std::fs::remove_file(&spaced);
    out.assert_ok("wrapper cat with file arguments", &d);
    assert!(seen, "cat inside the sandbox did not print both files; logs:\n{}", logs());
    d.finish();
}
