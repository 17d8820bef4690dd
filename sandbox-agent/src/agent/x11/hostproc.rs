//! Host-side X helpers (Xephyr, the Xpra client) run as the sandbox's user, children of the
//! agent: the user's own groups only, every capability gone, securebits locked, no_new_privs,
//! the default seccomp blacklist, an environment oz chooses, and SIGTERM when the agent dies.
//!
//! The agent is single-threaded whenever it spawns (before the clone, and in its one-thread
//! poll loop), so the code between fork and exec may allocate.

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oz_sandbox::exec::creds::{drop_privileges, last_cap, Credentials};
use oz_sandbox::seccomp::{compile_profile, CompiledFilter};
use oz_sandbox::user::UserInfo;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where host-side helpers are looked up (never the caller's PATH).
pub const HOST_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The executable `name` in [`HOST_PATH`], if installed.
pub fn find_program(name: &str) -> Option<PathBuf> {
    HOST_PATH.split(':').map(|d| Path::new(d).join(name)).find(|p| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// What to run.
pub struct HostCommand {
    pub exe: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// stdout and stderr (None: /dev/null).
    pub output: Option<OwnedFd>,
    /// Passed as fd 3 (Xephyr's `-displayfd 3`).
    pub fd3: Option<OwnedFd>,
}

/// The user's own credentials: uid, primary gid, and the groups they really belong to.
pub fn user_credentials(user: &UserInfo) -> Credentials {
    Credentials { uid: user.uid, gid: user.gid, groups: user.memberships.iter().map(|(_, g)| *g).collect() }
}

/// The default seccomp blacklist, compiled before the fork.
pub fn default_filter(etc_prefix: &Path) -> Option<CompiledFilter> {
    compile_profile(&oz_profiles::profile::Seccomp::default(), etc_prefix).ok().flatten()
}

/// A minimal environment for a host-side helper of `user` on the display `display`.
pub fn base_env(user: &UserInfo, display: &str, xauthority: Option<&str>) -> Vec<(String, String)> {
    let mut env = vec![
        ("PATH".to_string(), HOST_PATH.to_string()),
        ("HOME".to_string(), user.home.to_string_lossy().into_owned()),
        ("USER".to_string(), user.name.clone()),
        ("LOGNAME".to_string(), user.name.clone()),
        ("DISPLAY".to_string(), display.to_string()),
    ];
    if let Some(x) = xauthority {
        env.push(("XAUTHORITY".to_string(), x.to_string()));
    }
    env
}

/// Start `cmd` as `user` with `filter` (loaded last, before exec).
pub fn spawn(user: &UserInfo, cmd: HostCommand, filter: Option<CompiledFilter>) -> std::io::Result<Child> {
    let creds = user_credentials(user);
    let last = last_cap();
    let mut command = Command::new(&cmd.exe);
    command.args(&cmd.args).env_clear().envs(cmd.env.iter().map(|(k, v)| (k, v))).current_dir("/").stdin(Stdio::null());
    match &cmd.output {
        Some(fd) => {
            command.stdout(fd.try_clone()?).stderr(fd.try_clone()?);
        }
        None => {
            command.stdout(Stdio::null()).stderr(Stdio::null());
        }
    }
    let fd3 = cmd.fd3.as_ref().map(|f| f.as_raw_fd());
    let parent = std::process::id() as i32;
    // SAFETY: the closure runs in the forked child of a single-threaded agent, before exec; it
    // only makes syscalls (and the allocation-free seccomp install).
    unsafe {
        command.pre_exec(move || {
            let err = |e: nix::errno::Errno| std::io::Error::from_raw_os_error(e as i32);
            if let Some(fd) = fd3 {
                if fd == 3 {
                    nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).map_err(err)?;
                } else if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // Nothing of the agent's (daemon channel, init channel, pipes) reaches the helper.
            let first = if fd3.is_some() { 4 } else { 3 };
            libc::close_range(first, libc::c_uint::MAX, 0);
            // A new session: a terminal's signals to the agent's group never reach the helper.
            libc::setsid();
            drop_privileges(&creds, last).map_err(|(_, e)| err(e))?;
            // After the credential change (which clears it): die with the agent.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong, 0, 0, 0);
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            if let Some(f) = &filter {
                f.install().map_err(err)?;
            }
            Ok(())
        });
    }
    command.spawn()
}

/// How a helper ended, if it did (reaped).
pub fn try_reap(child: &mut Child) -> Option<String> {
    match waitpid(Pid::from_raw(child.id() as i32), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, c)) => Some(format!("exit code {c}")),
        Ok(WaitStatus::Signaled(_, s, _)) => Some(format!("killed by {s}")),
        Ok(_) => None,
        Err(e) => Some(format!("waitpid: {e}")),
    }
}

/// SIGTERM, up to `grace` for it to exit, then SIGKILL; always reaped.
pub fn stop(child: &mut Child, grace: Duration) {
    let pid = Pid::from_raw(child.id() as i32);
    if try_reap(child).is_some() {
        return;
    }
    let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
    let until = Instant::now() + grace;
    while Instant::now() < until {
        if try_reap(child).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
}
