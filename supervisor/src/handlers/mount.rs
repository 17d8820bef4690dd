//! `Mount` / `Umount`: files of the sandbox owner's home appear in / disappear from a running
//! sandbox. The agent applies the path rules (home only, no symlink tricks).

use super::{ask, internal, invalid, reply, unexpected};
use crate::conn::Conn;
use crate::registry::{Lookup, Target};
use crate::Shared;
use oz_wire::{AgentToDaemon, DaemonError, DaemonReply, DaemonToAgent, WireError};
use std::path::PathBuf;
use std::time::Duration;

const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

async fn target(conn: &Conn, shared: &Shared, id: u64, action: &'static str) -> Result<Target, DaemonError> {
    shared.registry.send(Lookup { id, caller: conn.peer.uid, action }).await.map_err(internal)?
}

fn check_paths<'a>(paths: impl IntoIterator<Item = &'a PathBuf>) -> Result<(), DaemonError> {
    for p in paths {
        if !p.is_absolute() {
            return Err(invalid(format!("{}: path must be absolute", p.display())));
        }
    }
    Ok(())
}

pub async fn mount(
    conn: &Conn,
    shared: &Shared,
    id: u64,
    paths: Vec<PathBuf>,
    read_only: bool,
) -> Result<(), WireError> {
    let r = async {
        if paths.is_empty() {
            return Err(invalid("no paths to mount"));
        }
        check_paths(&paths)?;
        let t = target(conn, shared, id, "mount").await?;
        // Paths are resolved as the sandbox owner, whoever asks (root included).
        let msg = DaemonToAgent::Mount { uid: t.uid, paths, read_only };
        match ask(&t.agent, id, msg, Vec::new(), None, MOUNT_TIMEOUT).await? {
            // The agent's record, with the new mounts, came before this answer.
            (AgentToDaemon::Mounted { paths }, _) => Ok(DaemonReply::Mounted { paths }),
            (AgentToDaemon::Error(error), _) => Err(DaemonError::Agent { id, error }),
            (other, _) => Err(unexpected(id, "Mounted", &other)),
        }
    };
    reply(conn, r.await).await
}

pub async fn umount(conn: &Conn, shared: &Shared, id: u64, path: PathBuf) -> Result<(), WireError> {
    let r = async {
        check_paths([&path])?;
        let t = target(conn, shared, id, "umount").await?;
        let msg = DaemonToAgent::Umount { uid: t.uid, path };
        match ask(&t.agent, id, msg, Vec::new(), None, MOUNT_TIMEOUT).await? {
            (AgentToDaemon::Unmounted, _) => Ok(DaemonReply::Unmounted),
            (AgentToDaemon::Error(error), _) => Err(DaemonError::Agent { id, error }),
            (other, _) => Err(unexpected(id, "Unmounted", &other)),
        }
    };
    reply(conn, r.await).await
}
