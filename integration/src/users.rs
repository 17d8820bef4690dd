//! The unprivileged test users (`oz-test-a`, `oz-test-b`), created idempotently.

use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub const USER_A: &str = "oz-test-a";
pub const USER_B: &str = "oz-test-b";

/// A real account on this machine.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

fn lookup(name: &str) -> Result<Option<TestUser>> {
    let user = nix::unistd::User::from_name(name).with_context(|| format!("getpwnam {name}"))?;
    Ok(user.map(|u| TestUser { name: name.to_string(), uid: u.uid.as_raw(), gid: u.gid.as_raw(), home: u.dir }))
}

/// The user, created with `useradd --create-home --shell /bin/sh` when missing. Other test
/// binaries may create the same user at the same moment: useradd then fails on the passwd
/// lock or with "already exists", and the lookup is retried.
pub fn ensure(name: &str) -> Result<TestUser> {
    for attempt in 0..20 {
        if let Some(u) = lookup(name)? {
            if !u.home.is_dir() {
                std::fs::create_dir_all(&u.home).with_context(|| format!("create {}", u.home.display()))?;
                nix::unistd::chown(&u.home, Some(u.uid.into()), Some(u.gid.into()))?;
            }
            return Ok(u);
        }
        let out = Command::new("useradd")
            .args(["--create-home", "--shell", "/bin/sh", name])
            .output()
            .context("run useradd")?;
        if !out.status.success() && attempt > 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    bail!("useradd {name}: the user still does not exist after 20 attempts")
}

impl TestUser {
    /// A command that runs as this user (setgroups([]), setgid, setuid via std), with a clean
    /// login-like environment and the home directory as cwd.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(program);
        c.uid(self.uid)
            .gid(self.gid)
            .env_clear()
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .env("LOGNAME", &self.name)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .current_dir(&self.home);
        c
    }

    /// Runs `sh -c script` as this user; fails with its output unless it exits 0.
    pub fn sh(&self, script: &str) -> Result<String> {
        let out = self.command("/bin/sh").arg("-c").arg(script).output().context("run sh as user")?;
        if !out.status.success() {
            bail!(
                "as {}: sh -c {script:?}: {}: {}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}
