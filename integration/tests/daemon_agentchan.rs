//! The daemon's channel to an agent never makes the daemon wait: a sandbox that floods output
//! while its owner sends large concurrent requests leaves the daemon answering everyone, a
//! request too large for one agent packet is refused with the limit named, and the agent
//! rate-limits log records, saying how many it dropped. A user who asks for a thousand Xpra
//! client restarts at once and never reads the answers slows only their own sandbox.

mod common_daemon;
mod common_x11;

use common_daemon::{profile, run, user_a, user_b, wait_until, Daemon, TestUser};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// A sandbox whose program writes lines as fast as it can.
fn flooder() -> serde_json::Value {
    profile("ozt-flood", "/bin/sh", json!({}))
}

const FLOOD: &[&str] = &["-c", "exec yes ozt-flood-line"];

/// `n` absolute paths of about `len` bytes under `home` (they need not exist).
fn long_paths(home: &Path, n: usize, len: usize) -> Vec<String> {
    let stem = "x".repeat(len.saturating_sub(home.as_os_str().len() + 12));
    (0..n).map(|i| format!("{}/ozt-{stem}/{i:05}", home.display())).collect()
}

fn mount_args<'a>(id: &'a str, paths: &'a [String]) -> Vec<&'a str> {
    let mut args = vec!["mount", id];
    args.extend(paths.iter().map(String::as_str));
    args
}

