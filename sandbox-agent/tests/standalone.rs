//! `oz-agent standalone` end to end, as root, with a real unprivileged user (`oz-test-a`):
//! exit statuses, credentials, capabilities, no_new_privs, seccomp, PID isolation, the
//! environment and fds the program gets, and that nothing (cgroup, mount) is left behind.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

mod common;
use common::test_uid;

/// A config and a profile in a private temp dir; the sandbox's staging path lives there too.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(profile_extra: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join("srv");
        std::fs::create_dir(&staging).unwrap();
        let config =
            format!(r#"{{ "sandbox_path": "{}", "profile_dir": "{}" }}"#, staging.display(), dir.path().display());
        std::fs::write(dir.path().join("oz.conf"), config).unwrap();
        let profile = format!(r#"{{ "name": "oztest", "path": "/bin/sh" {profile_extra} }}"#);
        std::fs::write(dir.path().join("oztest.json"), profile).unwrap();
        Fixture { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("oz.conf")
    }
}

fn next_id() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    u64::from(std::process::id()) * 100 + N.fetch_add(1, Ordering::Relaxed)
}

fn mount_points() -> Vec<String> {
    let s = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut v: Vec<String> = s.lines().map(|l| l.split(' ').nth(4).unwrap_or("").to_string()).collect();
    v.sort();
    v
}

fn cgroup_dirs(id: u64) -> Vec<PathBuf> {
    ["pids", "memory", "cpu", "unified", ""]
        .iter()
        .map(|c| Path::new("/sys/fs/cgroup").join(c).join("oz").join(id.to_string()))
        .collect()
}

/// Run `sh -c script` in a sandbox as the test user; asserts that nothing is left behind.
fn run_in(fx: &Fixture, profile: &str, extra: &[&str], script: &str) -> Output {
    run_args(fx, profile, extra, &["-c", script])
}

/// Run the profile's program with `args`; asserts that nothing is left behind.
fn run_args(fx: &Fixture, profile: &str, extra: &[&str], args: &[&str]) -> Output {
    let id = next_id();
    let before = mount_points();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oz-agent"));
    cmd.arg("standalone").arg("--config").arg(fx.config()).args(["--profile", profile]);
    cmd.args(["--uid", &test_uid().to_string(), "--id", &id.to_string()]);
    cmd.args(extra).arg("--").args(args);
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    for d in cgroup_dirs(id) {
        assert!(!d.exists(), "cgroup {} remains", d.display());
    }
    assert_eq!(before, mount_points(), "host mounts changed");
    out
}

fn sh(script: &str) -> Output {
    let fx = Fixture::new("");
    let profile = fx.dir.path().join("oztest.json");
    run_in(&fx, profile.to_str().unwrap(), &[], script)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn exit_statuses() {
    let o = sh("exit 0");
    assert_eq!(o.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(sh("exit 3").status.code(), Some(3));
    assert_eq!(sh("kill -9 $$").status.code(), Some(137));
}

#[test]
fn runs_true_by_profile_name() {
    let fx = Fixture::new("");
    std::fs::write(fx.dir.path().join("truth.json"), r#"{ "name": "truth", "path": "/bin/true" }"#).unwrap();
    let id = next_id();
    let o = Command::new(env!("CARGO_BIN_EXE_oz-agent"))
        .arg("standalone")
        .arg("--config")
        .arg(fx.config())
        .args(["--profile", "truth", "--uid", &test_uid().to_string(), "--id", &id.to_string()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn runs_as_the_user_with_nothing_privileged() {
    let o = sh("id -u; id -g; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status");
    let out = stdout(&o);
    let uid = test_uid();
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some(uid.to_string().as_str()), "{out}");
    assert_ne!(lines.next(), Some("0"), "{out}");
    let status: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.to_string(), v.trim().to_string())
        })
        .collect();
    let get = |k: &str| status.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str()).unwrap_or("missing");
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(get(cap), "0000000000000000", "{cap} in {out}");
    }
    assert_eq!(get("NoNewPrivs"), "1", "{out}");
    assert_eq!(get("Seccomp"), "2", "{out}");
}

#[test]
fn host_processes_are_invisible() {
    let o = sh("ls /proc | grep -c '^[0-9]'; echo $$");
    let out = stdout(&o);
    let mut l = out.lines();
    let count: u32 = l.next().unwrap().parse().unwrap();
    assert!(count <= 4, "{count} pids visible: {out}");
    // init is 1, the shell is 2
    assert_eq!(l.next(), Some("2"), "{out}");
}

