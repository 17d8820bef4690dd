//! `oz-agent serve --fd 3` driven as the daemon drives it: a real child process, a real
//! socketpair, a real sandbox for the unprivileged user `oz-test-a`. Runs as root (CI does).

use oz_wire::channel::AgentChannel;
use oz_wire::{AgentToDaemon, DaemonToAgent, ExitStatus, LaunchSpec, StdioMode, PROTOCOL_VERSION};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

const USER: &str = "oz-test-a";

/// Create the test user if it is missing (idempotent) and return its uid.
fn test_user() -> u32 {
    if nix::unistd::User::from_name(USER).unwrap().is_none() {
        let st = Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", USER]).status().unwrap();
        // A concurrent test may have created it meanwhile (exit 9: already exists).
        assert!(st.success() || st.code() == Some(9), "useradd {USER}: {st}");
    }
    nix::unistd::User::from_name(USER).unwrap().expect("test user exists").uid.as_raw()
}

/// A sandbox id no other concurrently running test uses.
fn unique_id(salt: u64) -> u64 {
    900_000_000 + (std::process::id() as u64 % 1_000_000) * 10 + salt
}

fn profile(name: &str, script: &str) -> oz_profiles::Profile {
    let json = format!(
        r#"{{"name": "{name}", "path": "/bin/sh", "default_params": ["-c", {script:?}],
            "reject_user_args": true, "xserver": {{"enabled": false}}, "networking": {{"type": "empty"}}}}"#
    );
    oz_profiles::load::parse_profile(json.as_bytes(), Path::new("test.json"))
        .unwrap_or_else(|e| panic!("test profile: {e}"))
        .value
}

fn spec(id: u64, state_dir: &Path, script: &str) -> LaunchSpec {
    let config = oz_profiles::Config { state_dir: state_dir.to_path_buf(), ..Default::default() };
    LaunchSpec {
        sandbox_id: id,
        profile: profile("serve-test", script),
        config,
        uid: test_user(),
        caller_env: vec![("LANG".into(), "C".into())],
        args: vec![],
        cwd: None,
        noexec: false,
        stdio: StdioMode::Log,
    }
}

/// Spawn `oz-agent serve --fd 3` with one end of a socketpair as fd 3, in its own session.
fn spawn_agent() -> (Child, AgentChannel) {
    let (ours, theirs) = oz_wire::fdpass::seqpacket_pair().unwrap();
    let raw = theirs.as_raw_fd();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oz-agent"));
    cmd.args(["serve", "--fd", "3"]);
    // SAFETY: the closure only calls async-signal-safe functions (dup2, setsid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn oz-agent");
    drop(theirs);
    let chan = AgentChannel::new(ours);
    chan.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    (child, chan)
}

/// Receive messages until `stop` says so, returning everything received.
fn collect(chan: &AgentChannel, stop: impl Fn(&AgentToDaemon) -> bool) -> Vec<AgentToDaemon> {
    let mut got = Vec::new();
    loop {
        let (msg, _) = chan.recv().unwrap_or_else(|e| panic!("after {got:?}: {e}"));
        let done = stop(&msg);
        got.push(msg);
        if done {
            return got;
        }
    }
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("oz-agent did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn assert_no_leftovers(state_dir: &Path, id: u64, init_pid: u32) {
    let agents = state_dir.join("agents");
    let left: Vec<PathBuf> =
        std::fs::read_dir(&agents).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "state files left: {left:?}");
    let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(init_pid as i32), None);
    assert_eq!(gone, Err(nix::errno::Errno::ESRCH), "init {init_pid} still exists");
    let mut cgroups = vec![PathBuf::from(format!("/sys/fs/cgroup/oz/{id}"))];
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap() {
        cgroups.push(e.unwrap().path().join("oz").join(id.to_string()));
    }
    for c in cgroups {
        assert!(!c.exists(), "cgroup {} left behind", c.display());
    }
}

fn hello_and_launch(chan: &AgentChannel, spec: &LaunchSpec) -> (u32, Option<u32>) {
    let hello = chan.hello().unwrap();
    assert_eq!(hello.sandbox_id, None);
    chan.send(&DaemonToAgent::Launch(spec.clone()), &[]).unwrap();
    let mut early = Vec::new();
    let ready = chan.wait_for_ready(&mut |m| early.push(m)).unwrap();
    ready.unwrap_or_else(|e| panic!("launch failed: {e}"))
}

