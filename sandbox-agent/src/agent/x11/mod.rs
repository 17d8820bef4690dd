//! A sandbox's own X display (`xserver.enabled`). The agent prepares it before the sandbox is
//! cloned and owns every host-side process of it:
//!
//! 1. The caller must have a `DISPLAY` (else the launch fails: a program that cannot draw is
//!    not started).
//! 2. A per-sandbox directory, 0700, created by the user's credentials below `/run/user/<uid>`
//!    (or `~/.cache/oz` without one), holds a fresh cookie (`Xauthority`) and is bound into the
//!    sandbox at [`SANDBOX_DIR`].
//! 3. The backend starts: `xephyr` ([`xephyr`]) runs Xephyr on the host as the user and binds
//!    only its socket into the sandbox; `xpra` ([`xpra`]) has the init start an Xpra server in
//!    the sandbox once it is built ([`Session::start_in_sandbox`]), then attaches an Xpra client
//!    on the host, and only then is the program started.
//! 4. The program gets `DISPLAY` of that server and `XAUTHORITY` of the cookie; the host's X
//!    socket, Xauthority and abstract sockets are never part of the sandbox.
//!
//! Host-side helpers are the agent's children ([`hostproc`]): checked on every supervision
//! tick, restarted within a budget ([`restart`]) when restarting helps, stopped with the
//! sandbox.

pub mod dbus;
pub mod hostproc;
pub mod restart;
pub mod screen;
pub mod xauth;
pub mod xephyr;
pub mod xpra;

use crate::agent::sandbox::Sandbox;
use crate::agent::serve::logpipe::LogPipe;
use crate::common::proto::{AgentToInit, InitToAgent};
use nix::errno::Errno;
use oz_profiles::profile::XServer;
use oz_profiles::profile::{EnvVar, WhitelistItem, XBackend};
use oz_sandbox::rootfs::{PrivateDir, RootfsError};
use oz_sandbox::user::UserInfo;
use oz_wire::LaunchSpec;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

/// How long the Xpra server may take to accept clients, and the client to attach.
const XPRA_READY: Duration = Duration::from_secs(30);

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
    /// A helper did not report readiness; `output` is its last lines (`; last output: ...`).
    #[error("xserver: {program}: {error}{output}")]
    NotReady { program: &'static str, error: ReadyError, output: String },
    #[error("xserver: sandbox {id}: {detail}")]
    Init { id: u64, detail: String },
}

impl X11Error {
    /// The error the daemon and the client see.
    pub fn to_wire(&self) -> oz_wire::AgentError {
        use oz_wire::AgentError as W;
        match self {
            X11Error::NoDisplay { profile } => W::NoDisplay { profile: profile.clone() },
            X11Error::Missing { program, package } => {
                W::MissingProgram { program: program.to_string(), package: package.to_string() }
            }
            X11Error::Dir(e) => W::Setup { step: "xserver directory".into(), detail: e.to_string() },
            X11Error::Sys { op, errno } => W::Sys { op: format!("xserver: {op}"), errno: *errno as i32 },
            X11Error::Spawn { program, source } => match source.raw_os_error() {
                Some(errno) => W::Sys { op: format!("xserver: start {program}"), errno },
                None => W::XServer { program: program.to_string(), detail: source.to_string() },
            },
            X11Error::Start { program, detail } => W::XServer { program: program.to_string(), detail: detail.clone() },
            X11Error::NotReady { program, error, output } => {
                W::XServer { program: program.to_string(), detail: format!("{error}{output}") }
            }
            X11Error::Init { id, detail } => {
                W::Setup { step: "xserver".into(), detail: format!("sandbox {id}: {detail}") }
            }
        }
    }
}

