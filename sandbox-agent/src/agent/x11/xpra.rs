//! The `xpra` backend: an Xpra server (with its own Xvfb) inside the sandbox, started by the
//! init as the user ([`crate::common::proto::AgentToInit::StartHelper`], default seccomp
//! blacklist), and an Xpra client on the host as the user, attached to the user's display. They
//! talk over `xpra.sock` (0600) in the per-sandbox directory, made by the agent and handed to
//! the server ([`server_argv`]); the Xvfb listens on its path socket only. Both sides read a configuration oz owns (`XPRA_SYSTEM_CONF_DIRS` and
//! `XPRA_USER_CONF_DIRS`, never /etc/xpra) and are given every channel-closing flag on the
//! command line as well: no file transfer, printing, webcam, mdns, html, open-url, D-Bus
//! proxying, remote logging or mmap; audio only through `audio_mode: pulseaudio` (the program's
//! own socket, not Xpra's); the clipboard shares CLIPBOARD only, never PRIMARY ([`SITECUSTOMIZE`]).

use super::ReadyError;
use oz_profiles::profile::XServer;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// The display inside every Xpra sandbox: its /tmp, and (without host networking) its network
/// namespace, are its own, and the Xvfb has no abstract socket.
pub const DISPLAY: u32 = 10;
/// The server's socket in the per-sandbox directory.
pub const SOCKET: &str = "xpra.sock";
/// The client's line once attached.
pub const CLIENT_ATTACHED: &str = "Attached to";
/// The in-sandbox executable.
pub const XPRA: &str = "/usr/bin/xpra";

/// The configuration file both sides read instead of /etc/xpra.
pub fn conf_text(x: &XServer) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    format!(
        "# written by oz: the whole configuration of this sandbox's xpra\n\
         clipboard = {}\nclipboard-direction = both\nnotifications = {}\ntray = {}\nsystem-tray = {}\n\
         file-transfer = no\nopen-files = no\nopen-url = no\nprinting = no\nwebcam = no\nmdns = no\n\
         pulseaudio = no\nspeaker = disabled\nmicrophone = disabled\nmmap = no\nsharing = no\nremote-logging = no\n\
         dbus-proxy = no\nsocket-permissions = 600\nxsettings = no\nopengl = no\n",
        yes(!x.disable_clipboard),
        yes(x.enable_notifications),
        yes(x.enable_tray),
        yes(x.enable_tray),
    )
}

/// Channel flags common to both sides.
fn closed_flags(x: &XServer) -> Vec<String> {
    let yes = |b: bool| if b { "yes" } else { "no" };
    [
        format!("--clipboard={}", yes(!x.disable_clipboard)),
        format!("--notifications={}", yes(x.enable_notifications)),
        // `disabled`, not `off`: Xpra does not even probe its audio subsystem (a subprocess that
        // costs the client about half a second at start-up).
        "--speaker=disabled".into(),
        "--microphone=disabled".into(),
        "--webcam=no".into(),
        "--printing=no".into(),
        "--file-transfer=no".into(),
        "--open-url=no".into(),
        "--mmap=no".into(),
        "--remote-logging=no".into(),
    ]
    .to_vec()
}

/// How the server gets its listening socket: by socket activation (`LISTEN_FDS`, fd 3). The
/// agent made the socket before the server starts, so the client connects while the server is
/// still starting. The init hands a helper three descriptors and the socket travels as its
/// stdin: this shell moves it to fd 3, gives the server /dev/null as stdin, and sets
/// `LISTEN_PID` to its own pid, which `exec` makes the server's.
const ACTIVATE: &str = "export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$0\" \"$@\" 3<&0 </dev/null";

