//! The supervision tree with real processes, through `oz-agent standalone` as root with the
//! unprivileged test user: a helper process killed with SIGKILL is restarted after its backoff
//! and given up (and reported) past its restart budget; the init's death ends the sandbox and
//! stops its helpers; the profile's watchdogs and `auto_shutdown` decide when the sandbox ends.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::test_uid;

/// A config and a profile (`/bin/sh` with `extra` keys) in a private temp dir.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(path: &str, extra: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("srv");
        std::fs::create_dir(&staging).unwrap();
        let config =
            format!(r#"{{ "sandbox_path": "{}", "profile_dir": "{}" }}"#, staging.display(), dir.path().display());
        std::fs::write(dir.path().join("oz.conf"), config).unwrap();
        let profile = format!(r#"{{ "name": "oztest", "path": "{path}" {extra} }}"#);
        std::fs::write(dir.path().join("oztest.json"), profile).unwrap();
        Fixture { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Start the agent with `extra` flags and the program's `args`; stderr goes to `stderr.txt`.
    fn agent(&self, id: u64, extra: &[&str], args: &[&str]) -> Agent {
        let stderr = std::fs::File::create(self.path("stderr.txt")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_oz-agent"))
            .arg("standalone")
            .arg("--config")
            .arg(self.path("oz.conf"))
            .arg("--profile")
            .arg(self.path("oztest.json"))
            .args(["--uid", &test_uid().to_string(), "--id", &id.to_string()])
            .args(extra)
            .arg("--")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Agent(child)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr.txt")).unwrap_or_default()
    }

    /// Pids the helper wrote, one per start.
    fn helper_pids(&self) -> Vec<i32> {
        let s = std::fs::read_to_string(self.path("pids")).unwrap_or_default();
        s.lines().filter_map(|l| l.trim().parse().ok()).collect()
    }

    /// A helper command that records its pid, then sleeps.
    fn helper(&self) -> String {
        format!("echo $$ >> {}; exec sleep 600", self.path("pids").display())
    }
}

/// The agent process; a failed test must not leave its sandbox behind: SIGKILL on drop (the
/// init dies with the agent, the PID namespace with the init).
struct Agent(Child);

impl std::ops::Deref for Agent {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Agent {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn id() -> u64 {
    u64::from(std::process::id()) * 100 + 77
}

/// Poll `f` every 10 ms until it returns Some or `limit` passes.
fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    wait_for(limit, || child.try_wait().unwrap())
}

/// The agent's children that are not helpers: the init.
fn init_pid(agent: &Child, helpers: &[i32]) -> i32 {
    let kids = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", agent.id())).unwrap();
    let init: Vec<i32> = kids.split_whitespace().map(|p| p.parse().unwrap()).filter(|p| !helpers.contains(p)).collect();
    assert_eq!(init.len(), 1, "agent children {kids:?}, helpers {helpers:?}");
    init[0]
}

fn cgroups_gone(id: u64) -> bool {
    ["pids", "memory", "cpu", "unified", ""]
        .iter()
        .all(|c| !Path::new("/sys/fs/cgroup").join(c).join("oz").join(id.to_string()).exists())
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

#[test]
fn a_killed_helper_is_restarted_with_backoff_then_given_up_and_the_init_ends_the_sandbox() {
    let fx = Fixture::new("/bin/sh", "");
    let id = id();
    let helper = fx.helper();
    let mut agent = fx.agent(id, &["--supervise-helper", &helper], &["-c", "exec sleep 600"]);
    let first = wait_for(Duration::from_secs(10), || fx.helper_pids().first().copied()).expect("helper started");
    // Three restarts, each after its (doubling) backoff: 100, 200, 400 ms.
    for n in 1..=3usize {
        let victim = *fx.helper_pids().last().unwrap();
        let t = Instant::now();
        kill(Pid::from_raw(victim), Signal::SIGKILL).unwrap();
        let pids = wait_for(Duration::from_secs(3), || Some(fx.helper_pids()).filter(|p| p.len() == n + 1));
        let took = t.elapsed();
        assert!(pids.is_some(), "restart {n} within 3 s; stderr: {}", fx.stderr());
        let backoff = Duration::from_millis(100 << (n - 1));
        assert!(took >= backoff, "restart {n} after {took:?}, before its backoff {backoff:?}");
        assert!(fx.stderr().contains(&format!("restart {n} in {} ms", backoff.as_millis())), "{}", fx.stderr());
    }
    assert!(!alive(first));
    // Past the budget: given up, reported, never restarted; the sandbox goes on.
    kill(Pid::from_raw(*fx.helper_pids().last().unwrap()), Signal::SIGKILL).unwrap();
    let reported =
        wait_for(Duration::from_secs(3), || Some(()).filter(|_| fx.stderr().contains("given up after 3 restarts")));
    assert!(reported.is_some(), "stderr: {}", fx.stderr());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fx.helper_pids().len(), 4, "no restart after giving up");
    assert!(agent.try_wait().unwrap().is_none(), "the sandbox outlives an ignorable helper");
    // The init is permanent: its death ends the sandbox.
    let init = init_pid(&agent, &[]);
    kill(Pid::from_raw(init), Signal::SIGKILL).unwrap();
    let status = wait_exit(&mut agent, Duration::from_secs(10)).expect("agent exits when its init dies");
    assert_eq!(status.code(), Some(125), "{}", fx.stderr());
    assert!(fx.stderr().contains("the init ended before the program did"), "{}", fx.stderr());
    assert!(cgroups_gone(id));
}

#[test]
fn the_init_dying_stops_the_helpers() {
    let fx = Fixture::new("/bin/sh", "");
    let id = id() + 1;
    let helper = fx.helper();
    let mut agent = fx.agent(id, &["--supervise-helper", &helper], &["-c", "exec sleep 600"]);
    let h = wait_for(Duration::from_secs(10), || fx.helper_pids().first().copied()).expect("helper started");
    // The helper's sh exec'd sleep: same pid.
    wait_for(Duration::from_secs(5), || {
        std::fs::read_to_string(format!("/proc/{h}/comm")).ok().filter(|c| c.trim() == "sleep")
    });
    let init = init_pid(&agent, &[h]);
    kill(Pid::from_raw(init), Signal::SIGKILL).unwrap();
    let status = wait_exit(&mut agent, Duration::from_secs(10)).expect("agent exits when its init dies");
    assert_eq!(status.code(), Some(125), "{}", fx.stderr());
    assert!(!alive(h), "helper {h} outlived the sandbox");
    assert_eq!(fx.helper_pids(), vec![h], "not restarted while stopping");
    assert!(cgroups_gone(id));
}

#[test]
fn a_watchdog_keeps_the_sandbox_after_the_program_exits_until_it_exits() {
    // The program starts `dogwatch` (argv[0]) for 2 s and exits at once.
    let fx = Fixture::new("/bin/bash", r#", "watchdog": ["dogwatch"]"#);
    let t = Instant::now();
    let mut agent = fx.agent(id() + 2, &[], &["-c", "(exec -a dogwatch sleep 2) & exit 4"]);
    let status = wait_exit(&mut agent, Duration::from_secs(15)).expect("sandbox ends after its watchdog");
    let took = t.elapsed();
    assert_eq!(status.code(), Some(4), "the program's status; stderr: {}", fx.stderr());
    assert!(took >= Duration::from_millis(1900), "ended after {took:?}, while the watchdog ran");
    assert!(took < Duration::from_secs(8), "ended {took:?} after start: the watchdog's exit was missed");
}

#[test]
fn auto_shutdown_no_keeps_the_sandbox_until_the_agent_is_told_to_stop() {
    let fx = Fixture::new("/bin/sh", r#", "auto_shutdown": "no""#);
    let id = id() + 3;
    let mut agent = fx.agent(id, &[], &["-c", "exit 3"]);
    std::thread::sleep(Duration::from_millis(1500));
    assert!(agent.try_wait().unwrap().is_none(), "the sandbox ended with its program; stderr: {}", fx.stderr());
    kill(Pid::from_raw(agent.id() as i32), Signal::SIGTERM).unwrap();
    let status = wait_exit(&mut agent, Duration::from_secs(10)).expect("SIGTERM ends a lingering sandbox");
    assert_eq!(status.code(), Some(3), "{}", fx.stderr());
    assert!(cgroups_gone(id));
}
