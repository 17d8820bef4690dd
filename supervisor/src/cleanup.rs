//! Releasing what a dead agent left behind: its sandbox init (and with it every process in the
//! sandbox's PID namespace), its cgroups, its bridge lease (veth pair, address, firewall rules;
//! the bridge and oz's nftables table with the last lease), its state record, its rendezvous
//! socket and its forwarders' host-side sockets. Mounts live in the sandbox's mount namespace and
//! go away with its last process.

use oz_cgroups::{Cgroup, CgroupName, CGROUP_ROOT, PARENT};
use oz_wire::state::{self, SandboxRecord};
use slog::{info, warn, Logger};
use std::path::PathBuf;
use std::time::Duration;

/// Is `pid` alive? A zombie (exited, not yet reaped by whoever inherited it) counts as dead.
pub fn pid_alive(pid: u32) -> bool {
    if pid == 0 || pid > i32::MAX as u32 {
        return false;
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
    // The state follows the parenthesised comm, which may itself contain ") ".
    let state = stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next());
    !matches!(state, None | Some('Z') | Some('X'))
}

/// Is `pid` the init of the sandbox whose cgroup is `name`: PID 1 of a child PID namespace,
/// inside `.../oz/<name>`? Guards against killing a recycled pid.
pub fn is_sandbox_init(pid: u32, name: &CgroupName) -> bool {
    if pid == 0 {
        return false;
    }
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { return false };
    let ns_init = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .map(|rest| rest.split_whitespace().collect::<Vec<_>>())
        .is_some_and(|ids| ids.len() >= 2 && ids.last() == Some(&"1"));
    let Ok(cgroups) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) else { return false };
    let suffix = format!("/{PARENT}/{name}");
    ns_init && cgroups.lines().any(|l| l.ends_with(&suffix))
}

pub fn kill_pid(pid: u32) {
    if pid == 0 || pid > i32::MAX as u32 {
        return;
    }
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
}

/// What an ended agent may have left behind.
pub struct Leftovers {
    pub id: u64,
    pub agent_pid: u32,
    pub init_pid: u32,
    pub state_dir: PathBuf,
    /// Where the cgroup hierarchies are mounted (/sys/fs/cgroup; a temp dir in tests).
    pub cgroup_root: PathBuf,
    pub log: Logger,
}

impl Leftovers {
    pub fn new(id: u64, agent_pid: u32, init_pid: u32, state_dir: PathBuf, log: Logger) -> Leftovers {
        let cgroup_root = PathBuf::from(CGROUP_ROOT);
        Leftovers { id, agent_pid, init_pid, state_dir, cgroup_root, log }
    }