/// Why a helper's readiness was not seen on its output.
#[derive(Debug, thiserror::Error)]
pub enum ReadyError {
    #[error("no \"{needle}\" after {secs} s")]
    NoLine { needle: &'static str, secs: u64 },
    #[error("not ready after {secs} s")]
    TimedOut { secs: u64 },
    #[error("output closed before it was ready")]
    Closed,
    #[error("exited before accepting clients")]
    Exited,
    #[error("ended before it was ready ({status})")]
    Ended { status: String },
    #[error("{op}: {errno}")]
    Sys { op: &'static str, errno: Errno },
    #[error("bad display number {text:?}")]
    BadDisplay { text: String },
    #[error("reported display :{got}, asked for :{asked}")]
    WrongDisplay { got: u32, asked: u32 },
}

fn caller_value<'a>(spec: &'a LaunchSpec, name: &str) -> Option<&'a str> {
    spec.caller_env.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// The base directory and the relative path of the per-sandbox directory of sandbox `id`.
fn dir_location(user: &UserInfo, id: u64) -> (PathBuf, PathBuf) {
    let run = PathBuf::from(format!("/run/user/{}", user.uid));
    let owned = std::fs::symlink_metadata(&run)
        .map(|m| m.is_dir() && std::os::unix::fs::MetadataExt::uid(&m) == user.uid)
        .unwrap_or(false);
    match owned {
        true => (run, PathBuf::from(format!("oz/x11-{id}"))),
        false => (user.home.clone(), PathBuf::from(format!(".cache/oz/x11-{id}"))),
    }
}

/// A running host side of a sandbox's display.
pub struct Session {
    backend: XBackend,
    user: UserInfo,
    profile: String,
    xserver: XServer,
    dir: PrivateDir,
    /// The host-side Xpra client's own configuration directory (not visible in the sandbox).
    client_conf: Option<PrivateDir>,
    /// The caller's DISPLAY and XAUTHORITY (for the host-side helpers).
    caller_display: String,
    caller_xauthority: Option<String>,
    caller_bus: Option<String>,
    etc_prefix: PathBuf,
    /// Xephyr (the `xephyr` backend).
    server: Option<Child>,
    /// The Xpra client (the `xpra` backend).
    client: Option<Child>,
    restarts: Vec<Instant>,
    /// Set when the X server the program draws on (Xephyr) ended: what happened.
    lost: Option<String>,
    /// The helpers' output: write end (given to each helper) and read end.
    out_w: OwnedFd,
    out_r: Option<OwnedFd>,
    /// Output read while waiting for readiness, for the log.
    early: Vec<String>,
    /// Without `log_xpra`: the output, drained and dropped.
    discard: Option<LogPipe>,
    log_output: bool,
    /// The in-sandbox Xvfb's screen (`xpra`): the user's desktop size.
    screen: (u32, u32),
    /// Problems that did not stop the display (for the sandbox log).
    pub warnings: Vec<String>,
    /// The display number inside the sandbox.
    pub display: u32,
}

fn pipe() -> Result<(OwnedFd, OwnedFd), X11Error> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|errno| X11Error::Sys { op: "pipe", errno })
}