/// The server's argv inside the sandbox (`dir` is the per-sandbox directory there), to be
/// started with its listening socket as stdin ([`ACTIVATE`]); its Xvfb starts at `screen`, the
/// user's desktop size ([`super::screen`]).
pub fn server_argv(x: &XServer, dir: &str, (width, height): (u32, u32)) -> Vec<String> {
    let mut argv = vec![
        "/bin/sh".to_string(),
        "-c".into(),
        ACTIVATE.into(),
        XPRA.to_string(),
        "start".into(),
        format!(":{DISPLAY}"),
        "--daemon=no".into(),
        "--bind=none".into(),
        format!("--socket-dirs={dir}"),
        "--socket-permissions=600".into(),
        format!(
            "--xvfb=Xvfb -nolisten tcp -nolisten local -noreset -auth {dir}/Xauthority -screen 0 {width}x{height}x24"
        ),
        "--pulseaudio=no".into(),
        // No OpenGL probe of the Xvfb (a whole `xpra opengl` process before the server is ready).
        "--opengl=noprobe".into(),
        "--mdns=no".into(),
        "--html=off".into(),
        "--systemd-run=no".into(),
        "--xsettings=no".into(),
        "--start-new-commands=no".into(),
        dbus_launch(),
        "--dbus-proxy=no".into(),
        format!("--system-tray={}", if x.enable_tray { "yes" } else { "no" }),
    ];
    argv.extend(closed_flags(x));
    argv
}

/// How the server finds its session bus: the sandbox's private bus ([`super::dbus`]). Xpra
/// drops every `DBUS_*` variable it was given and takes the bus from its `--dbus-launch`
/// command's output; with no command it autolaunches a bus of the system's kind (one that
/// activates the desktop portals and the accessibility bus inside the sandbox).
fn dbus_launch() -> String {
    format!("--dbus-launch=/bin/echo DBUS_SESSION_BUS_ADDRESS={}", super::dbus::address())
}

/// The server's environment inside the sandbox.
pub fn server_env(home: &Path, user: &str, dir: &str) -> Vec<String> {
    vec![
        "PATH=/usr/bin:/bin".into(),
        format!("HOME={}", home.display()),
        format!("USER={user}"),
        format!("LOGNAME={user}"),
        "TMPDIR=/tmp".into(),
        format!("XAUTHORITY={dir}/Xauthority"),
        format!("XPRA_SYSTEM_CONF_DIRS={dir}"),
        format!("XPRA_USER_CONF_DIRS={dir}"),
        format!("PYTHONPATH={dir}"),
        "PYTHONDONTWRITEBYTECODE=1".into(),
    ]
}

/// `sitecustomize.py` for both sides (on `PYTHONPATH`), two corrections of Xpra 3.1.3:
///
/// - The selections Xpra shares are CLIPBOARD only, never PRIMARY (what the user last
///   highlighted) or SECONDARY. Xpra's own switch, `XPRA_CLIPBOARDS`, turns the names into bytes
///   that no clipboard packet matches, which silently stops CLIPBOARD too; the platform's list
///   is one list object every module imported, so it is narrowed in place before Xpra reads it.
/// - A window's title is read again once the server listens for its changes. The server reads
///   the title when it starts managing a window and selects the window's property events only
///   afterwards: a title the program sets in between (evince and eog retitle their window by the
///   document as soon as it is loaded) never reaches the user's display, which keeps the
///   program's first title. The window model's `setup` (where the events are selected) is
///   wrapped when its module is imported; the client never imports it.
pub const SITECUSTOMIZE: &str = r#"# written by oz: corrections of Xpra for oz's sandboxes
# Share the CLIPBOARD selection only.
try:
    import xpra.platform.features as _features
    _features.CLIPBOARDS[:] = ["CLIPBOARD"]
except Exception:
    pass

# Read a window's title again once its property events are selected.
import sys as _sys


def _oz_read_title_after_setup(core):
    model = core.CoreX11WindowModel
    setup = model.setup

    def setup_then_read_title(self):
        setup(self)
        self._handle_wm_name_change()

    model.setup = setup_then_read_title


class _OzPatchOnImport:
    def find_spec(self, name, path=None, target=None):
        if name != "xpra.x11.models.core":
            return None
        import importlib.machinery
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            _oz_read_title_after_setup(module)

        spec.loader.exec_module = exec_module
        return spec


_sys.meta_path.insert(0, _OzPatchOnImport())
"#;

/// What the client's `sitecustomize.py` adds to [`SITECUSTOMIZE`]: Xpra 3.1.3 parses
/// `--window-icon` but never uses it, so its GTK client class is given the missing step as it is
/// imported: the option's image becomes GTK's default icon, and the icons the server forwards
/// (the program's, or one Xpra guessed from the icon theme) are no longer put on the windows, so
/// every window of the sandbox carries the profile's image (`_NET_WM_ICON`).
pub const CLIENT_WINDOW_ICON: &str = r#"# written by oz: honour --window-icon
import sys as _sys
import importlib.abc as _abc, importlib.machinery as _machinery
def _use_window_icon(icon):
    from gi.repository import Gtk
    from xpra.client.gtk_base.gtk_client_window_base import GTKClientWindowBase
    Gtk.Window.set_default_icon_from_file(icon)
    GTKClientWindowBase.update_icon = lambda window, img: None
