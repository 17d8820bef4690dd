//! The harness's own guarantees: the leftover guard notices what it is meant to notice, and
//! the runner really gives a controlling pty and a leaked fd (the escape suite relies on both).

use oz_integration::env::TestEnv;
use oz_integration::leftovers::Snapshot;
use oz_integration::run::{self, Opts, LEAKED_FD};
use serde_json::json;
use std::os::fd::OwnedFd;
use std::time::Duration;

#[test]
fn the_leftover_guard_sees_user_processes_and_state_files() {
    let env = TestEnv::new(json!({}));
    let uids = [env.user.uid];
    let dirs = env.ws.must_be_empty();
    let before = Snapshot::take(&uids);
    let mut child = env.user.command("/bin/sleep").arg("30").spawn().expect("spawn sleep as the user");
    let stale = env.ws.state_dir.join("stale.json");
    std::fs::write(&stale, "{}").unwrap();
    // A sandbox cgroup where the agent makes them (pids v1 here, or the v2 root).
    let v1 = std::path::Path::new("/sys/fs/cgroup/pids");
    let parent = if v1.is_dir() { v1.join("oz") } else { "/sys/fs/cgroup/oz".into() };
    let created_parent = !parent.exists();
    let cg = parent.join(oz_integration::env::unique("cg"));
    std::fs::create_dir_all(&cg).expect("create a cgroup");
    let found = before.diff(&uids, &dirs);
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_file(&stale).unwrap();
    std::fs::remove_dir(&cg).unwrap();
    if created_parent {
        let _ = std::fs::remove_dir(&parent);
    }
    assert!(found.iter().any(|f| f.starts_with("cgroup:")), "{found:?}");
    assert!(found.iter().any(|f| f.starts_with("process:") && f.contains("sleep")), "{found:?}");
    assert!(found.iter().any(|f| f.starts_with("state file:")), "{found:?}");
    assert!(before.leftovers(&uids, &dirs, Duration::from_secs(2)).is_empty());
}

#[test]
fn the_runner_gives_a_controlling_pty_and_leaks_the_fd() {
    let _env = TestEnv::new(json!({}));
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c").arg(format!("test -t 0 && echo TTY; ls -l /proc/self/fd/{LEAKED_FD}; tty"));
    let leak = OwnedFd::from(std::fs::File::open("/").unwrap());
    let out = run::run(cmd, Opts { pty: true, leak: Some(leak), timeout: None }).unwrap();
    assert_eq!(out.status, 0, "{}", out.all());
    assert!(out.stdout.contains("TTY"), "{}", out.all());
    assert!(out.stdout.contains("-> /"), "fd {LEAKED_FD} not leaked:\n{}", out.all());
    assert!(out.stdout.contains("/dev/pts/"), "{}", out.all());
}