impl Session {
    /// Prepare the display of `spec` (whose `xserver.enabled` is set) for `user`, and add what
    /// the sandbox needs to `spec` (the binds and the program's `DISPLAY`/`XAUTHORITY`). With
    /// the `xpra` backend the server starts later, in the built sandbox
    /// ([`Session::start_in_sandbox`]).
    pub fn start(spec: &mut LaunchSpec, user: &UserInfo) -> Result<Session, X11Error> {
        let profile = spec.profile.name.clone();
        let display =
            caller_value(spec, "DISPLAY").ok_or(X11Error::NoDisplay { profile: profile.clone() })?.to_string();
        let xauthority = caller_value(spec, "XAUTHORITY").map(str::to_string);
        let backend = spec.profile.xserver.backend;
        if backend == XBackend::Xpra && hostproc::find_program("xpra").is_none() {
            return Err(X11Error::Missing { program: "xpra", package: "xpra" });
        }
        let (root, rel) = dir_location(user, spec.sandbox_id);
        let dir = PrivateDir::create(user, &root, &rel)?;
        let (out_r, out_w) = pipe()?;
        let mut session = Session {
            backend,
            user: user.clone(),
            profile: profile.clone(),
            xserver: spec.profile.xserver.clone(),
            dir,
            client_conf: None,
            caller_display: display,
            caller_xauthority: xauthority,
            caller_bus: caller_value(spec, "DBUS_SESSION_BUS_ADDRESS").map(str::to_string),
            etc_prefix: spec.config.etc_prefix.clone(),
            server: None,
            client: None,
            restarts: Vec::new(),
            lost: None,
            out_w,
            out_r: Some(out_r),
            early: Vec::new(),
            discard: None,
            log_output: spec.config.log_xpra,
            warnings: Vec::new(),
            screen: screen::DEFAULT,
            display: 0,
        };
        let cookie = xauth::new_cookie()
            .map_err(|e| X11Error::Sys { op: "getrandom", errno: Errno::from_raw(e.raw_os_error().unwrap_or(0)) })?;
        session.dir.write_file(user, COOKIE, &xauth::file_bytes(&cookie), 0o600)?;
        match backend {
            XBackend::Xephyr => {
                let auth_file = session.dir.path().join(COOKIE);
                let params = xephyr::Params {
                    user,
                    profile: &profile,
                    display: &session.caller_display,
                    xauthority: session.caller_xauthority.as_deref(),
                    auth_file: &auth_file,
                    output: Some(
                        session.out_w.try_clone().map_err(|e| X11Error::Spawn { program: "Xephyr", source: e })?,
                    ),
                    etc_prefix: &spec.config.etc_prefix,
                };
                let (child, n) = xephyr::start(&params, spec.sandbox_id)?;
                session.server = Some(child);
                session.display = n;
                session.expose(spec, Some(xephyr::socket_path(n)));
                if spec.profile.xserver.enable_notifications {
                    session.warnings.push(
                        "xserver: enable_notifications: the xephyr backend forwards no notifications (use xpra)".into(),
                    );
                }
            }
            XBackend::Xpra => {
                let conf = xpra::conf_text(&spec.profile.xserver);
                session.dir.write_file(user, "xpra.conf", conf.as_bytes(), 0o600)?;
                session.dir.write_file(user, "sitecustomize.py", xpra::SITECUSTOMIZE.as_bytes(), 0o600)?;
                let client_conf =
                    PrivateDir::create(user, &root, &rel.with_file_name(format!("x11-{}-client", spec.sandbox_id)))?;
                client_conf.write_file(user, "xpra.conf", conf.as_bytes(), 0o600)?;
                let site = format!("{}{}", xpra::SITECUSTOMIZE, xpra::CLIENT_WINDOW_ICON);
                client_conf.write_file(user, "sitecustomize.py", site.as_bytes(), 0o600)?;
                session.client_conf = Some(client_conf);
                session.dir.write_file(user, dbus::CONF, dbus::conf_text().as_bytes(), 0o600)?;
                dbus::give_program(&mut spec.profile.environment);
                session.screen = screen::desktop_size(
                    user,
                    &session.caller_display,
                    session.caller_xauthority.as_deref(),
                    &spec.config.etc_prefix,
                );
                session.display = xpra::DISPLAY;
                session.expose(spec, None);
            }
        }
        Ok(session)
    }

    /// Whether the server starts inside the sandbox (the program must wait for it).
    pub fn needs_sandbox_server(&self) -> bool {
        self.backend == XBackend::Xpra
    }

    /// `xpra`: have the init start the private session bus ([`dbus`]) and the server, with the
    /// server's socket already listening (made here, handed over), start the client on the host
    /// at once (its start-up overlaps the server's; the server answers it once ready), and wait
    /// until the client is attached. The program starts after that: a window it maps, or a
    /// notification it sends, before a client is attached may never be shown.
    pub fn start_in_sandbox(&mut self, sandbox: &Sandbox) -> Result<(), X11Error> {
        let env = xpra::server_env(&self.user.home, &self.user.name, SANDBOX_DIR);
        let null =
            std::fs::File::open("/dev/null").map_err(|e| X11Error::Spawn { program: "session bus", source: e })?;
        self.start_helper(sandbox, "session bus", dbus::argv(SANDBOX_DIR), env.clone(), null.into())?;
        self.wait_line("session bus", dbus::READY, None)?;
        let socket = self.dir.listen(&self.user, xpra::SOCKET, 0o600)?;
        let argv = xpra::server_argv(&self.xserver, SANDBOX_DIR, self.screen);
        // The server holds the only copy of the listening socket from here: should it end, a
        // client's connection is refused instead of waiting in the backlog.
        self.start_helper(sandbox, "xpra server", argv, env, socket)?;
        let mut client = self.spawn_client()?;
        let attached = self.wait_line("xpra client", xpra::CLIENT_ATTACHED, Some(&mut client));
        self.client = Some(client);
        attached
    }

