//! `Kill`: ask each target's agent to shut down and answer once their channels have closed (so a
//! following `ListSandboxes` no longer shows them); agents that do not comply in time are killed.

use super::{ask, internal, reply};
use crate::agent::ForceKill;
use crate::conn::Conn;
use crate::registry::{AgentAddr, AllAgents, KillTargets};
use crate::Shared;
use oz_wire::{DaemonReply, DaemonToAgent, KillTarget, WireError};
use std::time::Duration;

const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Shut one agent down; returns when its channel has ended.
async fn stop_agent(id: u64, agent: AgentAddr, reason: String) -> u64 {
    let mut end = agent.ended.clone();
    let stop = async {
        let _ = ask(&agent, id, DaemonToAgent::Shutdown { reason }, Vec::new(), None, SHUTDOWN_GRACE).await;
        let _ = end.wait_for(|gone| *gone).await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, stop).await.is_err() {
        agent.do_send(ForceKill);
        let _ = tokio::time::timeout(Duration::from_secs(2), end.wait_for(|gone| *gone)).await;
    }
    id
}

pub async fn kill(conn: &Conn, shared: &Shared, target: KillTarget) -> Result<(), WireError> {
    let caller = conn.peer.uid;
    let r = async {
        let targets = shared.registry.send(KillTargets { target, caller }).await.map_err(internal)??;
        let stops = targets
            .into_iter()
            .filter_map(|(id, agent)| agent.map(|a| stop_agent(id, a, format!("killed by uid {caller}"))));
        let mut ids = futures::future::join_all(stops).await;
        ids.sort_unstable();
        slog::info!(conn.log, "sandboxes killed"; "ids" => ?ids);
        Ok(DaemonReply::Killed { ids })
    };
    reply(conn, r.await).await
}

/// `RelaunchXpra`: restart the Xpra client of each target (the caller's own, as for `Kill`);
/// answers with the ids where a client was restarted.
pub async fn relaunch_xpra(conn: &Conn, shared: &Shared, target: KillTarget) -> Result<(), WireError> {
    let caller = conn.peer.uid;
    let r = async {
        let targets = shared.registry.send(KillTargets { target, caller }).await.map_err(internal)??;
        let asks = targets.into_iter().filter_map(|(id, agent)| agent.map(|a| (id, a))).map(|(id, a)| async move {
            let answer = ask(&a, id, DaemonToAgent::RelaunchXpra, Vec::new(), None, SHUTDOWN_GRACE).await;
            answer.ok().filter(|(msg, _)| matches!(msg, oz_wire::AgentToDaemon::XpraRelaunched)).map(|_| id)
        });
        let mut ids: Vec<u64> = futures::future::join_all(asks).await.into_iter().flatten().collect();
        ids.sort_unstable();
        slog::info!(conn.log, "xpra clients relaunched"; "ids" => ?ids);
        Ok(DaemonReply::XpraRelaunched { ids })
    };
    reply(conn, r.await).await
}

/// oz.conf stop_sandboxes_on_exit: stop every sandbox before the daemon exits.
pub async fn kill_all_for_shutdown(shared: &Shared) {
    let Ok(all) = shared.registry.send(AllAgents).await else { return };
    let stops = all.into_iter().map(|(id, a)| stop_agent(id, a, "oz-daemon stopping".into()));
    futures::future::join_all(stops).await;
}
