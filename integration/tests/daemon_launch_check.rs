//! Launch outcomes the client can trust: a program that dies at once makes `oz launch` (and
//! wrapper mode) fail with its status and last output, a program that is not installed fails
//! before any sandbox is built, and back-to-back `oz run`s of a non-multi profile all succeed
//! although each meets the previous run's sandbox while it ends.

mod common_daemon;

use common_daemon::{bin, profile, run, user_a, Daemon};
use serde_json::json;
use std::path::Path;
use std::time::Duration;

/// The agent logs the sandbox has written so far (one per sandbox built).
fn agent_logs(d: &Daemon) -> Vec<String> {
    std::fs::read_dir(&d.ws.log_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("agent-"))
        .collect()
}

#[test]
fn launch_of_a_program_that_dies_at_once_fails_with_its_status_and_output() {
    let d = Daemon::start(&[profile("ozt-die", "/bin/sh", json!({"multi": true}))]);
    let a = user_a();
    let out = d.oz(&a, &["launch", "ozt-die", "--", "-c", "echo ozt-dying-words >&2; exit 3"]);
    out.assert_failed("oz launch of a program that exits 3 at once");
    assert!(out.stderr.contains("exit code 3"), "names the status: {}", out.stderr);
    assert!(out.stderr.contains("ozt-dying-words"), "shows the last output: {}", out.stderr);
    assert!(out.stderr.contains("ozt-die"), "names the profile: {}", out.stderr);
    assert!(out.stdout.is_empty(), "no id printed: {:?}", out.stdout);
    // A program that keeps running, or ends successfully, is a launch that worked.
    let id = d.launch(&a, "ozt-die", &["-c", "sleep 600"]);
    let ok = d.oz(&a, &["launch", "ozt-die", "--", "-c", "exit 0"]);
    ok.assert_ok("oz launch of a program that exits 0", &d);
    d.oz(&a, &["kill", &id.to_string()]).assert_ok("kill", &d);
    d.finish();
}

#[test]
fn launch_check_time_comes_from_oz_conf() {
    let d = Daemon::start_with(&[profile("ozt-die", "/bin/sh", json!({}))], json!({"launch_check_ms": 0}));
    let out = d.oz(&user_a(), &["launch", "ozt-die", "--", "-c", "exit 3"]);
    out.assert_ok("oz launch with launch_check_ms 0 does not watch the program", &d);
    assert!(common_daemon::wait_until(Duration::from_secs(10), || d.sandboxes().is_empty()));
    d.finish();
}

#[test]
fn wrapper_mode_reports_a_program_that_dies_at_once() {
    let d = Daemon::start(&[profile("ozt-false", "/bin/false", json!({}))]);
    let link = d.ws.path().join("false");
    std::os::unix::fs::symlink(bin("oz"), &link).unwrap();
    let out = run::output(run::command(&link, &d.socket, &user_a()), None, Duration::from_secs(10), "wrapper false");
    out.assert_failed("wrapper launch of /bin/false");
    assert!(out.stderr.contains("exit code 1") && out.stderr.contains("ozt-false"), "{}", out.stderr);
    d.finish();
}

#[test]
fn a_program_that_is_not_installed_fails_before_a_sandbox_is_built() {
    let missing = "/usr/bin/ozt-not-installed";
    assert!(!Path::new(missing).exists());
    let plain = std::env::temp_dir().join(format!("ozt-not-executable-{}", std::process::id()));
    std::fs::write(&plain, "#!/bin/sh\n").unwrap();
    let plain = plain.to_str().unwrap().to_string();
    let d = Daemon::start(&[
        profile("ozt-missing", missing, json!({})),
        profile("ozt-noexec", &plain, json!({})),
        profile("ozt-missing-in-path", "${PATH}/ozt-not-installed", json!({})),
    ]);
    let a = user_a();
    for (name, what) in
        [("ozt-missing", missing), ("ozt-noexec", plain.as_str()), ("ozt-missing-in-path", "ozt-not-installed")]
    {
        for cmd in ["launch", "run"] {
            let out = d.oz(&a, &[cmd, name]);
            out.assert_failed(&format!("oz {cmd} {name}"));
            assert!(out.stderr.contains(what) && out.stderr.contains(name), "names path and profile: {}", out.stderr);
            assert!(!out.stderr.contains("errno"), "{}", out.stderr);
        }
    }
    let out = d.oz(&a, &["launch", "ozt-missing"]);
    assert!(out.stderr.contains("not installed"), "{}", out.stderr);
    assert!(d.sandboxes().is_empty());
    assert_eq!(agent_logs(&d), Vec::<String>::new(), "no agent was spawned");
    let _ = std::fs::remove_file(&plain);
    d.finish();
}

#[test]
fn back_to_back_runs_of_a_non_multi_profile_all_succeed() {
    let d = Daemon::start(&[profile("ozt-once", "/bin/sh", json!({}))]);
    let a = user_a();
    for i in 0..100 {
        let word = format!("ozt-run-{i}");
        let out = d.oz(&a, &["run", "ozt-once", "--", "-c", &format!("echo {word}")]);
        assert!(
            out.status.success() && out.stdout.contains(&word),
            "run {i}: exit {}\nstdout: {}\nstderr: {}",
            out.code(),
            out.stdout,
            out.stderr
        );
    }
    assert!(common_daemon::wait_until(Duration::from_secs(10), || d.sandboxes().is_empty()));
    d.finish();
}

/// The launch goes to a new agent right behind its hello. An agent binary that never answers
/// the hello (here one that exits at once) fails the launch with a message naming it, and
/// leaves no sandbox behind.
#[test]
fn an_agent_that_never_answers_its_hello_fails_the_launch_and_leaves_nothing() {
    let d = Daemon::start_with(&[profile("ozt-sleep", "/bin/sleep", json!({}))], json!({"agent_path": "/bin/true"}));
    let out = d.oz(&user_a(), &["launch", "ozt-sleep", "--", "600"]);
    out.assert_failed("oz launch with an agent that exits at once");
    assert!(out.stderr.contains("/bin/true"), "names the agent: {}", out.stderr);
    assert!(common_daemon::wait_until(Duration::from_secs(10), || d.sandboxes().is_empty()));
    // The daemon goes on serving.
    d.oz(&user_a(), &["list"]).assert_ok("oz list after the failed launch", &d);
    d.finish();
}
