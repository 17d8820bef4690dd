//! `Shell`: a pty shell in one of the caller's sandboxes, as the caller (root: only with
//! oz.conf allow_root_shell). The pty master goes to the client.

use super::{ask, internal, unexpected};
use crate::access;
use crate::conn::Conn;
use crate::registry::Lookup;
use crate::Shared;
use oz_wire::{AgentToDaemon, DaemonError, DaemonReply, DaemonToAgent, WireError};
use std::os::fd::AsFd;
use std::time::Duration;

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
    match ask(&target.agent, id, msg, Vec::new(), None, Duration::from_secs(30)).await {
        Ok((AgentToDaemon::ShellStarted, fds)) if fds.len() == 1 => {
            slog::info!(conn.log, "shell started"; "sandbox" => id, "uid" => uid);
            conn.send_with_fds(&DaemonReply::ShellStarted, &[fds[0].as_fd()]).await
        }
        Ok((AgentToDaemon::Error(error), _)) => conn.send_error(DaemonError::Agent { id, error }).await,
        Ok((other, _)) => conn.send_error(unexpected(id, "ShellStarted with one fd", &other)).await,
        Err(e) => conn.send_error(e).await,
    }
}