#[test]
fn environment_and_fds_are_clean() {
    let fx = Fixture::new(r#", "environment": [ { "name": "KEEP" } ]"#);
    let profile = fx.dir.path().join("oztest.json");
    let o = run_in(
        &fx,
        profile.to_str().unwrap(),
        &["--env", "KEEP=yes", "--env", "LD_PRELOAD=/x.so"],
        "env | sort; ls /proc/self/fd",
    );
    let out = stdout(&o);
    assert!(out.contains("KEEP=yes\n"), "{out}");
    assert!(out.contains("PATH=/usr/bin:/bin\n"), "{out}");
    assert!(out.contains("USER=oz-test-a\n"), "{out}");
    assert!(!out.contains("LD_PRELOAD"), "{out}");
    let fds: Vec<&str> = out.lines().skip_while(|l| l.contains('=')).collect();
    // 0, 1, 2 and the directory ls reads
    assert_eq!(fds, vec!["0", "1", "2", "3"], "{out}");
}

#[test]
fn hostname_is_the_profile_name() {
    let o = sh("cat /proc/sys/kernel/hostname");
    assert_eq!(stdout(&o).trim(), "oztest");
}

#[test]
fn setup_failures_exit_125_with_one_line() {
    let fx = Fixture::new("");
    let profile = fx.dir.path().join("oztest.json");
    let o = Command::new(env!("CARGO_BIN_EXE_oz-agent"))
        .arg("standalone")
        .arg("--config")
        .arg(fx.config())
        .args(["--profile", profile.to_str().unwrap(), "--uid", "0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("uid 0"), "{err}");
    let fx = Fixture::new("");
    std::fs::write(fx.dir.path().join("oztest.json"), r#"{ "name": "oztest", "path": "/usr/bin/does-not-exist" }"#)
        .unwrap();
    let profile = fx.dir.path().join("oztest.json");
    let o = run_in(&fx, profile.to_str().unwrap(), &[], "true");
    assert_eq!(o.status.code(), Some(125));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("/usr/bin/does-not-exist"), "{err}");
    assert!(err.contains("No such file"), "{err}");
    assert!(o.status.signal().is_none());
}

#[test]
fn leftover_processes_are_killed_when_the_program_exits() {
    let start = std::time::Instant::now();
    // a background sleeper, and one that ignores SIGTERM (needs the SIGKILL after the grace)
    let o =
        sh("sleep 100 & (trap '' TERM; touch /tmp/armed; sleep 100) & while [ ! -e /tmp/armed ]; do :; done; exit 4");
    assert_eq!(o.status.code(), Some(4), "stderr: {}", String::from_utf8_lossy(&o.stderr));
    let took = start.elapsed();
    // SIGTERM first, SIGKILL after the 2 s grace for the one that ignores it
    assert!(took >= std::time::Duration::from_secs(2) && took < std::time::Duration::from_secs(10), "took {took:?}");
}

/// Start a standalone sandbox whose program prints "started" and sleeps; returns once it has
/// printed, with the sandbox id and the agent (stdout and stderr piped).
fn start_long_running(fx: &Fixture) -> (u64, std::process::Child) {
    let profile = fx.dir.path().join("oztest.json");
    let id = next_id();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oz-agent"))
        .arg("standalone")
        .arg("--config")
        .arg(fx.config())
        .args(["--profile", profile.to_str().unwrap(), "--uid", &test_uid().to_string(), "--id", &id.to_string()])
        .args(["--", "-c", "echo started; sleep 100; exit 0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.as_mut().unwrap()), &mut line).unwrap();
    assert_eq!(line, "started\n");
    (id, child)
}

#[test]
fn sigterm_to_the_agent_reaches_the_program() {
    let fx = Fixture::new("");
    let (id, mut child) = start_long_running(&fx);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "{status}");
    for d in cgroup_dirs(id) {
        assert!(!d.exists(), "cgroup {} remains", d.display());
    }
}

#[test]
fn cwd_is_the_callers_when_visible_else_home() {
    let fx = Fixture::new("");
    let profile = fx.dir.path().join("oztest.json");
    let p = profile.to_str().unwrap();
    assert_eq!(stdout(&run_in(&fx, p, &["--cwd", "/usr/bin"], "pwd")), "/usr/bin\n");
    let home = format!("/home/{}\n", common::TEST_USER);
    assert_eq!(stdout(&run_in(&fx, p, &["--cwd", "/nonexistent/dir"], "pwd")), home);
    assert_eq!(stdout(&run_in(&fx, p, &[], "pwd")), home);
}

#[test]
fn writable_places_stay_writable_under_landlock() {
    let o = sh("touch ~/a /tmp/b /dev/shm/c && echo x > /dev/null && echo ok; touch /usr/x 2>/dev/null || echo denied");
    assert_eq!(stdout(&o), "ok\ndenied\n", "stderr: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn network_namespace_has_only_loopback_up_unless_none() {
    let o = sh("ls /sys/class/net; cat /sys/class/net/lo/flags");
    assert_eq!(stdout(&o), "lo\n0x9\n", "stderr: {}", String::from_utf8_lossy(&o.stderr));
    let fx = Fixture::new(r#", "networking": { "type": "none" }"#);
    let profile = fx.dir.path().join("oztest.json");
    let o = run_in(&fx, profile.to_str().unwrap(), &[], "ls /sys/class/net; cat /sys/class/net/lo/flags");
    assert_eq!(stdout(&o), "lo\n0x8\n", "stderr: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn argument_files_only_with_allow_files() {
    let uid = test_uid();
    let name = format!("oz-argfile-{}.txt", next_id());
    let home = PathBuf::from(format!("/home/{}", common::TEST_USER));
    let file = home.join(&name);
    std::fs::write(&file, "doc\n").unwrap();
    std::os::unix::fs::chown(&file, Some(uid), None).unwrap();
    let run = |allow: bool| {
        let fx = Fixture::new(&format!(r#", "allow_files": {allow}"#));
        let profile = fx.dir.path().join("oztest.json");
        let script = "cat \"$0\" 2>/dev/null || echo hidden";
        stdout(&run_args(&fx, profile.to_str().unwrap(), &["--cwd", home.to_str().unwrap()], &["-c", script, &name]))
    };
    let with = run(true);
    let without = run(false);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(with, "doc\n");
    assert_eq!(without, "hidden\n");
}

#[test]
fn securebits_are_locked() {
    // prctl(PR_GET_SECUREBITS) through perl (Essential on Debian): x86_64 syscall 157, op 27
    let o = sh(r#"perl -e 'print syscall(157, 27, 0, 0, 0, 0), "\n"'"#);
    assert_eq!(stdout(&o), "239\n", "stderr: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn a_killed_init_ends_everything_with_125() {
    let fx = Fixture::new("");
    let (id, child) = start_long_running(&fx);
    let children = std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", child.id())).unwrap();
    let init: i32 = children.split_whitespace().next().unwrap().parse().unwrap();
    assert!(std::fs::read_to_string(format!("/proc/{init}/comm")).unwrap().starts_with("oz-init["));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(init), nix::sys::signal::Signal::SIGKILL).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("init ended before the program"), "{err}");
    for d in cgroup_dirs(id) {
        assert!(!d.exists(), "cgroup {} remains", d.display());
    }
}

#[test]
fn no_new_privs_and_hardening_even_with_seccomp_disabled() {
    let fx = Fixture::new(r#", "seccomp": { "mode": "disabled" }, "nosysproc": false"#);
    let profile = fx.dir.path().join("oztest.json");
    let o = run_in(&fx, profile.to_str().unwrap(), &[], "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status");
    assert_eq!(stdout(&o), "NoNewPrivs:\t1\nSeccomp:\t2\n", "stderr: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn signals_are_neither_blocked_nor_ignored() {
    // Rust ignores SIGPIPE and the agent/init block signals: none of it may reach the program
    let o = sh("grep -E '^Sig(Blk|Ign):' /proc/self/status");
    assert_eq!(stdout(&o), "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
}

#[test]
fn the_program_is_in_the_sandboxs_cgroup_and_its_cgroup_namespace_is_rooted_there() {
    // The cgroup namespace shows the sandbox's cgroup as /; with pids.max 4 (the init, sh and
    // two more) the fifth fork fails, with 64 all succeed.
    let script = "grep -E '^[0-9]+:pids:' /proc/self/cgroup | cut -d: -f3; for i in 1 2 3 4 5 6; do sleep 1 & done; wait; echo done";
    for (pids, out) in [(4, "/\n"), (64, "/\ndone\n")] {
        let fx = Fixture::new(&format!(r#", "limits": {{ "pids": {pids} }}"#));
        let profile = fx.dir.path().join("oztest.json");
        let o = run_in(&fx, profile.to_str().unwrap(), &[], script);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(stdout(&o), out, "pids {pids}, stderr: {err}");
        assert_eq!(err.contains("fork"), pids == 4, "pids {pids}: {err}");
    }
}
