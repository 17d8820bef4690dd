//! The `xserver` options, end to end through the real daemon as the test user, with a private
//! Xvfb standing in for the user's desktop: each test looks at what the option changes (the
//! host-side client's environment, what the sandbox can reach, what crosses the clipboard) and
//! at the same thing without the option.

mod common_daemon;
mod common_x11;

use common_daemon::{profile, user_a, wait_until, Daemon, TestUser};
use common_x11::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

fn x_profile(name: &str, path: &str, backend: &str, xserver: serde_json::Value) -> serde_json::Value {
    let mut x = json!({"enabled": true, "backend": backend});
    if let (Some(o), serde_json::Value::Object(extra)) = (x.as_object_mut(), xserver) {
        o.extend(extra);
    }
    profile(name, path, json!({"xserver": x, "networking": {"type": "empty"}}))
}

fn kill(d: &Daemon, a: &TestUser, id: u64) {
    d.oz(a, &["kill", &id.to_string()]).assert_ok("oz kill", d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
}

fn environ(pid: i32) -> Vec<String> {
    let raw = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
    raw.split(|b| *b == 0).map(|e| String::from_utf8_lossy(e).into_owned()).collect()
}

/// `xserver.env` items with a value are set in the host-side Xpra client's environment (the
/// program it is meant for), and nowhere without them.
#[test]
fn xserver_env_reaches_the_xpra_client() {
    let x = Xvfb::start();
    let env = json!({"env": [{"name": "OZT_XENV", "value": "from-the-profile"}]});
    let d = Daemon::start(&[
        x_profile("ozt-xenv", "/usr/bin/xclock", "xpra", env),
        x_profile("ozt-xplain", "/usr/bin/xclock", "xpra", json!({})),
    ]);
    let a = user_a();
    for (prof, want) in [("ozt-xenv", true), ("ozt-xplain", false)] {
        let (id, _) = launch_x(&d, &a, &x.display(), prof, &[]);
        let agent = d.sandbox(id).unwrap().agent_pid as i32;
        let clients = children_named(agent, "xpra");
        assert_eq!(clients.len(), 1, "{prof}: one xpra client: {clients:?}");
        let has = environ(clients[0]).contains(&"OZT_XENV=from-the-profile".to_string());
        assert_eq!(has, want, "{prof}: OZT_XENV in the client's environment: {:?}", environ(clients[0]));
        kill(&d, &a, id);
    }
    d.finish();
}

/// `/run/user/UID` of a test user for one test (0700, the user's), removed with what the test
/// put there when the test made it, even when the test fails.
struct RunDir {
    path: std::path::PathBuf,
    made: Vec<std::path::PathBuf>,
}

impl RunDir {
    fn ensure(a: &TestUser) -> RunDir {
        let path = std::path::PathBuf::from(format!("/run/user/{}", a.uid));
        let made: Vec<_> =
            [path.parent().unwrap().to_path_buf(), path.clone()].into_iter().filter(|p| !p.exists()).collect();
        if made.contains(&path) {
            std::fs::create_dir_all(&path).unwrap();
            std::os::unix::fs::chown(&path, Some(a.uid), Some(a.gid)).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        }
        RunDir { path, made }
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(self.path.join("pulse"));
        for p in self.made.iter().rev() {
            let _ = if *p == self.path { std::fs::remove_dir_all(p) } else { std::fs::remove_dir(p) };
        }
    }
}

/// `audio_mode: pulseaudio` binds the user's PulseAudio socket (`/run/user/UID/pulse/native`)
/// and cookie into the sandbox; without it neither is there.
#[test]
fn pulseaudio_socket_only_with_audio_mode_pulseaudio() {
    let x = Xvfb::start();
    let py = |name: &str, extra: serde_json::Value| x_profile(name, "/usr/bin/python3", "xephyr", extra);
    let d = Daemon::start_with(
        &[py("ozt-pulse", json!({"audio_mode": "pulseaudio"})), py("ozt-nopulse", json!({}))],
        json!({"log_xpra": true}),
    );
    let a = user_a();
    let run = RunDir::ensure(&a);
    let run_dir = run.path.clone();
    let socket = run_dir.join("pulse/native");
    a.sh(&format!(
        "mkdir -p {dir}/pulse ~/.config/pulse && rm -f {s} && printf cookie > ~/.config/pulse/cookie && \
         /usr/bin/python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"{s}\")'",
        dir = run_dir.display(),
        s = socket.display()
    ))
    .expect("a fake PulseAudio socket of the user");
    let script = format!(
        "import os, stat\nst = os.lstat('{s}') if os.path.lexists('{s}') else None\n\
         print('socket', st is not None and stat.S_ISSOCK(st.st_mode))\n\
         print('cookie', os.path.exists(os.path.expanduser('~/.config/pulse/cookie')))",
        s = socket.display()
    );
    for (prof, want) in [("ozt-pulse", "True"), ("ozt-nopulse", "False")] {
        let out = oz_display(&d, &a, &x.display(), &["run", prof, "--", "-c", &script]);
        out.assert_ok(&format!("oz run {prof}"), &d);
        assert!(
            out.stdout.contains(&format!("socket {want}")),
            "{prof}: PulseAudio socket present should be {want}: {}",
            out.stdout
        );
        assert!(
            out.stdout.contains(&format!("cookie {want}")),
            "{prof}: PulseAudio cookie present should be {want}: {}",
            out.stdout
        );
    }
    let _ = a.sh("rm -rf ~/.config/pulse");
    drop(run);
    d.finish();
}

/// What `xclip -o -selection SEL` reads on the host display.
fn host_selection(display: &str, sel: &str) -> String {
    let out = Command::new("xclip")
        .args(["-o", "-selection", sel])
        .env_clear()
        .env("DISPLAY", display)
        .output()
        .expect("xclip (scripts/deps.sh installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sandbox's program owns CLIPBOARD and PRIMARY (`xclip` inside): CLIPBOARD reaches the
/// user's display unless `disable_clipboard`; PRIMARY never does.
#[test]
fn clipboard_crosses_only_as_the_profile_says() {
    let x = Xvfb::start();
    let d = Daemon::start_with(
        &[
            x_profile("ozt-xclip", "/bin/sh", "xpra", json!({})),
            x_profile("ozt-xnoclip", "/bin/sh", "xpra", json!({"disable_clipboard": true})),
        ],
        json!({"log_xpra": true}),
    );
    let a = user_a();
    let script = "printf ozt-clipboard-text | xclip -selection clipboard -quiet & \
                  printf ozt-primary-text | xclip -selection primary -quiet & wait";
    for (prof, crosses) in [("ozt-xnoclip", false), ("ozt-xclip", true)] {
        let (id, _) = launch_x(&d, &a, &x.display(), prof, &["-c", script]);
        let arrived = wait_until(Duration::from_secs(if crosses { 15 } else { 6 }), || {
            host_selection(&x.display(), "clipboard") == "ozt-clipboard-text"
        });
        let log = || d.oz(&a, &["logs", "--sandbox", &id.to_string()]).stdout;
        assert_eq!(
            arrived,
            crosses,
            "{prof}: CLIPBOARD on the host: {:?}\n{}",
            host_selection(&x.display(), "clipboard"),
            log()
        );
        let primary = host_selection(&x.display(), "primary");
        assert_ne!(primary, "ozt-primary-text", "{prof}: PRIMARY must never reach the host");
        kill(&d, &a, id);
    }
    d.finish();
}

/// The windows of the sandbox's programs on the user's display (titled `[oz] ...` by Xpra).
fn xpra_windows(display: &str) -> Vec<String> {
    let out = Command::new("xdotool")
        .args(["search", "--onlyvisible", "--name", "^\\[oz\\] "])
        .env_clear()
        .env("DISPLAY", display)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("xdotool (scripts/deps.sh installs it)");
    String::from_utf8_lossy(&out.stdout).lines().map(|l| l.trim().to_string()).collect()
}

/// `_NET_WM_ICON` of window `id`: the first icon's width, height and ARGB pixels (empty when
/// the window has none).
fn net_wm_icon(display: &str, id: &str) -> Vec<u64> {
    let out = Command::new("xprop")
        .args(["-id", id, "-notype", "-f", "_NET_WM_ICON", "32c", "=$0+\n", "_NET_WM_ICON"])
        .env_clear()
        .env("DISPLAY", display)
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("xprop (x11-utils)");
    let text = String::from_utf8_lossy(&out.stdout);
    let values: Vec<u64> = text
        .strip_prefix("_NET_WM_ICON=")
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_default();
    match values.as_slice() {
        [w, h, rest @ ..] if (rest.len() as u64) >= w * h => values[..2 + (w * h) as usize].to_vec(),
        _ => Vec::new(),
    }
}

/// `window_icon`: the program's window on the user's display carries the profile's image as
/// `_NET_WM_ICON` (xclock has no icon of its own); without the option it does not.
#[test]
fn window_icon_is_set_on_the_programs_window() {
    let x = Xvfb::start();
    let icons = Icons::new("wicon");
    let green = (0x20, 0xc0, 0x40);
    let icon = icons.solid("window.png", 16, green);
    let d = Daemon::start_with(
        &[
            x_profile("ozt-wicon", "/usr/bin/xclock", "xpra", json!({"window_icon": icon})),
            x_profile("ozt-nowicon", "/usr/bin/xclock", "xpra", json!({})),
        ],
        json!({"log_xpra": true}),
    );
    let a = user_a();
    let argb = 0xff00_0000 | (green.0 as u64) << 16 | (green.1 as u64) << 8 | green.2 as u64;
    for (prof, want) in [("ozt-wicon", true), ("ozt-nowicon", false)] {
        let (id, _) = launch_x(&d, &a, &x.display(), prof, &[]);
        let mut windows = Vec::new();
        assert!(
            wait_until(Duration::from_secs(15), || {
                windows = xpra_windows(&x.display());
                !windows.is_empty()
            }),
            "{prof}: no window"
        );
        let mut icon = Vec::new();
        let carries = wait_until(Duration::from_secs(if want { 10 } else { 3 }), || {
            icon = net_wm_icon(&x.display(), &windows[0]);
            icon.len() == 2 + 16 * 16 && icon[2..].iter().all(|p| *p == argb)
        });
        let log = d.oz(&a, &["logs", "--sandbox", &id.to_string()]).stdout;
        assert_eq!(carries, want, "{prof}: _NET_WM_ICON of {} is the profile's image: {icon:?}\n{log}", windows[0]);
        kill(&d, &a, id);
    }
    d.finish();
}

/// `enable_tray` with `tray_icon`: the Xpra client docks an icon in the desktop's system tray,
/// painted with the profile's image; with `enable_tray` alone it docks Xpra's own icon, and
/// without `enable_tray` nothing docks.
#[test]
fn tray_icon_docks_in_the_system_tray_with_the_profiles_image() {
    let x = Xvfb::start();
    let icons = Icons::new("ticon");
    let magenta = (0xff, 0x00, 0xff);
    let icon = icons.solid("tray.png", 32, magenta);
    let d = Daemon::start_with(
        &[
            x_profile("ozt-tray", "/usr/bin/xclock", "xpra", json!({"enable_tray": true, "tray_icon": icon})),
            x_profile("ozt-traydefault", "/usr/bin/xclock", "xpra", json!({"enable_tray": true})),
            x_profile("ozt-notray", "/usr/bin/xclock", "xpra", json!({"tray_icon": icon})),
        ],
        json!({"log_xpra": true}),
    );
    let a = user_a();
    for (prof, docks, painted) in
        [("ozt-tray", true, true), ("ozt-traydefault", true, false), ("ozt-notray", false, false)]
    {
        let tray = Tray::start(&x.display());
        let (id, _) = launch_x(&d, &a, &x.display(), prof, &[]);
        assert!(wait_window(&x.display(), None, "xclock", Duration::from_secs(15)).is_some(), "{prof}: no window");
        let docked =
            wait_until(Duration::from_secs(if docks { 10 } else { 3 }), || !tray.docked(&x.display()).is_empty());
        let log = || d.oz(&a, &["logs", "--sandbox", &id.to_string()]).stdout;
        assert_eq!(docked, docks, "{prof}: a tray icon docked: {:?}\n{}", tray.docked(&x.display()), log());
        let mut pixels = 0;
        let seen = wait_until(Duration::from_secs(if painted { 10 } else { 3 }), || {
            pixels = tray
                .docked(&x.display())
                .iter()
                .map(|w| window_pixels(&x.display(), w, prof, magenta))
                .max()
                .unwrap_or(0);
            pixels > 100
        });
        assert_eq!(seen, painted, "{prof}: the tray icon shows the profile's image ({pixels} pixels of it)\n{}", log());
        kill(&d, &a, id);
        drop(tray);
    }
    d.finish();
}
