//! Putting the daemon together inside the actix system: the registry, re-adopted agents, the
//! listener and the signal handlers.

use crate::adopt::Scan;
use crate::agent::{Agent, AgentIo, AgentParams};
use crate::handlers;
use crate::listener;
use crate::logs::LogHub;
use crate::registry::{Registry, ReloadProfiles};
use crate::table::Entry;
use actix::prelude::*;
use oz_profiles::{Config, Profile};
use slog::{info, warn, Logger};
use std::os::unix::net::UnixListener;
use std::rc::Rc;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

/// What every connection task shares.
pub struct Shared {
    pub config: Config,
    pub registry: Addr<Registry>,
    pub hub: Arc<LogHub>,
    pub log: Logger,
    /// The agent spawned ahead of the next launch.
    pub warm: crate::warm::Warm,
}

/// Load the profile directory, logging every failure and warning; the good profiles survive.
pub fn load_profiles(config: &Config, log: &Logger) -> Vec<Profile> {
    let set = oz_profiles::load::load_profile_dir(&config.profile_dir);
    for w in &set.warnings {
        warn!(log, "profile warning: {}", w);
    }
    for (path, e) in &set.failed {
        for line in e.lines() {
            warn!(log, "profile not loaded"; "file" => %path.display(), "error" => line);
        }
    }
    set.profiles
}

/// Start everything; call inside `System::block_on`.
pub fn start(
    config: Config,
    profiles: Vec<Profile>,
    scan: Scan,
    listener: UnixListener,
    hub: Arc<LogHub>,
    log: Logger,
) {
    let registry = Registry::create(|ctx| {
        let mut reg = Registry::new(config.clone(), profiles, log.clone());
        reg.bump_next_id(scan.max_id);
        for a in scan.adopted {
            adopt_one(&mut reg, ctx.address(), a, &config, &hub, &log);
        }
        reg
    });
    let shared = Rc::new(Shared { config, registry, hub, log, warm: Default::default() });
    shared.warm.refill(&shared.config.agent_path(), &shared.hub);
    actix::spawn(listener::accept_loop(listener, shared.clone()));
    actix::spawn(signals(shared));
}

fn adopt_one(
    reg: &mut Registry,
    addr: Addr<Registry>,
    a: crate::adopt::Adopted,
    config: &Config,
    hub: &Arc<LogHub>,
    log: &Logger,
) {
    let rec = a.record;
    let io = match AgentIo::new(a.channel) {
        Ok(io) => io.greeted(a.protocol),
        Err(e) => {
            warn!(log, "cannot watch re-adopted agent"; "sandbox" => rec.id, "error" => %e);
            return;
        }
    };
    hub.register_sandbox(rec.id, rec.uid, &rec.profile);
    let agent = Agent::launch(AgentParams {
        id: rec.id,
        profile: rec.profile.clone(),
        agent_pid: rec.agent_pid,
        init_pid: rec.init_pid,
        io,
        registry: addr,
        hub: hub.clone(),
        log: log.clone(),
        state_dir: config.state_dir.clone(),
    });
    let multi = reg.is_multi(&rec.profile);
    reg.adopt(Entry { record: rec, multi, agent: Some(agent) });
}

/// SIGHUP reloads profiles; SIGTERM/SIGINT stop the daemon (and the sandboxes, if configured).
async fn signals(shared: Rc<Shared>) {
    let (Ok(mut hup), Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::hangup()), signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        slog::crit!(shared.log, "cannot install signal handlers");
        System::current().stop_with_code(1);
        return;
    };
    loop {
        tokio::select! {
            _ = hup.recv() => {
                info!(shared.log, "SIGHUP: reloading profiles");
                shared.registry.do_send(ReloadProfiles);
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    if shared.config.stop_sandboxes_on_exit {
        info!(shared.log, "stopping: shutting every sandbox down (stop_sandboxes_on_exit)");
        handlers::kill_all_for_shutdown(&shared).await;
    } else {
        info!(shared.log, "stopping: sandboxes keep running and will be re-adopted");
    }
    shared.warm.clear();
    System::current().stop();
}
