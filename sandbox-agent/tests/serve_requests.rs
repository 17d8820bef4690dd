//! `oz-agent serve` requests and supervision: watchdogs, auto_shutdown, RunProgram, Shell, Mount,
//! Umount, attached stdio, health.

mod serve_common;

use oz_wire::channel::AgentChannel;
use oz_wire::{AgentError, AgentToDaemon, DaemonToAgent, ExitStatus, StdioMode};
use serve_common::*;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::chown;
use std::time::{Duration, Instant};

fn kinds(msgs: &[AgentToDaemon]) -> Vec<&'static str> {
    msgs.iter().map(|m| m.kind()).collect()
}

fn shut_down(mut child: std::process::Child, chan: &AgentChannel, tmp: &std::path::Path, id: u64, init_pid: u32) {
    chan.send(&DaemonToAgent::Shutdown { reason: "test done".into() }, &[]).unwrap();
    collect(chan, |m| matches!(m, AgentToDaemon::ShuttingDown { .. }));
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    assert_no_leftovers(tmp, id, init_pid);
}

#[test]
fn watchdog_keeps_the_sandbox_until_it_exits() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(11);
    // The program leaves a detached `sleep` (a watchdog) behind and exits at once.
    let spec = spec_with(id, tmp.path(), "sleep 2 </dev/null >/dev/null 2>&1 & exit 0", r#", "watchdog": ["sleep"]"#);
    let (mut child, chan) = spawn_agent();
    let (init_pid, _) = hello_and_launch(&chan, &spec);
    let got = collect(&chan, |m| matches!(m, AgentToDaemon::ProgramExited { .. }));
    let exited_at = Instant::now();
    assert!(matches!(got.last(), Some(AgentToDaemon::ProgramExited { status: ExitStatus::Code(0), .. })));
    let got = collect(&chan, |m| matches!(m, AgentToDaemon::ShuttingDown { .. }));
    let lived = exited_at.elapsed();
    assert!(
        lived >= Duration::from_millis(1500),
        "shut down {lived:?} after the program despite the watchdog: {:?}",
        kinds(&got)
    );
    let sleep_exit = got.iter().position(|m| matches!(m, AgentToDaemon::ProcessExited { comm, .. } if comm == "sleep"));
    assert!(sleep_exit.is_some(), "no exit of the watchdog in {got:?}");
    match got.last().unwrap() {
        AgentToDaemon::ShuttingDown { reason } => assert!(reason.contains("watchdog"), "{reason}"),
        _ => unreachable!(),
    }
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    assert_no_leftovers(tmp.path(), id, init_pid);
}

#[test]
fn auto_shutdown_no_keeps_the_sandbox_until_killed_and_health_beats() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(12);
    let spec = spec_with(id, tmp.path(), "exit 3", r#", "auto_shutdown": "no""#);
    let (child, chan) = spawn_agent();
    let (init_pid, program_pid) = hello_and_launch(&chan, &spec);
    let got = collect(&chan, |m| matches!(m, AgentToDaemon::ProgramExited { .. }));
    assert_eq!(
        got.last().unwrap(),
        &AgentToDaemon::ProgramExited { pid: program_pid.unwrap(), status: ExitStatus::Code(3) }
    );
    // Still alive well after the exit: a heartbeat arrives and it answers a ping.
    let got = collect(&chan, |m| matches!(m, AgentToDaemon::Health { .. }));
    match got.last().unwrap() {
        AgentToDaemon::Health { pids, uptime_ms, rss_bytes, .. } => {
            assert!(*pids >= 1, "the init at least");
            assert!(*rss_bytes > 0);
            assert!(*uptime_ms >= 1000, "{uptime_ms}");
        }
        _ => unreachable!(),
    }
    assert!(!got.iter().any(|m| matches!(m, AgentToDaemon::ShuttingDown { .. })));
    chan.send(&DaemonToAgent::Ping, &[]).unwrap();
    collect(&chan, |m| matches!(m, AgentToDaemon::Pong));
    shut_down(child, &chan, tmp.path(), id, init_pid);
}

