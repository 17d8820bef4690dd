//! The registry actor: the loaded profiles, oz.conf, and the table of running sandboxes.

use crate::agent::AgentHandle;
use crate::profiles;
use crate::table::{Claim, Entry, Table};
use actix::prelude::*;
use oz_profiles::{Config, Profile};
use oz_wire::{DaemonError, KillTarget, ProfileRef, ProfileSummary, SandboxRecord, SandboxState};
use slog::{info, warn, Logger};

pub type AgentAddr = AgentHandle;

pub struct Registry {
    config: Config,
    profiles: Vec<Profile>,
    table: Table<AgentAddr>,
    log: Logger,
}

impl Registry {
    pub fn new(config: Config, profiles: Vec<Profile>, log: Logger) -> Registry {
        Registry { config, profiles, table: Table::default(), log }
    }

    pub fn bump_next_id(&mut self, seen: u64) {
        self.table.bump_next_id(seen);
    }

    /// Whether the loaded profile `name` is `multi` (false for a profile no longer loaded).
    pub fn is_multi(&self, name: &str) -> bool {
        self.profiles.iter().any(|p| p.name == name && p.multi)
    }

    pub fn adopt(&mut self, entry: Entry<AgentAddr>) {
        self.table.adopt(entry);
    }
}

impl Actor for Registry {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "Vec<ProfileSummary>")]
pub struct ListProfiles;

impl Handler<ListProfiles> for Registry {
    type Result = MessageResult<ListProfiles>;
    fn handle(&mut self, _: ListProfiles, _: &mut Context<Self>) -> Self::Result {
        MessageResult(profiles::summaries(&self.profiles))
    }
}

/// Resolve the profile of a launch, check its program is installed, and claim a sandbox for it
/// atomically.
#[derive(Message)]
#[rtype(result = "Result<(Profile, Config, Claim<AgentAddr>), DaemonError>")]
pub struct ClaimLaunch {
    pub profile: ProfileRef,
    pub uid: u32,
    pub user: String,
    pub now: u64,
    /// An ephemeral launch: refused unless oz.conf `enable_ephemerals`.
    pub ephemeral: bool,
}

impl Handler<ClaimLaunch> for Registry {
    type Result = Result<(Profile, Config, Claim<AgentAddr>), DaemonError>;
    fn handle(&mut self, m: ClaimLaunch, _: &mut Context<Self>) -> Self::Result {
        let profile = profiles::resolve(&self.profiles, &m.profile)?.clone();
        crate::handlers::program_installed(&profile, &self.config)?;
        if m.ephemeral && !self.config.enable_ephemerals {
            return Err(DaemonError::PermissionDenied {
                action: format!("ephemeral launch of {}", profile.name),
                detail: "ephemeral sandboxes are disabled (oz.conf enable_ephemerals is false)".into(),
            });
        }
        let limit = self.config.max_sandboxes_per_user;
        let claim = self.table.claim(&profile, m.uid, &m.user, m.now, limit, m.ephemeral)?;
        Ok((profile, self.config.clone(), claim))
    }
}

/// The agent of a reserved sandbox was spawned.
#[derive(Message)]
#[rtype(result = "()")]
pub struct AttachAgent {
    pub id: u64,
    pub agent: AgentAddr,
    pub agent_pid: u32,
}

impl Handler<AttachAgent> for Registry {
    type Result = ();
    fn handle(&mut self, m: AttachAgent, _: &mut Context<Self>) {
        if let Some(e) = self.table.get_mut(m.id) {
            e.agent = Some(m.agent);
            e.record.agent_pid = m.agent_pid;
        }
    }
}

/// The agent sent its record (`AgentToDaemon::State`): list the sandbox as it says.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetRecord {
    pub record: SandboxRecord,
}

impl Handler<SetRecord> for Registry {
    type Result = ();
    fn handle(&mut self, m: SetRecord, _: &mut Context<Self>) {
        if let Some(e) = self.table.get_mut(m.record.id) {
            e.update(m.record);
        }
    }
}