class _WindowIcon(_abc.MetaPathFinder):
    NAME = "xpra.client.gtk_base.gtk_client_base"
    def find_spec(self, name, path, target=None):
        if name != self.NAME:
            return None
        _sys.meta_path.remove(self)
        spec = _machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        load = spec.loader.exec_module
        def exec_module(module):
            load(module)
            cls = module.GTKXpraClient
            init = cls.init
            def init_with_icon(client, opts, *args, **kwargs):
                init(client, opts, *args, **kwargs)
                icon = getattr(opts, "window_icon", None)
                if icon:
                    try:
                        _use_window_icon(icon)
                    except Exception as e:
                        print("oz: window icon %s: %s" % (icon, e), file=_sys.stderr)
            cls.init = init_with_icon
        spec.loader.exec_module = exec_module
        return spec
_sys.meta_path.insert(0, _WindowIcon())
"#;

/// A stable colour for a profile's window border (`#rrggbb`, from an FNV-1a hash of its name).
pub fn border_colour(profile: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in profile.bytes() {
        h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    }
    format!("#{:06x}", h & 0x00ff_ffff)
}

/// The client's arguments on the host.
pub fn client_args(x: &XServer, socket: &Path, profile: &str) -> Vec<String> {
    let mut args = vec![
        "attach".to_string(),
        format!("socket://{}", socket.display()),
        "--opengl=no".into(),
        format!("--tray={}", if x.enable_tray { "yes" } else { "no" }),
        "--title=[oz] @title@".into(),
        "--keyboard-sync=no".into(),
    ];
    args.extend(closed_flags(x));
    if x.enable_tray {
        if let Some(icon) = &x.tray_icon {
            args.push(format!("--tray-icon={icon}"));
        }
    }
    if let Some(icon) = &x.window_icon {
        args.push(format!("--window-icon={icon}"));
    }
    if x.border {
        args.push(format!("--border={},3", border_colour(profile)));
    }
    args
}

/// How often [`wait_for_line`] looks at the helper it watches.
const WATCH_EVERY: Duration = Duration::from_millis(100);

