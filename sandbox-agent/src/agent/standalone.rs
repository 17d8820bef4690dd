//! `oz-agent standalone`: build one sandbox from a config and a profile, run the program with
//! the agent's own stdin/stdout/stderr, and exit with its status. Integration tests and the
//! benchmark use it as root, without a daemon.

use crate::common::proto::{AgentToInit, ExitStatus, InitToAgent, ProcessRole};
use crate::agent::sandbox::{Sandbox, SandboxError};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use oz_profiles::{Config, Profile};
use oz_wire::{LaunchSpec, StdioMode};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Exit status when the sandbox could not be built (like `env`, `nice`: 125).
pub const SETUP_FAILURE: i32 = 125;
/// How long the sandbox's processes get between SIGTERM and SIGKILL at the end.
const GRACE_MS: u32 = 2000;

#[derive(Debug, clap::Args)]
pub struct StandaloneArgs {
    /// oz.conf to use (default: --config, $OZ_CONFIG, /etc/oz/oz.conf or built-in defaults).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A profile file, or the name of a profile in the config's profile_dir.
    #[arg(long)]
    pub profile: String,
    /// The user to run the program as (never 0).
    #[arg(long)]
    pub uid: u32,
    /// Working directory for the program (used when visible inside the sandbox).
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Caller environment entries (only those oz.conf and the profile allow reach the program).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Sandbox id (default: the agent's pid).
    #[arg(long)]
    pub id: Option<u64>,
    /// Arguments for the program.
    #[arg(last = true)]
    pub args: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Profile(String),
    #[error("profile {name}: not found in {dir}")]
    NoSuchProfile { name: String, dir: PathBuf },
    #[error("--env {0}: expected K=V")]
    Env(String),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("{op}: {errno}")]
    Sys { op: &'static str, errno: nix::errno::Errno },
}

/// A profile with every key at its default, for tests.
pub fn bare_profile(name: &str, path: &str) -> Profile {
    let json = serde_json::json!({ "name": name, "path": path }).to_string();
    oz_profiles::load::parse_profile(json.as_bytes(), Path::new("<bare>")).expect("bare profile is valid").value
}

fn load_config(path: Option<&Path>) -> Result<Config, StandaloneError> {
    oz_profiles::config_load::load_config(path)
        .map(|l| l.config)
        .map_err(|e| StandaloneError::Config(e.lines().join("; ")))
}

fn load_profile(config: &Config, name_or_file: &str) -> Result<Profile, StandaloneError> {
    let as_path = Path::new(name_or_file);
    if name_or_file.contains('/') || as_path.exists() {
        return oz_profiles::load::load_profile(as_path)
            .map(|l| l.value)
            .map_err(|e| StandaloneError::Profile(e.lines().join("; ")));
    }
    let set = oz_profiles::load::load_profile_dir(&config.profile_dir);
    set.profiles
        .into_iter()
        .find(|p| p.name == name_or_file)
        .ok_or_else(|| StandaloneError::NoSuchProfile { name: name_or_file.into(), dir: config.profile_dir.clone() })
}

/// Build the launch spec the daemon would have sent.
pub fn spec(args: &StandaloneArgs) -> Result<LaunchSpec, StandaloneError> {
    let config = load_config(args.config.as_deref())?;
    let profile = load_profile(&config, &args.profile)?;
    let caller_env = args
        .env
        .iter()
        .map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| StandaloneError::Env(kv.clone())))
        .collect::<Result<_, _>>()?;
    Ok(LaunchSpec {
        sandbox_id: args.id.unwrap_or(std::process::id() as u64),
        profile,
        config,
        uid: args.uid,
        caller_env,
        args: args.args.clone(),
        cwd: args.cwd.clone(),
        noexec: false,
        stdio: StdioMode::Attached,
    })
}

fn own_stdio() -> Result<Vec<OwnedFd>, StandaloneError> {
    (0..3)
        .map(|fd| {
            nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(3))
                // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that we own.
                .map(|raw| unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) })
                .map_err(|errno| StandaloneError::Sys { op: "dup stdio", errno })
        })
        .collect()
}

/// Run the sandbox; returns the program's exit status as a shell reports it.
pub fn run(args: &StandaloneArgs) -> Result<i32, StandaloneError> {
    let spec = spec(args)?;
    let mut forwarded = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        forwarded.add(s);
    }
    forwarded.thread_block().map_err(|errno| StandaloneError::Sys { op: "sigprocmask", errno })?;
    let sigfd = SignalFd::with_flags(&forwarded, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|errno| StandaloneError::Sys { op: "signalfd", errno })?;
    crate::common::procname::set(&crate::common::procname::agent_name(spec.sandbox_id, &spec.profile.name));
    let files = crate::agent::argfiles::arg_files(&spec.args, spec.cwd.as_deref());
    let sandbox = Sandbox::launch_with_files(&spec, own_stdio()?, &files)?;
    let status = supervise(&sandbox, &sigfd)?;
    let id = sandbox.id();
    let init = sandbox.finish()?;
    match status {
        Some(s) => Ok(s.shell_code()),
        None => Err(SandboxError::InitDied { id, status: init }.into()),
    }
}

/// Until the init is gone: forward signals to it, and shut the sandbox down when the program
/// exits. Returns the program's status.
fn supervise(sandbox: &Sandbox, sigfd: &SignalFd) -> Result<Option<ExitStatus>, SandboxError> {
    let mut status = None;
    loop {
        let mut fds = [PollFd::new(sandbox.channel(), PollFlags::POLLIN), PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(errno) => return Err(SandboxError::Sys { op: "poll", errno }),
        }
        if fds[1].revents().is_some_and(|r| !r.is_empty()) {
            while let Ok(Some(info)) = sigfd.read_signal() {
                // The init forwards it to every process of the sandbox.
                let _ = nix::sys::signal::kill(sandbox.init_pid(), Signal::try_from(info.ssi_signo as i32).ok());
            }
        }
        let message_waiting = fds[0].revents().is_some_and(|r| !r.is_empty());
        if !message_waiting {
            continue;
        }
        match sandbox.recv() {
            Ok((InitToAgent::Exited { role: ProcessRole::Program, status: s, .. }, _)) => {
                status = Some(s);
                sandbox.send(&AgentToInit::Shutdown { grace_ms: GRACE_MS }, &[])?;
            }
            Ok(_) => {}
            Err(SandboxError::Channel { error: crate::common::proto::WireError::Closed, .. }) => return Ok(status),
            Err(e) => return Err(e),
        }
    }
}