#[test]
fn launch_logs_exit_and_shut_down_without_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(1);
    let spec = spec(id, tmp.path(), "echo hi; sleep 1");
    let (mut child, chan) = spawn_agent();
    let (init_pid, program_pid) = hello_and_launch(&chan, &spec);
    assert!(program_pid.is_some());

    // While it runs, the record and the rendezvous socket exist.
    let rec = oz_wire::AgentRecord::load(&oz_wire::state::record_path(tmp.path(), id)).unwrap();
    assert_eq!((rec.id, rec.init_pid, rec.agent_pid, rec.user.as_str()), (id, init_pid, child.id(), USER));
    assert!(oz_wire::state::socket_path(tmp.path(), id).exists());

    let got = collect(&chan, |m| matches!(m, AgentToDaemon::ShuttingDown { .. }));
    let logs: Vec<&str> = got
        .iter()
        .filter_map(|m| match m {
            AgentToDaemon::Log(r) => Some(r.message.as_str()),
            _ => None,
        })
        .collect();
    assert!(logs.contains(&"hi"), "no 'hi' log line in {got:?}");
    let exit = got.iter().position(|m| matches!(m, AgentToDaemon::ProgramExited { .. })).expect("ProgramExited");
    assert_eq!(
        got[exit],
        AgentToDaemon::ProgramExited { pid: program_pid.unwrap(), status: ExitStatus::Code(0) }
    );
    let hi = got.iter().position(|m| matches!(m, AgentToDaemon::Log(r) if r.message == "hi")).unwrap();
    assert!(hi < exit, "output must precede the exit event: {got:?}");
    let st = wait_exit(&mut child, Duration::from_secs(10));
    assert!(st.success(), "agent exit: {st}");
    assert_no_leftovers(tmp.path(), id, init_pid);
}

#[test]
fn daemon_loss_keeps_the_sandbox_and_rendezvous_readopts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(2);
    let spec = spec(id, tmp.path(), "echo started; exec sleep 60");
    let (mut child, chan) = spawn_agent();
    let (init_pid, _) = hello_and_launch(&chan, &spec);

    // The daemon "dies".
    drop(chan);
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "agent died with its daemon");
    assert!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(init_pid as i32), None).is_ok());

    // A new daemon reconnects.
    let sock = oz_wire::state::socket_path(tmp.path(), id);
    let fd: OwnedFd = oz_sandbox_agent::rendezvous::connect(&sock).unwrap();
    let chan = AgentChannel::new(fd);
    chan.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let hello = chan.hello().unwrap();
    assert_eq!(hello.sandbox_id, Some(id));
    assert_eq!(hello.agent_pid, child.id());
    let rec = chan.wait_for_state(&mut |_| {}).unwrap();
    assert_eq!((rec.id, rec.init_pid, rec.profile.as_str()), (id, init_pid, "serve-test"));

    // It is fully served: ping, then shut it down.
    chan.send(&DaemonToAgent::Ping, &[]).unwrap();
    collect(&chan, |m| matches!(m, AgentToDaemon::Pong));
    chan.send(&DaemonToAgent::Shutdown { reason: "test".into() }, &[]).unwrap();
    let got = collect(&chan, |m| matches!(m, AgentToDaemon::ShuttingDown { .. }));
    match got.last().unwrap() {
        AgentToDaemon::ShuttingDown { reason } => assert!(reason.contains("test"), "{reason}"),
        _ => unreachable!(),
    }
    let st = wait_exit(&mut child, Duration::from_secs(10));
    assert!(st.success(), "agent exit: {st}");
    assert_no_leftovers(tmp.path(), id, init_pid);
}

#[test]
fn launch_failure_is_reported_and_cleaned_up() {
    let tmp = tempfile::tempdir().unwrap();
    let id = unique_id(3);
    let mut spec = spec(id, tmp.path(), "true");
    spec.profile.path = "/nonexistent/oz-no-such-program".into();
    let (mut child, chan) = spawn_agent();
    chan.hello().unwrap();
    chan.send(&DaemonToAgent::Launch(spec), &[]).unwrap();
    let res = chan.wait_for_ready(&mut |_| {}).unwrap();
    let err = res.expect_err("launch of a missing program must fail");
    assert!(err.to_string().contains("oz-no-such-program"), "{err}");
    let st = wait_exit(&mut child, Duration::from_secs(10));
    assert!(!st.success());
    let left = std::fs::read_dir(tmp.path().join("agents")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0);
}

#[test]
fn wrong_protocol_version_is_refused() {
    let (mut child, chan) = spawn_agent();
    chan.send(&DaemonToAgent::Hello { protocol_version: PROTOCOL_VERSION + 100 }, &[]).unwrap();
    // The agent answers with its own version (so the daemon can name the mismatch) and exits.
    assert_eq!(chan.wait_for_hello().unwrap().sandbox_id, None);
    let st = wait_exit(&mut child, Duration::from_secs(10));
    assert!(!st.success());
}
