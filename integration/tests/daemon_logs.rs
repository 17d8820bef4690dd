//! The daemon's logs: bounded memory under floods and idle readers, a fair ring, skip markers
//! for slow readers, private files that carry program output (and stderr that does not),
//! rotation, unique file names across restarts, and escaped control characters.

mod common_daemon;

use common_daemon::{profile, user_a, user_b, wait_until, Daemon};
use oz_wire::client::Client;
use oz_wire::ClientRequest;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Resident memory of a process in kB.
fn rss_kb(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn profiles() -> Vec<serde_json::Value> {
    vec![profile("ozt-sh", "/bin/sh", json!({"multi": true})), profile("ozt-yes", "/usr/bin/yes", json!({}))]
}

/// Files in `dir` whose names start with `prefix`, sorted.
fn files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    v.sort();
    v
}

fn logs_contain(d: &Daemon, id: u64, what: &str) -> bool {
    wait_until(Duration::from_secs(10), || {
        d.oz(&user_a(), &["logs", "--sandbox", &id.to_string()]).stdout.contains(what)
    })
}

#[test]
fn flood_with_idle_followers_keeps_memory_bounded_and_others_served() {
    let d = Daemon::start(&profiles());
    let (a, b) = (user_a(), user_b());
    let quiet = d.launch(&a, "ozt-sh", &["-c", "echo ozt-a-keep; sleep 600"]);
    assert!(logs_contain(&d, quiet, "ozt-a-keep"), "user a's line never reached the log");
    let before = rss_kb(d.pid());
    let flood = d.launch(&b, "ozt-yes", &["ozt-b-flood"]);
    let mut idle: Vec<Client> = Vec::new();
    for _ in 0..60 {
        let mut c = d.root_client();
        c.send_with_fds(&ClientRequest::Logs { sandbox: None, follow: true, count: None }, &[]).unwrap();
        idle.push(c);
    }
    let (mut peak, start) = (before, Instant::now());
    while start.elapsed() < Duration::from_secs(15) {
        peak = peak.max(rss_kb(d.pid()));
        assert!(peak < 128 * 1024, "daemon RSS {peak} kB with a flood and 60 idle followers\n");
        std::thread::sleep(Duration::from_millis(250));
    }
    let t = Instant::now();
    d.oz(&a, &["list"]).assert_ok("oz list by another user during the flood", &d);
    let answered = t.elapsed();
    let own = d.oz(&a, &["logs", "--sandbox", &quiet.to_string()]);
    d.oz(&b, &["kill", &flood.to_string()]).assert_ok("oz kill flood", &d);
    drop(idle);
    std::thread::sleep(Duration::from_secs(1));
    let after = rss_kb(d.pid());
    eprintln!("daemon RSS: before {before} kB, peak {peak} kB, after {after} kB; oz list answered in {answered:?}");
    // The ring holds 1000 records: the flood pushed many times that through it.
    let flooded: usize = files(&d.ws.log_dir, &format!("sandbox-{flood}-"))
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap().matches("ozt-b-flood").count())
        .sum();
    assert!(flooded > 5000, "the flood pushed only {flooded} records");
    assert!(own.stdout.contains("ozt-a-keep"), "user b's flood evicted user a's record: {}", own.stdout);
    assert!(answered < Duration::from_secs(5), "oz list took {answered:?}");
    d.finish();
}

#[test]
fn slow_follower_gets_a_skipped_marker() {
    let d = Daemon::start(&profiles());
    let id = d.launch(&user_a(), "ozt-yes", &["ozt-fast"]);
    let mut c = d.root_client();
    let mut stream = c.logs(Some(id), true, Some(1)).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let start = Instant::now();
    let marker = stream
        .by_ref()
        .take_while(|_| start.elapsed() < Duration::from_secs(10))
        .map(|r| r.unwrap().message)
        .find(|m| m.starts_with("skipped ") && m.contains(" records"));
    drop(c);
    assert!(marker.is_some(), "no \"skipped N records\" marker for a reader that fell behind");
    d.finish();
}

