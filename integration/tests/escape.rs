//! The escape suite: every oz-probe attack, run as the test user inside a sandbox built from a
//! strict profile, must be BLOCKED. Each probe also runs outside the sandbox (as the user, and
//! as root in a throwaway writable copy of the host) and must ESCAPE there, so every BLOCKED
//! inside is known to mean something.

use oz_integration::bins::bin;
use oz_integration::control;
use oz_integration::env::{probe_item, unique, TestEnv, PROBE_TARGET};
use oz_integration::probes::{self, parse_line};
use oz_integration::run::{Opts, Output};
use oz_integration::workspace::strict_profile;
use serde_json::json;
use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

/// Probes an unprivileged user cannot make escape even on the bare host. Each one must ESCAPE
/// in the root control run instead (root in a private mount/UTS namespace, chrooted into
/// writable overlays of the host), which shows the probe detects the breach when it is there.
const ROOT_ONLY: &[(&str, &str)] = &[
    ("uid-root", "an unprivileged user is not uid 0"),
    ("setuid-root", "setresuid(0) needs CAP_SETUID"),
    ("shadow-read", "/etc/shadow is 0640 root:shadow"),
    ("write-root", "/ is root-owned 0755"),
    ("write-usr", "/usr is root-owned 0755"),
    ("write-etc", "/etc is root-owned 0755"),
    ("write-bin", "/bin is root-owned 0755"),
    ("wl-symlink-shadow", "the symlink leads to /etc/shadow, unreadable to the user"),
    ("wl-symlink-rootdir", "the symlink leads to a root-owned 0700 directory"),
    ("can-create-symlink", "the symlink leads to a root-owned 0755 directory"),
    ("proc-root-other", "other roots belong to root-owned processes: ptrace access check"),
    ("sys-writable", "sysfs attributes are root-writable only"),
    ("mknod-dev", "mknod of a device needs CAP_MKNOD"),
    ("proc-sys-write", "/proc/sys is root-writable only"),
    ("proc-timer-list", "/proc/timer_list is 0400 root"),
    ("proc-kallsyms", "kallsyms shows addresses only with CAP_SYSLOG (perf_event_paranoid=2)"),
    ("ptrace-parent", "the parent of the probe is a root process"),
    ("mount-tmpfs", "mount needs CAP_SYS_ADMIN"),
    ("fsopen", "fsopen needs CAP_SYS_ADMIN"),
    ("chroot", "chroot needs CAP_SYS_CHROOT"),
    ("bpf-map-create", "kernel.unprivileged_bpf_disabled=2"),
    ("bpf-prog-load", "kernel.unprivileged_bpf_disabled=2"),
    ("sethostname", "needs CAP_SYS_ADMIN"),
    ("clock-adjust", "needs CAP_SYS_TIME"),
    ("reboot", "needs CAP_SYS_BOOT"),
    ("acct", "needs CAP_SYS_PACCT"),
    ("swapon", "needs CAP_SYS_ADMIN"),
    ("open-by-handle-at", "needs CAP_DAC_READ_SEARCH"),
    ("syslog", "kernel.dmesg_restrict=1"),
    ("dev-disk", "disk nodes are root:disk 0660"),
    ("dev-kmsg", "kernel.dmesg_restrict=1"),
    ("dev-kvm", "/dev/kvm is 0600 root here"),
    ("dev-fuse", "/dev/fuse is 0600 root here"),
    ("raw-socket", "needs CAP_NET_RAW"),
    ("packet-socket", "needs CAP_NET_RAW"),
];

/// The agent's status when it refuses to build the sandbox.
const SETUP_FAILED: i32 = 125;

/// Probes that cannot escape on this host at all, with the host fact that proves it.
fn host_lacks(name: &str) -> Option<String> {
    let absent = |paths: &[&str]| paths.iter().all(|p| !Path::new(p).exists());
    match name {
        "dev-mem" if absent(&["/dev/mem", "/dev/kmem"]) => Some("the host has no /dev/mem or /dev/kmem".into()),
        "dev-port" if absent(&["/dev/port"]) => Some("the host has no /dev/port".into()),
        "dev-kmsg" if absent(&["/dev/kmsg"]) => Some("the host has no /dev/kmsg".into()),
        "dev-kvm" if absent(&["/dev/kvm"]) => Some("the host has no /dev/kvm".into()),
        "dev-fuse" if absent(&["/dev/fuse"]) => Some("the host has no /dev/fuse".into()),
        _ => None,
    }
}

/// Probes an unprivileged process inside a chroot cannot use even as root (the kernel refuses
/// new user namespaces in a chroot): the root control cannot show them; they escape as the user.
const USER_ONLY: &[&str] = &["unshare-userns", "clone-newuser", "setns"];