#[test]
fn attached_stdio_and_run_program_in_the_running_sandbox() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(13);
    let mut spec = spec(id, tmp.path(), "echo attached-out; echo attached-err >&2; exec sleep 30");
    spec.stdio = StdioMode::Attached;
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let (mut err_r, err_w) = std::io::pipe().unwrap();
    let stdin = std::fs::File::open("/dev/null").unwrap();
    let (child, chan) = spawn_agent();
    chan.hello().unwrap();
    let fds = [stdin.as_fd(), out_w.as_fd(), err_w.as_fd()];
    chan.send(&DaemonToAgent::Launch(spec), &fds).unwrap();
    let (init_pid, _) = chan.wait_for_ready(&mut |_| {}).unwrap().unwrap();
    drop((out_w, err_w));
    let mut line = [0u8; 13];
    out_r.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"attached-out\n");
    err_r.read_exact(&mut line).unwrap();
    assert_eq!(&line, b"attached-err\n");

    // A second program in the same sandbox, its output in the log.
    let run = DaemonToAgent::RunProgram {
        args: vec!["echo second-program; exit 4".into()],
        cwd: None,
        caller_env: vec![],
        stdio: StdioMode::Log,
    };
    chan.send(&run, &[]).unwrap();
    let got = collect(&chan, |m| matches!(m, AgentToDaemon::Ready { .. } | AgentToDaemon::Error(_)));
    let second = match got.last().unwrap() {
        AgentToDaemon::Ready { init_pid: i, program_pid: Some(p) } if *i == init_pid => *p,
        other => panic!("RunProgram answered {other:?}"),
    };
    // Its output may come before or after the Ready (both are read in the same poll round).
    let mut got = got;
    got.extend(collect(&chan, |m| matches!(m, AgentToDaemon::ProgramExited { pid, .. } if *pid == second)));
    assert!(got.iter().any(|m| matches!(m, AgentToDaemon::Log(r) if r.message == "second-program")), "{got:?}");
    assert_eq!(got.last().unwrap(), &AgentToDaemon::ProgramExited { pid: second, status: ExitStatus::Code(4) });
    shut_down(child, &chan, tmp.path(), id, init_pid);
}

/// Send a Shell request and return the pty master, or the agent's error.
fn shell(chan: &AgentChannel, uid: u32) -> Result<OwnedFd, AgentError> {
    chan.send(&DaemonToAgent::Shell { uid, term: "dumb".into(), cols: 80, rows: 24 }, &[]).unwrap();
    loop {
        let (msg, mut fds) = chan.recv().unwrap();
        match msg {
            AgentToDaemon::ShellStarted | AgentToDaemon::ShellOpened { .. } => {
                return Ok(fds.pop().expect("pty master fd"))
            }
            AgentToDaemon::Error(e) => return Err(e),
            _ => continue,
        }
    }
}

