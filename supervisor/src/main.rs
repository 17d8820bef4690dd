//! oz-daemon: the root supervisor. Listens on the control socket, spawns one oz-agent per
//! sandbox, supervises them and survives its own restarts (agents are re-adopted).

mod access;
mod activation;
mod adopt;
mod agent;
mod agentio;
mod args;
mod cleanup;
mod conn;
mod daemon;
mod handlers;
mod listener;
mod logs;
mod profiles;
mod registry;
mod spawn;
mod table;
mod tails;
mod warm;

pub use daemon::{load_profiles, Shared};

use anyhow::Context as _;
use args::Args;
use clap::Parser;
use slog::{info, o, Drain, Logger};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::process::ExitCode;
use std::sync::Arc;

/// Make sure fds 0-2 are open so that no socket lands there (it would be clobbered by the
/// stdio set-up of spawned agents).
fn ensure_std_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD only queries the fd.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            if let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
                std::mem::forget(f); // lands on the lowest free fd, i.e. `fd`
            }
        }
    }
}

/// stderr (terminal text or JSON, through slog-async) plus the log hub (files, ring, followers).
fn build_logger(json: bool, level: slog::Level, hub: Arc<logs::LogHub>) -> (Logger, slog_async::AsyncGuard) {
    fn finish<D>(stderr: D, level: slog::Level, hub: Arc<logs::LogHub>) -> (Logger, slog_async::AsyncGuard)
    where
        D: Drain<Ok = (), Err = slog::Never> + Send + 'static,
    {
        let (stderr, guard) = slog_async::Async::new(stderr).chan_size(4096).build_with_guard();
        let both = slog::Duplicate::new(stderr.fuse(), logs::HubDrain(hub).fuse()).fuse();
        (Logger::root(slog::LevelFilter::new(both, level).fuse(), o!()), guard)
    }
    if json {
        finish(slog_json::Json::new(std::io::stderr()).add_default_keys().build().fuse(), level, hub)
    } else {
        let decorator = slog_term::TermDecorator::new().stderr().build();
        finish(slog_term::FullFormat::new(decorator).build().fuse(), level, hub)
    }
}

fn prepare_dirs(config: &oz_profiles::Config) -> anyhow::Result<()> {
    let agents = oz_wire::state::agents_dir(&config.state_dir);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&config.state_dir)
        .with_context(|| format!("create {}", config.state_dir.display()))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&agents)
        .with_context(|| format!("create {}", agents.display()))?;
    std::fs::set_permissions(&agents, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod {}", agents.display()))?;
    Ok(())
}

fn run(args: Args, activated: Option<std::os::fd::OwnedFd>) -> anyhow::Result<()> {
    let loaded = oz_profiles::config_load::load_config(args.config.as_deref())?;
    let mut config = loaded.config;
    if let Some(sock) = std::env::var_os(oz_wire::client::SOCKET_ENV).filter(|s| !s.is_empty()) {
        config.socket_path = sock.into();
    }
    let repaired = logs::secure_dir(&config.log_dir)?;
    let hub = logs::LogHub::new(Some(&config.log_dir), logs::Policy::from_config(&config));
    let (log, _guard) = build_logger(args.log_json, args.log_level, hub.clone());
    for note in &repaired {
        slog::warn!(log, "log_dir repaired: {}", note);
    }
    hub.start_sweeper(log.clone());
    for w in &loaded.warnings {
        slog::warn!(log, "config warning: {}", w);
    }
    info!(log, "starting"; "version" => env!("CARGO_PKG_VERSION"), "config" => %loaded.path.display(),
        "from_file" => loaded.from_file);
    prepare_dirs(&config)?;
    // An admin may edit the generic blacklist: a broken one stops the start, naming file and line.
    oz_profiles::seccomp::generic::generic_blacklist(&config.etc_prefix)
        .map_err(|e| anyhow::anyhow!("generic seccomp blacklist: {e}"))?;
    let profiles = load_profiles(&config, &log);
    info!(log, "profiles loaded"; "count" => profiles.len(), "dir" => %config.profile_dir.display());
    if profiles.iter().any(|p| p.networking.net_type == oz_profiles::profile::NetType::Bridge) {
        for w in oz_net::bridge::host_checks(&config.bridge_name, &config.nm_ignore_file) {
            slog::warn!(log, "bridged networking: {}", w);
        }
    }
    let scan = adopt::scan(&config.state_dir, &log);
    let from_systemd = activated.is_some();
    let listener = match activated {
        Some(fd) => activation::listener(fd, &config.socket_path)?,
        None => {
            listener::bind(&config.socket_path).with_context(|| format!("bind {}", config.socket_path.display()))?
        }
    };
    let socket_path = config.socket_path.clone();
    let system = actix::System::new();
    system.block_on(async { daemon::start(config, profiles, scan, listener, hub, log.clone()) });
    let result = system.run();
    if !from_systemd {
        // A socket systemd made stays: it activates the next daemon.
        let _ = std::fs::remove_file(&socket_path);
    }
    info!(log, "stopped");
    result.context("actix system")
}

/// Agents, connections and log files all need fds: use the hard limit.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

fn main() -> ExitCode {
    // Before anything that could take fd 3 or start a thread.
    let activated = match activation::take_from_env() {
        Ok(fd) => fd,
        Err(e) => {
            eprintln!("oz-daemon: {e}");
            return ExitCode::FAILURE;
        }
    };
    ensure_std_fds();
    raise_fd_limit();
    let args = Args::parse();
    match run(args, activated) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oz-daemon: {e:#}");
            ExitCode::FAILURE
        }
    }
}