    /// Have the init start `argv` as the user in the sandbox (the default seccomp blacklist,
    /// `stdin`, output to the helpers' pipe).
    fn start_helper(
        &mut self,
        sandbox: &Sandbox,
        program: &'static str,
        argv: Vec<String>,
        env: Vec<String>,
        stdin: OwnedFd,
    ) -> Result<(), X11Error> {
        let id = sandbox.id();
        let init_err = |detail: String| X11Error::Init { id, detail };
        let filter =
            hostproc::default_filter(&self.etc_prefix).ok_or_else(|| init_err("default seccomp filter".into()))?;
        let req = AgentToInit::StartHelper { argv, env, seccomp: filter.to_bytes() };
        let out = self.out_w.as_raw_fd();
        match sandbox.ask(&req, &[stdin.as_raw_fd(), out, out]).map_err(|e| init_err(e.to_string()))? {
            (InitToAgent::Launched { .. }, _) => Ok(()),
            (InitToAgent::Failed { error }, _) => Err(init_err(format!("start the {program}: {error}"))),
            (other, _) => Err(init_err(format!("unexpected {other:?}"))),
        }
    }

    /// Wait for the helpers' line `ready`, failing early when `watched` (a host-side helper
    /// that prints it) exits first.
    fn wait_line(
        &mut self,
        program: &'static str,
        ready: &'static str,
        watched: Option<&mut Child>,
    ) -> Result<(), X11Error> {
        let r = self.out_r.as_ref().expect("output pipe").as_fd();
        xpra::wait_for_line(r, ready, XPRA_READY, &mut self.early, watched).map_err(|error| X11Error::NotReady {
            program,
            error,
            output: self.output_tail(),
        })
    }

    /// `; last output: ...` with the helpers' last lines, or nothing.
    fn output_tail(&self) -> String {
        let tail: Vec<&str> = self.early.iter().rev().take(5).map(String::as_str).collect();
        match tail.is_empty() {
            true => String::new(),
            false => format!("; last output: {}", tail.into_iter().rev().collect::<Vec<_>>().join(" | ")),
        }
    }

    fn spawn_client(&self) -> Result<Child, X11Error> {
        let program = "xpra client";
        let conf = self.client_conf.as_ref().map(|d| d.path()).unwrap_or_default();
        let mut env = hostproc::base_env(&self.user, &self.caller_display, self.caller_xauthority.as_deref());
        for (k, v) in [("XPRA_SYSTEM_CONF_DIRS", &conf), ("XPRA_USER_CONF_DIRS", &conf)] {
            env.push((k.to_string(), v.to_string_lossy().into_owned()));
        }
        env.push(("PYTHONPATH".into(), conf.to_string_lossy().into_owned()));
        env.push(("PYTHONDONTWRITEBYTECODE".into(), "1".into()));
        if self.xserver.enable_tray && self.xserver.tray_icon.is_some() {
            // The profile's tray icon stays: Xpra would otherwise swap in its windows' icon.
            env.push(("XPRA_DYNAMIC_TRAY_ICON".into(), "0".into()));
        }
        // The user's session bus (notifications are shown there); without one, a bus address
        // that cannot connect, so that nothing autolaunches a bus outliving the sandbox.
        let bus = self.caller_bus.clone().unwrap_or_else(|| "unix:path=/nonexistent/oz-no-session-bus".into());
        env.push(("DBUS_SESSION_BUS_ADDRESS".into(), bus));
        for e in &self.xserver.env {
            if let Some(v) = &e.value {
                env.push((e.name.clone(), v.clone()));
            }
        }
        let exe = hostproc::find_program("xpra").ok_or(X11Error::Missing { program: "xpra", package: "xpra" })?;
        let socket = self.dir.path().join(xpra::SOCKET);
        let cmd = hostproc::HostCommand {
            exe,
            args: xpra::client_args(&self.xserver, &socket, &self.profile),
            env,
            output: Some(self.out_w.try_clone().map_err(|e| X11Error::Spawn { program, source: e })?),
            fd3: None,
        };
        hostproc::spawn(&self.user, cmd, hostproc::default_filter(&self.etc_prefix))
            .map_err(|e| X11Error::Spawn { program, source: e })
    }

