//! The sandbox table: pure bookkeeping of running sandboxes (ids, owners, states, reuse rules),
//! generic over the handle used to reach each agent so that it is unit-testable without actors.

use crate::access;
use oz_profiles::Profile;
use oz_wire::{DaemonError, KillTarget, SandboxRecord, SandboxState};
use std::collections::BTreeMap;

/// A sandbox in the table: its record, as its agent last reported it (the daemon fills it in
/// only while the sandbox is `Starting`, before the agent has one), and what only the daemon
/// knows.
#[derive(Debug, Clone)]
pub struct Entry<A> {
    pub record: SandboxRecord,
    pub multi: bool,
    /// None while the agent is being spawned.
    pub agent: Option<A>,
}

impl<A> Entry<A> {
    pub fn id(&self) -> u64 {
        self.record.id
    }

    pub fn uid(&self) -> u32 {
        self.record.uid
    }

    /// Take the agent's record. A phase the daemon set to `ShuttingDown` (the agent is going
    /// away) does not go back, nor does a sandbox known to be ephemeral become joinable.
    pub fn update(&mut self, record: SandboxRecord) {
        let ending = self.record.phase == SandboxState::ShuttingDown;
        let ephemeral = self.record.ephemeral;
        self.record = record;
        if ending {
            self.record.phase = SandboxState::ShuttingDown;
        }
        self.record.ephemeral |= ephemeral;
    }
}

/// Outcome of a launch request against the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim<A> {
    /// Run in this existing sandbox of the same user and profile.
    Existing { id: u64, agent: A, init_pid: u32 },
    /// A new sandbox was reserved under this id (state Starting, no agent yet).
    New { id: u64 },
}

#[derive(Debug)]
pub struct Table<A> {
    entries: BTreeMap<u64, Entry<A>>,
    next_id: u64,
}

impl<A: Clone> Default for Table<A> {
    fn default() -> Self {
        Table { entries: BTreeMap::new(), next_id: 1 }
    }
}

impl<A: Clone> Table<A> {
    /// Ids start above every id seen (re-adopted or found in stale records).
    pub fn bump_next_id(&mut self, seen: u64) {
        self.next_id = self.next_id.max(seen + 1);
    }

    /// A second launch of a non-multi profile by the same user reuses that user's sandbox
    /// (never another user's); otherwise a new id is reserved.
    /// A new sandbox is refused when `uid` already has `limit` (0 = no limit); a launch into
    /// the user's existing sandbox is always allowed. An ephemeral launch always gets a new
    /// sandbox, and an ephemeral sandbox is never joined by another launch.
    pub fn claim(
        &mut self,
        profile: &Profile,
        uid: u32,
        user: &str,
        now: u64,
        limit: u32,
        ephemeral: bool,
    ) -> Result<Claim<A>, DaemonError> {
        if !profile.multi && !ephemeral {
            let existing = self.entries.values().find(|e| {
                e.record.profile == profile.name
                    && e.uid() == uid
                    && !e.record.ephemeral
                    && e.agent.is_some()
                    && matches!(e.record.phase, SandboxState::Running | SandboxState::Lingering)
            });
            if let Some(e) = existing {
                return Ok(Claim::Existing {
                    id: e.id(),
                    agent: e.agent.clone().expect("checked"),
                    init_pid: e.record.init_pid,
                });
            }
        }
        if limit > 0 && self.entries.values().filter(|e| e.uid() == uid).count() >= limit as usize {
            return Err(DaemonError::TooManySandboxes { uid, limit });
        }
        let id = self.next_id;
        self.next_id += 1;
        self.entries.insert(
            id,
            Entry {
                record: SandboxRecord {
                    id,
                    profile: profile.name.clone(),
                    uid,
                    user: user.to_string(),
                    phase: SandboxState::Starting,
                    init_pid: 0,
                    agent_pid: 0,
                    started_at: now,
                    mounts: Vec::new(),
                    network: None,
                    display: None,
                    ephemeral,
                },
                multi: profile.multi,
                agent: None,
            },
        );
        Ok(Claim::New { id })
    }

