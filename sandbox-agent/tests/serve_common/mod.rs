//! Helpers for driving `oz-agent serve --fd 3` as the daemon does: a real child process, a
//! real socketpair, a real sandbox for the unprivileged user `oz-test-a`. Root only (CI is).
#![allow(dead_code)]

use oz_wire::channel::AgentChannel;
use oz_wire::{AgentToDaemon, DaemonToAgent, LaunchSpec, StdioMode};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

pub const USER: &str = "oz-test-a";

/// Create the test user if it is missing (idempotent) and return its uid.
pub fn test_user() -> u32 {
    if nix::unistd::User::from_name(USER).unwrap().is_none() {
        let st = Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", USER]).status().unwrap();
        // A concurrent test may have created it meanwhile (exit 9: already exists).
        assert!(st.success() || st.code() == Some(9), "useradd {USER}: {st}");
    }
    nix::unistd::User::from_name(USER).unwrap().expect("test user exists").uid.as_raw()
}

/// A sandbox id no other concurrently running test uses.
pub fn unique_id(salt: u64) -> u64 {
    900_000_000 + (std::process::id() as u64 % 1_000_000) * 10 + salt
}

/// A profile running `/bin/sh -c <first user arg>`; `extra` adds JSON keys (`, "k": v`).
pub fn profile(name: &str, extra: &str) -> oz_profiles::Profile {
    let json = format!(
        r#"{{"name": "{name}", "path": "/bin/sh", "default_params": ["-c"],
            "xserver": {{"enabled": false}}, "networking": {{"type": "empty"}} {extra}}}"#
    );
    oz_profiles::load::parse_profile(json.as_bytes(), Path::new("test.json"))
        .unwrap_or_else(|e| panic!("test profile: {e}"))
        .value
}

pub fn spec(id: u64, state_dir: &Path, script: &str) -> LaunchSpec {
    spec_with(id, state_dir, script, "")
}

pub fn spec_with(id: u64, state_dir: &Path, script: &str, extra: &str) -> LaunchSpec {
    let config = oz_profiles::Config { state_dir: state_dir.to_path_buf(), ..Default::default() };
    LaunchSpec {
        sandbox_id: id,
        profile: profile("serve-test", extra),
        config,
        uid: test_user(),
        caller_env: vec![("LANG".into(), "C".into())],
        args: vec![script.to_string()],
        cwd: None,
        noexec: false,
        stdio: StdioMode::Log,
        ephemeral: false,
    }
}

/// Spawn `oz-agent serve --fd 3` with one end of a socketpair as fd 3, in its own session.
pub fn spawn_agent() -> (Child, AgentChannel) {
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
pub fn collect(chan: &AgentChannel, stop: impl Fn(&AgentToDaemon) -> bool) -> Vec<AgentToDaemon> {
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

pub fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
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

pub fn assert_no_leftovers(state_dir: &Path, id: u64, init_pid: u32) {
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

pub fn hello_and_launch(chan: &AgentChannel, spec: &LaunchSpec) -> (u32, Option<u32>) {
    let hello = chan.hello().unwrap();
    assert_eq!(hello.sandbox_id, None);
    chan.send(&DaemonToAgent::Launch(spec.clone()), &[]).unwrap();
    let mut early = Vec::new();
    let ready = chan.wait_for_ready(&mut |m| early.push(m)).unwrap();
    ready.unwrap_or_else(|e| panic!("launch failed: {e}"))
}