/// A host process with a unique argv[0], owned by the test user; killed on drop.
struct Marker(Child);

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type Results = BTreeMap<String, (String, String)>;

fn parse(out: &Output) -> Results {
    out.stdout
        .lines()
        .filter_map(parse_line)
        .map(|(tag, name, detail)| (name.to_string(), (tag.to_string(), detail.to_string())))
        .collect()
}

fn leak() -> OwnedFd {
    OwnedFd::from(std::fs::File::open("/").expect("open / to leak"))
}

fn opts() -> Opts {
    Opts { pty: true, leak: Some(leak()), timeout: Some(Duration::from_secs(120)) }
}

/// Everything the probes attack, planted on the host before the runs.
struct Targets {
    probe: PathBuf,
    /// A root-owned setuid copy of the probe, reachable only by the test user.
    suid: PathBuf,
    /// An empty root-owned 0755 directory: the can_create attack's destination.
    rootowned: PathBuf,
    /// Where the root control run builds its scratch root.
    scratch: PathBuf,
    host_file: PathBuf,
    ro_file: PathBuf,
    /// A directory holding `blocked.txt` (blacklisted) and `link-to-blocked` (a symlink to it).
    dir: PathBuf,
    shadow_link: PathBuf,
    rootdir_link: PathBuf,
    cc_path: PathBuf,
    marker: Marker,
    marker_name: String,
    tcp: std::net::TcpListener,
    abstract_name: String,
    _abstract: std::os::unix::net::UnixListener,
}

const SECRET_ENV: &str = "OZ_PROBE_SECRET";
const SUID_TARGET: &str = "/opt/oz-probe/suid-probe";