    /// Insert a sandbox found alive at startup, under its original id.
    pub fn adopt(&mut self, entry: Entry<A>) {
        self.bump_next_id(entry.id());
        self.entries.insert(entry.id(), entry);
    }

    pub fn get_mut(&mut self, id: u64) -> Option<&mut Entry<A>> {
        self.entries.get_mut(&id)
    }

    pub fn remove(&mut self, id: u64) -> Option<Entry<A>> {
        self.entries.remove(&id)
    }

    /// The sandboxes `caller` may see.
    pub fn list(&self, caller: u32) -> Vec<SandboxRecord> {
        self.entries.values().filter(|e| access::can_see(caller, e.uid())).map(|e| e.record.clone()).collect()
    }

    /// The agent of sandbox `id` if `caller` may perform `action` on it.
    pub fn lookup(&self, id: u64, caller: u32, action: &str) -> Result<&Entry<A>, DaemonError> {
        let e = self.entries.get(&id).ok_or(DaemonError::NoSuchSandbox { id })?;
        if !access::can_see(caller, e.uid()) {
            // Do not confirm that another user's sandbox exists.
            return Err(DaemonError::NoSuchSandbox { id });
        }
        access::check_owner(caller, e.uid(), action, id)?;
        if e.agent.is_none() {
            return Err(DaemonError::NotRunning { id });
        }
        Ok(e)
    }

