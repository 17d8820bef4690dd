//! Spawning `oz-agent serve --fd 3` by exec, with its end of a SOCK_SEQPACKET socketpair as fd 3,
//! in a new session so that agents outlive the daemon. Only async-signal-safe calls (dup2, fcntl,
//! setsid) run between fork and exec.

use oz_wire::fdpass;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The fd number the agent finds its channel on.
pub const AGENT_FD: i32 = 3;

pub struct Spawned {
    pub pid: u32,
    /// The daemon's end of the channel.
    pub channel: OwnedFd,
}

/// Exec the agent. Its stdout/stderr go to `output` (or /dev/null). A thread reaps it.
pub fn spawn_agent(agent_path: &Path, output: Option<File>) -> io::Result<Spawned> {
    let (ours, theirs) = fdpass::seqpacket_pair().map_err(|e| io::Error::other(e.to_string()))?;
    let raw = theirs.as_raw_fd();
    let (out, err) = match output {
        Some(f) => (Stdio::from(f.try_clone()?), Stdio::from(f)),
        None => (Stdio::null(), Stdio::null()),
    };
    let mut cmd = Command::new(agent_path);
    cmd.args(["serve", "--fd", "3"])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .env_clear()
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    // SAFETY: the closure runs in the forked child before exec and calls only async-signal-safe
    // functions (fcntl, dup2, setsid) on plain integers; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if raw == AGENT_FD {
                if libc::fcntl(raw, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(raw, AGENT_FD) == -1 {
                return Err(io::Error::last_os_error());
            }
            if libc::setsid() == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(theirs);
    let pid = child.id();
    std::thread::Builder::new().name(format!("reap-{pid}")).spawn(move || {
        let _ = child.wait();
    })?;
    Ok(Spawned { pid, channel: ours })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oz_wire::channel::AgentChannel;
    use oz_wire::{AgentToDaemon, DaemonToAgent};

    /// A shell stands in for the agent: it proves fd 3 is the channel (it writes a packet on it)
    /// and that it runs in its own session.
    #[test]
    fn agent_gets_the_channel_as_fd_3_in_a_new_session() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake-agent");
        // Write a raw Pong frame (length 4, variant 13) to fd 3, then report sid == pid.
        std::fs::write(
            &script,
            "#!/bin/sh\nprintf '\\000\\000\\000\\004\\015\\000\\000\\000' >&3\n\
             [ \"$(cut -d' ' -f6 /proc/$$/stat)\" = \"$$\" ] && echo session-leader\n",
        )
        .unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let out_path = dir.path().join("out");
        let out = File::create(&out_path).unwrap();
        let s = spawn_agent(&script, Some(out)).unwrap();
        let ch = AgentChannel::new(s.channel);
        ch.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        assert_eq!(ch.recv().unwrap().0, AgentToDaemon::Pong);
        // EOF once the child exits: the daemon's end is the only other reference.
        assert!(ch.recv().is_err());
        let _ = DaemonToAgent::Ping;
        assert_eq!(std::fs::read_to_string(&out_path).unwrap().trim(), "session-leader");
    }

    #[test]
    fn missing_agent_is_an_error() {
        assert!(spawn_agent(Path::new("/nonexistent/oz-agent"), None).is_err());
    }
}
