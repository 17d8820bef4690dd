//! `Shell`: a pty shell in one of the caller's sandboxes, as the caller (root: only with
//! oz.conf allow_root_shell). The pty master goes to the client; when the shell ends, its
//! status follows on the same connection (`ShellExited`).

use super::{ask, internal, unexpected};
use crate::access;
use crate::conn::Conn;
use crate::registry::Lookup;
use crate::Shared;
use oz_wire::{AgentToDaemon, DaemonError, DaemonReply, DaemonToAgent, ExitStatus, WireError};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;
use tokio::sync::oneshot;

pub async fn shell(conn: &Conn, shared: &Shared, id: u64, term: String, cols: u16, rows: u16) -> Result<(), WireError> {
    let caller = conn.peer.uid;
    let target = match shared.registry.send(Lookup { id, caller, action: "shell" }).await.map_err(internal) {
        Ok(Ok(t)) => t,
        Ok(Err(e)) | Err(e) => return conn.send_error(e).await,
    };
    let uid = match access::shell_uid(caller, target.config.allow_root_shell) {
        Ok(u) => u,
        Err(e) => return conn.send_error(e).await,
    };
    let msg = DaemonToAgent::Shell { uid, term, cols, rows };
    let (exit_tx, exit_rx) = oneshot::channel();
    let master = match ask(&target.agent, id, msg, Vec::new(), Some(exit_tx), Duration::from_secs(30)).await {
        Ok((AgentToDaemon::ShellOpened { .. } | AgentToDaemon::ShellStarted, fds)) if fds.len() == 1 => {
            fds.into_iter().next().expect("one fd")
        }
        Ok((AgentToDaemon::Error(error), _)) => return conn.send_error(DaemonError::Agent { id, error }).await,
        Ok((other, _)) => return conn.send_error(unexpected(id, "ShellOpened with one fd", &other)).await,
        Err(e) => return conn.send_error(e).await,
    };
    slog::info!(conn.log, "shell started"; "sandbox" => id, "uid" => uid);
    send_master(conn, master).await?;
    wait_exit(conn, exit_rx).await
}

/// Hand the pty master to the client and close ours: the shell must see a hangup when the
/// client goes away.
async fn send_master(conn: &Conn, master: OwnedFd) -> Result<(), WireError> {
    conn.send_with_fds(&DaemonReply::ShellStarted, &[master.as_fd()]).await
}

/// Forward the shell's exit status. An agent that answered the old `ShellStarted` registers
/// no watcher (the sender is dropped): the client then gets nothing, as from an older daemon.
async fn wait_exit(conn: &Conn, exit: oneshot::Receiver<ExitStatus>) -> Result<(), WireError> {
    tokio::select! {
        status = exit => match status {
            Ok(status) => conn.send(&DaemonReply::ShellExited { status }).await,
            Err(_) => Ok(()),
        },
        _ = conn.closed() => Err(WireError::Closed),
    }
}
