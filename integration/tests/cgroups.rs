//! Sandbox cgroups through the real agent: names that do not collide between state dirs, and
//! the profile's `limits` (pids, memory, cpu_weight) enforced. Each limit test runs the same
//! workload without the limit too, where it must succeed.

use oz_integration::env::{probe_item, unique, TestEnv, PROBE_TARGET};
use oz_integration::workspace::Workspace;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The directory holding the sandboxes' cgroups of `controller` (v1 here, v2 root elsewhere).
fn oz_parent(controller: &str) -> PathBuf {
    let v1 = Path::new("/sys/fs/cgroup").join(controller);
    if v1.join("cgroup.procs").exists() {
        v1.join("oz")
    } else {
        PathBuf::from("/sys/fs/cgroup/oz")
    }
}

/// The cgroup directories of sandbox `id` (named `<id>-<state dir tag>`) under `controller`.
fn sandbox_cgroups(controller: &str, id: u64) -> Vec<PathBuf> {
    let prefix = format!("{id}-");
    let mut out: Vec<PathBuf> = std::fs::read_dir(oz_parent(controller))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix) && e.path().is_dir())
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > timeout {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two daemons (or standalone agents) number sandboxes the same way; with different state dirs
/// their sandboxes with the same id run side by side, each in its own cgroup.
#[test]
fn same_id_in_two_state_dirs_gets_two_cgroups() {
    let mut env = TestEnv::new(json!({}));
    let second = Workspace::new(json!({})).expect("second workspace");
    let profile = json!({"path": "/bin/sh"});
    let p1 = env.profile("ozcg1", profile.clone());
    let p2 = second.write_profile("ozcg2", profile).expect("profile in the second workspace");
    let before = sandbox_cgroups("pids", 1);
    let script = "sleep 2; echo DONE";
    let mut a2 = env.agent(&p2, &["-c", script]).id(1);
    a2.config = second.config.clone();
    let runs = [env.agent(&p1, &["-c", script]).id(1), a2].map(|a| std::thread::spawn(move || a.run()));
    let both = wait_for(Duration::from_secs(10), || {
        let now: Vec<PathBuf> = sandbox_cgroups("pids", 1).into_iter().filter(|c| !before.contains(c)).collect();
        (now.len() == 2).then_some(now)
    });
    let outs: Vec<_> = runs.into_iter().map(|h| h.join().expect("agent thread")).collect();
    for out in &outs {
        assert_eq!(out.status, 0, "a sandbox with id 1 failed beside the other:\n{}", out.all());
        assert!(out.stdout.contains("DONE"), "{}", out.all());
    }
    let both = both.expect("two cgroups for sandbox id 1 at the same time");
    assert_ne!(both[0], both[1]);
    let left: Vec<_> = oz_integration::leftovers::entries(&second.state_dir);
    assert!(left.is_empty(), "the second workspace's state dir is not empty: {left:?}");
    env.check_leftovers();
}

/// Forking 40 background jobs: fine unlimited, "Cannot fork" under `pids: 10`.
#[test]
fn pids_limit_stops_forks() {
    let mut env = TestEnv::new(json!({}));
    let script = "for i in $(seq 1 40); do sleep 1 & done; echo STARTED; wait; echo DONE";
    let free = env.profile("ozpidsfree", json!({"path": "/bin/sh"}));
    let out = env.sh(&free, script);
    assert_eq!(out.status, 0, "40 processes without a limit:\n{}", out.all());
    assert!(out.stdout.contains("DONE") && !out.all().contains("fork"), "{}", out.all());
    let limited = env.profile("ozpids", json!({"path": "/bin/sh", "limits": {"pids": 10}}));
    let out = env.sh(&limited, script);
    assert_ne!(out.status, 0, "40 processes under pids 10:\n{}", out.all());
    assert!(out.stderr.contains("Cannot fork"), "{}", out.all());
    assert!(!out.stdout.contains("DONE"), "{}", out.all());
    env.check_leftovers();
}

/// Touching 200 MiB: fine unlimited, OOM-killed (137) under `memory: "64M"`.
#[test]
fn memory_limit_oom_kills() {
    let mut env = TestEnv::new(json!({}));
    let profile = |limits| json!({"path": PROBE_TARGET, "whitelist": [probe_item()], "limits": limits});
    let free = env.profile("ozmemfree", profile(json!({})));
    let out = env.agent(&free, &["alloc", "200"]).run();
    assert_eq!(out.status, 0, "200 MiB without a limit:\n{}", out.all());
    assert!(out.stdout.contains("ALLOCATED 200 MiB"), "{}", out.all());
    let limited = env.profile("ozmem", profile(json!({"memory": "64M"})));
    let out = env.agent(&limited, &["alloc", "200"]).run();
    assert_eq!(out.status, 137, "200 MiB under a 64M limit must be OOM-killed:\n{}", out.all());
    assert!(!out.stdout.contains("ALLOCATED"), "{}", out.all());
    env.check_leftovers();
}

/// The cpu.shares (v1) or cpu.weight (v2) of a running sandbox with `cpu_weight`.
fn running_cpu_setting(env: &TestEnv, weight: Option<u32>) -> Option<String> {
    let limits = weight.map_or(json!({}), |w| json!({"cpu_weight": w}));
    let name = unique("cpu").replace('-', "");
    let p = env.profile(&name, json!({"path": "/bin/sh", "limits": limits}));
    let id = 3_000_000 + u64::from(std::process::id());
    let mut cmd = env.agent(&p, &["-c", "sleep 2"]).id(id).command();
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("spawn oz-agent");
    // The agent makes every cgroup of the sandbox and writes its settings before the init
    // joins them: once the pids cgroup (always made) has a process, the cpu one is complete.
    let joined = || {
        let procs = std::fs::read_to_string(sandbox_cgroups("pids", id).first()?.join("cgroup.procs")).ok()?;
        (!procs.trim().is_empty()).then_some(())
    };
    let seen = wait_for(Duration::from_secs(10), joined);
    let v2 = oz_parent("cpu") == Path::new("/sys/fs/cgroup/oz");
    let file = if v2 { "cpu.weight" } else { "cpu.shares" };
    let value = sandbox_cgroups("cpu", id)
        .first()
        .and_then(|d| std::fs::read_to_string(d.join(file)).ok())
        .map(|s| s.trim().to_string());
    let status = child.wait().expect("wait for oz-agent");
    assert!(seen.is_some(), "no process of the sandbox ever joined its pids cgroup");
    assert!(status.success(), "oz-agent: {status}");
    value
}

#[test]
fn cpu_weight_sets_the_share() {
    let mut env = TestEnv::new(json!({}));
    let v2 = oz_parent("cpu") == Path::new("/sys/fs/cgroup/oz");
    let expect = |w: u32, shares: u32| Some(if v2 { w.to_string() } else { shares.to_string() });
    assert_eq!(running_cpu_setting(&env, Some(50)), expect(50, 512));
    assert_eq!(running_cpu_setting(&env, Some(400)), expect(400, 4096));
    // Without cpu_weight the sandbox has no cpu cgroup of its own (the default share).
    if !v2 {
        assert_eq!(running_cpu_setting(&env, None), None);
    }
    env.check_leftovers();
}
