//! Address leases: one JSON file per bridged sandbox under `<state_dir>/net/`, written before
//! any link is created and removed after its links are gone, so that whoever finds a lease of a
//! dead sandbox (the daemon, now or after a restart) knows what to remove. One lock file
//! serialises every change of leases, links and the table.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// A profile firewall rule with its destination resolved to a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub allow: bool,
    /// The profile's `dst_host` (for logs).
    pub host: String,
    pub net: Ipv4Addr,
    pub len: u8,
    /// 0: any port.
    pub port: u16,
}

/// A VPN server a sandbox may reach on the bridge (its only destination there).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub addr: Ipv4Addr,
    pub port: u16,
    /// "udp" or "tcp".
    pub proto: String,
}

/// What one bridged sandbox holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub sandbox_id: u64,
    /// The agent that holds it: a lease whose agent is dead is released by the daemon.
    pub agent_pid: u32,
    pub bridge: String,
    pub range: String,
    /// The host end of its veth pair.
    pub veth: String,
    pub address: Ipv4Addr,
    pub rules: Vec<Rule>,
    /// With a VPN: its servers, the only destinations on the bridge (kill switch).
    #[serde(default)]
    pub vpn: Vec<Endpoint>,
}

/// What the first lease of a bridge changed on the host, restored with the last one.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BridgeState {
    pub bridge: String,
    /// `net.ipv4.ip_forward` before oz set it (None: oz did not change it).
    pub ip_forward_before: Option<String>,
    /// The NetworkManager file oz wrote (removed with the bridge).
    pub nm_file: Option<PathBuf>,
}

pub fn dir(state_dir: &Path) -> PathBuf {
    state_dir.join("net")
}

/// The sanitized OpenVPN configuration of sandbox `id` (root only).
pub fn vpn_config_path(state_dir: &Path, id: u64) -> PathBuf {
    dir(state_dir).join(format!("vpn-{id}.conf"))
}

pub fn lease_path(state_dir: &Path, id: u64) -> PathBuf {
    dir(state_dir).join(format!("lease-{id}.json"))
}

pub fn bridge_state_path(state_dir: &Path, bridge: &str) -> PathBuf {
    dir(state_dir).join(format!("bridge-{bridge}.json"))
}

/// The exclusive lock over `<state_dir>/net`. Whoever drops it last, with no lease and no
/// bridge state left, removes the lock file and the directory (so an idle state_dir is empty);
/// a taker that locked a file already unlinked retries with the new one.
pub struct Lock {
    _file: std::fs::File,
    dir: PathBuf,
}

impl Lock {
    pub fn take(state_dir: &Path) -> std::io::Result<Lock> {
        use std::os::unix::fs::MetadataExt;
        let d = dir(state_dir);
        loop {
            std::fs::create_dir_all(&d)?;
            let path = d.join("lock");
            let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
            // SAFETY: flock on a descriptor we own.
            while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            let same = std::fs::metadata(&path).is_ok_and(|m| m.ino() == file.metadata().map_or(0, |f| f.ino()));
            if same {
                return Ok(Lock { _file: file, dir: d });
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let busy = std::fs::read_dir(&self.dir)
            .map_or(true, |rd| rd.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".json")));
        if !busy {
            // Still locked: anyone waiting on this file re-checks and starts over.
            let _ = std::fs::remove_file(self.dir.join("lock"));
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// Write `value` as JSON to `path` atomically (temp file + rename).
pub fn store<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

pub fn load<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<Option<T>> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(std::io::Error::other),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every lease (unreadable files are skipped).
pub fn all(state_dir: &Path) -> Vec<Lease> {
    let Ok(rd) = std::fs::read_dir(dir(state_dir)) else { return Vec::new() };
    let mut out: Vec<Lease> = rd
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("lease-"))
        .filter(|e| e.file_name().to_string_lossy().ends_with(".json"))
        .filter_map(|e| load(&e.path()).ok().flatten())
        .collect();
    out.sort_by_key(|l| l.sandbox_id);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_round_trip_and_list() {
        let d = tempfile::tempdir().unwrap();
        let _lock = Lock::take(d.path()).unwrap();
        let l = Lease {
            sandbox_id: 7,
            agent_pid: 1,
            bridge: "ozt0".into(),
            range: "10.9.0.0/24".into(),
            veth: "ozv7".into(),
            address: "10.9.0.2".parse().unwrap(),
            rules: vec![Rule { allow: true, host: "h".into(), net: "10.1.0.0".parse().unwrap(), len: 16, port: 80 }],
            vpn: Vec::new(),
        };
        store(&lease_path(d.path(), 7), &l).unwrap();
        std::fs::write(dir(d.path()).join("lease-9.json"), "garbage").unwrap();
        assert_eq!(all(d.path()), vec![l.clone()]);
        assert_eq!(load::<Lease>(&lease_path(d.path(), 7)).unwrap(), Some(l));
        remove(&lease_path(d.path(), 7)).unwrap();
        remove(&lease_path(d.path(), 7)).unwrap();
        assert!(load::<Lease>(&lease_path(d.path(), 7)).unwrap().is_none());
        drop(_lock);
        assert!(dir(d.path()).exists(), "an unreadable lease file keeps the directory");
        std::fs::remove_file(dir(d.path()).join("lease-9.json")).unwrap();
        drop(Lock::take(d.path()).unwrap());
        assert!(!dir(d.path()).exists(), "the last lock holder removes the idle directory");
    }
}
