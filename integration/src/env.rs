//! [`TestEnv`]: everything one integration test needs (root check, serialisation, test user,
//! workspace, files in the user's home, running `oz-agent standalone`) plus the leftover guard
//! that is checked when the test ends.

use crate::bins::bin;
use crate::leftovers::Snapshot;
use crate::run::{self, Opts, Output};
use crate::users::{self, TestUser};
use crate::workspace::Workspace;
use anyhow::{Context, Result};
use serde_json::Value;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Panics with a clear message unless running as root.
pub fn require_root() {
    // SAFETY: geteuid has no arguments.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the oz integration tests must run as root (they create users and sandboxes); euid is {euid}");
}

pub struct TestEnv {
    pub user: TestUser,
    pub other: TestUser,
    pub ws: Workspace,
    /// Paths in the test users' homes to remove at the end.
    home_paths: Vec<PathBuf>,
    snapshot: Snapshot,
    checked: bool,
    _serial: crate::serial::Serial,
}

/// Where [`probe_item`] binds oz-probe inside sandboxes.
pub const PROBE_TARGET: &str = "/opt/oz-probe/oz-probe";

/// A whitelist item binding the built oz-probe read-only at [`PROBE_TARGET`].
pub fn probe_item() -> Value {
    serde_json::json!({"path": bin("oz-probe"), "target": PROBE_TARGET, "read_only": true})
}

/// A unique name for things a test puts in shared places (homes, /tmp).
pub fn unique(tag: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("oz-it-{tag}-{}-{n}", std::process::id())
}

impl TestEnv {
    /// Root check, lock, users, a workspace with oz.conf (defaults + `config` keys), snapshot.
    pub fn new(config: Value) -> TestEnv {
        require_root();
        let serial = crate::serial::acquire();
        let user = users::ensure(users::USER_A).expect("test user oz-test-a");
        let other = users::ensure(users::USER_B).expect("test user oz-test-b");
        let ws = Workspace::new(config).expect("workspace");
        let snapshot = Snapshot::take(&[user.uid, other.uid]);
        TestEnv { user, other, ws, home_paths: Vec::new(), snapshot, checked: false, _serial: serial }
    }

    /// `$HOME/<name>` of the test user, removed at the end of the test.
    pub fn home_path(&mut self, name: &str) -> PathBuf {
        let p = self.user.home.join(name);
        self.home_paths.push(p.clone());
        p
    }

    /// Runs `sh -c script` as the test user (files it makes are the user's own).
    pub fn as_user(&self, script: &str) -> String {
        self.user.sh(script).expect("shell as the test user")
    }

    /// A root-owned directory in the workspace with `mode`.
    pub fn root_dir(&self, name: &str, mode: u32) -> PathBuf {
        let p = self.ws.path().join(name);
        std::fs::create_dir(&p).expect("create root-owned dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        p
    }

    pub fn profile(&self, name: &str, profile: Value) -> PathBuf {
        self.ws.write_profile(name, profile).expect("write profile")
    }

    /// `oz-agent standalone` for `profile` as the test user: the profile's `path` runs with
    /// `args`.
    pub fn agent(&self, profile: &Path, args: &[&str]) -> Agent {
        Agent {
            config: self.ws.config.clone(),
            profile: profile.to_path_buf(),
            uid: self.user.uid,
            id: None,
            cwd: None,
            env: Vec::new(),
            agent_env: Vec::new(),
            args: args.iter().map(OsString::from).collect(),
            opts: Opts::default(),
        }
    }

    /// Runs `sh -c script` in a sandbox built from `profile` (whose path is /bin/sh), as the
    /// test user.
    pub fn sh(&self, profile: &Path, script: &str) -> Output {
        self.agent(profile, &["-c", script]).run()
    }

    /// Checks for leftovers now (also done on drop).
    pub fn check_leftovers(&mut self) {
        self.checked = true;
        self.cleanup_home();
        let uids = [self.user.uid, self.other.uid];
        let left = self.snapshot.leftovers(&uids, &self.ws.must_be_empty(), Duration::from_secs(3));
        assert!(left.is_empty(), "the sandbox left things behind:\n  {}", left.join("\n  "));
    }

    fn cleanup_home(&mut self) {
        for p in self.home_paths.drain(..) {
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => {
                    let _ = std::fs::remove_dir_all(&p);
                }
                Ok(_) => {
                    let _ = std::fs::remove_file(&p);
                }
                Err(_) => {}
            }
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.cleanup_home();
        } else if !self.checked {
            self.check_leftovers();
        }
    }
}

/// One `oz-agent standalone` invocation.
pub struct Agent {
    pub config: PathBuf,
    pub profile: PathBuf,
    pub uid: u32,
    /// `--id`: the sandbox id (default: the agent's pid).
    pub id: Option<u64>,
    pub cwd: Option<PathBuf>,
    /// The caller's environment as passed with `--env K=V`.
    pub env: Vec<(String, String)>,
    /// Variables set on the oz-agent process itself.
    pub agent_env: Vec<(String, String)>,
    /// Arguments for the profile's program.
    pub args: Vec<OsString>,
    pub opts: Opts,
}

impl Agent {
    pub fn env(mut self, k: &str, v: &str) -> Agent {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn agent_env(mut self, k: &str, v: &str) -> Agent {
        self.agent_env.push((k.into(), v.into()));
        self
    }

    pub fn cwd(mut self, dir: &Path) -> Agent {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    pub fn id(mut self, id: u64) -> Agent {
        self.id = Some(id);
        self
    }

    pub fn uid(mut self, uid: u32) -> Agent {
        self.uid = uid;
        self
    }

    pub fn opts(mut self, opts: Opts) -> Agent {
        self.opts = opts;
        self
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(bin("oz-agent"));
        c.arg("standalone").arg("--config").arg(&self.config).arg("--profile").arg(&self.profile);
        c.arg("--uid").arg(self.uid.to_string());
        if let Some(id) = self.id {
            c.arg("--id").arg(id.to_string());
        }
        if let Some(d) = &self.cwd {
            c.arg("--cwd").arg(d);
        }
        for (k, v) in &self.env {
            c.arg("--env").arg(format!("{k}={v}"));
        }
        c.arg("--").args(&self.args);
        for (k, v) in &self.agent_env {
            c.env(k, v);
        }
        c
    }

    pub fn try_run(self) -> Result<Output> {
        let cmd = self.command();
        run::run(cmd, self.opts).context("run oz-agent standalone")
    }

    /// Runs to completion; panics if it could not be run or timed out.
    pub fn run(self) -> Output {
        self.try_run().unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Runs and asserts exit status 0.
    pub fn ok(self) -> Output {
        let out = self.run();
        assert_eq!(out.status, 0, "sandboxed program failed:\n{}", out.all());
        out
    }
}