impl Targets {
    fn plant(env: &mut TestEnv) -> Targets {
        let probe = bin("oz-probe");
        let user = env.user.clone();
        let tag = unique("esc");
        let suid_dir = env.root_dir("suid", 0o750);
        std::os::unix::fs::chown(&suid_dir, Some(0), Some(user.gid)).expect("chown suid dir");
        let suid = suid_dir.join("suid-probe");
        std::fs::copy(&probe, &suid).expect("copy probe");
        std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755)).expect("chmod 4755");
        let secret_dir = env.root_dir("rootsecret", 0o700);
        std::fs::write(secret_dir.join("root-secret"), "root only\n").expect("write root secret");
        let rootowned = env.root_dir("rootowned", 0o755);

        // Files in the user's home, made by the user.
        let host_file = env.home_path(&format!("{tag}-secret.txt"));
        let ro_file = env.home_path(&format!("{tag}-ro.txt"));
        let dir = env.home_path(&format!("{tag}-dir"));
        let shadow_link = env.home_path(&format!("{tag}-shadow"));
        let rootdir_link = env.home_path(&format!("{tag}-rootdir"));
        let cc_link = env.home_path(&format!("{tag}-link"));
        env.as_user(&format!(
            "set -e; echo host-secret > {hf}; echo read-only > {ro}; mkdir {d}; echo blacklisted > {d}/blocked.txt; \
             ln -s blocked.txt {d}/link-to-blocked; ln -s /etc/shadow {sl}; ln -s {sd} {rl}; ln -s {cc} {cl}",
            hf = host_file.display(),
            ro = ro_file.display(),
            d = dir.display(),
            sl = shadow_link.display(),
            sd = secret_dir.display(),
            rl = rootdir_link.display(),
            cc = rootowned.display(),
            cl = cc_link.display(),
        ));

        let marker_name = format!("{tag}-marker");
        let marker = {
            use std::os::unix::process::CommandExt;
            let mut c = user.command("/bin/sleep");
            c.arg0(&marker_name).arg("600");
            Marker(c.spawn().expect("start the marker process"))
        };
        let abstract_name = format!("{tag}-abstract");
        let abstract_listener = {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap();
            std::os::unix::net::UnixListener::bind_addr(&addr).expect("listen on abstract socket")
        };
        Targets {
            probe,
            suid,
            rootowned,
            scratch: env.root_dir("scratch", 0o755),
            host_file,
            ro_file,
            dir,
            shadow_link,
            rootdir_link,
            cc_path: cc_link.join("sub"),
            marker,
            marker_name,
            tcp: std::net::TcpListener::bind("127.0.0.1:0").expect("listen on loopback"),
            abstract_name,
            _abstract: abstract_listener,
        }
    }

    /// `oz-probe all --KEY VALUE...` arguments; `suid` is where the setuid copy is seen.
    fn args(&self, suid: &str) -> Vec<String> {
        let show = |p: &Path| p.display().to_string();
        let ctx = [
            ("suid", suid.to_string()),
            ("host-file", show(&self.host_file)),
            ("ro-file", show(&self.ro_file)),
            ("blacklisted", show(&self.dir.join("blocked.txt"))),
            ("blacklisted-link", show(&self.dir.join("link-to-blocked"))),
            ("shadow-link", show(&self.shadow_link)),
            ("rootdir-link", show(&self.rootdir_link)),
            ("rootdir-secret", "root-secret".to_string()),
            ("cc-path", show(&self.cc_path)),
            ("marker", self.marker_name.clone()),
            ("host-pid", self.marker.0.id().to_string()),
            ("secret-env", SECRET_ENV.to_string()),
            ("host-hostname", nix::unistd::gethostname().unwrap().to_string_lossy().into_owned()),
            ("tcp-port", self.tcp.local_addr().unwrap().port().to_string()),
            ("abstract", self.abstract_name.clone()),
        ];
        let mut v = vec!["all".to_string()];
        for (k, val) in ctx {
            v.push(format!("--{k}"));
            v.push(val);
        }
        v
    }

    /// The strict profile of the main run (the symlink attacks are left out: see below).
    fn profile(&self, env: &TestEnv) -> PathBuf {
        let whitelist = json!([
            probe_item(),
            {"path": self.suid, "target": SUID_TARGET, "read_only": true},
            {"path": self.ro_file, "read_only": true},
            {"path": self.dir, "read_only": true},
        ]);
        env.profile(
            "ozescape",
            strict_profile(PROBE_TARGET, whitelist, json!([{"path": self.dir.join("blocked.txt")}])),
        )
    }

    /// Each symlink attack gets a sandbox of its own: refusing to launch is a valid defence,
    /// and must not hide the other attacks. Returns the results and the outputs.
    fn symlink_attacks(&self, env: &TestEnv, args: &[String]) -> (Results, String) {
        let attacks = [
            ("wl-symlink-shadow", json!({"path": self.shadow_link, "ignore": true})),
            ("wl-symlink-rootdir", json!({"path": self.rootdir_link, "ignore": true})),
            ("can-create-symlink", json!({"path": self.cc_path, "can_create": true, "ignore": true})),
        ];
        let mut results = Results::new();
        let mut outputs = String::new();
        for (i, (name, item)) in attacks.into_iter().enumerate() {
            let p = env
                .profile(&format!("ozattack{i}"), strict_profile(PROBE_TARGET, json!([probe_item(), item]), json!([])));
            let mut argv: Vec<&str> = args.iter().map(String::as_str).collect();
            argv[0] = name;
            let out = env.agent(&p, &argv).opts(opts()).run();
            outputs.push_str(&format!("-- {name}\n{}\n", out.all()));
            let result = if out.status == SETUP_FAILED {
                let why = out.stdout.lines().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
                ("BLOCKED".to_string(), format!("launch refused: {why}"))
            } else {
                parse(&out).remove(name).unwrap_or(("MISSING".into(), out.all()))
            };
            results.insert(name.to_string(), result);
        }
        (results, outputs)
    }

    /// The can_create attack must not have created or chowned anything in the root-owned dir.
    fn assert_rootowned_untouched(&self) {
        let left: Vec<_> = std::fs::read_dir(&self.rootowned).unwrap().flatten().map(|e| e.path()).collect();
        assert!(left.is_empty(), "can_create through a user symlink created {left:?} in a root-owned directory");
        let meta = std::fs::metadata(&self.rootowned).unwrap();
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (0, 0o755), "the root-owned directory was chowned/chmodded");
    }
}

#[test]
fn every_probe_is_blocked_in_a_strict_sandbox_and_escapes_outside() {
    let mut env = TestEnv::new(json!({}));
    let t = Targets::plant(&mut env);

    let sandbox_args = t.args(SUID_TARGET);
    let argv: Vec<&str> = sandbox_args.iter().map(String::as_str).collect();
    let inside = env
        .agent(&t.profile(&env), &argv)
        .agent_env(SECRET_ENV, "agent-env-secret")
        .env(SECRET_ENV, "caller-env-secret")
        .opts(opts())
        .run();
    let mut inside_results = parse(&inside);
    let (attack_results, attack_outputs) = t.symlink_attacks(&env, &sandbox_args);
    inside_results.extend(attack_results);

    let host_args = t.args(&t.suid.display().to_string());
    let senv = [(SECRET_ENV, "user-secret")];
    let as_user = control::as_user(&env.user, &t.probe, &host_args, &senv, opts()).expect("user control run");
    let as_root = control::as_root_scratch(&t.scratch, &t.probe, &host_args, &senv, opts()).expect("root control run");
    t.assert_rootowned_untouched();

    // Shown with --nocapture.
    println!("== sandbox ==\n{}\n== symlink attack sandboxes ==\n{attack_outputs}", inside.all());
    let failures = judge(&inside_results, &parse(&as_user), &parse(&as_root));
    drop(t);
    assert!(
        failures.is_empty(),
        "escape suite:\n  {}\n\n== sandbox ==\n{}\n== symlink attack sandboxes ==\n{}\n== user control ==\n{}\n== root control ==\n{}",
        failures.join("\n  "),
        inside.all(),
        attack_outputs,
        as_user.all(),
        as_root.all()
    );
    env.check_leftovers();
}

