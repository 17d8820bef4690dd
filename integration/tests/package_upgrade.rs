//! A package upgrade with sandboxes running, as a desktop user meets it: oz's .deb of the
//! previous release (built from the last commit of agent protocol 3, so its agents speak the
//! previous protocol) is installed, its daemon started the package's way where systemd does not
//! run (the init script), a user launches three sandboxes; then `dpkg -i` of this tree's build
//! restarts the daemon from the maintainer scripts, and the new daemon re-adopts the protocol 3
//! agents: `oz list` shows the three, `oz shell`, `oz mount` and `oz kill` work on them, a new
//! launch runs the new agent, and nothing is left behind. The host is restored (package purged, test profile and
//! runtime directories removed) whether the test passes or not; it refuses to run on a host
//! where oz is installed, whose package it could not put back.

mod common_daemon;

use common_daemon::procs::{self, Proc};
use common_daemon::{bin_dir, run, user_a, user_b, wait_until, TestUser};
use oz_integration::leftovers::Snapshot;
use oz_wire::client::Client;
use oz_wire::{ClientRequest, DaemonReply, SandboxRecord};
use serde_json::Value;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SOCKET: &str = "/run/oz/control.sock";
const PIDFILE: &str = "/run/oz-daemon.pid";
const INIT: &str = "/etc/init.d/oz-daemon";
const PROFILE: &str = "/var/lib/oz/cells.d/ozt-upgrade.json";
const DAEMON: &str = "/usr/sbin/oz-daemon";
const AGENT: &str = "/usr/sbin/oz-agent";

/// What the package and its daemon create; none of it may exist before or after the test.
const MUST_NOT_EXIST: &[&str] = &[
    "/usr/bin/oz",
    "/usr/sbin/oz-setup",
    DAEMON,
    AGENT,
    "/etc/oz",
    INIT,
    "/var/lib/oz",
    "/var/log/oz",
    "/run/oz",
    PIDFILE,
];

/// oz's default sandbox_path, which other oz runs on the host may have made: compared, not
/// required absent.
const MAY_EXIST: &str = "/srv/oz";

/// The last commit whose agents speak protocol 3, the previous agent protocol.
const PREVIOUS_PROTOCOL_COMMIT: &str = "ef0db9031497bd3aa2f803f171a85e650871bfb6";
const PREVIOUS_PROTOCOL: u32 = 3;

fn sh(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd:?}: {}\n{text}", out.status);
    text
}

