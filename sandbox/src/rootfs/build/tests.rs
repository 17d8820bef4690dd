//! Building real roots: each test forks a child that unshares a mount namespace (and, for /proc,
//! a PID namespace with one more fork so the builder is PID 1), builds, pivots, and checks the
//! result from inside; failures come back over a pipe. Nothing is mounted in the test's own
//! namespace, so nothing outlives the child.

use crate::rootfs::tests::{Fixture, FAKE_UID};
use crate::rootfs::{build, plan, BuildReport, RootfsPlan};
use nix::sys::statvfs::{statvfs, FsFlags};
use oz_profiles::Config;
use oz_wire::spec::{LaunchSpec, StdioMode};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Run `f` in a forked child; its error (or panic) message comes back as Err.
fn in_child(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    // One forking test at a time: a concurrent fork would inherit this pipe's write end (and
    // keep the reader waiting) or a lock held by another test thread.
    static FORKS: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = FORKS.lock().unwrap_or_else(|p| p.into_inner());
    fork_run(f)
}

/// Fork, run `f` in the child, report. Inside a child (nested) call this, not `in_child`: the
/// child's copy of the lock is held.
fn fork_run(f: impl FnOnce() -> Result<(), String>) -> Result<(), String> {
    let (r, w) = nix::unistd::pipe().map_err(|e| e.to_string())?;
    // SAFETY: the child only runs `f` (malloc is fork-safe in glibc) and then _exits; it never
    // returns into the test harness.
    match unsafe { nix::unistd::fork() }.map_err(|e| e.to_string())? {
        nix::unistd::ForkResult::Child => {
            drop(r);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| {
                Err(p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default())
            });
            let code = match result {
                Ok(()) => 0,
                Err(msg) => {
                    let _ = std::fs::File::from(w).write_all(msg.as_bytes());
                    1
                }
            };
            // SAFETY: leave the forked child without running the harness's exit handlers.
            unsafe { libc::_exit(code) }
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(w);
            let mut msg = String::new();
            let _ = std::fs::File::from(r).read_to_string(&mut msg);
            let status = nix::sys::wait::waitpid(child, None).map_err(|e| e.to_string())?;
            match status {
                nix::sys::wait::WaitStatus::Exited(_, 0) => Ok(()),
                other => Err(format!("child {other:?}: {msg}")),
            }
        }
    }
}

fn unshare(flags: nix::sched::CloneFlags) -> Result<(), String> {
    nix::sched::unshare(flags).map_err(|e| format!("unshare: {e}"))
}

fn spec(f: &Fixture, profile_json: &str, use_full_dev: bool) -> LaunchSpec {
    let profile = oz_profiles::load::parse_profile(profile_json.as_bytes(), Path::new("bt.json")).unwrap().value;
    let config = Config { sandbox_path: f.dir.path().join("staging"), use_full_dev, ..Config::default() };
    LaunchSpec {
        sandbox_id: 1,
        profile,
        config,
        uid: FAKE_UID,
        caller_env: Vec::new(),
        args: Vec::new(),
        cwd: None,
        noexec: false,
        stdio: StdioMode::Log,
        ephemeral: false,
    }
}

fn check(cond: bool, what: impl std::fmt::Display) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(format!("check failed: {what}"))
    }
}

fn flags(p: &str) -> Result<FsFlags, String> {
    statvfs(p).map(|s| s.flags()).map_err(|e| format!("statvfs {p}: {e}"))
}

fn erofs(r: std::io::Result<()>) -> bool {
    matches!(r, Err(e) if e.raw_os_error() == Some(libc::EROFS))
}

fn read(p: &str) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| format!("<{e}>"))
}

fn build_in_new_ns(plan: &RootfsPlan) -> Result<BuildReport, String> {
    unshare(nix::sched::CloneFlags::CLONE_NEWNS)?;
    build(plan).map_err(|e| format!("build: {e}"))
}

