//! Re-adopting live agents at startup: every state record under `<state_dir>/agents` names a
//! rendezvous socket; an agent that answers `Hello` and `State` keeps its sandbox and id, the
//! leftovers of one that is gone are released.

use crate::cleanup::{self, Leftovers};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use oz_wire::channel::AgentChannel;
use oz_wire::state::{self, AgentRecord};
use slog::{info, warn, Logger};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Adopted {
    pub record: AgentRecord,
    /// What the agent injected into its sandbox (it is the source of truth).
    pub mounts: Vec<PathBuf>,
    pub channel: OwnedFd,
}

pub struct Scan {
    pub adopted: Vec<Adopted>,
    /// The highest sandbox id found in any record (live or not).
    pub max_id: u64,
}

fn connect_seqpacket(path: &Path) -> nix::Result<OwnedFd> {
    let fd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None)?;
    connect(fd.as_raw_fd(), &UnixAddr::new(path)?)?;
    Ok(fd)
}

fn handshake(rec: &AgentRecord) -> Result<(AgentRecord, Vec<PathBuf>, OwnedFd), String> {
    let fd = connect_seqpacket(&rec.socket).map_err(|e| format!("connect {}: {e}", rec.socket.display()))?;
    let ch = AgentChannel::new(fd);
    ch.set_read_timeout(Some(Duration::from_secs(3))).map_err(|e| e.to_string())?;
    let hello = ch.hello().map_err(|e| format!("hello: {e}"))?;
    if hello.sandbox_id != Some(rec.id) {
        return Err(format!("agent answers as sandbox {:?}, record says {}", hello.sandbox_id, rec.id));
    }
    let state = ch.wait_for_state(&mut |_| {}).map_err(|e| format!("state: {e}"))?;
    let mounts = ch.wait_for_mounts(&mut |_| {}).map_err(|e| format!("mounts: {e}"))?;
    ch.set_read_timeout(None).map_err(|e| e.to_string())?;
    Ok((state, mounts, ch.into_fd()))
}

/// Scan the state directory (blocking; run before the actor system starts).
pub fn scan(state_dir: &Path, log: &Logger) -> Scan {
    let mut out = Scan { adopted: Vec::new(), max_id: 0 };
    for (path, rec) in AgentRecord::scan(state_dir) {
        let id_from_name = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok());
        out.max_id = out.max_id.max(id_from_name.unwrap_or(0));
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                warn!(log, "unreadable agent state record"; "error" => %e);
                continue;
            }
        };
        out.max_id = out.max_id.max(rec.id);
        let slog_ctx = log.new(slog::o!("sandbox" => rec.id, "profile" => rec.profile.clone()));
        match handshake(&rec) {
            Ok((state, mounts, channel)) => {
                info!(slog_ctx, "re-adopted sandbox"; "agent_pid" => state.agent_pid, "init_pid" => state.init_pid, "mounts" => mounts.len());
                out.adopted.push(Adopted { record: state, mounts, channel });
            }
            Err(e) if cleanup::pid_alive(rec.agent_pid) => {
                warn!(slog_ctx, "agent is alive but cannot be re-adopted; leaving it"; "error" => e);
            }
            Err(e) => {
                warn!(slog_ctx, "agent is gone; releasing its sandbox"; "error" => e);
                Leftovers::new(rec.id, rec.agent_pid, rec.init_pid, state_dir.to_path_buf(), slog_ctx).release();
            }
        }
    }
    cleanup::release_orphan_leases(state_dir, log);
    let _ = state::agents_dir(state_dir);
    out
}