fn vm_kib(pid: i32, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn flooding_sandbox_with_idle_followers_and_concurrent_large_mounts_never_stalls_the_daemon() {
    let d = Daemon::start(&[flooder()]);
    let (a, b) = (user_a(), user_b());
    let id = d.launch(&a, "ozt-flood", FLOOD);
    let socket: PathBuf = d.socket.clone();
    // 20 live log readers that never read.
    let idle: Vec<_> = (0..20)
        .map(|_| {
            let mut c = d.root_client();
            c.send_with_fds(&oz_wire::ClientRequest::Logs { sandbox: None, follow: true, count: None }, &[]).unwrap();
            c
        })
        .collect();
    // 8 concurrent requests of 1,000 paths of ~130 bytes each (about 140 KB per message).
    let paths = long_paths(&a.home, 1000, 130);
    let mounts: Vec<_> = (0..8)
        .map(|_| {
            let (socket, a, paths): (PathBuf, TestUser, Vec<String>) = (socket.clone(), a.clone(), paths.clone());
            thread::spawn(move || {
                let id = id.to_string();
                run::oz(&socket, &a, &mount_args(&id, &paths), None, Duration::from_secs(60))
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(200));
    let mut latencies = Vec::new();
    let mut rss_max = 0;
    for _ in 0..20 {
        let t = Instant::now();
        let out = run::oz(&socket, &b, &["list"], None, Duration::from_secs(5));
        let took = t.elapsed();
        out.assert_ok("oz list as user b during the flood", &d);
        latencies.push(took);
        rss_max = rss_max.max(vm_kib(d.pid(), "VmRSS:"));
        thread::sleep(Duration::from_millis(500));
    }
    let outcomes: Vec<_> = mounts.into_iter().map(|h| h.join().expect("oz mount finished in time")).collect();
    latencies.sort();
    let (median, max) = (latencies[latencies.len() / 2], latencies[latencies.len() - 1]);
    let hwm = vm_kib(d.pid(), "VmHWM:");
    eprintln!(
        "flood: oz list as user b: median {median:?}, max {max:?} over {} runs; daemon VmRSS max seen {rss_max} KiB, VmHWM {hwm} KiB",
        latencies.len()
    );
    for out in &outcomes {
        eprintln!("flood: oz mount: {}", out.stderr.trim().chars().take(160).collect::<String>());
        // The paths do not exist: each request is answered (refused by the agent, or by the
        // daemon when its queue to the agent is full), never left hanging.
        assert!(!out.status.success(), "mount of missing paths succeeded: {out:?}");
        assert!(out.stderr.starts_with("oz: "), "one-line error: {:?}", out.stderr);
    }
    assert!(max < Duration::from_secs(1), "oz list took {max:?} during the flood (median {median:?})");
    assert!(rss_max < 128 * 1024, "daemon VmRSS reached {rss_max} KiB during the flood");
    drop(idle);
    // Still responsive to the flooding user and to root, and the sandbox still runs.
    d.oz(&a, &["list"]).assert_ok("oz list as user a after the flood", &d);
    let listed = d.sandbox(id).expect("flooding sandbox still listed");
    assert!(matches!(listed.phase, oz_wire::SandboxState::Running), "{listed:?}");
    d.finish();
}

#[test]
fn a_request_too_large_for_one_agent_packet_is_refused_with_the_limit() {
    let d = Daemon::start(&[profile("ozt-sleep", "/bin/sleep", json!({}))]);
    let a = user_a();
    let id = d.launch(&a, "ozt-sleep", &["600"]);
    // About 800 KB: below the control socket's 1 MiB frame cap, far above one agent packet.
    let paths = long_paths(&a.home, 1000, 800);
    let out = run::oz(&d.socket, &a, &mount_args(&id.to_string(), &paths), None, Duration::from_secs(10));
    out.assert_failed("oversized oz mount");
    let limit = oz_wire::channel::AGENT_MAX_MESSAGE.to_string();
    assert!(
        out.stderr.contains("mount request is ")
            && out.stderr.contains(&format!("the limit for one agent message is {limit}")),
        "error names the size and the limit: {:?}",
        out.stderr
    );
    // The sandbox still works: a real file mounts.
    let file = a.home.join(format!("ozt-agentchan-{}.txt", std::process::id()));
    std::fs::write(&file, "ozt").unwrap();
    std::os::unix::fs::chown(&file, Some(a.uid), Some(a.gid)).unwrap();
    let out = d.oz(&a, &["mount", &id.to_string(), file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    out.assert_ok("oz mount after the refused one", &d);
    assert!(d.sandbox(id).expect("listed").mounts.contains(&file));
    d.finish();
}

#[test]
fn a_flooding_program_gets_a_records_dropped_record() {
    let d = Daemon::start(&[flooder()]);
    let a = user_a();
    let id = d.launch(&a, "ozt-flood", FLOOD);
    let logs = || d.oz(&a, &["logs", "--sandbox", &id.to_string()]).stdout;
    let seen = wait_until(Duration::from_secs(15), || logs().contains(" records dropped (log rate limit"));
    assert!(seen, "no records-dropped record in oz logs; its tail:\n{}", tail(&logs()));
    // The daemon answers everyone meanwhile.
    let t = Instant::now();
    d.oz(&user_b(), &["list"]).assert_ok("oz list as user b", &d);
    assert!(t.elapsed() < Duration::from_secs(1), "oz list took {:?}", t.elapsed());
    d.finish();
}

#[test]
fn a_thousand_unread_relaunchxpra_requests_leave_the_daemon_answering_and_one_client() {
    use common_x11::{children_named, wait_window, window_tree, Xvfb};
    let x = Xvfb::start();
    let xclock = profile("ozt-xclock", "/usr/bin/xclock", json!({"xserver": {"enabled": true, "backend": "xpra"}}));
    let d = Daemon::start(&[xclock]);
    let (a, b) = (user_a(), user_b());
    let (id, _) = common_x11::launch_x(&d, &a, &x.display(), "ozt-xclock", &[]);
    let agent = d.sandbox(id).expect("listed").agent_pid as i32;
    assert!(wait_window(&x.display(), None, "xclock", Duration::from_secs(15)).is_some(), "no window at first");

    // 64 connections (the per-user limit) with 16 pipelined requests each, never read.
    let mut flood = common_daemon::flood(&d, &a, 64, 16, &["relaunchxpra", &id.to_string()]);
    let (median, max, rss_max) = list_latencies(&d, &b);
    eprintln!("relaunch flood: oz list as user b: median {median:?}, max {max:?}; daemon VmRSS max {rss_max} KiB");
    assert!(max < Duration::from_secs(1), "oz list took {max:?} during the relaunch flood (median {median:?})");
    assert!(rss_max < 128 * 1024, "daemon VmRSS reached {rss_max} KiB during the relaunch flood");

    drop(flood.stdin.take());
    let _ = flood.wait();
    // Once the flood is over the sandbox settles with exactly one client and its window.
    let settled = wait_until(Duration::from_secs(60), || {
        children_named(agent, "xpra").len() == 1 && window_tree(&x.display(), None).contains("xclock")
    });
    assert!(
        settled,
        "after the flood: xpra clients {:?}, windows:\n{}",
        children_named(agent, "xpra"),
        window_tree(&x.display(), None)
    );
    let listed = d.sandbox(id).expect("sandbox still listed");
    assert!(matches!(listed.phase, oz_wire::SandboxState::Running), "{listed:?}");
    d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill after the flood", &d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
    d.finish();
}

fn tail(s: &str) -> String {
    let lines: Vec<_> = s.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// `oz list` as `user` 20 times, 250 ms apart: (median, max) latency and the daemon's largest
/// VmRSS in KiB meanwhile.
fn list_latencies(d: &Daemon, user: &TestUser) -> (Duration, Duration, u64) {
    let mut latencies = Vec::new();
    let mut rss_max = 0;
    for _ in 0..20 {
        let t = Instant::now();
        run::oz(&d.socket, user, &["list"], None, Duration::from_secs(5)).assert_ok("oz list during the flood", d);
        latencies.push(t.elapsed());
        rss_max = rss_max.max(vm_kib(d.pid(), "VmRSS:"));
        thread::sleep(Duration::from_millis(250));
    }
    latencies.sort();
    (latencies[latencies.len() / 2], latencies[latencies.len() - 1], rss_max)
}

#[test]
fn a_thousand_unread_forward_and_forwarders_requests_leave_the_daemon_answering_and_16_forwarders() {
    let ext = json!([{"name": "ozt-ext", "dynamic": true, "multi": true, "proto": "tcp", "extproto": "unix",
                      "targethost": "127.0.0.1", "targetport": 8080}]);
    let p =
        profile("ozt-fwd-flood", "/bin/sleep", json!({"networking": {"type": "empty"}, "external_forwarders": ext}));
    let d = Daemon::start(&[p]);
    let (a, b) = (user_a(), user_b());
    let id = d.launch(&a, "ozt-fwd-flood", &["600"]);
    let sid = id.to_string();

    // The per-user limit of 64 connections, half asking to open a forwarder and half to list
    // them, 16 pipelined requests on each, never read.
    let floods = [
        common_daemon::flood(&d, &a, 32, 16, &["forward", &sid, "ozt-ext"]),
        common_daemon::flood(&d, &a, 32, 16, &["forwarders", &sid]),
    ];
    let (median, max, rss_max) = list_latencies(&d, &b);
    eprintln!("forward flood: oz list as user b: median {median:?}, max {max:?}; daemon VmRSS max {rss_max} KiB");
    assert!(max < Duration::from_secs(1), "oz list took {max:?} during the forward flood (median {median:?})");
    assert!(rss_max < 128 * 1024, "daemon VmRSS reached {rss_max} KiB during the forward flood");

    for mut f in floods {
        drop(f.stdin.take());
        let _ = f.wait();
    }
    // Afterwards the sandbox runs and holds the 16 external forwarders allowed, no more.
    let listed = d.oz(&a, &["forwarders", &sid, "--json"]);
    listed.assert_ok("oz forwarders after the flood", &d);
    let list: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout).unwrap();
    let external = list.iter().filter(|f| f["name"].as_str().is_some_and(|n| n.starts_with("external "))).count();
    eprintln!("forward flood: {external} external forwarders afterwards");
    assert!((1..=16).contains(&external), "{external} external forwarders after the flood, first: {:?}", list.first());
    let dir = oz_wire::state::forward_dir(&d.ws.state_dir, id);
    let sockets = std::fs::read_dir(&dir).map(|r| r.count()).unwrap_or(0);
    assert!(sockets <= 16, "{sockets} host sockets in {} after the flood", dir.display());
    let sandbox = d.sandbox(id).expect("sandbox still listed");
    assert!(matches!(sandbox.phase, oz_wire::SandboxState::Running), "{sandbox:?}");
    d.oz(&a, &["kill", &sid]).assert_ok("oz kill after the flood", &d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
    d.finish();
}

#[test]
fn a_flood_of_unread_ephemeral_launches_leaves_the_daemon_answering_and_the_user_at_the_limit() {
    let p = profile("ozt-eph-flood", "/bin/sleep", json!({}));
    let d = Daemon::start_with(&[p], json!({"enable_ephemerals": true, "max_sandboxes_per_user": 4}));
    let (a, b) = (user_a(), user_b());

    // 16 connections of 16 pipelined ephemeral launches each, never read.
    let mut flood = common_daemon::flood(&d, &a, 16, 16, &["launch-ephemeral", "ozt-eph-flood", "600"]);
    let (median, max, rss_max) = list_latencies(&d, &b);
    eprintln!("ephemeral flood: oz list as user b: median {median:?}, max {max:?}; daemon VmRSS max {rss_max} KiB");
    assert!(max < Duration::from_secs(1), "oz list took {max:?} during the launch flood (median {median:?})");
    assert!(rss_max < 128 * 1024, "daemon VmRSS reached {rss_max} KiB during the launch flood");

    drop(flood.stdin.take());
    let _ = flood.wait();
    // The user holds at most the sandboxes allowed. A launch the daemon was still serving when
    // the flood's connections closed may yet start once a place frees: kill until none comes back.
    let mut quiet_since = Instant::now();
    let mut most = 0;
    while quiet_since.elapsed() < Duration::from_secs(3) {
        let mine: Vec<u64> = d.sandboxes().iter().filter(|s| s.uid == a.uid).map(|s| s.id).collect();
        most = most.max(mine.len());
        assert!(mine.len() <= 4, "user a holds {} sandboxes after the flood: {mine:?}", mine.len());
        if !mine.is_empty() {
            quiet_since = Instant::now();
        }
        for id in mine {
            d.oz_root(&["kill", &id.to_string()], b"").assert_ok("oz kill after the flood", &d);
            d.wait_gone(id, Duration::from_secs(10)).unwrap();
        }
        thread::sleep(Duration::from_millis(200));
    }
    eprintln!("ephemeral flood: user a held at most {most} sandboxes afterwards");
    assert!(most >= 1, "the flood launched nothing");
    // User b still has an allowance of their own.
    let other = d.launch(&b, "ozt-eph-flood", &["600"]);
    d.oz(&b, &["kill", &other.to_string()]).assert_ok("oz kill as user b", &d);
    d.wait_gone(other, Duration::from_secs(10)).unwrap();
    d.finish();
}

#[test]
fn a_flood_of_unread_attached_runs_full_of_seccomp_reports_leaves_the_daemon_answering() {
    // Paths the sandbox lacks but the host has: each failed open is a seccomp hint (audit mode
    // reports up to 64 per sandbox), sent to the run's client ahead of ProgramExited.
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut args = vec!["-c".to_string(), "for f; do cat \"$f\"; done 2>/dev/null; exit 0".into(), "sh".into()];
    for i in 0..80 {
        let f = dir.path().join(format!("host-only-{i}"));
        std::fs::write(&f, "x").unwrap();
        args.push(f.display().to_string());
    }
    let p =
        profile("ozt-rep-flood", "/bin/sh", json!({"multi": true, "seccomp": {"mode": "blacklist", "enforce": false}}));
    let d = Daemon::start_with(&[p], json!({"max_sandboxes_per_user": 8}));
    let (a, b) = (user_a(), user_b());

    // 8 connections of 4 pipelined attached runs each, nothing ever read.
    let mut verb = vec!["run", "ozt-rep-flood"];
    verb.extend(args.iter().map(String::as_str));
    let mut flood = common_daemon::flood(&d, &a, 8, 4, &verb);
    let (median, max, rss_max) = list_latencies(&d, &b);
    eprintln!("report flood: oz list as user b: median {median:?}, max {max:?}; daemon VmRSS max {rss_max} KiB");
    assert!(max < Duration::from_secs(1), "oz list took {max:?} during the run flood (median {median:?})");
    assert!(rss_max < 128 * 1024, "daemon VmRSS reached {rss_max} KiB during the run flood");
    drop(flood.stdin.take());
    let _ = flood.wait();
    let ran = d.log_text().matches("program exited").count();
    eprintln!("report flood: {ran} runs ended");
    assert!(ran >= 8, "the flood ran {ran} programs");

    // The flood's sandboxes end (attached runs end theirs), and a run read to the end still
    // gets its summary of the same reports.
    let gone = wait_until(Duration::from_secs(30), || d.sandboxes().iter().all(|s| s.uid != a.uid));
    assert!(gone, "user a's sandboxes outlived the flood: {:?}", d.sandboxes());
    let mut argv = vec!["run", "ozt-rep-flood", "--"];
    argv.extend(args.iter().map(String::as_str));
    let out = d.oz(&a, &argv);
    assert_eq!(out.code(), 0, "{}", out.stderr);
    assert!(out.stderr.contains(" missing in the sandbox exist"), "no summary after the flood: {}", out.stderr);
    d.finish();
}
