//! What an X sandbox may and may not reach of the user's desktop beyond its windows: its
//! notifications (`enable_notifications`) arrive on the user's session bus and nothing else of
//! that bus is reachable; Xpra's file transfer and open-url from inside are refused by the
//! client. The real daemon launches the profiles as the test user; a private Xvfb and a session
//! bus of the test user's, both started here, stand in for the desktop.

mod common_daemon;
mod common_x11;

use common_daemon::{procs, profile, run, user_a, wait_until, Daemon, TestUser};
use common_x11::*;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

/// A notification server for the host bus: owns `org.freedesktop.Notifications` and a name
/// only the host bus has (`org.ozt.HostOnly`), prints each Notify call.
const NOTIFICATION_SERVER: &str = r#"
import dbus, dbus.service
from dbus.mainloop.glib import DBusGMainLoop
from gi.repository import GLib
DBusGMainLoop(set_as_default=True)
bus = dbus.SessionBus()
class Server(dbus.service.Object):
    @dbus.service.method("org.freedesktop.Notifications", in_signature="susssasa{sv}i", out_signature="u")
    def Notify(self, app, replaces, icon, summary, body, actions, hints, timeout):
        print("NOTIFY", app, "|", summary, "|", body, flush=True)
        return 1
    @dbus.service.method("org.freedesktop.Notifications", in_signature="", out_signature="as")
    def GetCapabilities(self):
        return ["body"]
    @dbus.service.method("org.freedesktop.Notifications", in_signature="", out_signature="ssss")
    def GetServerInformation(self):
        return ("ozt", "oz", "1", "1.2")
    @dbus.service.method("org.freedesktop.Notifications", in_signature="u", out_signature="")
    def CloseNotification(self, nid):
        pass
names = [dbus.service.BusName(n, bus) for n in ("org.freedesktop.Notifications", "org.ozt.HostOnly")]
Server(bus, "/org/freedesktop/Notifications")
print("READY", flush=True)
GLib.MainLoop().run()
"#;

/// SIGTERM to each of `children` (last started first), SIGKILL after 10 s; all reaped.
fn stop_all(children: &mut Vec<Child>) {
    for mut c in children.drain(..).rev() {
        procs::kill(c.id() as i32, libc::SIGTERM);
        if !wait_until(Duration::from_secs(10), || c.try_wait().ok().flatten().is_some()) {
            let _ = c.kill();
        }
        let _ = c.wait();
    }
}

/// The test user's session bus on the host, in a directory of the test's outside the user's
/// home (so no sandbox of the user's sees its socket), with [`NOTIFICATION_SERVER`] on it.
struct HostBus {
    dir: PathBuf,
    children: Vec<Child>,
}

