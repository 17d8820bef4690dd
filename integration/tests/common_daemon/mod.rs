//! Harness for the daemon end-to-end tests: a real `oz-daemon` on a temp socket with a temp
//! config and temp profiles, the real `oz` run as the unprivileged test users, and checks that
//! nothing (processes, state records, files, mounts) is left behind.
//!
//! Tests take the host-wide lock of `oz_integration::serial`: the leftover check compares
//! host-wide snapshots (the shared test users' processes, cgroups), so a concurrent test's
//! sandbox would count as a leftover. (Cgroup names themselves are unique per state_dir: `oz/<id>-<tag>`.)

#![allow(dead_code)]

pub mod inject;
pub mod procs;
pub mod run;

use oz_integration::leftovers::{entries, Snapshot};
use oz_integration::users::{self, USER_A, USER_B};
use oz_integration::workspace::Workspace;
use oz_wire::client::Client;
use oz_wire::{ClientRequest, DaemonReply, KillTarget, SandboxRecord};
use procs::Proc;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use oz_integration::bins::bin;
pub use oz_integration::users::TestUser;
pub use run::Out;

/// The directory holding the built binaries.
pub fn bin_dir() -> PathBuf {
    bin("oz").parent().expect("binary in a directory").to_path_buf()
}

pub fn user_a() -> TestUser {
    users::ensure(USER_A).expect("test user a")
}

pub fn user_b() -> TestUser {
    users::ensure(USER_B).expect("test user b")
}

/// A profile for tests: no network, plus `extra` keys.
pub fn profile(name: &str, path: &str, extra: Value) -> Value {
    let mut p = json!({"name": name, "path": path, "networking": {"type": "none"}});
    if let (Some(obj), Value::Object(extra)) = (p.as_object_mut(), extra) {
        obj.extend(extra);
    }
    p
}

/// Poll `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What we saw of one sandbox, to prove later that all of it is gone.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub id: u64,
    pub agent: Option<Proc>,
    pub init: Option<Proc>,
    /// Every process in the sandbox's pid namespace when last looked at.
    pub members: Vec<Proc>,
}

pub struct Daemon {
    pub ws: Workspace,
    pub socket: PathBuf,
    pub log: PathBuf,
    child: Option<Child>,
    tracked: RefCell<Vec<Tracked>>,
    before: Snapshot,
    uids: Vec<u32>,
    finished: bool,
    /// A command (and its arguments) the daemon is started under, e.g. to enter a namespace.
    prefix: Vec<String>,
    _serial: oz_integration::serial::Serial,
}

impl Daemon {
    /// Start a daemon with these profiles (JSON objects with at least name and path).
    pub fn start(profiles: &[Value]) -> Daemon {
        Daemon::start_with(profiles, json!({}))
    }

    /// Same, with extra oz.conf keys.
    pub fn start_with(profiles: &[Value], conf_extra: Value) -> Daemon {
        Daemon::start_under(profiles, conf_extra, Vec::new())
    }

    /// Same, with the daemon started as `PREFIX... oz-daemon ARGS` (the prefix must exec it).
    pub fn start_under(profiles: &[Value], conf_extra: Value, prefix: Vec<String>) -> Daemon {
        let serial = oz_integration::serial::acquire();
        let uids = vec![user_a().uid, user_b().uid];
        let before = Snapshot::take(&uids);
        let ws = Workspace::new(json!({})).expect("workspace");
        let socket = ws.path().join("control.sock");
        let mut conf = json!({
            "socket_path": socket,
            "shell_path": "/bin/sh",
            "agent_path": bin("oz-agent"),
        });
        if let (Some(c), Value::Object(extra)) = (conf.as_object_mut(), conf_extra) {
            c.extend(extra);
        }
        ws.write_config(conf).expect("write oz.conf");
        for prof in profiles {
            let name = prof["name"].as_str().expect("profile name");
            ws.write_profile(name, prof.clone()).expect("write profile");
        }
        let mut d = Daemon {
            log: ws.path().join("daemon.log"),
            socket,
            ws,
            child: None,
            tracked: RefCell::new(Vec::new()),
            before,
            uids,
            finished: false,
            prefix,
            _serial: serial,
        };
        d.spawn();
        d
    }

