//! Ephemeral launches through the real daemon as a real user (`oz launch --ephemeral`, oz.conf
//! `enable_ephemerals`): what the program writes in the home, even below a whitelisted home
//! directory, is gone when the sandbox ends, while the same launch without `--ephemeral` keeps
//! it; with `enable_ephemerals` off the launch is refused and says why; `oz list` marks an
//! ephemeral sandbox, also after a restarted daemon re-adopted it, and a later launch of the
//! profile never joins it.

mod common_daemon;

use common_daemon::{profile, user_a, wait_until, Daemon, TestUser};
use oz_integration::env::unique;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A profile running `sh -c SCRIPT` with `${HOME}/<dir>` whitelisted (created when missing).
fn writer(dir: &str) -> serde_json::Value {
    profile(
        "ozt-eph",
        "/bin/sh",
        json!({"multi": true, "whitelist": [{"path": format!("${{HOME}}/{dir}"), "can_create": true}]}),
    )
}

/// Removes the test's directory from the user's home at the end, passed or not.
struct HomeDir(PathBuf);

impl Drop for HomeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Launch the writer (`-e` when `ephemeral`), wait until the program wrote both files inside,
/// kill the sandbox; returns whether each file then exists on the host.
fn write_inside(d: &Daemon, dir: &str, marker: &str, ephemeral: bool) -> (bool, bool) {
    let a = user_a();
    // The whitelisted directory is not there in an ephemeral sandbox: the program makes it.
    let script = format!("mkdir -p ~/{dir}; echo ozt > ~/{dir}/{marker}; echo ozt > ~/{marker}; exec sleep 600");
    let mut args = vec!["launch"];
    if ephemeral {
        args.push("--ephemeral");
    }
    args.extend(["ozt-eph", "--", "-c", &script]);
    let out = d.oz(&a, &args);
    out.assert_ok("oz launch", d);
    let id: u64 = out.stdout.trim().parse().unwrap();
    let init = d.sandbox(id).expect("listed").init_pid;
    // Seen through the sandbox's own root: the files were written inside.
    let inside = |p: &Path| PathBuf::from(format!("/proc/{init}/root{}", p.display()));
    let (in_dir, in_home) = (a.home.join(dir).join(marker), a.home.join(marker));
    let wrote = wait_until(Duration::from_secs(10), || inside(&in_dir).exists() && inside(&in_home).exists());
    assert!(wrote, "the program did not write its files inside (ephemeral: {ephemeral})\n{}", d.log_text());
    d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill", d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
    (in_dir.exists(), in_home.exists())
}

#[test]
fn nothing_written_in_the_home_outlives_an_ephemeral_sandbox() {
    let dir = unique("eph");
    let a = user_a();
    let _cleanup = HomeDir(a.home.join(&dir));
    let marker = unique("file");
    let d = Daemon::start_with(&[writer(&dir)], json!({"enable_ephemerals": true}));

    let (kept_in_dir, kept_in_home) = write_inside(&d, &dir, &marker, true);
    assert!(!kept_in_dir, "a file written below a whitelisted home directory outlived the ephemeral sandbox");
    assert!(!kept_in_home, "a file written in the home outlived the ephemeral sandbox");
    assert!(!a.home.join(&dir).exists(), "the ephemeral launch created the whitelisted directory on the host");

    // Control: the same launch without --ephemeral keeps the file in the whitelisted directory
    // (and, as always, not one written elsewhere in the home).
    let (kept_in_dir, kept_in_home) = write_inside(&d, &dir, &marker, false);
    assert!(kept_in_dir, "the non-ephemeral launch lost the file in its whitelisted directory");
    assert!(!kept_in_home, "a file outside the whitelist reached the home");
    let _ = std::fs::remove_file(a.home.join(&marker));
    d.finish();
}

#[test]
fn ephemeral_launches_are_refused_unless_enabled() {
    let d = Daemon::start(&[writer(&unique("eph"))]);
    let out = d.oz(&user_a(), &["launch", "--ephemeral", "ozt-eph", "--", "-c", "sleep 600"]);
    out.assert_failed("oz launch --ephemeral with enable_ephemerals false");
    assert!(
        out.stderr.contains("ephemeral launch of ozt-eph")
            && out.stderr.contains("ephemeral sandboxes are disabled (oz.conf enable_ephemerals is false)"),
        "{:?}",
        out.stderr
    );
    assert!(d.sandboxes().is_empty(), "a refused launch left a sandbox: {:?}", d.sandboxes());
    d.finish();
}

/// `oz list`'s EPHEMERAL column (the last one) for sandbox `id`, and `oz list --json`'s
/// `ephemeral` field.
fn marks(d: &Daemon, user: &TestUser, id: u64) -> (String, serde_json::Value) {
    let text = d.oz(user, &["list"]);
    text.assert_ok("oz list", d);
    let header = text.stdout.lines().next().unwrap_or_default();
    assert!(header.ends_with("EPHEMERAL"), "oz list has no EPHEMERAL column: {}", text.stdout);
    let row = text.stdout.lines().find(|l| l.split_whitespace().next() == Some(&id.to_string()));
    let row = row.unwrap_or_else(|| panic!("sandbox {id} not in oz list: {}\n{}", text.stdout, d.log_text()));
    let column = row.split_whitespace().last().unwrap_or_default().to_string();
    let json = d.list_json(user).into_iter().find(|s| s["id"].as_u64() == Some(id));
    let json = json.unwrap_or_else(|| panic!("sandbox {id} not in oz list --json"));
    (column, json["ephemeral"].clone())
}

#[test]
fn oz_list_marks_ephemeral_sandboxes_and_a_restarted_daemon_keeps_the_mark() {
    let a = user_a();
    let sleeper = profile("ozt-ephl", "/bin/sleep", json!({}));
    let mut d = Daemon::start_with(&[sleeper], json!({"enable_ephemerals": true}));
    let eph = d.oz(&a, &["launch", "--ephemeral", "ozt-ephl", "--", "600"]);
    eph.assert_ok("oz launch --ephemeral", &d);
    let eph: u64 = eph.stdout.trim().parse().unwrap();
    let normal = d.launch(&a, "ozt-ephl", &["600"]);
    assert_ne!(eph, normal, "the normal launch joined the ephemeral sandbox");
    assert_eq!(marks(&d, &a, eph), ("yes".into(), json!(true)), "the ephemeral sandbox");
    assert_eq!(marks(&d, &a, normal), ("no".into(), json!(false)), "the normal sandbox");

    d.kill9();
    d.spawn();
    let back = wait_until(Duration::from_secs(5), || d.list_json(&a).len() == 2);
    assert!(back, "not re-adopted: {:?}\n{}", d.list_json(&a), d.log_text());
    assert_eq!(marks(&d, &a, eph), ("yes".into(), json!(true)), "the re-adopted ephemeral sandbox");
    assert_eq!(marks(&d, &a, normal), ("no".into(), json!(false)), "the re-adopted normal sandbox");
    // The restarted daemon knows the sandbox is ephemeral: once the normal one is gone, a
    // launch of the profile builds a new sandbox instead of joining the ephemeral one.
    d.oz(&a, &["kill", &normal.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(normal, Duration::from_secs(10)).unwrap();
    let again = d.launch(&a, "ozt-ephl", &["600"]);
    assert_ne!(again, eph, "a normal launch joined the re-adopted ephemeral sandbox");
    assert_eq!(marks(&d, &a, again), ("no".into(), json!(false)), "the new normal sandbox");
    d.finish();
}
