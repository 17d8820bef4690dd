//! X11 test helpers: a private Xvfb standing in for the user's desktop (on a display number the
//! test picks, `-ac` on that private server only), launching X profiles with `DISPLAY` set,
//! finding a sandbox's X helpers, looking for windows and taking screenshots.

#![allow(dead_code)]

use crate::common_daemon::{procs, run, wait_until, Daemon, TestUser};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tools these tests drive; each missing one is named in the failure.
pub fn require_tools() {
    let missing: Vec<&str> = ["Xvfb", "Xephyr", "xclock", "xwininfo", "import", "identify"]
        .into_iter()
        .filter(|t| !["/usr/bin", "/bin"].iter().any(|d| Path::new(d).join(t).exists()))
        .collect();
    assert!(missing.is_empty(), "x11 tests cannot run: missing {missing:?} (scripts/deps.sh installs them)");
}

/// A private Xvfb on `:n`.
pub struct Xvfb {
    pub n: u32,
    child: Child,
}

impl Xvfb {
    /// Start Xvfb on the first free display from 150 and wait for its socket.
    pub fn start() -> Xvfb {
        require_tools();
        // One pick at a time in this process: tests run in parallel threads, and two that chose
        // the same number would share (and one would end) the other's server.
        static PICK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _pick = PICK.lock().unwrap_or_else(|e| e.into_inner());
        let n = (150..250).find(|n| display_free(*n)).expect("a free display number");
        // A dead server's lock and socket go first: waiting for the socket must see the new one.
        let _ = fs::remove_file(format!("/tmp/.X{n}-lock"));
        let _ = fs::remove_file(format!("/tmp/.X11-unix/X{n}"));
        let child = Command::new("Xvfb")
            .args([&format!(":{n}"), "-ac", "-nolisten", "tcp", "-screen", "0", "1280x1024x24"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn Xvfb");
        let x = Xvfb { n, child };
        assert!(wait_until(Duration::from_secs(10), || Path::new(&x.socket()).exists()), "Xvfb :{n} did not start");
        x
    }

    pub fn display(&self) -> String {
        format!(":{}", self.n)
    }

    pub fn socket(&self) -> String {
        format!("/tmp/.X11-unix/X{}", self.n)
    }
}

/// Display `n` is free when no live X server holds its lock (an X server started on it
/// replaces a dead one's lock and socket).
fn display_free(n: u32) -> bool {
    let lock = format!("/tmp/.X{n}-lock");
    match fs::read_to_string(&lock) {
        Ok(text) => text.trim().parse::<i32>().is_ok_and(|pid| pid > 0 && !Path::new(&format!("/proc/{pid}")).exists()),
        Err(_) => !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists(),
    }
}

impl Drop for Xvfb {
    /// SIGTERM lets Xvfb remove its socket and lock file; whatever a server that did not get
    /// to it left behind is removed here, so no display number stays taken.
    fn drop(&mut self) {
        // SIGTERM: Xvfb removes its lock and socket (SIGKILL would leave both behind).
        procs::kill(self.child.id() as i32, libc::SIGTERM);
        if !wait_until(Duration::from_secs(5), || self.child.try_wait().ok().flatten().is_some()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.socket());
        let _ = std::fs::remove_file(format!("/tmp/.X{}-lock", self.n));
    }
}

/// `oz ARGS` as `user` with `DISPLAY` (the X launch path), 30 s limit.
pub fn oz_display(d: &Daemon, user: &TestUser, display: &str, args: &[&str]) -> run::Out {
    let mut cmd = run::command(&crate::common_daemon::bin("oz"), &d.socket, user);
    cmd.env("DISPLAY", display).args(args);
    run::output(cmd, None, Duration::from_secs(30), &format!("oz {} (DISPLAY={display})", args.join(" ")))
}

/// `oz launch PROFILE -- ARGS` with DISPLAY; the sandbox id and how long the launch took.
pub fn launch_x(d: &Daemon, user: &TestUser, display: &str, profile: &str, args: &[&str]) -> (u64, Duration) {
    let mut argv = vec!["launch", profile, "--"];
    argv.extend_from_slice(args);
    let t = Instant::now();
    let out = oz_display(d, user, display, &argv);
    let took = t.elapsed();
    out.assert_ok(&format!("oz launch {profile}"), d);
    let id: u64 = out.stdout.trim().parse().unwrap_or_else(|_| panic!("oz launch printed {:?}", out.stdout));
    let s = d.sandbox(id).expect("launched sandbox listed");
    assert_eq!(s.uid, user.uid);
    (id, took)
}

/// The sandbox's display number, from its log line `xserver: ... display :N ready`.
pub fn sandbox_display(d: &Daemon, user: &TestUser, id: u64) -> u32 {
    let mut n = None;
    let found = wait_until(Duration::from_secs(5), || {
        let out = d.oz(user, &["logs", "--sandbox", &id.to_string()]);
        n = out.stdout.lines().find_map(|l| {
            let rest = &l[l.find("xserver: ")?..];
            let after = &rest[rest.find("display :")? + "display :".len()..];
            after.split_whitespace().next()?.parse().ok()
        });
        n.is_some()
    });
    assert!(
        found,
        "no xserver line in the log of sandbox {id}:\n{}",
        d.oz(user, &["logs", "--sandbox", &id.to_string()]).stdout
    );
    n.unwrap()
}

/// Host processes that are children of `parent` and have this comm.
pub fn children_named(parent: i32, comm: &str) -> Vec<i32> {
    all_pids().into_iter().filter(|p| ppid(*p) == Some(parent) && procs::comm(*p) == comm).collect()
}

/// Every process named `comm` owned by `uid`.
pub fn user_procs_named(uid: u32, comm: &str) -> Vec<i32> {
    all_pids()
        .into_iter()
        .filter(|p| procs::comm(*p) == comm)
        .filter(|p| {
            fs::metadata(format!("/proc/{p}")).map(|m| std::os::unix::fs::MetadataExt::uid(&m) == uid).unwrap_or(false)
        })
        .collect()
}

fn all_pids() -> Vec<i32> {
    fs::read_dir("/proc")
        .map(|r| r.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default()
}

pub fn ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 2..].split_whitespace().nth(1)?.parse().ok()
}

/// The argument after `flag` in a process's command line.
pub fn cmdline_arg(pid: i32, flag: &str) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1).cloned())
}

