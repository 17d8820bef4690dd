//! Daemon acceptance: launch, list, kill, run, logs, shell, mount and umount, through the real
//! socket as an unprivileged test user.

mod common_daemon;

use common_daemon::{profile, user_a, wait_until, Daemon};
use serde_json::json;
use std::time::{Duration, Instant};

fn sleeper() -> serde_json::Value {
    profile("ozt-sleep", "/bin/sleep", json!({}))
}

fn sh() -> serde_json::Value {
    profile("ozt-sh", "/bin/sh", json!({"multi": true}))
}

#[test]
fn launch_list_kill_leaves_nothing_behind() {
    let d = Daemon::start(&[sleeper()]);
    let a = user_a();
    let id = d.launch(&a, "ozt-sleep", &["600"]);
    let listed = d.list_json(&a);
    let entry = listed.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("{id} not in {listed:?}"));
    for key in ["id", "profile", "uid", "init_pid", "state", "started_at"] {
        assert!(entry.get(key).is_some(), "oz list --json entry lacks {key}: {entry}");
    }
    assert_eq!(entry["profile"], "ozt-sleep");
    assert_eq!(entry["uid"], a.uid);
    let t = d.tracked(id);
    assert!(t.init.is_some_and(|p| p.alive()), "init pid from the listing is alive");
    assert!(t.members.len() >= 2, "init and the program run in the sandbox's pid namespace: {t:?}");

    d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(id, Duration::from_secs(5)).unwrap();
    assert_eq!(d.list_json(&a), Vec::<serde_json::Value>::new(), "empty array when none");
    d.finish();
}

#[test]
fn run_returns_output_and_exit_status() {
    let d = Daemon::start(&[sh()]);
    let a = user_a();
    let out = d.oz(&a, &["run", "ozt-sh", "--", "-c", "echo hello-from-inside; echo to-stderr >&2"]);
    out.assert_ok("oz run (exit 0)", &d);
    assert_eq!(out.stdout, "hello-from-inside\n");
    assert_eq!(out.stderr, "to-stderr\n");

    let out = d.oz(&a, &["run", "ozt-sh", "--", "-c", "exit 3"]);
    assert_eq!(out.code(), 3, "oz run exits with the program's code: {out:?}");

    let out = d.oz(&a, &["run", "ozt-sh", "--", "-c", "kill -9 $$"]);
    assert_eq!(out.code(), 137, "128 + SIGKILL: {out:?}");

    let out =
        d.oz_input(&a, &["run", "ozt-sh", "--", "-c", "read line; echo got:$line"], b"abc\n", Duration::from_secs(10));
    out.assert_ok("oz run with stdin", &d);
    assert_eq!(out.stdout, "got:abc\n");
    // Attached runs end their sandboxes (auto_shutdown): nothing must stay.
    assert!(wait_until(Duration::from_secs(5), || d.sandboxes().is_empty()), "{:?}", d.sandboxes());
    d.finish();
}

