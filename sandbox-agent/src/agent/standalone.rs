//! `oz-agent standalone`: build one sandbox from a config and a profile, run the program with
//! the agent's own stdin/stdout/stderr, and exit with its status. Integration tests and the
//! benchmark use it as root, without a daemon.
//!
//! The sandbox is supervised by the same event loop as under the daemon
//! ([`crate::agent::serve::runtime`], without a daemon channel): the profile's `watchdog` and
//! `auto_shutdown` decide when it ends, SIGINT/SIGTERM/SIGHUP reach the sandbox's processes
//! while the program runs and end the sandbox once it has exited, and records go to stderr.
//!
//! A profile with `xserver.enabled` gets its display as under the daemon: `--env DISPLAY=...`
//! (and `XAUTHORITY`) name the user's display; without one the launch fails saying so.

use crate::agent::children::{self, ChildSpec};
use crate::agent::sandbox::{Sandbox, SandboxError};
use crate::agent::serve::launch::Started;
use crate::agent::serve::runtime::Runtime;
use crate::agent::supervise::tree::RestartPolicy;
use nix::sys::signal::{SigSet, Signal};
use oz_profiles::{Config, Profile};
use oz_wire::{LaunchSpec, StdioMode};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Exit status when the sandbox could not be built (like `env`, `nice`: 125).
pub const SETUP_FAILURE: i32 = 125;

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
    /// Supervise `sh -c CMD` as a helper process of the sandbox: run on the host with the
    /// agent's own credentials, restarted with backoff (3 restarts a minute, then given up).
    /// For tests of the supervision tree; the daemon never passes it.
    #[arg(long = "supervise-helper", value_name = "CMD")]
    pub helpers: Vec<String>,
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
    #[error("{0}")]
    Launch(oz_wire::AgentError),
    #[error(transparent)]
    Runtime(#[from] crate::agent::serve::ServeError),
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
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| StandaloneError::Env(kv.clone()))
        })
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
        ephemeral: false,
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
    let mut spec = spec(args)?;
    // The loop reads these from a signalfd; blocked from now on, one that comes while the
    // sandbox is built waits for the loop instead of killing the agent.
    let mut early = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        early.add(sig);
    }
    early.thread_block().map_err(|errno| StandaloneError::Sys { op: "sigprocmask", errno })?;
    crate::common::procname::set(&crate::common::procname::agent_name(spec.sandbox_id, &spec.profile.name));
    let id = spec.sandbox_id;
    let started = match spec.profile.xserver.enabled {
        // The display's host side, its in-sandbox server and the program after it, as under
        // the daemon (`--env DISPLAY=...` names the user's display).
        true => crate::agent::serve::launch::start(&mut spec, own_stdio()?).map_err(StandaloneError::Launch)?,
        false => {
            let files = crate::agent::argfiles::arg_files(&spec.args, spec.cwd.as_deref());
            let sandbox = Sandbox::launch_with_files(&spec, own_stdio()?, &files)?;
            Started::new(sandbox).map_err(StandaloneError::Launch)?
        }
    };
    let mut runtime = Runtime::standalone(spec, started)?;
    for cmd in &args.helpers {
        let mut sh = std::process::Command::new("/bin/sh");
        sh.arg("-c").arg(cmd).stdin(std::process::Stdio::null());
        runtime.add_child(ChildSpec {
            name: cmd.clone(),
            restart: RestartPolicy::HELPER,
            spawn: children::command(sh),
        });
    }
    runtime.run();
    match runtime.program_status() {
        Some(s) => Ok(s.shell_code()),
        None => {
            Err(SandboxError::InitDied { id, status: runtime.init_status().unwrap_or_default().to_string() }.into())
        }
    }
}