/// `xwininfo -root -tree` of `display` (as root, with `xauthority` if given).
pub fn window_tree(display: &str, xauthority: Option<&Path>) -> String {
    let mut cmd = Command::new("xwininfo");
    cmd.args(["-root", "-tree"]).env_clear().env("DISPLAY", display).env("PATH", "/usr/bin:/bin");
    if let Some(a) = xauthority {
        cmd.env("XAUTHORITY", a);
    }
    cmd.output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default()
}

/// Wait up to `limit` for a window whose name contains `name`.
pub fn wait_window(display: &str, xauthority: Option<&Path>, name: &str, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    wait_until(limit, || window_tree(display, xauthority).contains(name)).then(|| t.elapsed())
}

/// Where screenshots go: `target/x11-artifacts/`.
pub fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("target dir").join("x11-artifacts");
    fs::create_dir_all(&dir).expect("create artifact dir");
    dir
}

/// Screenshot of `display` to `target/x11-artifacts/NAME.png`; returns its path and how many
/// distinct colours it has (1 = blank).
pub fn screenshot(display: &str, name: &str) -> (PathBuf, u64) {
    let path = artifact_dir().join(format!("{name}.png"));
    let st = Command::new("import")
        .args(["-window", "root", path.to_str().unwrap()])
        .env_clear()
        .env("DISPLAY", display)
        .env("PATH", "/usr/bin:/bin")
        .status()
        .expect("run import");
    assert!(st.success(), "import -window root on {display} failed");
    let out = Command::new("identify").args(["-format", "%k", path.to_str().unwrap()]).output().expect("identify");
    let colours = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    (path, colours)
}

/// Processes still alive among `pids`.
pub fn alive(pids: &[i32]) -> Vec<i32> {
    pids.iter().copied().filter(|p| procs::Proc::get(*p).is_some_and(|p| p.alive())).collect()
}

/// A corpus profile (`shared/compat/oz-profiles/NAME.json`), its `/var/lib/oz/cells.d/` policy
/// files taken from the corpus itself.
pub fn corpus_profile(name: &str) -> serde_json::Value {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/compat/oz-profiles")
        .canonicalize()
        .expect("corpus dir");
    let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).expect("corpus profile");
    let text = text.replace("/var/lib/oz/cells.d/", &format!("{}/", dir.display()));
    serde_json::from_str(&text).expect("corpus profile json")
}

/// Corpus profile `name` whose seccomp policy files are unchanged copies in `dir` (a directory
/// the test user can search, for the profile's `whitelist` items that show them).
pub fn corpus_profile_copied(name: &str, dir: &Path) -> serde_json::Value {
    let mut profile = corpus_profile(name);
    for key in ["whitelist", "blacklist"] {
        let Some(from) = profile["seccomp"][key].as_str().map(str::to_string) else { continue };
        let to = dir.join(Path::new(&from).file_name().expect("policy file name"));
        let text = fs::read_to_string(&from).unwrap_or_else(|e| panic!("{from}: {e}"));
        fs::write(&to, text).unwrap_or_else(|e| panic!("{}: {e}", to.display()));
        let to = to.to_str().expect("utf-8 path").to_string();
        profile["seccomp"][key] = to.clone().into();
        for item in profile["whitelist"].as_array_mut().expect("corpus whitelist") {
            if item["path"] == from.as_str() {
                item["path"] = to.clone().into();
            }
        }
    }
    profile
}