    /// The sandboxes a kill applies to.
    pub fn kill_targets(&self, target: KillTarget, caller: u32) -> Result<Vec<&Entry<A>>, DaemonError> {
        match target {
            KillTarget::Id(id) => {
                let e = self.entries.get(&id).filter(|e| access::can_see(caller, e.uid()));
                let e = e.ok_or(DaemonError::NoSuchSandbox { id })?;
                Ok(vec![e])
            }
            KillTarget::All => Ok(self.entries.values().filter(|e| access::can_see(caller, e.uid())).collect()),
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Entry<A>> {
        self.entries.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(name: &str, multi: bool) -> Profile {
        let json = format!(r#"{{"name": "{name}", "path": "/usr/bin/{name}", "multi": {multi}}}"#);
        oz_profiles::load::parse_profile(json.as_bytes(), std::path::Path::new("t.json")).unwrap().value
    }

    fn start(t: &mut Table<&'static str>, p: &Profile, uid: u32, agent: &'static str) -> u64 {
        match t.claim(p, uid, "u", 0, 0, false).unwrap() {
            Claim::New { id } => {
                let e = t.get_mut(id).unwrap();
                e.agent = Some(agent);
                e.record.phase = SandboxState::Running;
                e.record.init_pid = 100 + id as u32;
                id
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn second_launch_by_same_user_reuses_the_sandbox() {
        let mut t = Table::default();
        let p = profile("fx", false);
        let id = start(&mut t, &p, 1000, "agent1");
        assert_eq!(
            t.claim(&p, 1000, "u", 0, 0, false).unwrap(),
            Claim::Existing { id, agent: "agent1", init_pid: 100 + id as u32 }
        );
    }

    #[test]
    fn another_users_launch_gets_its_own_sandbox() {
        let mut t = Table::default();
        let p = profile("fx", false);
        let a = start(&mut t, &p, 1000, "a");
        let b = start(&mut t, &p, 1001, "b");
        assert_ne!(a, b);
    }

    #[test]
    fn multi_profiles_get_one_sandbox_per_launch() {
        let mut t = Table::default();
        let p = profile("term", true);
        let a = start(&mut t, &p, 1000, "a");
        assert!(matches!(t.claim(&p, 1000, "u", 0, 0, false).unwrap(), Claim::New { id } if id != a));
    }

    #[test]
    fn ephemeral_launches_neither_join_nor_are_joined() {
        let mut t = Table::default();
        let p = profile("fx", false);
        let normal = start(&mut t, &p, 1000, "normal");
        let Claim::New { id: eph } = t.claim(&p, 1000, "u", 0, 0, true).unwrap() else { panic!("joined a sandbox") };
        assert_ne!(eph, normal);
        let e = t.get_mut(eph).unwrap();
        (e.agent, e.record.phase) = (Some("eph"), SandboxState::Running);
        assert!(matches!(t.claim(&p, 1000, "u", 0, 0, true).unwrap(), Claim::New { .. }));
        t.remove(normal);
        assert!(
            matches!(t.claim(&p, 1000, "u", 0, 0, false).unwrap(), Claim::New { .. }),
            "a normal launch joined the ephemeral sandbox"
        );
    }

    #[test]
    fn starting_sandboxes_are_not_reused() {
        let mut t: Table<&str> = Table::default();
        let p = profile("fx", false);
        let first = t.claim(&p, 1000, "u", 0, 0, false).unwrap();
        assert!(
            matches!(t.claim(&p, 1000, "u", 0, 0, false).unwrap(), Claim::New { id } if Claim::New { id } != first)
        );
    }

    #[test]
    fn listing_and_lookup_respect_ownership() {
        let mut t = Table::default();
        let p = profile("fx", false);
        let a = start(&mut t, &p, 1000, "a");
        let b = start(&mut t, &p, 1001, "b");
        assert_eq!(t.list(1000).iter().map(|i| i.id).collect::<Vec<_>>(), vec![a]);
        // The listing is the agent's record as it reported it.
        let mut reported = t.list(1000)[0].clone();
        reported.phase = SandboxState::Lingering;
        reported.mounts = vec!["/home/u/a.pdf".into()];
        t.get_mut(a).unwrap().update(reported.clone());
        assert_eq!(t.list(1000), vec![reported]);
        assert_eq!(t.list(0).len(), 2);
        assert!(t.lookup(a, 1000, "shell").is_ok());
        assert_eq!(t.lookup(b, 1000, "shell").unwrap_err(), DaemonError::NoSuchSandbox { id: b });
        assert!(t.lookup(b, 0, "shell").is_ok());
        assert_eq!(t.kill_targets(KillTarget::All, 1001).unwrap().len(), 1);
        assert!(t.kill_targets(KillTarget::Id(a), 1001).is_err());
    }

    #[test]
    fn an_ending_sandbox_stays_listed_as_shutting_down() {
        let mut t = Table::default();
        let a = start(&mut t, &profile("fx", false), 1000, "a");
        let e = t.get_mut(a).unwrap();
        let late = e.record.clone();
        e.record.phase = SandboxState::ShuttingDown;
        e.update(late);
        assert_eq!(t.list(0)[0].phase, SandboxState::ShuttingDown);
    }

    #[test]
    fn adopted_ids_push_next_id_up() {
        let mut t: Table<&str> = Table::default();
        let mut e = match t.claim(&profile("x", true), 1, "u", 0, 0, false).unwrap() {
            Claim::New { id } => t.remove(id).unwrap(),
            _ => unreachable!(),
        };
        e.record.id = 41;
        t.adopt(e);
        assert!(matches!(t.claim(&profile("y", true), 1, "u", 0, 0, false).unwrap(), Claim::New { id: 42 }));
    }

    #[test]
    fn per_user_limit_refuses_new_sandboxes_only() {
        let mut t: Table<&str> = Table::default();
        let single = profile("single", false);
        let multi = profile("multi", true);
        let first = start(&mut t, &single, 1000, "agent1");
        assert!(matches!(t.claim(&multi, 1000, "u", 0, 2, false).unwrap(), Claim::New { .. }));
        assert_eq!(t.claim(&multi, 1000, "u", 0, 2, false), Err(DaemonError::TooManySandboxes { uid: 1000, limit: 2 }));
        // Launching into the existing sandbox is not a new one; other users have their own count.
        assert!(matches!(t.claim(&single, 1000, "u", 0, 2, false).unwrap(), Claim::Existing { id, .. } if id == first));
        assert!(matches!(t.claim(&multi, 1001, "u", 0, 2, false).unwrap(), Claim::New { .. }));
        // Freed places can be used again.
        t.remove(first);
        assert!(matches!(t.claim(&multi, 1000, "u", 0, 2, false).unwrap(), Claim::New { .. }));
    }
}