#[test]
fn logs_follow_shows_a_program_line_within_one_second() {
    let d = Daemon::start(&[sh()]);
    let a = user_a();
    let id = d.launch(&a, "ozt-sh", &["-c", "while :; do echo ozt-tick $(date +%s%3N); sleep 0.2; done"]);
    let mut cmd = common_daemon::run::command(&common_daemon::bin("oz"), &d.socket, &a);
    cmd.args(["logs", "-f", "--sandbox", &id.to_string()]).stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let connected_ms = now_ms() + 300;
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send((now_ms(), line)).is_err() {
                break;
            }
        }
    });
    // A tick printed after `oz logs -f` was surely connected must arrive within 1 s of printing.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    let mut live = None;
    while Instant::now() < deadline && live.is_none() {
        let Ok((got_ms, line)) = rx.recv_timeout(Duration::from_millis(200)) else { continue };
        if let Some(printed) =
            line.split("ozt-tick ").nth(1).and_then(|t| t.split_whitespace().next()?.parse::<u64>().ok())
        {
            if printed >= connected_ms {
                live = Some(got_ms.saturating_sub(printed));
            }
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    let delay = live.unwrap_or_else(|| panic!("no live ozt-tick line from oz logs -f in 5 s; saw {seen:?}"));
    assert!(delay <= 1000, "line shown {delay} ms after the program printed it");
    d.finish();
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

#[test]
fn shell_runs_as_the_caller() {
    let d = Daemon::start(&[sleeper()]);
    let a = user_a();
    let id = d.launch(&a, "ozt-sleep", &["600"]);
    let out = d.oz_input(&a, &["shell", &id.to_string()], b"echo ozt-uid=$(id -u); exit\n", Duration::from_secs(10));
    out.assert_ok("oz shell", &d);
    let want = format!("ozt-uid={}", a.uid);
    assert!(
        // The pty echoes the typed line and the prompt may precede the output: match a word.
        out.stdout.lines().any(|l| l.split_whitespace().any(|w| w == want)),
        "shell output lacks {want}: {:?}",
        out.stdout
    );
    d.finish();
}

#[test]
fn shell_exits_with_the_shells_status() {
    let d = Daemon::start(&[sleeper()]);
    let a = user_a();
    let id = d.launch(&a, "ozt-sleep", &["600"]);
    let limit = Duration::from_secs(10);
    let out = d.oz_input(&a, &["shell", &id.to_string()], b"exit 7\n", limit);
    assert_eq!(out.code(), 7, "oz shell with `exit 7`\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    let out = d.oz_input(&a, &["shell", &id.to_string()], b"kill -9 $$\n", limit);
    assert_eq!(out.code(), 137, "oz shell with `kill -9 $$`\nstdout: {}\nstderr: {}", out.stdout, out.stderr);
    // The sandbox is untouched by its shells' ends, and a clean exit is still 0.
    let out = d.oz_input(&a, &["shell", &id.to_string()], b"true; exit\n", limit);
    out.assert_ok("oz shell with `exit`", &d);
    d.finish();
}

#[test]
fn mount_and_umount_a_home_file_in_a_running_sandbox() {
    let d = Daemon::start(&[sleeper()]);
    let a = user_a();
    let id = d.launch(&a, "ozt-sleep", &["600"]);
    let name = format!("ozt-mount-{}.txt", std::process::id());
    let file = a.home.join(&name);
    let content = format!("ozt-content-{}", std::process::id());
    std::fs::write(&file, &content).unwrap();
    std::os::unix::fs::chown(&file, Some(a.uid), Some(a.gid)).unwrap();
    let _cleanup = RemoveOnDrop(file.clone());
    let cat = format!("cat {} 2>&1; echo ozt-rc=$?; exit\n", file.display());
    let shell = |what: &str| {
        let out = d.oz_input(&a, &["shell", &id.to_string()], cat.as_bytes(), Duration::from_secs(10));
        out.assert_ok(what, &d);
        out.stdout
    };
    let before = shell("shell before mount");
    assert!(!before.contains(&content), "file visible before oz mount: {before:?}");

    // A relative path is taken from the cwd (the user's home).
    d.oz(&a, &["mount", &id.to_string(), "--readonly", &name]).assert_ok("oz mount", &d);
    let listed = d.sandbox(id).unwrap();
    assert!(listed.mounts.contains(&file), "mounts listed: {:?}", listed.mounts);
    let during = shell("shell after mount");
    assert!(during.contains(&content), "mounted file not readable inside: {during:?}");

    d.oz(&a, &["umount", &id.to_string(), &name]).assert_ok("oz umount", &d);
    let after = shell("shell after umount");
    assert!(!after.contains(&content), "file still visible after oz umount: {after:?}");
    // Not even an empty placeholder may stay where the file was.
    assert!(after.contains("ozt-rc=1"), "cat should fail after umount: {after:?}");
    d.finish();
}

#[test]
fn watchdog_keeps_the_sandbox_until_the_child_exits() {
    let p = profile("ozt-wd", "/bin/bash", json!({"watchdog": ["ozt-watchdog"]}));
    let d = Daemon::start(&[p]);
    let a = user_a();
    // The program starts a detached child whose argv[0] is ozt-watchdog, then exits.
    let script = "(exec -a ozt-watchdog sleep 4 </dev/null >/dev/null 2>&1 &); exit 0";
    let id = d.launch(&a, "ozt-wd", &["-c", script]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(d.sandbox(id).is_some(), "sandbox gone while its watchdog runs\n{}", d.log_text());
    let init = d.tracked(id).init.expect("init tracked");
    let named: Vec<_> = common_daemon::procs::pidns_members(init.pid)
        .into_iter()
        .filter(|p| common_daemon::procs::argv0(p.pid) == "ozt-watchdog")
        .collect();
    assert_eq!(named.len(), 1, "the watchdog child runs in the sandbox");
    // The child sleeps 4 s; the sandbox must then shut down by itself.
    d.wait_gone(id, Duration::from_secs(8)).unwrap();
    d.finish();
}

#[test]
fn auto_shutdown_no_keeps_the_sandbox_until_killed() {
    let p = profile("ozt-stay", "/bin/sh", json!({"auto_shutdown": "no"}));
    let d = Daemon::start(&[p]);
    let a = user_a();
    let id = d.launch(&a, "ozt-stay", &["-c", "exit 0"]);
    std::thread::sleep(Duration::from_secs(2));
    assert!(d.sandbox(id).is_some(), "auto_shutdown no: sandbox must stay after the program exits");
    let lingering = |d: &Daemon| d.sandbox(id).map(|s| s.phase) == Some(oz_wire::SandboxState::Lingering);
    assert!(lingering(&d), "the agent reports the lingering phase: {:?}", d.sandbox(id));
    // A restarted daemon takes the phase from the agent, not from its own guess.
    let mut d = d;
    d.kill9();
    d.spawn();
    assert!(
        wait_until(Duration::from_secs(5), || lingering(&d)),
        "after a restart: {:?}\n{}",
        d.sandbox(id),
        d.log_text()
    );
    d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(id, Duration::from_secs(5)).unwrap();
    d.finish();
}

#[test]
fn interrupting_oz_run_stops_its_sandbox() {
    let d = Daemon::start(&[sh()]);
    let a = user_a();
    let mut cmd = common_daemon::run::command(&common_daemon::bin("oz"), &d.socket, &a);
    cmd.args(["run", "ozt-sh", "--", "-c", "sleep 600"]).stdout(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    assert!(wait_until(Duration::from_secs(5), || !d.sandboxes().is_empty()), "oz run did not start a sandbox");
    let id = d.sandboxes()[0].id;
    common_daemon::procs::kill(child.id() as i32, libc::SIGINT);
    let status = common_daemon::run::wait_limit(&mut child, Duration::from_secs(5));
    let _ = child.kill();
    let status = status.expect("oz run still running 5 s after SIGINT");
    assert!(!status.success(), "an interrupted run reports failure: {status}");
    d.wait_gone(id, Duration::from_secs(5)).unwrap();
    d.finish();
}

/// Removes a file placed in a test user's home, also when the test fails.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The agents the daemon keeps waiting for a launch: its `oz-agent` children that no sandbox
/// holds.
fn waiting_agents(d: &Daemon) -> Vec<i32> {
    let daemon = d.pid();
    let held: Vec<i32> = d.sandboxes().iter().map(|s| s.agent_pid as i32).collect();
    common_daemon::procs::all_pids()
        .into_iter()
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat.rsplit(')').next().and_then(|r| r.split_whitespace().nth(1)?.parse::<i32>().ok());
            ppid == Some(daemon) && common_daemon::procs::argv0(*pid).ends_with("oz-agent") && !held.contains(pid)
        })
        .collect()
}

/// A new agent waits for the next launch once `taken` was claimed.
fn another_agent_waits(d: &Daemon, taken: i32) -> Option<i32> {
    let mut found = None;
    wait_until(Duration::from_secs(3), || {
        found = waiting_agents(d).into_iter().find(|p| *p != taken);
        found.is_some()
    });
    found
}

#[test]
fn an_agent_waits_for_the_next_launch_after_each_launch() {
    let d = Daemon::start_with(&[sleeper(), sh()], json!({"enable_ephemerals": true}));
    let a = user_a();
    let mut waiting = another_agent_waits(&d, 0).expect("an agent waits from the daemon's start");

    // A detached launch: the client closes its connection once answered.
    let id = d.launch(&a, "ozt-sleep", &["600"]);
    assert_eq!(d.sandbox(id).map(|s| s.agent_pid as i32), Some(waiting), "the launch took the waiting agent");
    waiting = another_agent_waits(&d, waiting).expect("an agent waits after `oz launch` ended");

    // An attached run of a short program, whose client reads the log records afterwards.
    d.oz(&a, &["run", "ozt-sh", "--", "-c", "true"]).assert_ok("oz run", &d);
    waiting = another_agent_waits(&d, waiting).expect("an agent waits after `oz run` ended");

    // A client that stays connected after its launch, silent (it never reads the answer).
    let mut flood = common_daemon::flood(&d, &a, 1, 1, &["launch-ephemeral", "ozt-sh", "-c", "sleep 600"]);
    let claimed = wait_until(Duration::from_secs(5), || !waiting_agents(&d).contains(&waiting));
    assert!(claimed, "the silent client's launch took the waiting agent\n{}", d.log_text());
    let next = another_agent_waits(&d, waiting);
    drop(flood.stdin.take());
    let _ = flood.wait();
    assert!(next.is_some(), "an agent waits while the launching client stays connected");
    d.finish();
}
