//! A sandbox's own X display (`xserver.enabled`). The agent prepares it before the sandbox is
//! cloned and owns every host-side process of it:
//!
//! 1. The caller must have a `DISPLAY` (else the launch fails: a program that cannot draw is
//!    not started).
//! 2. A per-sandbox directory, 0700, created by the user's credentials below `/run/user/<uid>`
//!    (or `~/.cache/oz` without one), holds a fresh cookie (`Xauthority`) and is bound into the
//!    sandbox at [`SANDBOX_DIR`].
//! 3. The backend starts: `xephyr` ([`xephyr`]) runs Xephyr on the host as the user and binds
//!    only its socket into the sandbox.
//! 4. The program gets `DISPLAY` of that server and `XAUTHORITY` of the cookie; the host's X
//!    socket, Xauthority and abstract sockets are never part of the sandbox.
//!
//! Host-side helpers are the agent's children ([`hostproc`]): checked on every supervision
//! tick, restarted within a budget ([`restart`]) when restarting helps, stopped with the
//! sandbox.

pub mod hostproc;
pub mod restart;
pub mod xauth;
pub mod xephyr;

use nix::errno::Errno;
use oz_profiles::profile::{EnvVar, WhitelistItem, XBackend};
use oz_sandbox::rootfs::{PrivateDir, RootfsError};
use oz_sandbox::user::UserInfo;
use oz_wire::LaunchSpec;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

/// Where the per-sandbox directory appears inside the sandbox.
pub const SANDBOX_DIR: &str = "/run/oz-x11";
/// The cookie file's name in the per-sandbox directory.
const COOKIE: &str = "Xauthority";

#[derive(Debug, thiserror::Error)]
pub enum X11Error {
    #[error("xserver: the caller has no DISPLAY; profile {profile} needs the user's X display")]
    NoDisplay { profile: String },
    #[error("xserver: {program} not found in {} (install {package})", hostproc::HOST_PATH)]
    Missing { program: &'static str, package: &'static str },
    #[error("xserver: directory: {0}")]
    Dir(#[from] RootfsError),
    #[error("xserver: {op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
    #[error("xserver: start {program}: {source}")]
    Spawn { program: &'static str, source: std::io::Error },
    #[error("xserver: {program}: {detail}")]
    Start { program: &'static str, detail: String },
    #[error("xserver: backend {0} is not available yet; set \"xserver\": {{\"backend\": \"xephyr\"}} in the profile")]
    Backend(&'static str),
}

impl X11Error {
    pub fn to_wire(&self) -> oz_wire::AgentError {
        oz_wire::AgentError::Other { detail: self.to_string() }
    }
}

fn caller_value<'a>(spec: &'a LaunchSpec, name: &str) -> Option<&'a str> {
    spec.caller_env.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// The base directory and the relative path of the per-sandbox directory of sandbox `id`.
fn dir_location(user: &UserInfo, id: u64) -> (PathBuf, PathBuf) {
    let run = PathBuf::from(format!("/run/user/{}", user.uid));
    let owned = std::fs::symlink_metadata(&run).map(|m| m.is_dir() && std::os::unix::fs::MetadataExt::uid(&m) == user.uid).unwrap_or(false);
    match owned {
        true => (run, PathBuf::from(format!("oz/x11-{id}"))),
        false => (user.home.clone(), PathBuf::from(format!(".cache/oz/x11-{id}"))),
    }
}

/// A running host side of a sandbox's display.
pub struct Session {
    backend: XBackend,
    user: UserInfo,
    dir: PrivateDir,
    /// Xephyr (the `xephyr` backend).
    server: Option<Child>,
    /// The display number inside the sandbox.
    pub display: u32,
}

/// What `start` hands the launch: the session and the read end of the helpers' output (when
/// oz.conf `log_xpra`).
pub struct Started {
    pub session: Session,
    pub output: Option<OwnedFd>,
}

impl Session {
    /// Prepare the display of `spec` (whose `xserver.enabled` is set) for `user`, and add what
    /// the sandbox needs to `spec` (the binds and the program's `DISPLAY`/`XAUTHORITY`).
    pub fn start(spec: &mut LaunchSpec, user: &UserInfo) -> Result<Started, X11Error> {
        let profile = spec.profile.name.clone();
        let display = caller_value(spec, "DISPLAY").ok_or(X11Error::NoDisplay { profile: profile.clone() })?.to_string();
        let xauthority = caller_value(spec, "XAUTHORITY").map(str::to_string);
        let backend = spec.profile.xserver.backend;
        if backend == XBackend::Xpra {
            return Err(X11Error::Backend("xpra"));
        }
        let (root, rel) = dir_location(user, spec.sandbox_id);
        let dir = PrivateDir::create(user, &root, &rel)?;
        let mut session = Session { backend, user: user.clone(), dir, server: None, display: 0 };
        let cookie = xauth::new_cookie().map_err(|e| X11Error::Sys { op: "getrandom", errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)) })?;
        session.dir.write_file(user, COOKIE, &xauth::file_bytes(&cookie), 0o600)?;
        let (output, write) = match spec.config.log_xpra {
            true => {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| X11Error::Sys { op: "pipe", errno })?;
                (Some(r), Some(w))
            }
            false => (None, None),
        };
        let auth_file = session.dir.path().join(COOKIE);
        let params = xephyr::Params {
            user,
            profile: &profile,
            display: &display,
            xauthority: xauthority.as_deref(),
            auth_file: &auth_file,
            output: write,
            etc_prefix: &spec.config.etc_prefix,
        };
        let (child, n) = xephyr::start(&params, spec.sandbox_id)?;
        session.server = Some(child);
        session.display = n;
        session.expose(spec, Some(xephyr::socket_path(n)));
        Ok(Started { session, output })
    }

    /// Bind the per-sandbox directory (and `socket`, at the same path) into the sandbox and
    /// point the program at the display.
    fn expose(&self, spec: &mut LaunchSpec, socket: Option<PathBuf>) {
        let item = |path: &Path, target: &str, read_only: bool| WhitelistItem {
            path: path.to_string_lossy().into_owned(),
            target: Some(target.to_string()),
            read_only,
            ..WhitelistItem::default()
        };
        spec.profile.whitelist.push(item(&self.dir.path(), SANDBOX_DIR, false));
        if let Some(s) = socket {
            let target = s.to_string_lossy().into_owned();
            spec.profile.whitelist.push(item(&s, &target, true));
        }
        let env = |name: &str, value: String| EnvVar { name: name.into(), value: Some(value) };
        spec.profile.environment.push(env("DISPLAY", format!(":{}", self.display)));
        spec.profile.environment.push(env("XAUTHORITY", format!("{SANDBOX_DIR}/{COOKIE}")));
    }

    /// Notice helpers that ended; returns what to log.
    pub fn check(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(child) = &mut self.server {
            if let Some(status) = hostproc::try_reap(child) {
                // The program loses its display with the server: nothing to restart onto.
                out.push(format!("xserver: Xephyr :{} ended ({status})", self.display));
                self.server = None;
            }
        }
        out
    }

    pub fn backend(&self) -> XBackend {
        self.backend
    }

    /// Stop every helper and remove the per-sandbox directory; idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            hostproc::stop(&mut child, Duration::from_secs(2));
        }
        self.dir.remove(&self.user);
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}