/// The daemon knows the sandbox is going away (its agent was told to shut down, or its channel
/// ended) before the agent could say so.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetState {
    pub id: u64,
    pub state: SandboxState,
}

impl Handler<SetState> for Registry {
    type Result = ();
    fn handle(&mut self, m: SetState, _: &mut Context<Self>) {
        if let Some(e) = self.table.get_mut(m.id) {
            e.record.phase = m.state;
        }
    }
}

/// Forget a sandbox (its agent ended, or its launch failed). Returns the entry.
#[derive(Message)]
#[rtype(result = "Option<Entry<AgentAddr>>")]
pub struct Remove {
    pub id: u64,
}

impl Handler<Remove> for Registry {
    type Result = MessageResult<Remove>;
    fn handle(&mut self, m: Remove, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.table.remove(m.id))
    }
}

#[derive(Message)]
#[rtype(result = "Vec<SandboxRecord>")]
pub struct ListSandboxes {
    pub caller: u32,
}

impl Handler<ListSandboxes> for Registry {
    type Result = MessageResult<ListSandboxes>;
    fn handle(&mut self, m: ListSandboxes, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.table.list(m.caller))
    }
}

/// What a handler needs to act on one sandbox.
#[derive(Clone)]
pub struct Target {
    pub id: u64,
    pub uid: u32,
    pub agent: AgentAddr,
    pub config: Config,
}

#[derive(Message)]
#[rtype(result = "Result<Target, DaemonError>")]
pub struct Lookup {
    pub id: u64,
    pub caller: u32,
    pub action: &'static str,
}

impl Handler<Lookup> for Registry {
    type Result = Result<Target, DaemonError>;
    fn handle(&mut self, m: Lookup, _: &mut Context<Self>) -> Self::Result {
        let e = self.table.lookup(m.id, m.caller, m.action)?;
        let agent = e.agent.clone().ok_or(DaemonError::NotRunning { id: m.id })?;
        Ok(Target { id: e.id(), uid: e.uid(), agent, config: self.config.clone() })
    }
}

/// The sandboxes a kill applies to (those still being spawned have no agent yet and are skipped).
#[derive(Message)]
#[rtype(result = "Result<Vec<(u64, Option<AgentAddr>)>, DaemonError>")]
pub struct KillTargets {
    pub target: KillTarget,
    pub caller: u32,
}

impl Handler<KillTargets> for Registry {
    type Result = Result<Vec<(u64, Option<AgentAddr>)>, DaemonError>;
    fn handle(&mut self, m: KillTargets, _: &mut Context<Self>) -> Self::Result {
        let targets = self.table.kill_targets(m.target, m.caller)?;
        Ok(targets.into_iter().map(|e| (e.id(), e.agent.clone())).collect())
    }
}

/// Every live agent (for shutdown).
#[derive(Message)]
#[rtype(result = "Vec<(u64, AgentAddr)>")]
pub struct AllAgents;

impl Handler<AllAgents> for Registry {
    type Result = MessageResult<AllAgents>;
    fn handle(&mut self, _: AllAgents, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.table.all().filter_map(|e| e.agent.clone().map(|a| (e.id(), a))).collect())
    }
}

/// SIGHUP: reload the profile directory, keeping the old set if nothing loads.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReloadProfiles;

impl Handler<ReloadProfiles> for Registry {
    type Result = ();
    fn handle(&mut self, _: ReloadProfiles, _: &mut Context<Self>) {
        let set = crate::load_profiles(&self.config, &self.log);
        if set.is_empty() && !self.profiles.is_empty() {
            warn!(self.log, "profile reload loaded nothing; keeping the previous profiles";
                "dir" => %self.config.profile_dir.display(), "kept" => self.profiles.len());
            return;
        }
        info!(self.log, "profiles reloaded"; "count" => set.len());
        self.profiles = set;
    }
}
