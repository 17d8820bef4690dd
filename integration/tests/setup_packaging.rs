//! Desktop integration on the real host, as root: `oz-setup install` diverts a packaged
//! program with dpkg-divert and puts a symlink to oz in its place, launching it by its usual
//! path runs it in a sandbox, a package upgrade keeps it wrapped, `remove` restores the file
//! and the diversion database exactly; and the Debian package installs, wraps, and on removal
//! leaves no diversion and no file behind. Every test restores what it changed (also when it
//! fails) and holds the host lock: they change /usr and dpkg's database.

mod common_daemon;

use common_daemon::{bin, bin_dir, profile, run, user_a, Daemon};
use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const XCLOCK: &str = "/usr/bin/xclock";
const HELLO: &str = "/usr/bin/oz-test-hello";
const HELLO_PKG: &str = "oz-test-hello";

fn sh(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `dpkg-divert --list`, sorted.
fn diversions() -> String {
    let out = sh(Command::new("dpkg-divert").arg("--list"));
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
    lines.sort();
    lines.join("\n")
}

/// Identity and attributes of what is at `path` (not following a symlink).
fn stat(path: &str) -> Option<(u64, u64, u32, u32, u32, u64, i64)> {
    let m = std::fs::symlink_metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.mode(), m.uid(), m.gid(), m.size(), m.mtime()))
}

fn package_installed(name: &str) -> bool {
    let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", name]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("install ok installed")
}

/// The host as these tests must leave it.
#[derive(Debug, PartialEq)]
struct HostState {
    diversions: String,
    xclock: Option<(u64, u64, u32, u32, u32, u64, i64)>,
    paths: Vec<(&'static str, bool)>,
}

const MUST_NOT_EXIST: &[&str] = &[
    "/usr/bin-oz",
    HELLO,
    "/usr/bin/oz",
    "/usr/sbin/oz-setup",
    "/usr/sbin/oz-daemon",
    "/etc/oz",
    "/var/lib/oz",
    "/var/log/oz",
    "/lib/systemd/system/oz-daemon.service",
    "/etc/init.d/oz-daemon",
];

impl HostState {
    fn take() -> HostState {
        HostState {
            diversions: diversions(),
            xclock: stat(XCLOCK),
            paths: MUST_NOT_EXIST.iter().map(|p| (*p, Path::new(p).symlink_metadata().is_ok())).collect(),
        }
    }

    /// The state every test starts from: oz and the test package absent, nothing diverted by oz.
    fn check_clean(&self) {
        assert!(self.xclock.is_some(), "{XCLOCK} missing: scripts/deps.sh installs x11-apps");
        assert!(!self.diversions.contains(" by oz"), "oz diversions exist before the test:\n{}", self.diversions);
        let present: Vec<_> = self.paths.iter().filter(|(_, e)| *e).collect();
        assert!(present.is_empty(), "present before the test (is oz installed on this host?): {present:?}");
        assert!(
            !package_installed("oz"),
            "the oz package is installed on this host; this test installs and removes it"
        );
    }
}

/// Undoes whatever a test may have left, whether it passed or not: oz's diversions of the
/// paths it used, the test package, the oz package.
struct Restore;

impl Drop for Restore {
    fn drop(&mut self) {
        for path in [XCLOCK, HELLO] {
            let listed = Command::new("dpkg-divert").args(["--listpackage", path]).output().unwrap();
            if String::from_utf8_lossy(&listed.stdout).trim() == "oz" {
                if Path::new(path).is_symlink() {
                    let _ = std::fs::remove_file(path);
                }
                let _ = Command::new("dpkg-divert").args(["--package", "oz", "--remove", "--rename", path]).status();
            }
        }
        let _ = std::fs::remove_dir("/usr/bin-oz");
        for pkg in [HELLO_PKG, "oz"] {
            if package_installed(pkg) || Path::new(&format!("/var/lib/dpkg/info/{pkg}.list")).exists() {
                let _ = Command::new("dpkg").args(["--purge", pkg]).output();
            }
        }
    }
}

/// A prefix_path whose bin/oz is the built client, traversable by the test users.
fn prefix() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("oz-prefix-").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::os::unix::fs::symlink(bin("oz"), dir.path().join("bin/oz")).unwrap();
    let wrapper = dir.path().join("bin/oz");
    (dir, wrapper)
}