    /// Start (or restart) the daemon process and wait until it answers a hello.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "daemon already running");
        let log = fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin("oz-daemon"));
                c
            }
            None => Command::new(bin("oz-daemon")),
        };
        let child = cmd
            .arg("--config")
            .arg(&self.ws.config)
            .env("OZ_SOCKET", &self.socket)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn oz-daemon");
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(10), || {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("oz-daemon exited at start with {st}:\n{}", self.log_text());
            }
            Client::connect(&self.socket).is_ok()
        });
        assert!(up, "oz-daemon did not answer on {} within 10 s:\n{}", self.socket.display(), self.log_text());
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("daemon running").id() as i32
    }

    /// SIGKILL the daemon (crash test) and reap it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("daemon running");
        procs::kill(child.id() as i32, libc::SIGKILL);
        child.wait().unwrap();
    }

    /// Send `sig` to the daemon and wait up to `limit` for it to exit (reaped); its status.
    pub fn signal_and_wait(&mut self, sig: i32, limit: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut().expect("daemon running");
        procs::kill(child.id() as i32, sig);
        let status = run::wait_limit(child, limit)?;
        self.child = None;
        Some(status)
    }

    /// Run `oz ARGS` as root (no setuid) with this stdin.
    pub fn oz_root(&self, args: &[&str], stdin: &[u8]) -> Out {
        let mut cmd = Command::new(bin("oz"));
        cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin").env("HOME", "/root").env("TERM", "dumb");
        cmd.env("OZ_SOCKET", &self.socket).current_dir("/");
        run::output(cmd, Some(stdin), Duration::from_secs(10), &format!("oz {} (root)", args.join(" ")))
    }

    /// True while the daemon process runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A root connection to the daemon.
    pub fn root_client(&self) -> Client {
        Client::connect(&self.socket).unwrap_or_else(|e| panic!("connect as root: {e}\n{}", self.log_text()))
    }

    /// Every sandbox, as root sees them (and tracked for the leftover check).
    pub fn sandboxes(&self) -> Vec<SandboxRecord> {
        match self.root_client().call(&ClientRequest::ListSandboxes) {
            Ok(DaemonReply::Sandboxes(list)) => {
                for s in &list {
                    self.track(s.id, s.agent_pid, s.init_pid);
                }
                list
            }
            other => panic!("ListSandboxes as root: {other:?}\n{}", self.log_text()),
        }
    }

    pub fn sandbox(&self, id: u64) -> Option<SandboxRecord> {
        self.sandboxes().into_iter().find(|s| s.id == id)
    }

    /// Remember a sandbox's processes (agent, init, pid-namespace members).
    pub fn track(&self, id: u64, agent_pid: u32, init_pid: u32) {
        let agent = Proc::get(agent_pid as i32);
        let init = Proc::get(init_pid as i32);
        let members = procs::pidns_members(init_pid as i32);
        let mut tracked = self.tracked.borrow_mut();
        match tracked.iter_mut().find(|t| t.id == id) {
            Some(t) => {
                t.agent = t.agent.or(agent);
                t.init = t.init.or(init);
                for m in members {
                    if !t.members.contains(&m) {
                        t.members.push(m);
                    }
                }
            }
            None => tracked.push(Tracked { id, agent, init, members }),
        }
    }

    pub fn tracked(&self, id: u64) -> Tracked {
        self.tracked.borrow().iter().find(|t| t.id == id).cloned().unwrap_or_else(|| panic!("sandbox {id} not tracked"))
    }

    /// Run `oz ARGS` as `user` (10 s limit).
    pub fn oz(&self, user: &TestUser, args: &[&str]) -> Out {
        run::oz(&self.socket, user, args, None, Duration::from_secs(10))
    }

    /// Run `oz ARGS` as `user` with this stdin.
    pub fn oz_input(&self, user: &TestUser, args: &[&str], stdin: &[u8], limit: Duration) -> Out {
        run::oz(&self.socket, user, args, Some(stdin), limit)
    }

    /// `oz launch PROFILE -- ARGS` as `user`; returns the printed sandbox id (and tracks it).
    pub fn launch(&self, user: &TestUser, profile: &str, args: &[&str]) -> u64 {
        let mut argv = vec!["launch", profile, "--"];
        argv.extend_from_slice(args);
        let out = self.oz(user, &argv);
        out.assert_ok(&format!("oz launch {profile}"), self);
        let id: u64 = out.stdout.trim().parse().unwrap_or_else(|_| panic!("oz launch printed {:?}", out.stdout));
        let s = self.sandbox(id).unwrap_or_else(|| panic!("launched sandbox {id} not listed\n{}", self.log_text()));
        assert_eq!(s.uid, user.uid, "sandbox {id} belongs to the launching user");
        id
    }

    /// `oz list --json` as `user`.
    pub fn list_json(&self, user: &TestUser) -> Vec<Value> {
        let out = self.oz(user, &["list", "--json"]);
        out.assert_ok("oz list --json", self);
        match serde_json::from_str(&out.stdout) {
            Ok(Value::Array(v)) => v,
            other => panic!("oz list --json printed {:?}: {other:?}", out.stdout),
        }
    }

    /// Wait until sandbox `id` is no longer listed and every process of it has exited.
    pub fn wait_gone(&self, id: u64, timeout: Duration) -> Result<(), String> {
        let t = self.tracked(id);
        let ok = wait_until(timeout, || self.sandbox(id).is_none() && leftovers(&t).is_empty());
        if ok {
            return Ok(());
        }
        let listed = self.sandbox(id).map(|s| format!("still listed as {}", s.phase)).unwrap_or_default();
        Err(format!("sandbox {id}: {listed} live processes {:?}", leftovers(&t)))
    }

    /// Kill every sandbox through the daemon, check nothing is left, stop the daemon.
    pub fn finish(mut self) {
        self.finished = true;
        if self.child.is_some() {
            let _ = self.sandboxes();
            let _ = self.root_client().call(&ClientRequest::Kill { target: KillTarget::All });
        }
        let tracked = self.tracked.borrow().clone();
        for t in &tracked {
            let ok = wait_until(Duration::from_secs(10), || leftovers(t).is_empty());
            assert!(ok, "sandbox {}: processes left after kill: {:?}\n{}", t.id, leftovers(t), self.log_text());
        }
        if self.child.is_some() {
            assert!(self.sandboxes().is_empty(), "sandboxes listed after kill all");
        }
        self.stop_daemon();
        let mut left = self.before.leftovers(&self.uids, &[], Duration::from_secs(5));
        left.extend(self.state_files().iter().map(|p| format!("state file: {}", p.display())));
        assert!(left.is_empty(), "left behind: {left:#?}\n{}", self.log_text());
    }

    /// Entries left in state_dir and sandbox_path; the (empty) directory of agent records and
    /// rendezvous sockets belongs to the daemon and may stay.
    pub fn state_files(&self) -> Vec<PathBuf> {
        let agents = oz_wire::state::agents_dir(&self.ws.state_dir);
        self.ws.must_be_empty().iter().flat_map(|d| entries(d)).filter(|p| p != &agents).collect()
    }

    fn stop_daemon(&mut self) {
        if let Some(mut child) = self.child.take() {
            procs::kill(child.id() as i32, libc::SIGTERM);
            let end = Instant::now() + Duration::from_secs(5);
            while Instant::now() < end && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Tracked processes of a sandbox that are still alive.
pub fn leftovers(t: &Tracked) -> Vec<Proc> {
    t.agent.iter().chain(t.init.iter()).chain(t.members.iter()).filter(|p| p.alive()).copied().collect()
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // A failed test: clean up as well as we can, by pid, and show the daemon's log.
        if self.child.is_some() {
            if let Ok(mut c) = Client::connect(&self.socket) {
                let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = c.call(&ClientRequest::Kill { target: KillTarget::All });
            }
        }
        let tracked = self.tracked.borrow().clone();
        for t in &tracked {
            if !wait_until(Duration::from_secs(3), || leftovers(t).is_empty()) {
                for p in leftovers(t) {
                    procs::kill(p.pid, libc::SIGKILL);
                }
            }
        }
        self.stop_daemon();
        if std::thread::panicking() {
            let log = self.log_text();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("--- oz-daemon log (last 60 lines) ---");
            for l in tail.iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Start `oz-flood` as `user` with `conns` connections of `per` requests of `verb`; returns the
/// running flood (it holds its connections until its stdin closes) once it has sent them all.
pub fn flood(d: &Daemon, user: &TestUser, conns: usize, per: usize, verb: &[&str]) -> std::process::Child {
    let (c, p) = (conns.to_string(), per.to_string());
    let mut child = user
        .command(bin("oz-flood"))
        .args([d.socket.to_str().unwrap(), &c, &p])
        .args(verb)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn oz-flood");
    let mut sent = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut sent).unwrap();
    eprintln!("oz-flood {verb:?}: {}", sent.trim());
    assert_eq!(sent.trim(), format!("sent {} on {conns} connections", conns * per), "oz-flood {verb:?}");
    child
}
