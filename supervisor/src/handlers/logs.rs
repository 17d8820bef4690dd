//! `Logs`: buffered records the caller may read, then `LogEnd`; with `follow`, live records
//! until the client goes away (no `LogEnd`).

use crate::access;
use crate::conn::Conn;
use crate::logs::LogFilter;
use crate::Shared;
use oz_wire::{DaemonError, DaemonReply, WireError};

pub async fn logs(conn: &Conn, shared: &Shared, sandbox: Option<u64>, follow: bool, count: Option<u32>) -> Result<(), WireError> {
    let caller = conn.peer.uid;
    if let Some(id) = sandbox {
        // Another user's sandbox is reported as unknown, like one that never existed.
        let visible = shared.hub.owner(id).is_some_and(|owner| access::can_see(caller, owner));
        if !visible {
            return conn.send_error(DaemonError::NoSuchSandbox { id }).await;
        }
    }
    let filter = LogFilter { caller, sandbox };
    if !follow {
        for rec in shared.hub.recent(filter, count) {
            conn.send(&DaemonReply::LogLine(rec)).await?;
        }
        return conn.send(&DaemonReply::LogEnd).await;
    }
    let (backlog, mut rx) = shared.hub.subscribe(filter, count);
    for rec in backlog {
        conn.send(&DaemonReply::LogLine(rec)).await?;
    }
    loop {
        tokio::select! {
            rec = rx.recv() => match rec {
                Some(rec) => conn.send(&DaemonReply::LogLine(rec)).await?,
                None => return Ok(()),
            },
            _ = conn.closed() => return Err(WireError::Closed),
        }
    }
}