const PROFILE: &str = r#"{
  "name": "bt", "path": "/usr/bin/true", "nosysproc": true,
  "whitelist": [
    {"path": "${HOME}/rw"},
    {"path": "${HOME}/rw/sub", "read_only": true},
    {"path": "${HOME}/ro", "read_only": true},
    {"path": "${HOME}/.cc/app", "can_create": true},
    {"path": "${HOME}/lnk", "no_follow": true},
    {"path": "${HOME}/fakepasswd", "target": "/etc/passwd", "read_only": true, "force": true},
    {"path": "${HOME}/fakegroup", "target": "/etc/group", "read_only": true},
    {"path": "${HOME}/missing", "ignore": true},
    {"path": "${HOME}/suid", "allow_suid": true},
    {"path": "${HOME}/g*", "read_only": true},
    {"path": "${HOME}/ro", "target": "/opt/ro-view", "read_only": true, "symlink": "${HOME}/ro-link"},
    {"path": "${HOME}/ro", "target": "${HOME}/rw/mp", "read_only": true}
  ],
  "shared_folders": ["${HOME}/Downloads"],
  "blacklist": [
    {"path": "${HOME}/rw/link-to-data"},
    {"path": "${HOME}/rw/abs-id"}
  ]
}"#;

fn whitelist_fixture() -> Fixture {
    let f = Fixture::new();
    f.user_dir("rw/sub");
    f.user_file("rw/hello", "hello");
    f.user_file("rw/data", "data");
    f.user_link("rw/link-to-data", "data");
    f.user_link("rw/abs-id", "/etc/machine-id");
    f.user_dir("ro");
    f.user_link("lnk", "/etc/shadow");
    f.user_file("fakepasswd", "fake\n");
    f.user_file("fakegroup", "fake\n");
    f.user_dir("suid");
    f.user_dir("g1");
    f.user_dir("g2");
    f.user_file("arg.txt", "arg");
    f
}

