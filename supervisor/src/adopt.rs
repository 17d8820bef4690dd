//! Re-adopting live agents at startup: every state record under `<state_dir>/agents` names a
//! rendezvous socket; an agent that answers `Hello` and `State` keeps its sandbox and id, the
//! leftovers of one that is gone are released.

use crate::cleanup::{self, Leftovers};
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, UnixAddr};
use oz_wire::channel::{AgentChannel, AgentHello};
use oz_wire::state::{self, SandboxRecord};
use oz_wire::WireError;
use slog::{info, warn, Logger};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct Adopted {
    /// The sandbox as the agent knows it (not as its state file says).
    pub record: SandboxRecord,
    pub channel: OwnedFd,
    /// The agent's protocol version (an agent of the previous release speaks an older one).
    pub protocol: u32,
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

/// Why a recorded agent could not be re-adopted.
#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error("connect {}: {errno}", path.display())]
    Connect { path: PathBuf, errno: nix::errno::Errno },
    #[error("{step}: {source}")]
    Channel { step: &'static str, source: oz_wire::WireError },
    #[error("agent answers as sandbox {answered:?}, record says {recorded}")]
    WrongSandbox { answered: Option<u64>, recorded: u64 },
}

fn channel(step: &'static str) -> impl Fn(oz_wire::WireError) -> AdoptError {
    move |source| AdoptError::Channel { step, source }
}

/// Connect to the agent's rendezvous socket, with a read timeout.
fn open(state_dir: &Path, id: u64) -> Result<AgentChannel, AdoptError> {
    let path = state::socket_path(state_dir, id);
    let fd = connect_seqpacket(&path).map_err(|errno| AdoptError::Connect { path, errno })?;
    let ch = AgentChannel::new(fd);
    ch.set_read_timeout(Some(Duration::from_secs(3))).map_err(channel("read timeout"))?;
    Ok(ch)
}

/// Exchange hellos in our protocol; an agent of an older one the daemon manages names its
/// version in its answer and closes, and is greeted again in its own.
fn greet(state_dir: &Path, id: u64) -> Result<(AgentChannel, AgentHello), AdoptError> {
    let ch = open(state_dir, id)?;
    match ch.hello() {
        Ok(hello) => Ok((ch, hello)),
        Err(WireError::VersionMismatch { theirs, .. }) => {
            oz_wire::check_agent_version(theirs).map_err(channel("hello"))?;
            let ch = open(state_dir, id)?;
            let hello = ch.hello_as(theirs).map_err(channel("hello"))?;
            Ok((ch, hello))
        }
        Err(e) => Err(channel("hello")(e)),
    }
}

fn handshake(state_dir: &Path, rec: &SandboxRecord) -> Result<(SandboxRecord, AgentChannel), AdoptError> {
    let (ch, hello) = greet(state_dir, rec.id)?;
    if hello.sandbox_id != Some(rec.id) {
        return Err(AdoptError::WrongSandbox { answered: hello.sandbox_id, recorded: rec.id });
    }
    let state = ch.wait_for_state(&mut |_| {}).map_err(channel("state"))?;
    if state.id != rec.id {
        return Err(AdoptError::WrongSandbox { answered: Some(state.id), recorded: rec.id });
    }
    ch.set_read_timeout(None).map_err(channel("read timeout"))?;
    Ok((state, ch))
}

/// Scan the state directory (blocking; run before the actor system starts).
pub fn scan(state_dir: &Path, log: &Logger) -> Scan {
    let mut out = Scan { adopted: Vec::new(), max_id: 0 };
    for (path, rec) in SandboxRecord::scan(state_dir) {
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
        match handshake(state_dir, &rec) {
            Ok((record, channel)) => {
                let protocol = channel.version();
                info!(slog_ctx, "re-adopted sandbox"; "agent_pid" => record.agent_pid, "init_pid" => record.init_pid,
                    "phase" => %record.phase, "mounts" => record.mounts.len(), "protocol" => protocol);
                out.adopted.push(Adopted { record, channel: channel.into_fd(), protocol });
            }
            Err(e) if cleanup::pid_alive(rec.agent_pid) => {
                warn!(slog_ctx, "agent is alive but cannot be re-adopted; leaving it"; "error" => %e);
            }
            Err(e) => {
                warn!(slog_ctx, "agent is gone; releasing its sandbox"; "error" => %e);
                Leftovers::new(rec.id, rec.agent_pid, rec.init_pid, state_dir.to_path_buf(), slog_ctx).release();
            }
        }
    }
    cleanup::release_orphan_leases(state_dir, log);
    let _ = state::agents_dir(state_dir);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{accept, bind, listen, Backlog};
    use oz_wire::fdpass::{self, Limits, SocketKind};
    use oz_wire::{frame, v3, AgentToDaemon, DaemonToAgent, SandboxState};
    use std::os::fd::{AsFd, BorrowedFd, FromRawFd};

    const AGENT_MAX_FRAME: u32 = oz_wire::channel::AGENT_MAX_MESSAGE;

    fn record(id: u64) -> SandboxRecord {
        SandboxRecord {
            id,
            profile: "p".into(),
            uid: 1000,
            user: "u".into(),
            phase: SandboxState::Running,
            init_pid: 42,
            agent_pid: 41,
            started_at: 5,
            mounts: vec![],
            network: None,
            display: None,
            ephemeral: false,
        }
    }

    /// A rendezvous socket for sandbox `id` served by an agent of an older protocol, as its
    /// binary behaves: each connection gets its hello of `version` after the daemon's; a
    /// connection whose hello was of another version is closed, the others get `then`.
    fn old_agent(
        state_dir: &Path,
        id: u64,
        version: u32,
        connections: usize,
        then: impl Fn(BorrowedFd<'_>) + Send + 'static,
    ) -> std::thread::JoinHandle<Vec<u32>> {
        std::fs::create_dir_all(state::agents_dir(state_dir)).unwrap();
        let fd = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC, None).unwrap();
        bind(fd.as_raw_fd(), &UnixAddr::new(&state::socket_path(state_dir, id)).unwrap()).unwrap();
        listen(&fd, Backlog::new(4).unwrap()).unwrap();
        std::thread::spawn(move || {
            let mut offered = Vec::new();
            for _ in 0..connections {
                // SAFETY: accept returned a new fd that nothing else owns.
                let conn = unsafe { OwnedFd::from_raw_fd(accept(fd.as_raw_fd()).unwrap()) };
                let (payload, _) = fdpass::recv_frame(conn.as_fd(), SocketKind::SeqPacket, Limits::default()).unwrap();
                let DaemonToAgent::Hello { protocol_version } = frame::decode(&payload).unwrap() else {
                    panic!("the daemon's first message is not a hello")
                };
                offered.push(protocol_version);
                let hello = AgentToDaemon::Hello { protocol_version: version, sandbox_id: Some(id), agent_pid: 41 };
                fdpass::send_msg(conn.as_fd(), SocketKind::SeqPacket, &hello, &[], AGENT_MAX_FRAME).unwrap();
                if protocol_version == version {
                    then(conn.as_fd());
                }
            }
            offered
        })
    }

    #[test]
    fn a_protocol_3_agent_is_greeted_again_in_its_protocol_and_re_adopted() {
        let dir = tempfile::tempdir().unwrap();
        let rec = record(7);
        let v3_rec = v3::SandboxRecord {
            id: 7,
            profile: "p".into(),
            uid: 1000,
            user: "u".into(),
            phase: SandboxState::Lingering,
            init_pid: 42,
            agent_pid: 41,
            started_at: 5,
            mounts: vec!["/home/u/a".into()],
            network: None,
            display: None,
        };
        let sent = v3_rec.clone();
        let agent = old_agent(dir.path(), 7, 3, 2, move |conn| {
            let state = v3::AgentMessage { re: None, msg: v3::AgentToDaemon::State(sent.clone()) };
            fdpass::send_msg(conn, SocketKind::SeqPacket, &state, &[], AGENT_MAX_FRAME).unwrap();
        });
        let (adopted, channel) = handshake(dir.path(), &rec).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(channel.version(), 3);
        assert_eq!(adopted, SandboxRecord::from(v3_rec));
        assert_eq!(agent.join().unwrap(), vec![oz_wire::PROTOCOL_VERSION, 3], "the hellos the agent was offered");
    }

    #[test]
    fn an_agent_two_protocols_back_is_refused_with_the_versions() {
        let dir = tempfile::tempdir().unwrap();
        let agent = old_agent(dir.path(), 7, 2, 1, |_| {});
        let Err(err) = handshake(dir.path(), &record(7)) else { panic!("a protocol 2 agent was adopted") };
        assert_eq!(err.to_string(), "hello: agent speaks protocol 2: this daemon manages agents of protocol 3 to 4");
        assert_eq!(agent.join().unwrap(), vec![oz_wire::PROTOCOL_VERSION], "the hellos the agent was offered");
    }
}