#[test]
fn log_files_are_private_and_program_output_stays_off_stderr() {
    let d = Daemon::start(&profiles());
    let (a, b) = (user_a(), user_b());
    let id = d.launch(&a, "ozt-sh", &["-c", r"printf 'ozt-secret \033[31mred\033[0m\n'; sleep 600"]);
    assert!(logs_contain(&d, id, "ozt-secret"), "the program's line never reached the log");
    let dir = &d.ws.log_dir;
    let mode = std::fs::metadata(dir).unwrap().mode() & 0o777;
    assert!(mode == 0o700 || mode == 0o711, "log_dir is mode {mode:o}");
    assert!(b.sh(&format!("ls {}", dir.display())).is_err(), "user b lists log_dir");
    let file = files(dir, &format!("sandbox-{id}-")).pop().expect("the sandbox's log file");
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    assert!(b.sh(&format!("cat {}", file.display())).is_err(), "user b reads a's log file");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(r"ozt-secret \e[31mred\e[0m") && !text.contains('\x1b'), "file not escaped: {text:?}");
    assert!(!d.log_text().contains("ozt-secret"), "program output on the daemon's stderr:\n{}", d.log_text());

    let json = d.oz(&a, &["logs", "--json", "--sandbox", &id.to_string()]);
    let exact = json
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|v| v["message"] == "ozt-secret \x1b[31mred\x1b[0m");
    assert!(exact, "--json lost the exact bytes: {}", json.stdout);
    let mut cmd = a.command(common_daemon::bin("oz"));
    cmd.args(["logs", "--sandbox", &id.to_string()]).env("OZ_SOCKET", &d.socket);
    let tty = oz_integration::run::run(cmd, oz_integration::run::Opts { pty: true, ..Default::default() }).unwrap();
    assert!(
        tty.stdout.contains(r"ozt-secret \e[31mred\e[0m") && !tty.stdout.contains('\x1b'),
        "terminal got: {:?}",
        tty.stdout
    );
    d.finish();
}

#[test]
fn log_files_rotate_and_a_restarted_daemon_starts_new_ones() {
    let mut d = Daemon::start_with(&profiles(), json!({"log_max_bytes": 2000, "log_keep": 2}));
    let a = user_a();
    let id = d.launch(&a, "ozt-sh", &["-c", "seq 1 300 | sed s/^/ozt-line-/; sleep 600"]);
    assert!(logs_contain(&d, id, "ozt-line-300"), "the last line never reached the log");
    let dir = d.ws.log_dir.clone();
    let first = files(&dir, &format!("sandbox-{id}-"));
    let names: Vec<String> = first.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(names.len(), 3, "one file and log_keep=2 rotated ones: {names:?}");
    assert!(names[1].ends_with(".log.1") && names[2].ends_with(".log.2"), "{names:?}");
    for f in &first {
        assert!(std::fs::metadata(f).unwrap().len() <= 2000, "{} is over log_max_bytes", f.display());
    }
    assert!(std::fs::read_to_string(&first[0]).unwrap().contains("ozt-line-300"));

    d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
    d.signal_and_wait(libc::SIGTERM, Duration::from_secs(10)).expect("daemon stops");
    d.spawn();
    let again = d.launch(&a, "ozt-sh", &["-c", "echo ozt-second-life; sleep 600"]);
    assert_eq!(again, id, "ids restart with the daemon");
    assert!(logs_contain(&d, again, "ozt-second-life"));
    for f in &first {
        assert!(
            !std::fs::read_to_string(f).unwrap().contains("ozt-second-life"),
            "{} reused by a later sandbox {id}",
            f.display()
        );
    }
    let now = files(&dir, &format!("sandbox-{id}-"));
    assert!(now.iter().any(|f| std::fs::read_to_string(f).unwrap().contains("ozt-second-life")), "{now:?}");
    d.finish();
}