fn package_installed() -> bool {
    let out = Command::new("dpkg-query").args(["-W", "-f=${Status}", "oz"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("install ok installed")
}

/// The host as the test must leave it: which of the paths above exist, oz's diversions, init
/// script links.
fn host_state() -> (Vec<&'static str>, String, Vec<PathBuf>) {
    let paths = MUST_NOT_EXIST.iter().chain([&MAY_EXIST]);
    let present = paths.copied().filter(|p| Path::new(p).symlink_metadata().is_ok()).collect();
    let listed = Command::new("dpkg-divert").arg("--list").output().unwrap();
    let ours = String::from_utf8_lossy(&listed.stdout).lines().filter(|l| l.ends_with(" by oz")).collect();
    let mut links = Vec::new();
    for dir in std::fs::read_dir("/etc").unwrap().flatten() {
        let name = dir.file_name().to_string_lossy().into_owned();
        if name.starts_with("rc") && name.ends_with(".d") {
            let hits = std::fs::read_dir(dir.path()).into_iter().flatten().flatten();
            links.extend(hits.filter(|e| e.file_name().to_string_lossy().contains("oz-daemon")).map(|e| e.path()));
        }
    }
    (present, ours, links)
}

/// The daemon's pid from the init script's pid file.
fn daemon_pid() -> Option<i32> {
    std::fs::read_to_string(PIDFILE).ok()?.trim().parse().ok()
}

fn exe(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.display().to_string()).unwrap_or_default()
}

/// Undoes what the test did, passed or not: the daemon, sandboxes it saw, the package, the
/// test profile, the daemon's runtime directories.
struct Restore {
    seen: RefCell<Vec<Proc>>,
}

impl Restore {
    fn track(&self, s: &Listed) {
        let mut seen = self.seen.borrow_mut();
        seen.extend(Proc::get(s.agent_pid as i32));
        seen.extend(procs::pidns_members(s.init_pid as i32));
    }
}

impl Drop for Restore {
    fn drop(&mut self) {
        if Path::new(INIT).exists() {
            let _ = Command::new(INIT).arg("stop").output();
        }
        for p in self.seen.borrow().iter().filter(|p| p.alive()) {
            procs::kill(p.pid, libc::SIGKILL);
        }
        let _ = std::fs::remove_file(PROFILE);
        if package_installed() || Path::new("/var/lib/dpkg/info/oz.list").exists() {
            let _ = Command::new("dpkg").args(["--purge", "oz"]).output();
        }
        // Absent before the test (checked before this guard exists): all of it is the test's,
        // agent records and sockets of a run that failed before its daemon released them too.
        let _ = std::fs::remove_dir_all("/run/oz");
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Build the .deb of the tree `repo` with its binaries from `bins`, with `version` (None: the
/// tree's workspace version), with that tree's own `packaging/build-deb.sh`.
fn build_deb(repo: &Path, bins: &Path, out: &Path, version: Option<&str>) -> PathBuf {
    let mut cmd = Command::new("bash");
    cmd.current_dir(repo).arg("packaging/build-deb.sh").arg(out).env("OZ_BIN_DIR", bins);
    cmd.env_remove("CARGO_TARGET_DIR");
    if let Some(v) = version {
        cmd.env("OZ_DEB_VERSION", v);
    }
    let built = cmd.output().unwrap();
    assert!(built.status.success(), "{}: build-deb.sh: {}", repo.display(), String::from_utf8_lossy(&built.stderr));
    PathBuf::from(String::from_utf8_lossy(&built.stdout).trim())
}

/// The tree of [`PREVIOUS_PROTOCOL_COMMIT`] under `target/oz-prev/`, its binaries built there
/// with its own target directory (this tree's binaries are never touched). The first build
/// starts from a copy of this tree's compiled dependencies in `target/debug`, which it reuses;
/// later runs find it built.
fn previous_release() -> PathBuf {
    let parent = repo().join("target/oz-prev");
    let tree = parent.join(PREVIOUS_PROTOCOL_COMMIT);
    if !tree.join("Cargo.lock").exists() {
        std::fs::create_dir_all(&parent).unwrap();
        // A shallow clone lacks the commit: fetch it from where the clone came from.
        let has = |repo: &Path| {
            let spec = format!("{PREVIOUS_PROTOCOL_COMMIT}^{{commit}}");
            Command::new("git").arg("-C").arg(repo).args(["cat-file", "-e", &spec]).status().is_ok_and(|s| s.success())
        };
        if !has(&repo()) {
            let _ = Command::new("git").arg("-C").arg(repo()).args(["fetch", "--quiet", "--unshallow"]).status();
            let _ = Command::new("git")
                .arg("-C")
                .arg(repo())
                .args(["fetch", "--quiet", "origin", PREVIOUS_PROTOCOL_COMMIT])
                .status();
        }
        let archive = format!(
            "git -C {repo} archive --prefix={c}/ {c} | tar -x -C {parent}",
            repo = repo().display(),
            c = PREVIOUS_PROTOCOL_COMMIT,
            parent = parent.display()
        );
        let out = Command::new("bash").args(["-o", "pipefail", "-c", &archive]).output().unwrap();
        assert!(
            out.status.success(),
            "{archive}: {} (the clone must hold commit {PREVIOUS_PROTOCOL_COMMIT}, protocol {PREVIOUS_PROTOCOL})",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (seed, debug) = (repo().join("target/debug"), tree.join("target/debug"));
    if !debug.exists() && seed.is_dir() {
        // The compiled dependencies only (not the incremental caches).
        std::fs::create_dir_all(&debug).unwrap();
        for dir in ["deps", "build", ".fingerprint"].map(|d| seed.join(d)).iter().filter(|d| d.is_dir()) {
            sh(Command::new("cp").arg("-a").arg(dir).arg(&debug));
        }
    }
    let mut build = Command::new(env!("CARGO"));
    build.current_dir(&tree).env_remove("CARGO_TARGET_DIR").env("CARGO_INCREMENTAL", "0");
    build.args(["build", "--locked", "-p", "oz-cli", "-p", "oz-supervisor", "-p", "oz-agent", "-p", "oz-packaging"]);
    sh(&mut build);
    tree
}

fn sandboxes() -> Vec<SandboxRecord> {
    let mut c = Client::connect(Path::new(SOCKET)).expect("connect to the installed daemon");
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    match c.call(&ClientRequest::ListSandboxes) {
        Ok(DaemonReply::Sandboxes(list)) => list,
        other => panic!("ListSandboxes: {other:?}"),
    }
}

/// The installed `oz ARGS` as `user`, on the installed daemon's socket.
fn oz(user: &TestUser, args: &[&str], stdin: Option<&[u8]>) -> run::Out {
    let mut cmd = run::command(Path::new("/usr/bin/oz"), Path::new(SOCKET), user);
    cmd.args(args);
    run::output(cmd, stdin, Duration::from_secs(15), &format!("oz {}", args.join(" ")))
}

/// A sandbox as the installed `oz list --json` shows it (to the daemon of either protocol).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listed {
    id: u64,
    init_pid: u32,
    agent_pid: u32,
}

fn list(user: &TestUser) -> Vec<Listed> {
    let out = oz(user, &["list", "--json"], None);
    let list: Vec<Value> = serde_json::from_str(&out.stdout).unwrap_or_default();
    let field = |s: &Value, k: &str| s[k].as_u64().unwrap_or_else(|| panic!("oz list --json: no {k} in {s}"));
    let mut v: Vec<Listed> = list
        .iter()
        .map(|s| Listed {
            id: field(s, "id"),
            init_pid: field(s, "init_pid") as u32,
            agent_pid: field(s, "agent_pid") as u32,
        })
        .collect();
    v.sort_by_key(|s| s.id);
    v
}

fn launch(user: &TestUser, restore: &Restore) -> Listed {
    let out = oz(user, &["launch", "ozt-upgrade", "--", "600"], None);
    assert!(out.status.success(), "oz launch: {out:?}\n{}", daemon_output());
    let id: u64 = out.stdout.trim().parse().unwrap_or_else(|_| panic!("oz launch printed {:?}", out.stdout));
    let s = list(user).into_iter().find(|s| s.id == id).expect("the launched sandbox is listed");
    restore.track(&s);
    s
}

/// The daemon's socket accepts connections (whatever protocol it speaks).
fn socket_up() -> bool {
    std::os::unix::net::UnixStream::connect(SOCKET).is_ok()
}

fn daemon_output() -> String {
    std::fs::read_to_string("/var/log/oz/oz-daemon.out").unwrap_or_default()
}

/// The `sleep` program of a sandbox.
fn program(s: &Listed) -> Proc {
    let found = procs::pidns_members_named(s.init_pid as i32, "sleep");
    assert_eq!(found.len(), 1, "sandbox {}: one sleep expected, found {found:?}", s.id);
    found[0]
}

#[test]
fn a_package_upgrade_restarts_the_daemon_and_it_readopts_the_running_sandboxes() {
    let _serial = oz_integration::serial::acquire();
    let (a, b) = (user_a(), user_b());
    assert!(!package_installed(), "the oz package is installed on this host; this test installs and purges it");
    let before = host_state();
    let present: Vec<_> = before.0.iter().filter(|p| **p != MAY_EXIST).collect();
    assert!(present.is_empty(), "present before the test (is oz installed on this host?): {present:?}");
    assert!(before.1.is_empty() && before.2.is_empty(), "oz diversions or init links exist: {before:?}");
    let snapshot = Snapshot::take(&[a.uid, b.uid]);
    let restore = Restore { seen: RefCell::new(Vec::new()) };

    let debs = tempfile::tempdir().unwrap();
    let previous = previous_release();
    let old = build_deb(&previous, &previous.join("target/debug"), &debs.path().join("old"), None);
    let new_version = format!("{}+upgrade1", env!("CARGO_PKG_VERSION"));
    let new = build_deb(&repo(), &bin_dir(), &debs.path().join("new"), Some(&new_version));

    sh(Command::new("dpkg").arg("-i").arg(&old));
    let profile = r#"{"name": "ozt-upgrade", "path": "/bin/sleep", "multi": true, "networking": {"type": "none"}}"#;
    std::fs::write(PROFILE, profile).unwrap();
    sh(Command::new(INIT).arg("start"));
    let up = wait_until(Duration::from_secs(10), socket_up);
    assert!(up, "the installed daemon did not answer on {SOCKET}:\n{}", daemon_output());
    let old_daemon = Proc::get(daemon_pid().expect("pid file")).expect("daemon running");
    // The installed package speaks the previous protocol: this tree's client is refused.
    match Client::connect(Path::new(SOCKET)) {
        Err(e) => assert!(
            format!("{e:?}").contains(&format!("VersionMismatch {{ daemon: {PREVIOUS_PROTOCOL},")),
            "the first package's daemon is not of protocol {PREVIOUS_PROTOCOL}: {e:?}"
        ),
        Ok(_) => panic!("the first package's daemon speaks this tree's protocol"),
    }

    let running: Vec<Listed> = (0..3).map(|_| launch(&a, &restore)).collect();
    let programs: Vec<Proc> = running.iter().map(program).collect();

    let upgrade = sh(Command::new("dpkg").arg("-i").arg(&new));
    assert!(upgrade.contains(&format!("Setting up oz ({new_version})")), "{upgrade}");
    assert!(!old_daemon.alive(), "the old daemon still runs after the upgrade");
    let up = wait_until(Duration::from_secs(10), || Client::connect(Path::new(SOCKET)).is_ok());
    assert!(up, "no daemon of this tree's protocol answers after the upgrade:\n{}", daemon_output());
    let new_daemon = daemon_pid().expect("pid file after the upgrade");
    assert_eq!(exe(new_daemon as u32), DAEMON, "the daemon runs the new binary");

    // The previous version's agents run on (their executable is the replaced file) and are
    // listed by the new daemon with their ids and init pids.
    for (s, prog) in running.iter().zip(&programs) {
        assert!(prog.alive(), "sandbox {}'s program died in the upgrade", s.id);
        assert_eq!(exe(s.agent_pid), format!("{AGENT} (deleted)"), "sandbox {}'s agent is the old binary", s.id);
    }
    let readopted = wait_until(Duration::from_secs(10), || list(&a) == running);
    assert!(readopted, "oz list after the upgrade: {:?}, expected {running:?}\n{}", list(&a), daemon_output());
    // The daemon's terminal log: `... re-adopted sandbox, ..., protocol: 3`.
    let protocol = format!("protocol: {PREVIOUS_PROTOCOL}");
    let readopted_v3 =
        daemon_output().lines().filter(|l| l.contains("re-adopted sandbox") && l.contains(&protocol)).count();
    assert_eq!(
        readopted_v3,
        3,
        "the new daemon did not log three protocol {PREVIOUS_PROTOCOL} agents:\n{}",
        daemon_output()
    );

    // Their records had no ephemeral flag: the new oz list shows them as not ephemeral.
    let listed = oz(&a, &["list", "--json"], None).stdout;
    let listed: Vec<Value> = serde_json::from_str(&listed).unwrap_or_else(|e| panic!("oz list --json: {e}: {listed}"));
    assert!(listed.len() == 3 && listed.iter().all(|s| s["ephemeral"] == Value::Bool(false)), "{listed:?}");

    // oz shell and oz mount work on re-adopted sandboxes.
    let id0 = running[0].id.to_string();
    let shell = oz(&a, &["shell", &id0], Some(b"echo ozt-shell=$(id -u); exit\n"));
    let want = format!("ozt-shell={}", a.uid);
    assert!(
        shell.status.success() && shell.stdout.lines().any(|l| l.split_whitespace().any(|w| w == want)),
        "oz shell in a re-adopted sandbox: {shell:?}"
    );
    let file = a.home.join(format!("ozt-upgrade-{}.txt", std::process::id()));
    a.sh(&format!("echo ozt-mounted > {}", file.display())).unwrap();
    let id1 = running[1].id.to_string();
    let mounted = oz(&a, &["mount", &id1, file.to_str().unwrap()], None);
    let seen = oz(&a, &["shell", &id1], Some(format!("cat {}; exit\n", file.display()).as_bytes()));
    let _ = std::fs::remove_file(&file);
    assert!(mounted.status.success(), "oz mount in a re-adopted sandbox: {mounted:?}");
    assert!(seen.stdout.contains("ozt-mounted\r\n"), "the mounted file is not readable inside: {seen:?}");

    // A new launch runs the new agent.
    let fresh = launch(&a, &restore);
    assert_eq!(exe(fresh.agent_pid), AGENT, "a new launch runs the new agent");

    // oz kill ends each, old and new, and all of each is gone.
    for s in running.iter().chain([&fresh]) {
        let out = oz(&a, &["kill", &s.id.to_string()], None);
        assert!(out.status.success(), "oz kill {}: {out:?}", s.id);
    }
    let seen = restore.seen.borrow().clone();
    let gone = wait_until(Duration::from_secs(10), || seen.iter().all(|p| !p.alive()) && sandboxes().is_empty());
    let alive: Vec<_> = seen.iter().filter(|p| p.alive()).collect();
    assert!(gone, "after oz kill: listed {:?}, processes alive {alive:?}", sandboxes());

    sh(Command::new(INIT).arg("stop"));
    assert!(!Proc::get(new_daemon).is_some_and(|p| p.alive()), "the init script did not stop the daemon");
    std::fs::remove_file(PROFILE).unwrap();
    sh(Command::new("dpkg").args(["--purge", "oz"]));
    // Purge removed the daemon's runtime directory, which it can only when no agent record or
    // rendezvous socket is left in it (checked by host_state below).
    let left = snapshot.leftovers(&[a.uid, b.uid], &[], Duration::from_secs(5));
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert_eq!(host_state(), before, "the host is as before");
    drop(restore);
}
