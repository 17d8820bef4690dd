//! A sandbox's own X display (`xserver`), end to end: a private Xvfb stands in for the user's
//! desktop, the real daemon launches X profiles for the test user with `DISPLAY` set, and the
//! tests look at what a person would see (windows, screenshots) and at what the sandbox can
//! reach.

mod common_daemon;
mod common_x11;

use common_daemon::{profile, user_a, wait_until, Daemon};
use common_x11::*;
use serde_json::json;
use std::time::Duration;

fn xclock_profile(name: &str, backend: &str, net: &str) -> serde_json::Value {
    profile(
        name,
        "/usr/bin/xclock",
        json!({"xserver": {"enabled": true, "backend": backend}, "networking": {"type": net}}),
    )
}

#[test]
fn xephyr_shows_the_window_and_kill_ends_the_x_stack() {
    let x = Xvfb::start();
    let d = Daemon::start(&[xclock_profile("ozt-xclock", "xephyr", "empty")]);
    let a = user_a();
    let (id, took) = launch_x(&d, &a, &x.display(), "ozt-xclock", &[]);
    let agent = d.sandbox(id).unwrap().agent_pid as i32;
    let xephyr = children_named(agent, "Xephyr");
    assert_eq!(xephyr.len(), 1, "one Xephyr, a child of the agent: {xephyr:?}");
    let auth = cmdline_arg(xephyr[0], "-auth").expect("Xephyr has a cookie file");
    let nested = format!(":{}", sandbox_display(&d, &a, id));
    let mapped = wait_window(&nested, Some(auth.as_ref()), "xclock", Duration::from_secs(15));
    assert!(
        mapped.is_some(),
        "no xclock window on the nested display {nested}:\n{}",
        window_tree(&nested, Some(auth.as_ref()))
    );
    eprintln!("x11 xephyr: oz launch returned after {took:?}, window mapped {:?} later", mapped.unwrap());
    // Xephyr's window on the user's display, with the clock painted in it.
    assert!(window_tree(&x.display(), None).contains("[oz] ozt-xclock"), "Xephyr window titled by the profile");
    std::thread::sleep(Duration::from_millis(500));
    let (png, colours) = screenshot(&x.display(), "xephyr-xclock");
    assert!(colours > 2, "{} looks blank ({colours} colours)", png.display());
    // Without the cookie the nested display refuses clients.
    assert!(
        !window_tree(&nested, None).contains("xclock"),
        "the nested display must refuse clients without the cookie"
    );

    d.oz(&a, &["relaunchxpra", &id.to_string()]).assert_failed("oz relaunchxpra of a xephyr sandbox");

    let out = d.oz(&a, &["kill", &id.to_string()]);
    out.assert_ok("oz kill", &d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || alive(&xephyr).is_empty()), "Xephyr outlived oz kill");
    assert!(user_procs_named(a.uid, "Xephyr").is_empty(), "no Xephyr of the user left");
    let dir = std::path::Path::new(&auth).parent().unwrap().to_path_buf();
    assert!(!dir.exists(), "per-sandbox directory {} left behind", dir.display());
    d.finish();
}

#[test]
fn an_x_profile_without_a_display_fails_clearly() {
    require_tools();
    let d = Daemon::start(&[xclock_profile("ozt-xclock", "xephyr", "empty")]);
    let a = user_a();
    let out = d.oz(&a, &["launch", "ozt-xclock"]);
    out.assert_failed("oz launch of an X profile without DISPLAY");
    assert!(out.stderr.contains("DISPLAY"), "names the missing DISPLAY: {:?}", out.stderr);
    assert!(wait_until(Duration::from_secs(5), || d.sandboxes().is_empty()), "no sandbox is left");
    assert!(user_procs_named(a.uid, "Xephyr").is_empty(), "no Xephyr was started");
    d.finish();
}