fn oz_setup(d: &Daemon, args: &[&str]) -> std::process::Output {
    Command::new(bin("oz-setup")).arg("--config").arg(&d.ws.config).args(args).output().unwrap()
}

/// A tiny Debian package installing /usr/bin/oz-test-hello: prints its version and arguments,
/// then sleeps for the first argument's seconds.
fn hello_deb(dir: &Path, version: &str) -> PathBuf {
    let root = dir.join(format!("root-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    let control = format!(
        "Package: {HELLO_PKG}\nVersion: {version}\nArchitecture: all\nMaintainer: oz tests <oz@localhost>\nDescription: oz test program\n"
    );
    std::fs::write(root.join("DEBIAN/control"), control).unwrap();
    let script =
        format!("#!/bin/sh\necho \"oz-test-hello {version} $*\"\n[ -n \"$1\" ] && exec sleep \"$1\"\nexit 0\n");
    std::fs::write(root.join("usr/bin/oz-test-hello"), script).unwrap();
    std::fs::set_permissions(root.join("usr/bin/oz-test-hello"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let deb = dir.join(format!("{HELLO_PKG}_{version}_all.deb"));
    sh(Command::new("dpkg-deb").arg("--root-owner-group").arg("--build").arg(&root).arg(&deb));
    deb
}

#[test]
fn install_wraps_xclock_status_reports_and_remove_restores_it() {
    let (_p, wrapper) = prefix();
    let xclock = profile("xclock", XCLOCK, json!({}));
    let d = Daemon::start_with(&[xclock], json!({"prefix_path": wrapper.parent().unwrap().parent().unwrap()}));
    let restore = Restore;
    let before = HostState::take();
    before.check_clean();

    let out = oz_setup(&d, &["install", "xclock"]);
    assert!(out.status.success(), "install: {}", text(&out));
    let report = text(&out);
    assert!(report.contains("created /usr/bin-oz"), "{report}");
    assert!(
        report.contains(&format!("{XCLOCK}: diverted to /usr/bin-oz/xclock.unsafe; {XCLOCK} -> {}", wrapper.display())),
        "{report}"
    );
    assert!(
        diversions().contains("diversion of /usr/bin/xclock to /usr/bin-oz/xclock.unsafe by oz"),
        "{}",
        diversions()
    );
    assert_eq!(std::fs::read_link(XCLOCK).unwrap(), wrapper);
    let real = stat("/usr/bin-oz/xclock.unsafe").expect("the real binary was moved aside");
    assert_eq!(real.1, before.xclock.unwrap().1, "moved (renamed), not copied");
    let again = oz_setup(&d, &["install", "xclock"]);
    assert!(again.status.success() && text(&again).contains("already wrapped"), "{}", text(&again));
    let st = oz_setup(&d, &["status", XCLOCK]);
    assert!(st.status.success(), "{}", text(&st));
    assert!(
        text(&st).contains("wrapped: diverted by oz, real binary at /usr/bin-oz/xclock.unsafe (present), symlink to"),
        "{}",
        text(&st)
    );

    // Launched by its usual path, without a display: xclock runs in a sandbox and ends at once,
    // which oz reports with the program's last output (its complaint also reaches the sandbox
    // log); the diverted path still runs it directly.
    let a = user_a();
    let mut cmd = run::command(Path::new(XCLOCK), &d.socket, &a);
    cmd.env_remove("DISPLAY");
    let wrapped = run::output(cmd, None, Duration::from_secs(10), "xclock through the wrapper");
    wrapped.assert_failed("xclock through the wrapper without a display");
    assert!(wrapped.stderr.contains("in sandbox") && wrapped.stderr.contains("Can't open display"), "{wrapped:?}");
    let sandboxed = common_daemon::wait_until(Duration::from_secs(10), || {
        d.oz(&a, &["logs"]).stdout.contains("Can't open display")
    });
    assert!(sandboxed, "xclock did not run in a sandbox; oz logs:\n{}", d.oz(&a, &["logs"]).stdout);
    let direct = run::output(
        run::command(Path::new("/usr/bin-oz/xclock.unsafe"), &d.socket, &a),
        None,
        Duration::from_secs(10),
        "xclock.unsafe",
    );
    assert!(direct.stderr.contains("Can't open display"), "the diverted binary runs unsandboxed: {direct:?}");

    // A missing symlink is reported (exit 1) and install puts it back.
    std::fs::remove_file(XCLOCK).unwrap();
    let broken = oz_setup(&d, &["status", "xclock"]);
    assert!(!broken.status.success() && text(&broken).contains("symlink MISSING"), "{}", text(&broken));
    let repaired = oz_setup(&d, &["install", "xclock"]);
    assert!(repaired.status.success() && text(&repaired).contains("restored"), "{}", text(&repaired));

    let out = oz_setup(&d, &["remove", "xclock"]);
    assert!(out.status.success(), "remove: {}", text(&out));
    assert!(text(&out).contains("removed empty /usr/bin-oz"), "{}", text(&out));
    assert_eq!(HostState::take(), before, "remove restores the file and the diversion database exactly");
    // Restored while the daemon still holds the host lock.
    drop(restore);
    d.finish();
}

/// Removes a stand-in file the test put at `path` (recognised by its content), before
/// [`Restore`] undoes the diversion, which cannot rename the real file back over it.
struct StandIn(&'static str, String);

impl Drop for StandIn {
    fn drop(&mut self) {
        if std::fs::read_to_string(self.0).is_ok_and(|t| t == self.1) {
            let _ = std::fs::remove_file(self.0);
        }
    }
}

#[test]
fn install_all_wraps_installed_paths_entries_and_force_replaces_a_file_in_the_symlinks_place() {
    const MISSING: &str = "/usr/bin/ozt-not-installed";
    let (_p, wrapper) = prefix();
    // A profile whose `path` is not installed and whose `paths` names xclock: --all skips the one
    // and wraps the other.
    let profiles = [profile("ozt-paths", MISSING, json!({"paths": [XCLOCK]}))];
    let d = Daemon::start_with(&profiles, json!({"prefix_path": wrapper.parent().unwrap().parent().unwrap()}));
    let restore = Restore;
    let before = HostState::take();
    before.check_clean();

    let out = oz_setup(&d, &["install", "--all"]);
    assert!(out.status.success(), "install --all: {}", text(&out));
    assert!(text(&out).contains(&format!("{MISSING}: skipped (not installed)")), "{}", text(&out));
    let ours: Vec<String> = diversions().lines().filter(|l| l.ends_with(" by oz")).map(String::from).collect();
    assert_eq!(ours, ["diversion of /usr/bin/xclock to /usr/bin-oz/xclock.unsafe by oz"], "install --all");
    assert!(!Path::new(MISSING).exists(), "install --all made {MISSING}");
    assert_eq!(std::fs::read_link(XCLOCK).unwrap(), wrapper);

    // Something else in the symlink's place is kept unless --force.
    let stand_in = StandIn(XCLOCK, format!("#!/bin/sh\n# oz test stand-in {}\n", std::process::id()));
    std::fs::remove_file(XCLOCK).unwrap();
    std::fs::write(XCLOCK, &stand_in.1).unwrap();
    let kept = oz_setup(&d, &["install", XCLOCK]);
    assert!(!kept.status.success() && text(&kept).contains("--force replaces it"), "{}", text(&kept));
    assert_eq!(std::fs::read_to_string(XCLOCK).unwrap(), stand_in.1, "install without --force replaced the file");
    // (The profile's uninstalled `path` is reported as an error all the same.)
    let forced = oz_setup(&d, &["install", "--force", XCLOCK]);
    assert!(
        text(&forced).contains(&format!("{XCLOCK}: symlink to {} restored", wrapper.display())),
        "{}",
        text(&forced)
    );
    assert_eq!(std::fs::read_link(XCLOCK).unwrap(), wrapper, "--force put the symlink back");

    let out = oz_setup(&d, &["remove", "--all"]);
    assert!(out.status.success(), "remove --all: {}", text(&out));
    assert_eq!(HostState::take(), before, "remove --all restores the file and the diversion database");
    drop(stand_in);
    drop(restore);
    d.finish();
}

#[test]
fn launched_by_its_path_it_runs_sandboxed_and_a_package_upgrade_keeps_it_wrapped() {
    let (_p, wrapper) = prefix();
    let debs = tempfile::tempdir().unwrap();
    let hello = profile("ozt-hello", HELLO, json!({}));
    let d = Daemon::start_with(&[hello], json!({"prefix_path": wrapper.parent().unwrap().parent().unwrap()}));
    let restore = Restore;
    let before = HostState::take();
    before.check_clean();
    sh(Command::new("dpkg").arg("-i").arg(hello_deb(debs.path(), "1.0")));
    let installed = HostState::take();

    let out = oz_setup(&d, &["install", HELLO]);
    assert!(out.status.success(), "install: {}", text(&out));
    let a = user_a();
    let mut cmd = run::command(Path::new(HELLO), &d.socket, &a);
    cmd.arg("600");
    run::output(cmd, None, Duration::from_secs(10), "oz-test-hello 600").assert_ok("wrapper launch", &d);
    let listed = d.list_json(&a);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["profile"], "ozt-hello");
    let init = d.sandbox(listed[0]["id"].as_u64().unwrap()).unwrap().init_pid as i32;
    assert_eq!(common_daemon::procs::pidns_members_named(init, "sleep").len(), 1, "the program runs in the sandbox");
    let direct = run::output(
        run::command(Path::new("/usr/bin-oz/oz-test-hello.unsafe"), &d.socket, &a),
        None,
        Duration::from_secs(10),
        "direct",
    );
    assert_eq!(direct.stdout, "oz-test-hello 1.0 \n", "{direct:?}");
    assert_eq!(d.list_json(&a).len(), 1, "the diverted path runs without a sandbox");

    // An upgrade, then a reinstall of the same version: dpkg puts the new binary at the
    // diverted name and the wrapper stays.
    let v2 = hello_deb(debs.path(), "2.0");
    for round in ["upgrade", "reinstall"] {
        sh(Command::new("dpkg").arg("-i").arg(&v2));
        assert_eq!(std::fs::read_link(HELLO).ok(), Some(wrapper.clone()), "{round}: still a symlink to oz");
        let direct = run::output(
            run::command(Path::new("/usr/bin-oz/oz-test-hello.unsafe"), &d.socket, &a),
            None,
            Duration::from_secs(10),
            "direct",
        );
        assert_eq!(direct.stdout, "oz-test-hello 2.0 \n", "{round}: the new binary is at the diverted name");
        let st = oz_setup(&d, &["status", "ozt-hello"]);
        assert!(st.status.success() && text(&st).contains("intact"), "{round}: {}", text(&st));
    }

    let out = oz_setup(&d, &["remove", "ozt-hello"]);
    assert!(out.status.success(), "remove: {}", text(&out));
    let after = HostState::take();
    assert_eq!(after.diversions, installed.diversions);
    assert!(!std::fs::symlink_metadata(HELLO).unwrap().file_type().is_symlink(), "the package's file is back");
    // Purged and restored while the daemon (and with it the host lock) is still held, so the
    // next test, here or in another checkout, starts from a clean host.
    sh(Command::new("dpkg").args(["--purge", HELLO_PKG]));
    drop(restore);
    d.finish();
    assert_eq!(HostState::take(), before, "the host is as before");
}

#[test]
fn the_deb_installs_wraps_and_is_removed_without_a_trace() {
    let _serial = oz_integration::serial::acquire();
    let _restore = Restore;
    let before = HostState::take();
    before.check_clean();
    let out_dir = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = sh(Command::new("bash")
        .arg(repo.join("packaging/build-deb.sh"))
        .arg(out_dir.path())
        .env("OZ_BIN_DIR", bin_dir()));
    let deb = PathBuf::from(String::from_utf8_lossy(&built.stdout).trim());
    assert_eq!(deb.file_name().unwrap().to_string_lossy(), format!("oz_{}_amd64.deb", env!("CARGO_PKG_VERSION")));

    let listing =
        String::from_utf8_lossy(&sh(Command::new("dpkg-deb").arg("--contents").arg(&deb)).stdout).into_owned();
    for want in [
        "./usr/bin/oz",
        "./usr/sbin/oz-setup",
        "./usr/sbin/oz-daemon",
        "./usr/sbin/oz-agent",
        "./etc/oz/oz.conf",
        "./etc/oz/blacklist-generic.seccomp",
        "./var/lib/oz/cells.d/firefox-esr.json",
        "./var/lib/oz/cells.d/xclock.json",
        "./lib/systemd/system/oz-daemon.service",
        "./lib/systemd/system/oz-daemon.socket",
        "./etc/init.d/oz-daemon",
        "./usr/share/man/man1/oz.1.gz",
        "./usr/share/man/man8/oz-setup.8.gz",
        "./usr/share/man/man8/oz-daemon.8.gz",
        "./usr/share/bash-completion/completions/oz",
        "./usr/share/zsh/vendor-completions/_oz-setup",
        "./usr/share/fish/vendor_completions.d/oz.fish",
    ] {
        assert!(listing.lines().any(|l| l.ends_with(&format!(" {want}"))), "{want} not in the package:\n{listing}");
    }

    sh(Command::new("dpkg").arg("-i").arg(&deb));
    sh(Command::new("systemd-analyze").args([
        "verify",
        "/lib/systemd/system/oz-daemon.service",
        "/lib/systemd/system/oz-daemon.socket",
    ]));
    let check = sh(Command::new("/usr/sbin/oz-setup").args(["config", "check"]));
    assert!(text(&check).contains("/etc/oz/blacklist-generic.seccomp: ok"), "{}", text(&check));
    let wrapped = sh(Command::new("/usr/sbin/oz-setup").args(["install", "xclock"]));
    assert!(text(&wrapped).contains("/usr/bin/xclock -> /usr/bin/oz"), "{}", text(&wrapped));
    assert_eq!(std::fs::read_link(XCLOCK).unwrap(), Path::new("/usr/bin/oz"));

    // Removing the package (not purging) undoes every diversion: xclock is itself again.
    let removed = sh(Command::new("dpkg").args(["-r", "oz"]));
    assert!(!diversions().contains(" by oz"), "{}\n{}", diversions(), text(&removed));
    assert_eq!(stat(XCLOCK), before.xclock, "xclock is back, the same file");
    let direct = Command::new(XCLOCK).env_remove("DISPLAY").output().unwrap();
    assert!(
        String::from_utf8_lossy(&direct.stderr).contains("Can't open display"),
        "xclock runs unsandboxed: {direct:?}"
    );
    sh(Command::new("dpkg").args(["--purge", "oz"]));
    assert_eq!(HostState::take(), before, "the host is as before");
}