#[test]
fn builds_a_root_with_every_whitelist_and_blacklist_flag() {
    let f = whitelist_fixture();
    let p = plan(&spec(&f, PROFILE, false), &f.user, &[f.home().join("arg.txt")]).unwrap();
    let home = f.home().to_string_lossy().into_owned();
    let h = |rel: &str| format!("{home}/{rel}");
    let r = in_child(|| {
        let report = build_in_new_ns(&p)?;
        // Host tree gone, root read-only, system dirs read-only, symlinked /bin recreated.
        check(!Path::new("/work").exists() && !Path::new("/old_root").exists(), "host tree still visible")?;
        check(erofs(std::fs::write("/newfile", "x")), "/ writable")?;
        check(erofs(std::fs::write("/usr/oz-test", "x")), "/usr writable")?;
        check(flags("/usr")?.contains(FsFlags::ST_NOSUID | FsFlags::ST_NODEV), "/usr lacks nosuid/nodev")?;
        check(std::fs::read_link("/bin").ok() == Some("usr/bin".into()), "/bin is not the usr/bin link")?;
        // /etc: generated files, includes, force and its absence.
        check(read("/etc/hostname") == "bt\n", "hostname")?;
        check(read("/etc/hosts").contains("127.0.1.1\tbt bt.local"), "hosts")?;
        check(!Path::new("/etc/shadow").exists(), "/etc/shadow visible")?;
        check(read("/etc/passwd") == "fake\n", "force did not cover /etc/passwd")?;
        check(read("/etc/group") != "fake\n", "an existing target was covered without force")?;
        check(
            report.warnings.iter().any(|w| w.contains("/etc/group") && w.contains("force")),
            format!("{:?}", report.warnings),
        )?;
        // /tmp, /run, marker.
        let tmp = std::fs::metadata("/tmp").map_err(|e| e.to_string())?;
        check(tmp.permissions().mode() & 0o7777 == 0o1777, "/tmp mode")?;
        check(flags("/tmp")?.contains(FsFlags::ST_NOEXEC | FsFlags::ST_NOSUID | FsFlags::ST_NODEV), "/tmp flags")?;
        let marker = std::fs::metadata("/run/oz-sandbox").map_err(|e| e.to_string())?;
        check(read("/run/oz-sandbox") == "bt\n" && marker.uid() == 0 && marker.mode() & 0o777 == 0o444, "marker")?;
        let run = std::fs::metadata(format!("/run/user/{FAKE_UID}")).map_err(|e| e.to_string())?;
        check(run.uid() == FAKE_UID && run.mode() & 0o777 == 0o700, "/run/user/<uid>")?;
        check(std::fs::read_link("/var/tmp").ok() == Some("/tmp".into()), "/var/tmp link")?;
        // /dev.
        let mut dev: Vec<String> = std::fs::read_dir("/dev")
            .map_err(|e| e.to_string())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        dev.sort();
        check(
            dev == [
                "fd", "full", "null", "ptmx", "pts", "random", "shm", "stderr", "stdin", "stdout", "tty", "urandom",
                "zero",
            ],
            format!("/dev has {dev:?}"),
        )?;
        std::fs::write("/dev/null", "x").map_err(|e| format!("/dev/null: {e}"))?;
        check(std::fs::read_link("/dev/ptmx").ok() == Some("pts/ptmx".into()), "/dev/ptmx link")?;
        check(Path::new("/dev/pts/ptmx").exists(), "no devpts")?;
        // Home and whitelist flags.
        let hm = std::fs::metadata(&home).map_err(|e| e.to_string())?;
        check(hm.uid() == FAKE_UID && hm.mode() & 0o777 == 0o700, "home owner/mode")?;
        check(read(&h("rw/hello")) == "hello", "rw content")?;
        let rw = flags(&h("rw"))?;
        check(
            rw.contains(FsFlags::ST_NOEXEC | FsFlags::ST_NOSUID | FsFlags::ST_NODEV)
                && !rw.contains(FsFlags::ST_RDONLY),
            "rw flags",
        )?;
        check(flags(&h("rw/sub"))?.contains(FsFlags::ST_RDONLY), "nested read_only item not applied")?;
        check(flags(&h("ro"))?.contains(FsFlags::ST_RDONLY), "read_only")?;
        check(Path::new(&h(".cc/app")).is_dir(), "can_create")?;
        check(std::fs::read_link(h("lnk")).ok() == Some("/etc/shadow".into()), "no_follow link")?;
        check(!Path::new(&h("missing")).exists(), "ignored item")?;
        let suid = flags(&h("suid"))?;
        check(
            suid.contains(FsFlags::ST_RDONLY)
                && !suid.contains(FsFlags::ST_NOSUID)
                && !suid.contains(FsFlags::ST_NOEXEC),
            "allow_suid flags",
        )?;
        check(
            flags(&h("g1"))?.contains(FsFlags::ST_RDONLY) && flags(&h("g2"))?.contains(FsFlags::ST_RDONLY),
            "glob items",
        )?;
        check(flags("/opt/ro-view")?.contains(FsFlags::ST_RDONLY), "target")?;
        check(std::fs::read_link(h("ro-link")).ok() == Some("/opt/ro-view".into()), "symlink key")?;
        check(std::fs::read_link(h("Downloads")).ok() == Some(h(".shared/Downloads").into()), "shared folder link")?;
        std::fs::write(h("Downloads/file"), "dl").map_err(|e| format!("write shared folder: {e}"))?;
        std::fs::write(h("arg.txt"), "changed").map_err(|e| format!("write argument file: {e}"))?;
        check(flags(&h("arg.txt"))?.contains(FsFlags::ST_NOEXEC), "argument file exec")?;
        // Blacklist: through a relative link the real file is hidden; an absolute link is
        // resolved in the new root (hiding the sandbox's /etc/machine-id, not the host's).
        check(read(&h("rw/data")).is_empty(), "blacklist through a symlink")?;
        check(read("/etc/machine-id").is_empty(), "absolute blacklist link not resolved in the new root")?;
        check(std::fs::read_dir("/usr/sbin").map_err(|e| e.to_string())?.next().is_none(), "/usr/sbin not hidden")?;
        check(std::fs::read_dir("/sbin").map_err(|e| e.to_string())?.next().is_none(), "/sbin not hidden")?;
        let hidden = FsFlags::ST_RDONLY | FsFlags::ST_NOSUID | FsFlags::ST_NODEV | FsFlags::ST_NOEXEC;
        check(
            flags("/usr/sbin")?.contains(hidden) && flags("/etc/machine-id")?.contains(hidden),
            "a placeholder lacks ro/nosuid/nodev/noexec",
        )?;
        check(!Path::new("/usr/bin/su").exists() || read("/usr/bin/su").is_empty(), "su not hidden")?;
        check(!Path::new("/usr/bin/mount").exists() || read("/usr/bin/mount").is_empty(), "mount not hidden")?;
        check(!Path::new("/bin/su").exists() || read("/bin/su").is_empty(), "su not hidden under /bin")?;
        Ok(())
    });
    r.unwrap();
    // On the host: can_create made the directories as the user; the rest is untouched.
    let cc = std::fs::metadata(f.home().join(".cc/app")).unwrap();
    assert_eq!(cc.uid(), FAKE_UID);
    assert_eq!(std::fs::read_to_string(f.home().join("rw/data")).unwrap(), "data");
    let mp = std::fs::metadata(f.home().join("rw/mp")).unwrap();
    assert_eq!(mp.uid(), FAKE_UID, "a mount point in a bound host dir was created as root");
    let shared = f.home().join("OZ/Bt/Downloads");
    assert_eq!(std::fs::metadata(&shared).unwrap().uid(), FAKE_UID, "shared folder not created as the user");
    assert_eq!(std::fs::read_to_string(shared.join("file")).unwrap(), "dl");
    assert_eq!(std::fs::read_to_string(f.home().join("arg.txt")).unwrap(), "changed");
    assert_eq!(std::fs::read_dir(f.dir.path().join("staging")).unwrap().count(), 0, "staging left files on the host");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&*f.dir.path().to_string_lossy()), "a mount leaked into the host namespace");
}

