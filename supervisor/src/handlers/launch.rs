//! `Launch`: resolve the profile, reuse the caller's running sandbox of it (RunProgram) or spawn
//! a new agent, and answer `Launched` only after the agent's `Ready` (the program was exec'd).
//! With attached stdio the client's three fds go to the agent and, later, `ProgramExited`; on a
//! pty the agent's pty master goes to the client with `Launched`, and later `ProgramExited`.

use super::{agent_gone, ask, internal, invalid, launch_check, submit, unexpected, Submitted};
use crate::access;
use crate::agent::{Agent, AgentIo, AgentParams, ForceKill};
use crate::conn::Conn;
use crate::registry::{AgentAddr, AttachAgent, ClaimLaunch, Remove};
use crate::spawn;
use crate::table::Claim;
use crate::Shared;
use oz_profiles::{Config, Profile};
use oz_wire::{
    AgentToDaemon, DaemonError, DaemonReply, DaemonToAgent, ExitStatus, LaunchParams, LaunchSpec, ProfileRef,
    StdioMode, WireError, PROTOCOL_VERSION,
};
use slog::{info, warn};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::oneshot;

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long an attached program runs before the next launch's agent is spawned anyway.
const REFILL_AFTER: Duration = Duration::from_millis(50);

pub struct LaunchRequest {
    pub profile: ProfileRef,
    pub args: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub noexec: bool,
    pub stdio: StdioMode,
    pub fds: Vec<OwnedFd>,
    /// Nothing of the user's home in the sandbox (see `oz_profiles::ephemeral`).
    pub ephemeral: bool,
}

impl LaunchRequest {
    /// A `Launch` or `LaunchEphemeral` request with the fds of its frame.
    pub fn new(p: LaunchParams, fds: Vec<OwnedFd>, ephemeral: bool) -> LaunchRequest {
        let stdio = if p.attach_stdio { StdioMode::Attached } else { StdioMode::Log };
        let LaunchParams { profile, args, cwd, env, noexec, .. } = p;
        LaunchRequest { profile, args, cwd, env, noexec, stdio, fds, ephemeral }
    }
}

/// What a successful launch tells the client, and the program to wait for (attached: until it
/// exits; detached: for oz.conf `launch_check_ms`).
struct Launched {
    id: u64,
    init_pid: u32,
    reused: bool,
    profile: String,
    check_ms: u32,
    exit: Option<oneshot::Receiver<ExitStatus>>,
    /// The program's pty master (StdioMode::Pty).
    pty: Option<OwnedFd>,
}

pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

/// The home directory of `uid` from the user database.
fn user_home(uid: u32) -> Option<PathBuf> {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.dir)
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

pub async fn launch(conn: &Conn, shared: &Shared, req: LaunchRequest) -> Result<(), WireError> {
    let answered = answer_launch(conn, shared, req).await;
    // The next launch's agent starts once the client is done with this connection
    // (`conn::serve`), unless the program ran long enough for it to have started already.
    conn.refill_due.set(true);
    answered
}

async fn answer_launch(conn: &Conn, shared: &Shared, req: LaunchRequest) -> Result<(), WireError> {
    let attached = req.stdio != StdioMode::Log;
    let mut l = match start(conn, shared, req).await {
        Err(e) => return conn.send_error(e).await,
        Ok(l) => l,
    };
    if !attached {
        if let Some(exit) = l.exit.take() {
            if let Some(e) = launch_check::exited_at_once(shared, l.id, &l.profile, exit, l.check_ms).await {
                info!(conn.log, "program failed at once"; "sandbox" => l.id, "profile" => &l.profile, "error" => %e);
                return conn.send_error(e).await;
            }
        }
    }
    let reply = DaemonReply::Launched { id: l.id, init_pid: l.init_pid, reused_existing: l.reused };
    let fds: Vec<_> = l.pty.iter().map(|m| m.as_fd()).collect();
    conn.send_with_fds(&reply, &fds).await?;
    drop(l.pty);
    let Some(mut exit) = l.exit else { return Ok(()) };
    // The next agent is spawned once the program ended or ran for a while: spawned at once, it
    // would take the CPU from a short program's end, which the client waits for.
    let ended = match tokio::time::timeout(REFILL_AFTER, &mut exit).await {
        Ok(ended) => ended,
        Err(_) => {
            shared.warm.refill(&shared.config.agent_path(), &shared.hub);
            exit.await
        }
    };
    match ended {
        Ok(status) => {
            super::logs::send_seccomp_reports(conn, shared, l.id).await?;
            conn.send(&DaemonReply::ProgramExited { status }).await
        }
        Err(_) => conn.send_error(agent_gone(l.id)).await,
    }
}