/// Inside an X sandbox: the host's X server is out of reach by its socket path and by its
/// abstract name, with an empty network namespace and with the host's; the sandbox's own
/// display is reachable by its path.
#[test]
fn the_host_display_is_out_of_reach() {
    let x = Xvfb::start();
    let py = |name: &str, backend: &str, net: &str| {
        profile(
            name,
            "/usr/bin/python3",
            json!({"xserver": {"enabled": true, "backend": backend}, "networking": {"type": net}}),
        )
    };
    let d = Daemon::start(&[
        py("ozt-x-empty", "xephyr", "empty"),
        py("ozt-x-host", "xephyr", "host"),
        py("ozt-xpra-empty", "xpra", "empty"),
        py("ozt-xpra-host", "xpra", "host"),
    ]);
    let a = user_a();
    let script = format!(
        r#"
import os, socket
def t(addr):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(addr)
        return "CONNECTED"
    except OSError as e:
        return "refused errno %d" % e.errno
own = os.environ["DISPLAY"].lstrip(":")
print("host-path", t("/tmp/.X11-unix/X{n}"))
print("host-abstract", t("\0/tmp/.X11-unix/X{n}"))
print("own-path", t("/tmp/.X11-unix/X" + own))
print("xauthority", os.environ.get("XAUTHORITY"))
print("own-abstract", "@/tmp/.X11-unix/X" + own in [l.split()[-1] for l in open("/proc/net/unix")])
"#,
        n = x.n
    );
    for prof in ["ozt-x-empty", "ozt-x-host", "ozt-xpra-empty", "ozt-xpra-host"] {
        let out = oz_display(&d, &a, &x.display(), &["run", prof, "--", "-c", &script]);
        out.assert_ok(&format!("oz run {prof}"), &d);
        for probe in ["host-path", "host-abstract"] {
            let line = out
                .stdout
                .lines()
                .find(|l| l.starts_with(probe))
                .unwrap_or_else(|| panic!("{prof}: no {probe} line: {out:?}"));
            assert!(line.contains("refused"), "{prof}: {line}");
        }
        assert!(out.stdout.contains("own-path CONNECTED"), "{prof}: its own display must work: {}", out.stdout);
        assert!(
            out.stdout.contains("own-abstract False"),
            "{prof}: its own display has no abstract socket: {}",
            out.stdout
        );
        assert!(out.stdout.contains("xauthority /run/oz-x11/Xauthority"), "{prof}: {}", out.stdout);
    }
    d.finish();
}

#[test]
fn xpra_shows_the_window_restarts_its_client_and_kill_ends_the_x_stack() {
    let x = Xvfb::start();
    let d = Daemon::start(&[xclock_profile("ozt-xclock", "xpra", "empty")]);
    let a = user_a();
    let (id, took) = launch_x(&d, &a, &x.display(), "ozt-xclock", &[]);
    let s = d.sandbox(id).expect("listed");
    let agent = s.agent_pid as i32;
    let clients = children_named(agent, "xpra");
    assert_eq!(clients.len(), 1, "one xpra client, a child of the agent: {clients:?}");
    let servers = common_daemon::procs::pidns_members_named(s.init_pid as i32, "xpra");
    assert_eq!(servers.len(), 1, "one xpra server in the sandbox: {servers:?}");
    // `oz launch` returned once the client was attached: the window follows within 15 s.
    let mapped = wait_window(&x.display(), None, "xclock", Duration::from_secs(15));
    assert!(mapped.is_some(), "no xclock window on {}:\n{}", x.display(), window_tree(&x.display(), None));
    eprintln!("x11 xpra: oz launch returned after {took:?}, window mapped {:?} later", mapped.unwrap());
    std::thread::sleep(Duration::from_millis(1500));
    let (png, colours) = screenshot(&x.display(), "xpra-xclock");
    assert!(colours > 2, "{} looks blank ({colours} colours)", png.display());

    // A crashed client is restarted and the window comes back.
    common_daemon::procs::kill(clients[0], libc::SIGKILL);
    assert!(
        wait_until(Duration::from_secs(5), || !window_tree(&x.display(), None).contains("xclock")),
        "the window goes with the client"
    );
    assert!(
        wait_until(Duration::from_secs(15), || !children_named(agent, "xpra").is_empty()
            && window_tree(&x.display(), None).contains("xclock")),
        "the client was not restarted, or the window did not come back:\n{}",
        d.oz(&a, &["logs", "--sandbox", &id.to_string()]).stdout
    );
    // `oz relaunchxpra` replaces the client; the window comes back again.
    let before = children_named(agent, "xpra");
    let out = oz_display(&d, &a, &x.display(), &["relaunchxpra", &id.to_string()]);
    out.assert_ok("oz relaunchxpra", &d);
    assert_eq!(out.stdout.trim(), id.to_string());
    assert!(
        wait_until(Duration::from_secs(15), || {
            let now = children_named(agent, "xpra");
            now.len() == 1 && !before.contains(&now[0]) && window_tree(&x.display(), None).contains("xclock")
        }),
        "oz relaunchxpra did not replace the client"
    );
    let clients2 = children_named(agent, "xpra");

    let out = d.oz(&a, &["kill", &id.to_string()]);
    out.assert_ok("oz kill", &d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || alive(&clients2).is_empty()), "the xpra client outlived oz kill");
    assert!(
        user_procs_named(a.uid, "xpra").is_empty() && user_procs_named(a.uid, "Xvfb").is_empty(),
        "no xpra or Xvfb of the user left"
    );
    d.finish();
}

/// The FNV-1a colour oz gives a profile's window border (as `xpra::border_colour`).
fn border_rgb(profile: &str) -> (u8, u8, u8) {
    let mut h: u32 = 0x811c_9dc5;
    for b in profile.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    ((h >> 16) as u8, (h >> 8) as u8, h as u8)
}