#[test]
fn proc_is_masked_and_sys_read_only() {
    let f = Fixture::new();
    let json = r#"{"name": "pt", "path": "/usr/bin/true"}"#;
    let p = plan(&spec(&f, json, false), &f.user, &[]).unwrap();
    let r = in_child(|| {
        use nix::sched::CloneFlags;
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNET)?;
        fork_run(|| {
            let report = build(&p).map_err(|e| format!("build: {e}"))?;
            // A new sysfs (not the host-/sys fallback), showing the new network namespace.
            check(report.warnings.is_empty(), format!("{:?}", report.warnings))?;
            let nets: Vec<_> = std::fs::read_dir("/sys/class/net")
                .map_err(|e| e.to_string())?
                .flatten()
                .map(|e| e.file_name())
                .collect();
            check(nets == ["lo"], format!("/sys/class/net has {nets:?}"))?;
            check(nix::unistd::getpid().as_raw() == 1, "not pid 1")?;
            check(std::fs::read_link("/proc/self").ok() == Some("1".into()), "/proc is not the new pid namespace's")?;
            check(Path::new("/proc/keys").exists(), "/proc/keys should be masked, not absent")?;
            for masked in ["/proc/kcore", "/proc/keys", "/proc/kallsyms", "/proc/timer_list"] {
                if Path::new(masked).exists() {
                    check(std::fs::read(masked).map(|v| v.is_empty()).unwrap_or(false), format!("{masked} readable"))?;
                }
            }
            check(erofs(std::fs::write("/proc/sys/kernel/hostname", "x")), "/proc/sys writable")?;
            // Not every kernel has it (this machine's does not).
            if Path::new("/proc/sysrq-trigger").exists() {
                let w = std::fs::OpenOptions::new().write(true).open("/proc/sysrq-trigger").map(drop);
                check(erofs(w), "/proc/sysrq-trigger writable")?;
            }
            check(
                flags("/proc")?.contains(FsFlags::ST_NOEXEC | FsFlags::ST_NOSUID | FsFlags::ST_NODEV),
                "/proc flags",
            )?;
            check(flags("/sys")?.contains(FsFlags::ST_RDONLY), "/sys writable")?;
            if Path::new("/sys/firmware").exists() {
                check(
                    std::fs::read_dir("/sys/firmware").map_err(|e| e.to_string())?.next().is_none(),
                    "/sys/firmware visible",
                )?;
            }
            Ok(())
        })
    });
    r.unwrap();
}

#[test]
fn full_dev_uses_the_host_devices_with_a_private_pts() {
    let f = Fixture::new();
    let json = r#"{"name": "fd", "path": "/usr/bin/true", "nosysproc": true}"#;
    let p = plan(&spec(&f, json, true), &f.user, &[]).unwrap();
    in_child(|| {
        build_in_new_ns(&p)?;
        check(Path::new("/dev/loop-control").exists() || Path::new("/dev/kmsg").exists(), "not the host's devices")?;
        check(Path::new("/dev/pts/ptmx").exists(), "no devpts")?;
        let pts: Vec<_> =
            std::fs::read_dir("/dev/pts").map_err(|e| e.to_string())?.flatten().map(|e| e.file_name()).collect();
        check(pts.len() == 1, format!("host ptys visible: {pts:?}"))?;
        Ok(())
    })
    .unwrap();
}

