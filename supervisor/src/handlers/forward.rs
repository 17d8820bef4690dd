//! `Forward` / `ListForwarders`: the external forwarders of a sandbox (`oz forward ID NAME
//! [PORT]`: a new host unix socket reaching a port on the sandbox's loopback) and the list of
//! its forwarders. Owner (or root) only; the agent checks the name against the profile.

use super::{ask, internal, invalid, reply, unexpected};
use crate::conn::Conn;
use crate::registry::{Lookup, Target};
use crate::Shared;
use oz_wire::{AgentToDaemon, DaemonError, DaemonReply, DaemonToAgent, WireError};
use std::time::Duration;

const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

async fn target(conn: &Conn, shared: &Shared, id: u64, action: &'static str) -> Result<Target, DaemonError> {
    shared.registry.send(Lookup { id, caller: conn.peer.uid, action }).await.map_err(internal)?
}

pub async fn forward(conn: &Conn, shared: &Shared, id: u64, name: String, port: Option<u16>) -> Result<(), WireError> {
    let r = async {
        if name.is_empty() || port == Some(0) {
            return Err(invalid("forward needs a forwarder name and a port 1..65535"));
        }
        let t = target(conn, shared, id, "forward").await?;
        match ask(&t.agent, id, DaemonToAgent::Forward { name, port }, Vec::new(), None, FORWARD_TIMEOUT).await? {
            (AgentToDaemon::Forwarded { path }, _) => Ok(DaemonReply::Forwarded { path }),
            (AgentToDaemon::Error(error), _) => Err(DaemonError::Agent { id, error }),
            (other, _) => Err(unexpected(id, "Forwarded", &other)),
        }
    };
    reply(conn, r.await).await
}

pub async fn list_forwarders(conn: &Conn, shared: &Shared, id: u64) -> Result<(), WireError> {
    let r = async {
        let t = target(conn, shared, id, "list the forwarders of").await?;
        match ask(&t.agent, id, DaemonToAgent::ListForwarders, Vec::new(), None, FORWARD_TIMEOUT).await? {
            (AgentToDaemon::Forwarders(list), _) => Ok(DaemonReply::Forwarders(list)),
            (AgentToDaemon::Error(error), _) => Err(DaemonError::Agent { id, error }),
            (other, _) => Err(unexpected(id, "Forwarders", &other)),
        }
    };
    reply(conn, r.await).await
}