/// Applies the rules to the three runs and returns every violation.
fn judge(inside: &Results, user: &Results, root: &Results) -> Vec<String> {
    let mut failures = Vec::new();
    for p in probes::all() {
        let name = p.name;
        let tag = |r: &Results| r.get(name).map(|(t, d)| (t.clone(), d.clone()));
        let (Some((t_in, d_in)), Some((t_user, _)), Some((t_root, d_root))) = (tag(inside), tag(user), tag(root))
        else {
            failures.push(format!(
                "{name}: missing from a run (inside {:?}, user {:?}, root {:?})",
                tag(inside),
                tag(user),
                tag(root)
            ));
            continue;
        };
        // Inside: BLOCKED, or N/A only where the attack is impossible on this host altogether.
        match t_in.as_str() {
            "BLOCKED" => {}
            "N/A" if t_root == "N/A" => {}
            _ => failures.push(format!("{name}: {t_in} inside the sandbox: {d_in}")),
        }
        // Outside: it must be able to report the escape.
        let root_only = ROOT_ONLY.iter().any(|(n, _)| *n == name);
        if t_root == "N/A" || host_lacks(name).is_some() {
            continue; // the kernel or host lacks the target entirely (checked above/in host_lacks)
        }
        if root_only {
            if t_root != "ESCAPE" {
                failures.push(format!("{name}: root-only probe did not escape as root outside: {t_root} {d_root}"));
            }
        } else if t_user != "ESCAPE" {
            failures.push(format!("{name}: did not escape as the unsandboxed user ({t_user})"));
        } else if t_root != "ESCAPE" && !USER_ONLY.contains(&name) {
            failures.push(format!("{name}: did not escape as root outside: {t_root} {d_root}"));
        }
    }
    failures
}

/// Probes stopped by the seccomp filter alone (the other layers let them through).
const SECCOMP_ONLY: &[&str] = &[
    "ptrace-child",
    "process-vm-readv",
    "unshare-userns",
    "clone-newuser",
    "setns",
    "keyctl-add-key",
    "io-uring-setup",
    "perf-event-open",
    "userfaultfd",
    "name-to-handle-at",
    "kcmp",
    "modify-ldt",
    "vmsplice",
];

/// Probes the filter stops in every mode, `disabled` included (foreign ABIs).
const ALWAYS_FILTERED: &[&str] = &["x32-syscall", "i386-syscall"];

/// The same probes inside a real oz sandbox with seccomp off: the syscall attacks get through,
/// so the BLOCKED results of the strict sandbox are the filter's work and the probes can see an
/// escape from inside a sandbox, not only on the host.
#[test]
fn with_seccomp_disabled_the_syscall_probes_escape_inside_the_sandbox() {
    let env = TestEnv::new(json!({}));
    let mut profile = strict_profile(PROBE_TARGET, json!([probe_item()]), json!([]));
    profile["seccomp"] = json!({"mode": "disabled"});
    let p = env.profile("oznoseccomp", profile);
    let selection = [SECCOMP_ONLY, ALWAYS_FILTERED].concat().join(",");
    let out = env.agent(&p, &[&selection]).run();
    assert_eq!(out.status, 0, "{}", out.all());
    let r = parse(&out);
    let mut wrong = Vec::new();
    for name in SECCOMP_ONLY {
        if r.get(*name).map(|(t, _)| t.as_str()) != Some("ESCAPE") {
            wrong.push(format!("{name} should escape without seccomp: {:?}", r.get(*name)));
        }
    }
    for name in ALWAYS_FILTERED {
        if r.get(*name).map(|(t, _)| t.as_str()) != Some("BLOCKED") {
            wrong.push(format!("{name} must be killed even with seccomp disabled: {:?}", r.get(*name)));
        }
    }
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), out.all());
}