/// Read `fd` (non-blocking reads after poll) until a line contains `needle`; every line read
/// is returned, for the log. Err with the lines read when the writer closes, time runs out, or
/// `watched` (the helper expected to print it) ends first.
pub fn wait_for_line(
    fd: BorrowedFd<'_>,
    needle: &'static str,
    timeout: Duration,
    lines: &mut Vec<String>,
    mut watched: Option<&mut Child>,
) -> Result<(), ReadyError> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let until = Instant::now() + timeout;
    let mut buf = Vec::new();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ReadyError::NoLine { needle, secs: timeout.as_secs() });
        }
        if let Some(status) = watched.as_deref_mut().and_then(super::hostproc::try_reap) {
            return Err(ReadyError::Ended { status });
        }
        let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
        let wait = if watched.is_some() { left.min(WATCH_EVERY) } else { left };
        match poll(&mut fds, PollTimeout::from(wait.as_millis().min(60_000) as u16)) {
            Ok(0) | Err(nix::errno::Errno::EINTR) => continue,
            Ok(_) => {}
            Err(errno) => return Err(ReadyError::Sys { op: "poll", errno }),
        }
        let mut chunk = [0u8; 4096];
        let n = match nix::unistd::read(fd.as_raw_fd(), &mut chunk) {
            Ok(0) => return Err(ReadyError::Closed),
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
            Err(errno) => return Err(ReadyError::Sys { op: "read", errno }),
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let line = String::from_utf8_lossy(&line).trim_end().to_string();
            let found = line.contains(needle);
            if lines.len() < 200 {
                lines.push(line);
            }
            if found {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn the_configuration_closes_every_channel() {
        let x = XServer { disable_clipboard: true, ..XServer::default() };
        let conf = conf_text(&x);
        for line in [
            "clipboard = no",
            "file-transfer = no",
            "open-url = no",
            "printing = no",
            "webcam = no",
            "mdns = no",
            "dbus-proxy = no",
            "socket-permissions = 600",
            "pulseaudio = no",
        ] {
            assert!(conf.contains(line), "{line} missing from\n{conf}");
        }
        let server = server_argv(&x, "/run/oz-x11", (1280, 1024));
        assert!(server.contains(&"--file-transfer=no".to_string()) && server.contains(&"--clipboard=no".to_string()));
        assert!(
            server
                .iter()
                .any(|a| a.starts_with("--xvfb=") && a.contains("-nolisten local") && a.contains(" 1280x1024x24")),
            "no abstract socket for the Xvfb"
        );
        assert_eq!(server[..4], ["/bin/sh", "-c", ACTIVATE, XPRA], "socket activation: {server:?}");
        assert!(server.contains(&"--bind=none".to_string()), "the server binds no socket of its own: {server:?}");
        let env = server_env(Path::new("/home/u"), "u", "/run/oz-x11");
        assert!(env.contains(&"PYTHONPATH=/run/oz-x11".to_string()), "CLIPBOARD only, never PRIMARY: sitecustomize.py");
        assert!(SITECUSTOMIZE.contains("CLIPBOARDS[:] = [\"CLIPBOARD\"]\nexcept"), "{SITECUSTOMIZE}");
        assert!(SITECUSTOMIZE.contains("setup(self)\n        self._handle_wm_name_change()"), "{SITECUSTOMIZE}");
        assert!(env.iter().all(|e| !e.contains("/etc/xpra")));
        let bus = format!("--dbus-launch=/bin/echo DBUS_SESSION_BUS_ADDRESS={}", super::super::dbus::address());
        assert!(server.contains(&bus), "the private bus, never an autolaunched one: {server:?}");
        assert!(server.contains(&"--notifications=no".to_string()), "{server:?}");
        let notify = server_argv(&XServer { enable_notifications: true, ..XServer::default() }, "/run/oz-x11", (1, 1));
        assert!(notify.contains(&bus) && notify.contains(&"--notifications=yes".to_string()), "{notify:?}");
    }

    #[test]
    fn waiting_for_a_line_ends_when_the_watched_helper_does() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let t = Instant::now();
        let mut lines = Vec::new();
        let got = wait_for_line(r.as_fd(), CLIENT_ATTACHED, Duration::from_secs(20), &mut lines, Some(&mut child));
        assert!(matches!(got, Err(ReadyError::Ended { ref status }) if status == "exit code 0"), "{got:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "noticed after {:?}", t.elapsed());
        nix::unistd::write(&w, b"xpra: Attached to socket\n").unwrap();
        assert!(wait_for_line(r.as_fd(), CLIENT_ATTACHED, Duration::from_secs(5), &mut lines, None).is_ok());
        assert_eq!(lines, ["xpra: Attached to socket"]);
    }

    #[test]
    fn the_client_sitecustomize_is_python() {
        let text = format!("{SITECUSTOMIZE}{CLIENT_WINDOW_ICON}");
        let mut py = std::process::Command::new("/usr/bin/python3")
            .args(["-c", "import ast, sys; ast.parse(sys.stdin.read())"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("python3 (xpra needs it)");
        std::io::Write::write_all(py.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
        assert!(py.wait().unwrap().success(), "not valid Python:\n{text}");
    }

    #[test]
    fn client_options_follow_the_profile() {
        let x = XServer {
            enable_tray: true,
            tray_icon: Some("/t.png".into()),
            window_icon: Some("/w.png".into()),
            border: true,
            ..XServer::default()
        };
        let args = client_args(&x, Path::new("/run/user/1/oz/x11-3/xpra.sock"), "evince");
        for a in ["--tray=yes", "--tray-icon=/t.png", "--window-icon=/w.png", "--clipboard=yes", "--file-transfer=no"] {
            assert!(args.contains(&a.to_string()), "{a} missing: {args:?}");
        }
        assert!(args.contains(&format!("--border={},3", border_colour("evince"))));
        assert_eq!(border_colour("evince"), border_colour("evince"));
        assert_ne!(border_colour("evince"), border_colour("eog"));
        let plain = client_args(&XServer::default(), Path::new("/s"), "p");
        assert!(plain.contains(&"--tray=no".to_string()) && !plain.iter().any(|a| a.starts_with("--border")));
    }
}