#[test]
fn in_child_reports_failures() {
    let e = in_child(|| Err("boom".into())).unwrap_err();
    assert!(e.contains("boom"));
}

#[test]
fn a_source_swapped_for_a_symlink_after_planning_is_refused_at_build() {
    let f = Fixture::new();
    f.user_dir("swap");
    let json = r#"{"name": "sw", "path": "/usr/bin/true", "nosysproc": true, "whitelist": [{"path": "${HOME}/swap"}]}"#;
    let p = plan(&spec(&f, json, false), &f.user, &[]).unwrap();
    std::fs::remove_dir(f.home().join("swap")).unwrap();
    f.user_link("swap", "/etc");
    let err = in_child(|| match build_in_new_ns(&p) {
        Ok(_) => Ok(()),
        Err(e) => Err(e),
    })
    .unwrap_err();
    assert!(err.contains("swap") && err.contains("/etc") && err.contains("leads out"), "{err}");
}

/// A directory the builder made and a later mount covered takes no further mount points: they
/// land in what covers it, not in the hidden directory underneath.
#[test]
fn mount_points_under_a_covered_directory_land_in_what_covers_it() {
    let f = Fixture::new();
    f.user_dir("cover");
    f.user_dir("inner");
    f.user_file("inner/marker", "inner");
    // /var/lib is made by the builder (the /var/lib/dbus skeleton), then covered by ~/cover;
    // /var/lib/x is then made inside the cover (as the user) for ~/inner.
    let json = r#"{"name": "cv", "path": "/usr/bin/true", "nosysproc": true, "whitelist": [
        {"path": "${HOME}/cover", "target": "/var/lib"},
        {"path": "${HOME}/inner", "target": "/var/lib/x", "read_only": true}
    ]}"#;
    let p = plan(&spec(&f, json, false), &f.user, &[]).unwrap();
    in_child(|| {
        build_in_new_ns(&p)?;
        check(read("/var/lib/x/marker") == "inner", format!("/var/lib/x/marker: {}", read("/var/lib/x/marker")))?;
        check(!Path::new("/var/lib/dbus").exists(), "the skeleton's /var/lib still shows")
    })
    .unwrap();
    let made = f.home().join("cover/x");
    assert!(made.is_dir(), "the mount point was made in the covering tree");
    assert_eq!(std::fs::metadata(&made).unwrap().uid(), FAKE_UID, "as the user");
}

/// Root makes mount points only in root-owned directories of the build's own tmpfs mounts: in
/// the user's home (a tmpfs the user owns) the user makes them, and in a root-owned directory
/// bound from the host nobody does (the user may not, and root never writes to a host tree).
#[test]
fn mount_points_are_made_by_root_only_in_its_own_directories() {
    let f = Fixture::new();
    f.user_dir("inner");
    let rooted = f.user_dir("rootowned");
    std::os::unix::fs::chown(&rooted, Some(0), Some(0)).unwrap();
    let home = f.home().to_string_lossy().into_owned();
    let in_home = r#"{"name": "oh", "path": "/usr/bin/true", "nosysproc": true, "whitelist": [
        {"path": "${HOME}/inner", "target": "${HOME}/made/here", "read_only": true}
    ]}"#;
    let p = plan(&spec(&f, in_home, false), &f.user, &[]).unwrap();
    in_child(|| {
        build_in_new_ns(&p)?;
        let made = std::fs::metadata(format!("{home}/made")).map_err(|e| format!("{home}/made: {e}"))?;
        check(made.uid() == FAKE_UID, format!("{home}/made is owned by {}, not the user", made.uid()))
    })
    .unwrap();

    let in_host_tree = r#"{"name": "oh", "path": "/usr/bin/true", "nosysproc": true, "whitelist": [
        {"path": "${HOME}/rootowned", "target": "/srv/r"},
        {"path": "${HOME}/inner", "target": "/srv/r/sub", "read_only": true}
    ]}"#;
    let p = plan(&spec(&f, in_host_tree, false), &f.user, &[]).unwrap();
    let built = in_child(|| build_in_new_ns(&p).map(|_| ()));
    assert!(!rooted.join("sub").exists(), "a mount point was made in the host's root-owned directory");
    let err = built.expect_err("the user cannot make a mount point in a root-owned directory");
    assert!(err.contains("/srv/r/sub") && err.contains("mkdir"), "{err}");
}