/// A system tray on the test's display (`trayer`, a panel that docks XEmbed tray icons) standing
/// in for the one of the user's desktop.
pub struct Tray {
    child: Child,
}

impl Tray {
    /// Start trayer on `display` and wait for its panel.
    pub fn start(display: &str) -> Tray {
        let child = Command::new("trayer")
            .args(["--edge", "top", "--align", "right", "--widthtype", "pixel", "--width", "200"])
            .args(["--heighttype", "pixel", "--height", "40", "--SetDockType", "false", "--SetPartialStrut", "false"])
            .args(["--transparent", "false", "--tint", "0x000000"])
            .env_clear()
            .env("DISPLAY", display)
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("trayer (scripts/deps.sh installs it)");
        let tray = Tray { child };
        let up = wait_until(Duration::from_secs(10), || window_tree(display, None).contains("\"panel\": (\"panel\""));
        assert!(up, "trayer's panel did not appear on {display}");
        tray
    }

    /// The ids of the windows docked in the panel (the tray icons and their sockets).
    pub fn docked(&self, display: &str) -> Vec<String> {
        docked_in_panel(&window_tree(display, None))
    }
}

/// The windows below trayer's panel in `xwininfo -root -tree` output, larger than 1x1.
fn docked_in_panel(tree: &str) -> Vec<String> {
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut lines = tree.lines().skip_while(|l| !l.contains("\"panel\": (\"panel\""));
    let Some(panel) = lines.next() else { return Vec::new() };
    let depth = indent(panel);
    lines
        .filter(|l| l.trim_start().starts_with("0x"))
        .take_while(|l| indent(l) > depth)
        .filter(|l| !l.contains(" 1x1+"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

impl Drop for Tray {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How many pixels of window `id` on `display` are exactly `rgb` (captured with `import`,
/// saved as `target/x11-artifacts/NAME.png`).
pub fn window_pixels(display: &str, id: &str, name: &str, (r, g, b): (u8, u8, u8)) -> u64 {
    let path = artifact_dir().join(format!("{name}.png"));
    let ok = Command::new("import")
        .args(["-window", id, path.to_str().unwrap()])
        .env_clear()
        .env("DISPLAY", display)
        .env("PATH", "/usr/bin:/bin")
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        return 0;
    }
    let script = format!(
        "from PIL import Image\nim = Image.open('{}').convert('RGB')\nprint(sum(1 for p in im.getdata() if p == ({r}, {g}, {b})))",
        path.display()
    );
    let out = Command::new("/usr/bin/python3").args(["-c", &script]).output().expect("python3 (python3-pil)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

/// Solid-colour PNG images in a directory every user can read, removed on drop.
pub struct Icons {
    pub dir: PathBuf,
}

impl Icons {
    pub fn new(tag: &str) -> Icons {
        let dir = std::env::temp_dir().join(oz_integration::env::unique(tag));
        fs::create_dir_all(&dir).expect("icon directory");
        fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        Icons { dir }
    }

    /// `name` (PNG), `size` x `size` pixels of `rgb`.
    pub fn solid(&self, name: &str, size: u32, (r, g, b): (u8, u8, u8)) -> PathBuf {
        let path = self.dir.join(name);
        let script = format!(
            "from PIL import Image\nImage.new('RGB', ({size}, {size}), ({r}, {g}, {b})).save('{}')",
            path.display()
        );
        let st = Command::new("/usr/bin/python3").args(["-c", &script]).status().expect("python3 (python3-pil)");
        assert!(st.success(), "could not write {}", path.display());
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        path
    }
}

impl Drop for Icons {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn docked_windows_are_the_panels_descendants() {
        let tree = "\n     0x20001f \"trayer\": ()  10x10+-100+-100  +-100+-100\n     \
                    0x200003 \"panel\": (\"panel\" \"trayer\")  200x40+1080+0  +1080+0\n        2 children:\n        \
                    0x200026 (has no name): ()  32x38+167+1  +1247+1\n           1 child:\n           \
                    0x400003 \"xpra\": (\"xpra\" \"Xpra\")  32x38+0+0  +1247+1\n        \
                    0x200004 (has no name): ()  1x1+-1+-1  +1079+-1\n     \
                    0x200001 \"trayer\": (\"trayer\" \"Trayer\")  10x10+10+10  +10+10\n";
        assert_eq!(super::docked_in_panel(tree), vec!["0x200026", "0x400003"]);
        assert!(super::docked_in_panel("no panel").is_empty());
    }
}