    /// Wait briefly for the agent to exit, then kill a surviving sandbox init and remove the
    /// state record and rendezvous socket. An agent that is still alive keeps its files: it may
    /// be re-adopted through its rendezvous socket.
    pub async fn clean(self) {
        for _ in 0..40 {
            if !pid_alive(self.agent_pid) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if pid_alive(self.agent_pid) {
            warn!(self.log, "agent closed its channel but is still running; leaving its state");
            return;
        }
        // Removing cgroups waits for their processes to die: keep it off the event loop.
        let _ = tokio::task::spawn_blocking(move || self.release()).await;
    }

    /// Release without waiting (the agent is known to be dead).
    pub fn release(&self) {
        self.remove_forward_dir();
        let rec_path = state::record_path(&self.state_dir, self.id);
        let record = SandboxRecord::load(&rec_path).ok();
        let init = record.as_ref().map_or(self.init_pid, |r| r.init_pid);
        let cgroup = CgroupName::new(&self.state_dir, self.id);
        if is_sandbox_init(init, &cgroup) {
            kill_pid(init);
            warn!(self.log, "killed the sandbox init left behind by a dead agent"; "init_pid" => init);
        }
        if let Err(e) = Cgroup::remove_stale_in(&self.cgroup_root, &cgroup) {
            warn!(self.log, "cannot remove the sandbox's cgroups"; "error" => %e);
        }
        release_network(&self.state_dir, self.id, &self.log);
        let sock = state::socket_path(&self.state_dir, self.id);
        for path in [rec_path, sock] {
            match std::fs::remove_file(&path) {
                Ok(()) => info!(self.log, "removed stale agent state"; "path" => %path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => warn!(self.log, "cannot remove stale agent state"; "path" => %path.display(), "error" => %e),
            }
        }
    }
}

impl Leftovers {
    /// The forwarders' host-side sockets, first: the cgroup removal may wait for processes.
    /// (Root's directory: nothing in it a user could redirect.)
    fn remove_forward_dir(&self) {
        let fwd = state::forward_dir(&self.state_dir, self.id);
        match std::fs::remove_dir_all(&fwd) {
            Ok(()) => info!(self.log, "removed stale forwarder sockets"; "path" => %fwd.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warn!(self.log, "cannot remove stale forwarder sockets"; "path" => %fwd.display(), "error" => %e),
        }
        if let Some(parent) = fwd.parent() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

/// Release sandbox `id`'s bridge lease, if it has one.
pub fn release_network(state_dir: &std::path::Path, id: u64, log: &Logger) {
    match oz_net::release(state_dir, id) {
        Ok(notes) => {
            for n in notes {
                info!(log, "network of a dead agent: {n}"; "sandbox" => id);
            }
        }
        Err(e) => warn!(log, "cannot release the network of a dead agent"; "sandbox" => id, "error" => %e),
    }
}

/// Release the bridge leases whose agent is gone (it died while no daemon was watching).
pub fn release_orphan_leases(state_dir: &std::path::Path, log: &Logger) {
    for lease in oz_net::lease::all(state_dir) {
        if !pid_alive(lease.agent_pid) {
            release_network(state_dir, lease.sandbox_id, log);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_and_namespace_init_checks() {
        assert!(pid_alive(std::process::id()));
        assert!(!pid_alive(0));
        // An exited, unreaped child is a zombie: dead for our purposes.
        let mut child = std::process::Command::new("/bin/true").spawn().unwrap();
        let pid = child.id();
        while std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z")) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!pid_alive(pid));
        child.wait().unwrap();
        assert!(!pid_alive(pid));
        // This test process is not a sandbox init.
        let name = CgroupName::new(std::path::Path::new("/nonexistent"), 1);
        assert!(!is_sandbox_init(std::process::id(), &name));
        assert!(!is_sandbox_init(0, &name));
    }

    #[test]
    fn release_removes_record_and_socket() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(state::agents_dir(dir.path())).unwrap();
        let rec = SandboxRecord {
            id: 5,
            profile: "p".into(),
            uid: 1000,
            user: "u".into(),
            phase: oz_wire::SandboxState::Running,
            init_pid: 0,
            agent_pid: 0,
            started_at: 0,
            mounts: vec![],
            network: None,
            display: None,
            ephemeral: false,
        };
        rec.store(&state::record_path(dir.path(), 5)).unwrap();
        std::fs::write(state::socket_path(dir.path(), 5), b"").unwrap();
        let fwd = state::forward_dir(dir.path(), 5);
        std::fs::create_dir_all(&fwd).unwrap();
        std::fs::write(fwd.join("unix-80.sock"), b"").unwrap();
        let log = Logger::root(slog::Discard, slog::o!());
        let cg = tempfile::tempdir().unwrap();
        let stale_cg = cg.path().join("pids/oz").join(CgroupName::new(dir.path(), 5).as_str());
        std::fs::create_dir_all(&stale_cg).unwrap();
        std::fs::write(cg.path().join("pids/cgroup.procs"), "").unwrap();
        std::fs::write(stale_cg.join("cgroup.procs"), "").unwrap();
        let mut l = Leftovers::new(5, 0, 0, dir.path().into(), log);
        l.cgroup_root = cg.path().into();
        l.release();
        assert_eq!(std::fs::read_dir(state::agents_dir(dir.path())).unwrap().count(), 0);
        assert!(!fwd.exists() && !fwd.parent().unwrap().exists(), "the forwarder sockets are removed");
    }
}