/// Type `input` into a shell and read everything until it exits.
fn converse(master: OwnedFd, input: &str) -> String {
    let mut f = std::fs::File::from(master);
    f.write_all(input.as_bytes()).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break, // EIO once the shell (the last slave holder) is gone
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn shell_and_mount_for_the_owner_only() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(14);
    let uid = test_user();
    let spec = spec(id, tmp.path(), "exec sleep 60");
    let home = nix::unistd::User::from_uid(uid.into()).unwrap().unwrap().dir;
    let name = format!("oz-serve-mount-{id}.txt");
    let host_file = home.join(&name);
    std::fs::write(&host_file, "mounted-content\n").unwrap();
    chown(&host_file, Some(uid), Some(uid)).unwrap();
    let (child, chan) = spawn_agent();
    let (init_pid, _) = hello_and_launch(&chan, &spec);

    // Someone else, or root without allow_root_shell: refused.
    assert!(matches!(shell(&chan, uid + 1), Err(AgentError::User { .. })));
    assert!(matches!(shell(&chan, 0), Err(AgentError::User { uid: 0, .. })));
    // Markers are computed by the shell, so the pty's echo of the input cannot fake them.
    let out = converse(shell(&chan, uid).expect("owner shell"), "echo uid=$(id -u); exit\n");
    assert!(out.contains(&format!("uid={uid}")), "shell output: {out:?}");

    // Mount: refused for another user and outside the home, then works for the owner.
    chan.send(&DaemonToAgent::Mount { uid: uid + 1, paths: vec![name.clone().into()], read_only: true }, &[]).unwrap();
    assert!(matches!(collect(&chan, is_answer).last(), Some(AgentToDaemon::Error(AgentError::User { .. }))));
    chan.send(&DaemonToAgent::Mount { uid, paths: vec!["/etc/shadow".into()], read_only: true }, &[]).unwrap();
    assert!(matches!(collect(&chan, is_answer).last(), Some(AgentToDaemon::Error(AgentError::PathRefused { .. }))));
    // Answers keep the order of the requests: the Ping sent right after the Mount is answered
    // after it, although the Pong is ready first.
    chan.send(&DaemonToAgent::Mount { uid, paths: vec![name.clone().into()], read_only: true }, &[]).unwrap();
    chan.send(&DaemonToAgent::Ping, &[]).unwrap();
    let got = collect(&chan, |m| matches!(m, AgentToDaemon::Pong));
    let answers: Vec<_> = got.iter().filter(|m| is_answer(m) || matches!(m, AgentToDaemon::Pong)).collect();
    assert_eq!(answers, [&AgentToDaemon::Mounted { paths: vec![host_file.clone()] }, &AgentToDaemon::Pong]);
    let out = converse(
        shell(&chan, uid).unwrap(),
        &format!("cat ~/{name}; echo x >> ~/{name} && echo W$((1+1)) || echo R$((2+2)); exit\n"),
    );
    assert!(out.contains("mounted-content"), "{out:?}");
    assert!(out.contains("R4") && !out.contains("W2"), "read-only mount written: {out:?}");
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "mounted-content\n");

    chan.send(&DaemonToAgent::Umount { uid, path: name.clone().into() }, &[]).unwrap();
    assert_eq!(collect(&chan, is_answer).last().unwrap(), &AgentToDaemon::Unmounted);
    let out = converse(shell(&chan, uid).unwrap(), &format!("cat ~/{name}; echo rc=$?; exit\n"));
    assert!(!out.contains("mounted-content"), "{out:?}");
    chan.send(&DaemonToAgent::Umount { uid, path: name.into() }, &[]).unwrap();
    assert!(matches!(collect(&chan, is_answer).last(), Some(AgentToDaemon::Error(_))));

    shut_down(child, &chan, tmp.path(), id, init_pid);
    std::fs::remove_file(&host_file).unwrap();
}

fn is_answer(m: &AgentToDaemon) -> bool {
    matches!(m, AgentToDaemon::Mounted { .. } | AgentToDaemon::Unmounted | AgentToDaemon::Error(_))
}

#[test]
fn umount_leaves_no_placeholder_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(15);
    let uid = test_user();
    let home = nix::unistd::User::from_uid(uid.into()).unwrap().unwrap().dir;
    let name = format!("oz-serve-placeholder-{id}.txt");
    let host_file = home.join(&name);
    std::fs::write(&host_file, "x\n").unwrap();
    chown(&host_file, Some(uid), Some(uid)).unwrap();
    let (child, chan) = spawn_agent();
    let (init_pid, _) = hello_and_launch(&chan, &spec(id, tmp.path(), "exec sleep 60"));
    chan.send(&DaemonToAgent::Mount { uid, paths: vec![name.clone().into()], read_only: false }, &[]).unwrap();
    assert!(matches!(collect(&chan, is_answer).last(), Some(AgentToDaemon::Mounted { .. })));
    chan.send(&DaemonToAgent::Umount { uid, path: name.clone().into() }, &[]).unwrap();
    assert_eq!(collect(&chan, is_answer).last().unwrap(), &AgentToDaemon::Unmounted);
    let out = converse(shell(&chan, uid).unwrap(), &format!("test -e ~/{name}; echo exists=$?; exit\n"));
    shut_down(child, &chan, tmp.path(), id, init_pid);
    std::fs::remove_file(&host_file).unwrap();
    assert!(out.contains("exists=1"), "the mount point placeholder stayed behind: {out:?}");
}