impl HostBus {
    fn start(a: &TestUser) -> HostBus {
        let dir = PathBuf::from(format!("/tmp/ozt-hostbus-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(a.uid), Some(a.gid)).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let mut bus = HostBus { dir, children: Vec::new() };
        let daemon = a
            .command("/usr/bin/dbus-daemon")
            .args(["--session", "--nofork", "--nopidfile", &format!("--address={}", bus.address())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dbus-daemon (scripts/deps.sh installs dbus)");
        bus.children.push(daemon);
        assert!(wait_until(Duration::from_secs(10), || bus.socket().exists()), "the host bus did not start");
        let log = fs::File::create(bus.log()).unwrap();
        let server = a
            .command("/usr/bin/python3")
            .args(["-c", NOTIFICATION_SERVER])
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("python3 (python3-dbus)");
        bus.children.push(server);
        assert!(
            wait_until(Duration::from_secs(10), || bus.notifications().contains("READY")),
            "notification server: {}",
            bus.notifications()
        );
        bus
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("bus")
    }

    fn address(&self) -> String {
        format!("unix:path={}", self.socket().display())
    }

    fn log(&self) -> PathBuf {
        Path::new("/tmp").join(format!("ozt-hostbus-{}.log", std::process::id()))
    }

    /// What the notification server printed.
    fn notifications(&self) -> String {
        fs::read_to_string(self.log()).unwrap_or_default()
    }

    /// Stop the bus and its server (before the daemon's check for the user's leftovers).
    fn stop(&mut self) {
        stop_all(&mut self.children);
        let _ = fs::remove_dir_all(&self.dir);
        let _ = fs::remove_file(self.log());
    }
}

impl Drop for HostBus {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `oz ARGS` as `user` with `DISPLAY` and the user's session bus address.
fn oz_desktop(d: &Daemon, user: &TestUser, display: &str, bus: &str, args: &[&str]) -> run::Out {
    let mut cmd = run::command(&common_daemon::bin("oz"), &d.socket, user);
    cmd.env("DISPLAY", display).env("DBUS_SESSION_BUS_ADDRESS", bus).args(args);
    run::output(cmd, None, Duration::from_secs(40), &format!("oz {}", args.join(" ")))
}

fn xpra_sh(name: &str, xserver: serde_json::Value) -> serde_json::Value {
    let mut x = json!({"enabled": true, "backend": "xpra"});
    if let (Some(o), serde_json::Value::Object(extra)) = (x.as_object_mut(), xserver) {
        o.extend(extra);
    }
    profile(name, "/bin/sh", json!({"xserver": x, "networking": {"type": "empty"}}))
}

const LIST_NAMES: &str =
    "--print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus org.freedesktop.DBus.ListNames";

/// `enable_notifications`: `notify-send` inside reaches the notification server on the user's
/// session bus (through the sandbox's private bus, the Xpra server and the host-side client);
/// from inside, the user's bus is absent (its socket is not there, its names are not on the
/// bus the sandbox has). Without the option nothing arrives.
#[test]
fn notifications_reach_the_users_bus_and_nothing_else_of_it_is_reachable() {
    let x = Xvfb::start();
    let d = Daemon::start_with(
        &[xpra_sh("ozt-notify", json!({"enable_notifications": true})), xpra_sh("ozt-nonotify", json!({}))],
        json!({"log_xpra": true}),
    );
    let a = user_a();
    let mut host = HostBus::start(&a);
    let host_socket = host.socket();
    // Control: the probe sees the host-only name on the host bus.
    let control = a
        .sh(&format!("DBUS_SESSION_BUS_ADDRESS={} dbus-send --session {LIST_NAMES}", host.address()))
        .expect("ListNames on the host bus");
    assert!(control.contains("org.ozt.HostOnly"), "the probe must see the host's names: {control}");

    let script = format!(
        "notify-send ozt-summary ozt-body; echo notify-rc $?\n\
         echo bus \"$DBUS_SESSION_BUS_ADDRESS\"\n\
         dbus-send --session {LIST_NAMES} 2>&1 | grep -o '\"[^\"]*\"' | tr '\\n' ' ' | sed 's/^/names /'; echo\n\
         test -e {s} && echo host-socket-present || echo host-socket-absent\n\
         dbus-send --address=unix:path={s} {LIST_NAMES} >/dev/null 2>&1; echo host-listnames-rc $?\n\
         pgrep -x dbus-daemon >/dev/null && echo private-bus-running",
        s = host_socket.display()
    );
    let run = |prof: &str| {
        let out = oz_desktop(&d, &a, &x.display(), &host.address(), &["run", prof, "--", "-c", &script]);
        out.assert_ok(&format!("oz run {prof}"), &d);
        out.stdout
    };

    let out = run("ozt-notify");
    let arrived = wait_until(Duration::from_secs(10), || host.notifications().contains("| ozt-summary | ozt-body"));
    assert!(
        arrived,
        "no notification on the host bus: {:?}\ninside: {out}\nlog:\n{}",
        host.notifications(),
        d.oz(&a, &["logs"]).stdout
    );
    assert!(out.contains("notify-rc 0"), "{out}");
    assert!(out.contains("bus unix:path=/tmp/.oz-session-bus"), "the program is on the private bus: {out}");
    assert!(out.contains("private-bus-running"), "{out}");
    let names = out.lines().find(|l| l.starts_with("names ")).unwrap_or_default();
    assert!(names.contains("org.freedesktop.Notifications"), "the forwarder is on the private bus: {out}");
    assert!(!names.contains("org.ozt.HostOnly"), "a host bus name is visible inside: {out}");
    assert!(out.contains("host-socket-absent"), "{out}");
    assert!(!out.contains("host-listnames-rc 0"), "ListNames on the host bus from inside: {out}");

    let before = host.notifications().matches("NOTIFY").count();
    let out = run("ozt-nonotify");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        host.notifications().matches("NOTIFY").count(),
        before,
        "without enable_notifications a notification arrived: {}\ninside: {out}",
        host.notifications()
    );
    host.stop();
    d.finish();
}

/// Asks the Xpra server at `$1` (as any program of the sandbox can: the server is the sandbox's)
/// to send the file `$2/ozt-sent.txt` to the client and to have it open a URL.
const TRANSFER_PROBE: &str = "echo ozt-secret > \"$2/ozt-sent.txt\"\n\
    xpra control \"socket://$1\" send-file \"$2/ozt-sent.txt\" 2>&1 | tail -n 1\n\
    xpra control \"socket://$1\" open-url https://ozt.invalid/from-inside 2>&1 | tail -n 1\n";

/// Where a client's transfers would land on the host: its download directory
/// (`XPRA_DOWNLOAD_DIR`) and the URLs its open command (`xdg-open`, which runs `$BROWSER`)
/// was given.
struct Landing {
    dir: PathBuf,
}

impl Landing {
    fn new(a: &TestUser, name: &str) -> Landing {
        let dir = PathBuf::from(format!("/tmp/ozt-landing-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("downloads")).unwrap();
        let browser = dir.join("browser.sh");
        fs::write(&browser, format!("#!/bin/sh\necho \"$@\" >> {}/urls\n", dir.display())).unwrap();
        fs::set_permissions(&browser, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        for p in [dir.clone(), dir.join("downloads")] {
            std::os::unix::fs::chown(&p, Some(a.uid), Some(a.gid)).unwrap();
        }
        Landing { dir }
    }

    /// The client's environment that makes a transfer visible here.
    fn env(&self) -> Vec<(String, String)> {
        vec![
            ("XPRA_DOWNLOAD_DIR".into(), self.dir.join("downloads").display().to_string()),
            ("BROWSER".into(), self.dir.join("browser.sh").display().to_string()),
        ]
    }

    fn file_arrived(&self) -> bool {
        fs::read_dir(self.dir.join("downloads")).map(|r| r.flatten().count() > 0).unwrap_or(false)
    }

    /// The client ran its open command on the URL (`$BROWSER` recorded it, or the client said
    /// it could not run `xdg-open` on it).
    fn url_opened(&self, client_output: &str) -> bool {
        fs::read_to_string(self.dir.join("urls")).is_ok_and(|u| u.contains("ozt.invalid"))
            || client_output.contains("cannot open 'https://ozt.invalid/from-inside'")
    }
}

impl Drop for Landing {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Control: an Xpra server and client of the test user's on the host, with file transfer and
/// open-url on and otherwise as oz runs them; the probe's transfers arrive.
struct OpenXpra {
    dir: PathBuf,
    children: Vec<Child>,
}

impl OpenXpra {
    fn start(a: &TestUser, display: &str, landing: &Landing) -> OpenXpra {
        let dir = PathBuf::from(format!("/tmp/ozt-openxpra-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("xpra.conf"), "").unwrap();
        std::os::unix::fs::chown(&dir, Some(a.uid), Some(a.gid)).unwrap();
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let mut x = OpenXpra { dir, children: Vec::new() };
        let n = (500..600).find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()).expect("a free display");
        let open = ["--file-transfer=yes", "--open-url=yes", "--open-files=no", "--mmap=no", "--notifications=no"];
        let xpra = |args: &[&str], out: &str| {
            let log = fs::File::create(x.dir.join(out)).unwrap();
            let mut c = a.command("/usr/bin/xpra");
            c.args(args)
                .args(open)
                .env("PATH", "/usr/bin:/bin")
                .env("XPRA_SYSTEM_CONF_DIRS", &x.dir)
                .env("XPRA_USER_CONF_DIRS", &x.dir)
                .env("XDG_RUNTIME_DIR", &x.dir)
                .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            c
        };
        let bind = format!("--bind={}", x.socket().display());
        let dirs = format!("--socket-dirs={}", x.dir.display());
        let mut server = xpra(
            &[
                "start",
                &format!(":{n}"),
                "--daemon=no",
                &bind,
                &dirs,
                "--dbus-launch=",
                "--mdns=no",
                "--pulseaudio=no",
                "--html=off",
                "--systemd-run=no",
                "--xvfb=Xvfb -nolisten tcp -nolisten local -noreset -screen 0 800x600x24",
            ],
            "server.log",
        );
        x.children.push(server.spawn().expect("xpra server"));
        assert!(
            wait_until(Duration::from_secs(20), || x.output("server.log").contains("xpra is ready.")),
            "control xpra server: {}",
            x.output("server.log")
        );
        let mut client =
            xpra(&["attach", &format!("socket://{}", x.socket().display()), "--opengl=no", "--tray=no"], "client.log");
        client.env("DISPLAY", display).envs(landing.env());
        x.children.push(client.spawn().expect("xpra client"));
        assert!(
            wait_until(Duration::from_secs(20), || x.output("client.log").contains("Attached to")),
            "control xpra client: {}",
            x.output("client.log")
        );
        x
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("xpra.sock")
    }

    fn output(&self, name: &str) -> String {
        fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }

    fn stop(&mut self) {
        stop_all(&mut self.children);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl Drop for OpenXpra {
    fn drop(&mut self) {
        self.stop();
    }
}

/// From inside, the sandbox's program asks its Xpra server to send a file to the client and to
/// have it open a URL: neither reaches the host (nothing lands in the client's download
/// directory, its open command never runs). Control: the same probe against an Xpra pair with
/// file transfer and open-url on lands both.
#[test]
fn file_transfer_and_open_url_from_inside_are_refused() {
    let x = Xvfb::start();
    let a = user_a();
    let landing = Landing::new(&a, "oz");
    let env: Vec<_> = landing.env().into_iter().map(|(n, v)| json!({"name": n, "value": v})).collect();
    // The daemon first: it holds the host-wide test lock, under which the control runs too.
    let d = Daemon::start_with(&[xpra_sh("ozt-xfer", json!({"env": env}))], json!({"log_xpra": true}));
    let control = Landing::new(&a, "control");
    let mut open = OpenXpra::start(&a, &x.display(), &control);
    let work = PathBuf::from(format!("/tmp/ozt-probe-{}", std::process::id()));
    fs::create_dir_all(&work).unwrap();
    std::os::unix::fs::chown(&work, Some(a.uid), Some(a.gid)).unwrap();
    let mut probe = a.command("/bin/sh");
    probe.args(["-c", TRANSFER_PROBE, "probe"]).arg(open.socket()).arg(&work).env("PATH", "/usr/bin:/bin");
    let out = run::output(probe, None, Duration::from_secs(30), "transfer probe on the host");
    let landed = wait_until(Duration::from_secs(10), || {
        control.file_arrived() && control.url_opened(&open.output("client.log"))
    });
    assert!(
        landed,
        "control: with file transfer and open-url on, both land (file {}, url {}): {out:?}\n{}",
        control.file_arrived(),
        control.url_opened(&open.output("client.log")),
        open.output("client.log")
    );
    open.stop();
    let _ = fs::remove_dir_all(&work);

    let script = format!("set -- /run/oz-x11/xpra.sock /tmp\n{TRANSFER_PROBE}sleep 4");
    let out = oz_display(&d, &a, &x.display(), &["launch", "ozt-xfer", "--", "-c", &script]);
    out.assert_ok("oz launch ozt-xfer", &d);
    let id: u64 = out.stdout.trim().parse().expect("sandbox id");
    let log = || d.oz(&a, &["logs", "--sandbox", &id.to_string()]).stdout;
    assert!(
        wait_until(Duration::from_secs(30), || d.sandbox(id).is_none()),
        "the probe's sandbox did not end:\n{}",
        log()
    );
    let log = log();
    assert!(log.contains("send-file") || log.contains("ozt-sent.txt"), "the probe ran: {log}");
    assert!(!landing.file_arrived(), "a file from inside landed in the client's download directory:\n{log}");
    assert!(!landing.url_opened(&log), "the client opened a URL from inside:\n{log}");
    d.finish();
}