/// `border: true` draws the profile's colour around its windows (Xpra blends it, so the pixels
/// are that colour darkened): the screenshot has it.
#[test]
fn xpra_border_colour_is_visible() {
    let x = Xvfb::start();
    let p = profile(
        "ozt-xclock",
        "/usr/bin/xclock",
        json!({"xserver": {"enabled": true, "border": true}, "networking": {"type": "empty"}}),
    );
    let d = Daemon::start(&[p]);
    let a = user_a();
    let (id, _) = launch_x(&d, &a, &x.display(), "ozt-xclock", &[]);
    assert!(wait_window(&x.display(), None, "xclock", Duration::from_secs(15)).is_some(), "no window");
    let (r, g, b) = border_rgb("ozt-xclock");
    let count = |png: &std::path::Path| -> u64 {
        let script = format!(
            "from PIL import Image\nim = Image.open('{}').convert('RGB')\nc = ({r}, {g}, {b})\nd = max(range(3), key=lambda i: c[i])\n\
             def tinted(px):\n    k = px[d] / c[d]\n    return 0.2 < k <= 1.05 and all(abs(px[i] - k * c[i]) <= 4 for i in range(3))\n\
             print(sum(1 for px in im.getdata() if max(px) - min(px) > 10 and tinted(px)))",
            png.display()
        );
        let out = std::process::Command::new("/usr/bin/python3").args(["-c", &script]).output().expect("python3");
        String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
    };
    let mut seen = 0;
    let found = wait_until(Duration::from_secs(10), || {
        let (png, _) = screenshot(&x.display(), "xpra-border");
        seen = count(&png);
        seen > 100
    });
    assert!(found, "border colour #{r:02x}{g:02x}{b:02x} on {seen} pixels of the screenshot");
    d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
    d.finish();
}

/// A restarted daemon re-adopts an X sandbox with its host-side helper, and `oz kill` then
/// ends all of it.
#[test]
fn a_restarted_daemon_readopts_the_x_stack() {
    let x = Xvfb::start();
    let mut d = Daemon::start(&[xclock_profile("ozt-xclock", "xephyr", "empty")]);
    let a = user_a();
    let (id, _) = launch_x(&d, &a, &x.display(), "ozt-xclock", &[]);
    let before = d.sandbox(id).unwrap();
    let agent = before.agent_pid as i32;
    let xephyr = children_named(agent, "Xephyr");
    assert_eq!(xephyr.len(), 1);
    let display = before.display.expect("an X sandbox lists its display");
    assert_eq!(display.backend, oz_wire::record::XBackend::Xephyr);
    d.kill9();
    d.spawn();
    assert!(wait_until(Duration::from_secs(10), || d.sandbox(id).is_some()), "sandbox {id} not re-adopted");
    assert_eq!(d.sandbox(id).unwrap(), before, "the record (display included) after the restart");
    assert_eq!(alive(&xephyr), xephyr, "Xephyr survives the daemon restart");
    d.oz(&a, &["kill", &id.to_string()]).assert_ok("oz kill", &d);
    d.wait_gone(id, Duration::from_secs(10)).unwrap();
    assert!(wait_until(Duration::from_secs(5), || alive(&xephyr).is_empty()), "Xephyr outlived oz kill");
    d.finish();
}

/// A crashed Xephyr is not restarted (the program's connection and the socket bound into the
/// sandbox die with it): the sandbox log says so and the sandbox ends, even while its program
/// (here one that never touches the display) still runs; nothing is left behind.
#[test]
fn a_crashed_xephyr_ends_the_sandbox() {
    let x = Xvfb::start();
    let p = profile(
        "ozt-x-py",
        "/usr/bin/python3",
        json!({"xserver": {"enabled": true, "backend": "xephyr"}, "networking": {"type": "empty"}}),
    );
    let d = Daemon::start(&[p]);
    let a = user_a();
    let (id, _) = launch_x(&d, &a, &x.display(), "ozt-x-py", &["-c", "import time; time.sleep(600)"]);
    let agent = d.sandbox(id).unwrap().agent_pid as i32;
    let xephyr = children_named(agent, "Xephyr");
    assert_eq!(xephyr.len(), 1, "one Xephyr: {xephyr:?}");
    let auth = cmdline_arg(xephyr[0], "-auth").expect("Xephyr has a cookie file");
    let n = sandbox_display(&d, &a, id);
    common_daemon::procs::kill(xephyr[0], libc::SIGKILL);
    let gone = d.wait_gone(id, Duration::from_secs(10));
    let log = d.oz(&a, &["logs", "--sandbox", &id.to_string()]).stdout;
    assert!(gone.is_ok(), "the sandbox outlived its Xephyr: {gone:?}\n{log}");
    assert!(log.contains(&format!("xserver: Xephyr :{n} ended (killed by SIGKILL)")), "the log says why:\n{log}");
    assert!(user_procs_named(a.uid, "Xephyr").is_empty(), "no Xephyr of the user left");
    let dir = std::path::Path::new(&auth).parent().unwrap().to_path_buf();
    assert!(!dir.exists(), "per-sandbox directory {} left behind", dir.display());
    for f in [format!("/tmp/.X11-unix/X{n}"), format!("/tmp/.X{n}-lock")] {
        assert!(!std::path::Path::new(&f).exists(), "the killed Xephyr's {f} left behind");
    }
    d.finish();
}
