//! The shipped profiles of real desktop programs (`profiles/cells.d/`), launched through the real
//! daemon as the test user with a private Xvfb standing in for the desktop: each shows its
//! window there (found with xdotool, titled as the program titles it), the screenshot is not
//! blank.

mod common_daemon;
mod common_x11;

use common_daemon::{user_a, Daemon, TestUser};
use common_x11::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// A shipped profile, as installed in `/var/lib/oz/cells.d/`.
fn shipped_profile(name: &str) -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../profiles/cells.d/{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn xdotool(display: &str, args: &[&str]) -> String {
    let out = Command::new("xdotool")
        .args(args)
        .env_clear()
        .env("DISPLAY", display)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("xdotool (scripts/deps.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The visible windows on `display` whose name matches the regular expression `pattern`
/// (xdotool): their ids and names.
fn visible_windows(display: &str, pattern: &str) -> Vec<(String, String)> {
    xdotool(display, &["search", "--onlyvisible", "--name", pattern])
        .lines()
        .map(|id| (id.trim().to_string(), xdotool(display, &["getwindowname", id.trim()]).trim().to_string()))
        .collect()
}

/// How many colours the part of screenshot `png` under window `id` has (1: nothing painted).
fn window_colours(display: &str, png: &std::path::Path, id: &str) -> u64 {
    let geo = xdotool(display, &["getwindowgeometry", "--shell", id]);
    let get =
        |k: &str| geo.lines().find_map(|l| l.strip_prefix(&format!("{k}=")).map(str::to_string)).unwrap_or_default();
    let crop = format!("{}x{}+{}+{}", get("WIDTH"), get("HEIGHT"), get("X"), get("Y"));
    let out = Command::new("/usr/bin/convert")
        .args([png.to_str().unwrap(), "-crop", &crop, "+repage", "-format", "%k", "info:"])
        .output()
        .expect("convert (imagemagick)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// Launch shipped profile `name` with the arguments `prepare` returns (it runs under the
/// test lock, and may make files in the user's home), wait for a visible window whose name
/// contains `title`, take a screenshot, kill the sandbox; returns the window names.
fn shows_window(name: &str, prepare: impl FnOnce(&TestUser) -> Vec<String>, title: &str) -> Vec<String> {
    let x = Xvfb::start();
    let d = Daemon::start_with(&[shipped_profile(name)], serde_json::json!({"log_xpra": true}));
    let a = user_a();
    let args = prepare(&a);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = Instant::now();
    let (id, took) = launch_x(&d, &a, &x.display(), name, &args);
    let mut windows = Vec::new();
    let shown = common_daemon::wait_until(Duration::from_secs(30), || {
        windows = visible_windows(&x.display(), title);
        !windows.is_empty()
    });
    let names: Vec<String> = windows.iter().map(|(_, n)| n.clone()).collect();
    let log = || d.oz(&a, &["logs", "--sandbox", &id.to_string()]).stdout;
    assert!(
        shown,
        "{name}: no visible window named *{title}* on {}:\n{}\nlog:\n{}",
        x.display(),
        window_tree(&x.display(), None),
        log()
    );
    eprintln!("x11 {name}: oz launch {took:?}, window {:?} after the launch began: {names:?}", t.elapsed());
    std::thread::sleep(Duration::from_millis(2000));
    let (png, _) = screenshot(&x.display(), &format!("app-{name}"));
    let colours = window_colours(&x.display(), &png, &windows[0].0);
    assert!(colours > 1, "{name}: its window in {} is blank ({colours} colours); log:\n{}", png.display(), log());
    d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
    for f in &args {
        if f.contains("/ozt-") {
            let _ = std::fs::remove_file(f);
        }
    }
    d.finish();
    names
}

#[test]
fn shipped_xterm_shows_its_window() {
    let names = shows_window("xterm", |_| Vec::new(), "xterm");
    assert!(names.iter().any(|n| n.starts_with("[oz] ")), "the window is the sandbox's (Xpra's title): {names:?}");
}