    /// The helpers' output for the sandbox log (with `log_xpra`), and what was read of it
    /// during start-up; without `log_xpra` it is drained and dropped here.
    pub fn take_output(&mut self) -> (Option<OwnedFd>, Vec<String>) {
        let early = std::mem::take(&mut self.early);
        let fd = self.out_r.take();
        match self.log_output {
            true => (fd, early),
            false => {
                self.discard = fd.and_then(|fd| LogPipe::new(fd).ok());
                (None, Vec::new())
            }
        }
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

    /// Notice helpers that ended and restart the Xpra client within its budget; returns what
    /// to log.
    pub fn check(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(d) = &mut self.discard {
            let _ = d.drain();
        }
        if let Some(child) = &mut self.server {
            if let Some(status) = hostproc::try_reap(child) {
                // Not restarted: the program's connection died with the server, and the socket
                // bound into the sandbox is the dead server's (a new Xephyr would listen on a
                // new socket file the sandbox's mount namespace does not see).
                let what = format!("Xephyr :{} ended ({status})", self.display);
                out.push(format!("xserver: {what}; the program's display is gone, shutting the sandbox down"));
                self.lost = Some(what);
                self.server = None;
                xephyr::remove_leftovers(&self.user, self.display);
            }
        }
        let ended = self.client.as_mut().and_then(hostproc::try_reap);
        if let Some(status) = ended {
            self.client = None;
            out.push(self.restart_client(&format!("xpra client ended ({status})")));
        }
        out
    }

    fn restart_client(&mut self, why: &str) -> String {
        let now = Instant::now();
        if restart::next(restart::BUDGET, &self.restarts, now) == restart::Decision::GiveUp {
            return format!("xserver: {why}; restart budget spent, not restarted");
        }
        self.restarts.push(now);
        self.restarts.retain(|t| now.saturating_duration_since(*t) < restart::BUDGET.window);
        match self.spawn_client() {
            Ok(c) => {
                self.client = Some(c);
                format!("xserver: {why}; restarted")
            }
            Err(e) => format!("xserver: {why}; restart failed: {e}"),
        }
    }

    /// Once: what ended the display the program draws on (the sandbox must end with it).
    pub fn take_lost(&mut self) -> Option<String> {
        self.lost.take()
    }

    /// `oz relaunchxpra`: stop the Xpra client and start a new one.
    pub fn relaunch_client(&mut self) -> Option<String> {
        if self.backend != XBackend::Xpra {
            return None;
        }
        if let Some(mut c) = self.client.take() {
            hostproc::stop(&mut c, Duration::from_secs(2));
        }
        self.restarts.clear();
        Some(self.restart_client("xpra client relaunched"))
    }

    pub fn backend(&self) -> XBackend {
        self.backend
    }

    /// Stop every helper and remove the per-sandbox directories; idempotent.
    pub fn stop(&mut self) {
        for mut child in [self.client.take(), self.server.take()].into_iter().flatten() {
            hostproc::stop(&mut child, Duration::from_secs(2));
        }
        if self.backend == XBackend::Xephyr {
            xephyr::remove_leftovers(&self.user, self.display);
        }
        self.dir.remove(&self.user);
        if let Some(c) = &self.client_conf {
            c.remove(&self.user);
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oz_wire::AgentError as W;

    #[test]
    fn display_errors_reach_the_wire_typed_and_as_clear() {
        let e = X11Error::NoDisplay { profile: "fx".into() };
        assert_eq!(e.to_wire(), W::NoDisplay { profile: "fx".into() });
        assert_eq!(e.to_wire().to_string(), e.to_string());
        let e = X11Error::Missing { program: "xpra", package: "xpra" };
        assert_eq!(e.to_wire().to_string(), "xpra not found (install xpra)");
        let e = X11Error::NotReady { program: "Xephyr", error: ReadyError::Exited, output: " (exit code 1)".into() };
        assert_eq!(
            e.to_wire(),
            W::XServer { program: "Xephyr".into(), detail: "exited before accepting clients (exit code 1)".into() }
        );
        assert_eq!(e.to_wire().to_string(), e.to_string());
        let e = X11Error::Sys { op: "pipe", errno: Errno::EMFILE };
        assert_eq!(e.to_wire(), W::Sys { op: "xserver: pipe".into(), errno: libc::EMFILE });
        let e = X11Error::Spawn { program: "Xephyr", source: std::io::Error::from_raw_os_error(libc::ENOENT) };
        assert_eq!(e.to_wire(), W::Sys { op: "xserver: start Xephyr".into(), errno: libc::ENOENT });
        let e = X11Error::Init { id: 3, detail: "x".into() };
        assert_eq!(e.to_wire().to_string(), e.to_string());
        for e in [ReadyError::NoLine { needle: "ready", secs: 30 }, ReadyError::WrongDisplay { got: 2, asked: 1 }] {
            assert!(!matches!(
                X11Error::NotReady { program: "xpra server", error: e, output: String::new() }.to_wire(),
                W::Other { .. }
            ));
        }
    }
}
