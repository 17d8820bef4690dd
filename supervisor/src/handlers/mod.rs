//! Request handlers, one file per request kind. Each writes its own replies (some send several).

mod forward;
mod kill;
mod launch;
mod launch_check;
mod list;
mod logs;
mod mount;
mod profiles;
mod shell;

pub use kill::kill_all_for_shutdown;
pub use launch_check::program_installed;

use crate::agent::{Answer, Request};
use crate::conn::Conn;
use crate::registry::AgentAddr;
use crate::Shared;
use oz_wire::{AgentError, ClientRequest, DaemonError, DaemonReply, DaemonToAgent, ExitStatus, StdioMode, WireError};
use std::os::fd::OwnedFd;
use std::time::Duration;
use tokio::sync::oneshot;

/// Route one request. An error means the connection is unusable.
pub async fn dispatch(conn: &Conn, shared: &Shared, req: ClientRequest, fds: Vec<OwnedFd>) -> Result<(), WireError> {
    let expects_fds = matches!(
        &req,
        ClientRequest::Launch(p) | ClientRequest::LaunchEphemeral(p) if p.attach_stdio
    );
    if !expects_fds && !fds.is_empty() {
        drop(fds);
        return conn.send_error(invalid(format!("{} carries no file descriptors", req.kind()))).await;
    }
    match req {
        ClientRequest::Hello { .. } => conn.send_error(invalid("hello was already exchanged")).await,
        ClientRequest::Ping => conn.send(&DaemonReply::Pong).await,
        ClientRequest::ListProfiles => profiles::list_profiles(conn, shared).await,
        ClientRequest::ListSandboxes => list::list_sandboxes(conn, shared).await,
        ClientRequest::Launch(p) => launch::launch(conn, shared, launch::LaunchRequest::new(p, fds, false)).await,
        ClientRequest::LaunchEphemeral(p) => {
            launch::launch(conn, shared, launch::LaunchRequest::new(p, fds, true)).await
        }
        ClientRequest::LaunchPty { profile, args, cwd, env, cols, rows } => {
            let stdio = StdioMode::Pty { cols, rows };
            let req = launch::LaunchRequest { profile, args, cwd, env, noexec: false, stdio, fds, ephemeral: false };
            launch::launch(conn, shared, req).await
        }
        ClientRequest::Kill { target } => kill::kill(conn, shared, target).await,
        ClientRequest::RelaunchXpra { target } => kill::relaunch_xpra(conn, shared, target).await,
        ClientRequest::Shell { id, term, cols, rows } => shell::shell(conn, shared, id, term, cols, rows).await,
        ClientRequest::Mount { id, paths, read_only } => mount::mount(conn, shared, id, paths, read_only).await,
        ClientRequest::Umount { id, path } => mount::umount(conn, shared, id, path).await,
        ClientRequest::Logs { sandbox, follow, count } => logs::logs(conn, shared, sandbox, follow, count).await,
        ClientRequest::Forward { id, name, port } => forward::forward(conn, shared, id, name, port).await,
        ClientRequest::ListForwarders { id } => forward::list_forwarders(conn, shared, id).await,
        ClientRequest::Resize { .. } => {
            conn.send_error(invalid("resize the shell with TIOCSWINSZ on the pty master you hold")).await
        }
    }
}

pub fn invalid(detail: impl Into<String>) -> DaemonError {
    DaemonError::InvalidRequest { detail: detail.into() }
}

pub fn internal(detail: impl std::fmt::Display) -> DaemonError {
    DaemonError::Internal { detail: detail.to_string() }
}

pub fn agent_gone(id: u64) -> DaemonError {
    DaemonError::Agent { id, error: AgentError::AgentExited }
}

/// Send a request to an agent and wait up to `timeout` for its answer.
pub async fn ask(
    agent: &AgentAddr,
    id: u64,
    msg: DaemonToAgent,
    fds: Vec<OwnedFd>,
    watch: Option<oneshot::Sender<ExitStatus>>,
    timeout: Duration,
) -> Result<Answer, DaemonError> {
    submit(agent, id, msg, fds, watch).await?.answer(timeout).await
}

/// A request handed to an agent's actor (queued for the agent), its answer still to come.
pub struct Submitted {
    id: u64,
    kind: &'static str,
    rx: oneshot::Receiver<crate::agent::Reply>,
}

/// Hand a request to an agent without waiting for its answer, so that several may be in flight
/// (they reach the agent in the order submitted).
pub async fn submit(
    agent: &AgentAddr,
    id: u64,
    msg: DaemonToAgent,
    fds: Vec<OwnedFd>,
    watch: Option<oneshot::Sender<ExitStatus>>,
) -> Result<Submitted, DaemonError> {
    let kind = msg.kind();
    let rx = agent.send(Request { msg, fds, watch }).await.map_err(|_| agent_gone(id))??;
    Ok(Submitted { id, kind, rx })
}

impl Submitted {
    /// Wait up to `timeout` for the answer.
    pub async fn answer(self, timeout: Duration) -> Result<Answer, DaemonError> {
        let Submitted { id, kind, rx } = self;
        match tokio::time::timeout(timeout, rx).await {
            Err(_) => Err(DaemonError::Agent {
                id,
                error: AgentError::NoAnswer { request: kind.to_string(), secs: timeout.as_secs() },
            }),
            Ok(Err(_)) => Err(agent_gone(id)),
            Ok(Ok(Ok(a))) => Ok(a),
            Ok(Ok(Err(WireError::UnexpectedMessage { expected, received }))) => Err(DaemonError::Agent {
                id,
                error: AgentError::UnexpectedReply { expected: expected.into(), received },
            }),
            Ok(Ok(Err(e))) => Err(DaemonError::Agent { id, error: AgentError::Channel { detail: e.to_string() } }),
        }
    }
}

/// The agent answered something else than expected.
pub fn unexpected(id: u64, expected: &str, got: &oz_wire::AgentToDaemon) -> DaemonError {
    DaemonError::Agent {
        id,
        error: AgentError::UnexpectedReply { expected: expected.to_string(), received: got.kind().to_string() },
    }
}

/// Turn a handler's result into a reply.
pub async fn reply(conn: &Conn, r: Result<DaemonReply, DaemonError>) -> Result<(), WireError> {
    match r {
        Ok(reply) => conn.send(&reply).await,
        Err(e) => conn.send_error(e).await,
    }
}
