//! `ListSandboxes`: the caller's sandboxes (root: all).

use super::{internal, reply};
use crate::conn::Conn;
use crate::registry::ListSandboxes;
use crate::Shared;
use oz_wire::{DaemonReply, WireError};

pub async fn list_sandboxes(conn: &Conn, shared: &Shared) -> Result<(), WireError> {
    let r = shared
        .registry
        .send(ListSandboxes { caller: conn.peer.uid })
        .await
        .map(DaemonReply::Sandboxes)
        .map_err(internal);
    reply(conn, r).await
}
