//! `Logs`: buffered records the caller may read, then `LogEnd`; with `follow`, live records
//! until the client goes away (no `LogEnd`). The buffered records are copied out a page at a
//! time; a live reader that falls behind gets a "skipped N records" marker (its queue is
//! bounded), and one that stops reading is dropped when a send times out.

use crate::access;
use crate::conn::Conn;
use crate::logs::LogFilter;
use crate::Shared;
use oz_wire::{DaemonError, DaemonReply, LogRecord, WireError};

/// The buffered seccomp reports (denials, counts, hints) of sandbox `id` its caller may read, as
/// `LogLine`s without `LogEnd`: an attached launch's client gets them ahead of `ProgramExited`,
/// to summarise the run's denials without asking again.
pub async fn send_seccomp_reports(conn: &Conn, shared: &Shared, id: u64) -> Result<(), WireError> {
    let caller = conn.peer.uid;
    if !shared.hub.owner(id).is_some_and(|owner| access::can_see(caller, owner)) {
        return Ok(());
    }
    let mut cursor = shared.hub.cursor(LogFilter { caller, sandbox: Some(id) }, None);
    send_pages(conn, shared, &mut cursor, |rec| oz_profiles::seccomp::report::is_report(&rec.message)).await
}

pub async fn logs(
    conn: &Conn,
    shared: &Shared,
    sandbox: Option<u64>,
    follow: bool,
    count: Option<u32>,
) -> Result<(), WireError> {
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
        let mut cursor = shared.hub.cursor(filter, count);
        send_pages(conn, shared, &mut cursor, |_| true).await?;
        return conn.send(&DaemonReply::LogEnd).await;
    }
    let (mut cursor, follower) = match shared.hub.follow(filter, count) {
        Ok(f) => f,
        Err(e) => {
            let detail = e.to_string();
            return conn.send_error(DaemonError::PermissionDenied { action: "follow logs".into(), detail }).await;
        }
    };
    send_pages(conn, shared, &mut cursor, |_| true).await?;
    loop {
        tokio::select! {
            rec = follower.next() => conn.send(&DaemonReply::LogLine(rec)).await?,
            _ = conn.closed() => return Err(WireError::Closed),
        }
    }
}

/// The records from `cursor` on that `keep` accepts, a page at a time.
async fn send_pages(
    conn: &Conn,
    shared: &Shared,
    cursor: &mut crate::logs::Cursor,
    keep: impl Fn(&LogRecord) -> bool,
) -> Result<(), WireError> {
    loop {
        let page = shared.hub.page(cursor);
        if page.is_empty() {
            return Ok(());
        }
        for rec in page.into_iter().filter(|r| keep(r)) {
            conn.send(&DaemonReply::LogLine(rec)).await?;
        }
    }
}