/// Claim a sandbox and start the program in it. A claimed existing sandbox that turns out to be
/// ending (its program exited and it shuts down) is waited for, then the claim is made again.
async fn start(conn: &Conn, shared: &Shared, mut req: LaunchRequest) -> Result<Launched, DaemonError> {
    let caller = conn.peer.uid;
    access::check_launch(caller)?;
    if req.stdio == StdioMode::Attached && req.fds.len() != 3 {
        return Err(invalid(format!("attached launch needs 3 file descriptors, got {}", req.fds.len())));
    }
    let mut attempt = 1;
    loop {
        let claim = ClaimLaunch {
            profile: req.profile.clone(),
            uid: caller,
            user: user_name(caller),
            now: now_secs(),
            ephemeral: req.ephemeral,
        };
        let (profile, config, claim) = shared.registry.send(claim).await.map_err(internal)??;
        match claim {
            Claim::Existing { id, agent, init_pid } => {
                let last = attempt == launch_check::ENDING_ATTEMPTS;
                let fds = if last { std::mem::take(&mut req.fds) } else { launch_check::dup_fds(&req.fds)? };
                match run_in_existing(conn, &req, fds, (&profile, &config), (id, &agent, init_pid)).await {
                    Err(e) if !last && launch_check::met_ending(&e, &agent).await => {
                        info!(conn.log, "sandbox is ending; waiting to launch anew"; "sandbox" => id, "error" => %e);
                        launch_check::wait_ended(shared, id, &agent).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
            Claim::New { id } => return start_new(shared, req, (profile, config), id, caller).await,
        }
    }
}

/// The program watch of a launch: None for noexec (nothing runs).
fn exit_watch(noexec: bool) -> (Option<oneshot::Sender<ExitStatus>>, Option<oneshot::Receiver<ExitStatus>>) {
    if noexec {
        return (None, None);
    }
    let (tx, rx) = oneshot::channel();
    (Some(tx), Some(rx))
}

fn stdio_mode(req: &LaunchRequest) -> StdioMode {
    req.stdio
}

/// Run the program in the caller's running sandbox of the profile (RunProgram).
async fn run_in_existing(
    conn: &Conn,
    req: &LaunchRequest,
    fds: Vec<OwnedFd>,
    (profile, config): (&Profile, &Config),
    (id, agent, init_pid): (u64, &AgentAddr, u32),
) -> Result<Launched, DaemonError> {
    let (watch_tx, watch_rx) = exit_watch(false);
    let msg = DaemonToAgent::RunProgram {
        args: req.args.clone(),
        cwd: req.cwd.clone(),
        caller_env: req.env.clone(),
        stdio: stdio_mode(req),
    };
    match ask(agent, id, msg, fds, watch_tx, READY_TIMEOUT).await? {
        (AgentToDaemon::Ready { .. }, fds) => {
            let pty = pty_master(req.stdio, fds)?;
            info!(conn.log, "program started in existing sandbox"; "sandbox" => id, "profile" => &profile.name);
            let (profile, check_ms) = (profile.name.clone(), config.launch_check_ms);
            Ok(Launched { id, init_pid, reused: true, profile, check_ms, exit: watch_rx, pty })
        }
        (AgentToDaemon::Error(error) | AgentToDaemon::LaunchFailed(error), _) => Err(DaemonError::Agent { id, error }),
        (other, _) => Err(unexpected(id, "Ready", &other)),
    }
}

/// Build a new sandbox `id` for the launch and start its program.
async fn start_new(
    shared: &Shared,
    req: LaunchRequest,
    (profile, config): (Profile, Config),
    id: u64,
    caller: u32,
) -> Result<Launched, DaemonError> {
    let profile = match req.ephemeral {
        false => profile,
        true => match user_home(caller) {
            Some(home) => oz_profiles::ephemeral::strip_home(&profile, &home),
            None => {
                shared.registry.do_send(Remove { id });
                let detail = format!("ephemeral launch: no home directory for uid {caller}");
                return Err(DaemonError::LaunchFailed { profile: profile.name, detail });
            }
        },
    };
    let fail = |detail: String| DaemonError::LaunchFailed { profile: profile.name.clone(), detail };
    let refuse_launch = |e: AgentStartError| {
        shared.registry.do_send(Remove { id });
        warn!(shared.log, "launch failed"; "sandbox" => id, "profile" => &profile.name, "error" => %e);
        fail(e.to_string())
    };
    let (agent, greeting) = new_agent(shared, id, &profile, &config, caller).await.map_err(refuse_launch)?;
    let (watch_tx, watch_rx) = exit_watch(req.noexec);
    let (check_ms, stdio) = (config.launch_check_ms, stdio_mode(&req));
    let spec = LaunchSpec {
        sandbox_id: id,
        profile: profile.clone(),
        config,
        uid: caller,
        caller_env: req.env,
        args: req.args,
        cwd: req.cwd,
        noexec: req.noexec,
        stdio,
        ephemeral: req.ephemeral,
    };
    // The launch follows the hello without waiting for its answer: the agent reads them in
    // order, and one that answers the hello wrongly is killed before its launch counts.
    let launched = match submit(&agent, id, DaemonToAgent::Launch(spec), req.fds, watch_tx).await {
        Ok(launch) => match greeting.answered().await {
            Ok(()) => launch.answer(READY_TIMEOUT).await,
            Err(e) => {
                agent.do_send(ForceKill);
                return Err(refuse_launch(e));
            }
        },
        Err(e) => Err(e),
    };
    match launched {
        Ok((AgentToDaemon::Ready { init_pid, .. }, fds)) => {
            let pty = pty_master(stdio, fds)?;
            // The agent's record (phase, init pid, display) came before `Ready`.
            info!(shared.log, "sandbox launched"; "sandbox" => id, "profile" => &profile.name, "uid" => caller, "init_pid" => init_pid);
            Ok(Launched { id, init_pid, reused: false, profile: profile.name, check_ms, exit: watch_rx, pty })
        }
        Ok((AgentToDaemon::LaunchFailed(error) | AgentToDaemon::Error(error), _)) => {
            warn!(shared.log, "launch failed"; "sandbox" => id, "profile" => &profile.name, "error" => %error);
            let _ = agent.try_send(crate::agent::Request {
                msg: DaemonToAgent::Shutdown { reason: "launch failed".into() },
                fds: Vec::new(),
                watch: None,
            });
            Err(DaemonError::Agent { id, error })
        }
        Ok((other, _)) => {
            agent.do_send(ForceKill);
            Err(unexpected(id, "Ready", &other))
        }
        Err(e) => {
            agent.do_send(ForceKill);
            Err(e)
        }
    }
}

/// The pty master that comes with `Ready` for a launch on a pty (exactly one fd), else none.
fn pty_master(stdio: StdioMode, fds: Vec<OwnedFd>) -> Result<Option<OwnedFd>, DaemonError> {
    match stdio {
        StdioMode::Pty { .. } => {
            let n = fds.len();
            let [master] = <[OwnedFd; 1]>::try_from(fds)
                .map_err(|_| internal(format!("agent sent {n} fds with Ready, expected the pty master")))?;
            Ok(Some(master))
        }
        StdioMode::Log | StdioMode::Attached => Ok(None),
    }
}

/// Why no agent could be started for a sandbox.
#[derive(Debug, thiserror::Error)]
enum AgentStartError {
    #[error("spawn {}: {source}", path.display())]
    Spawn { path: PathBuf, source: std::io::Error },
    #[error("agent channel: {0}")]
    Channel(std::io::Error),
    #[error("agent hello: {0}")]
    Version(WireError),
    #[error("agent answered hello with {0}")]
    Unexpected(&'static str),
    #[error("agent {} (pid {pid}): {source}", path.display())]
    NoHello { path: PathBuf, pid: u32, source: DaemonError },
}

/// Spawn an agent for sandbox `id`, start its actor and send `Hello`; the agent's answer is
/// awaited with [`Greeting::answered`], after the launch itself was sent behind it.
async fn new_agent(
    shared: &Shared,
    id: u64,
    profile: &Profile,
    config: &Config,
    uid: u32,
) -> Result<(AgentAddr, Greeting), AgentStartError> {
    let path = config.agent_path();
    let spawned = match shared.warm.take(&path, id, &shared.hub) {
        Some(waiting) => waiting,
        None => spawn::spawn_agent(&path, shared.hub.agent_stderr(id))
            .map_err(|source| AgentStartError::Spawn { path: path.clone(), source })?,
    };
    let io = AgentIo::new(spawned.channel).map_err(AgentStartError::Channel)?;
    shared.hub.register_sandbox(id, uid, &profile.name);
    let agent = Agent::launch(AgentParams {
        id,
        profile: profile.name.clone(),
        agent_pid: spawned.pid,
        init_pid: 0,
        io,
        registry: shared.registry.clone(),
        hub: shared.hub.clone(),
        log: shared.log.clone(),
        state_dir: config.state_dir.clone(),
    });
    shared.registry.do_send(AttachAgent { id, agent: agent.clone(), agent_pid: spawned.pid });
    let hello = DaemonToAgent::Hello { protocol_version: PROTOCOL_VERSION };
    match submit(&agent, id, hello, Vec::new(), None).await {
        Ok(submitted) => Ok((agent, Greeting { submitted, path, pid: spawned.pid })),
        Err(source) => {
            agent.do_send(ForceKill);
            Err(AgentStartError::NoHello { path, pid: spawned.pid, source })
        }
    }
}

/// A new agent's `Hello`, sent and not yet answered.
struct Greeting {
    submitted: Submitted,
    path: PathBuf,
    pid: u32,
}

impl Greeting {
    /// The agent's answer: its `Hello` of this protocol version, else the reason it is unusable
    /// (the caller then kills it).
    async fn answered(self) -> Result<(), AgentStartError> {
        let Greeting { submitted, path, pid } = self;
        match submitted.answer(HELLO_TIMEOUT).await {
            Ok((AgentToDaemon::Hello { protocol_version, .. }, _)) => {
                oz_wire::check_version(protocol_version).map_err(AgentStartError::Version)
            }
            Ok((other, _)) => Err(AgentStartError::Unexpected(other.kind())),
            Err(source) => Err(AgentStartError::NoHello { path, pid, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd() -> OwnedFd {
        std::fs::File::open("/dev/null").unwrap().into()
    }

    #[test]
    fn a_pty_launch_takes_exactly_one_fd_from_ready() {
        let pty = StdioMode::Pty { cols: 80, rows: 24 };
        assert!(pty_master(pty, vec![fd()]).unwrap().is_some());
        assert!(pty_master(pty, vec![]).is_err());
        assert!(pty_master(pty, vec![fd(), fd()]).is_err());
    }

    #[test]
    fn other_launches_pass_no_fd_to_the_client() {
        assert!(pty_master(StdioMode::Log, vec![]).unwrap().is_none());
        assert!(pty_master(StdioMode::Attached, vec![]).unwrap().is_none());
    }
}
