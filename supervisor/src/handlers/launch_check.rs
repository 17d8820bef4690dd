//! The checks around a launch: the program exists before a sandbox is built for it, a sandbox
//! met while it ends is waited for instead of used, and a detached launch watches its program
//! for `launch_check_ms` so that one that dies at once is reported as a failed launch.

use super::agent_gone;
use crate::registry::{AgentAddr, SetState};
use crate::Shared;
use oz_profiles::expand::ExpandContext;
use oz_profiles::program::{program_path, ProgramError};
use oz_profiles::{Config, Profile};
use oz_wire::{AgentError, DaemonError, ExitStatus, SandboxState};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use tokio::sync::oneshot;

/// Launches into an existing sandbox that turns out to be ending, before a new one is built.
pub const ENDING_ATTEMPTS: u32 = 3;

/// How long a launch waits for an ending sandbox to be gone.
const ENDING_WAIT: Duration = Duration::from_secs(10);

/// The profile's program exists and is executable on the host (whose /usr the sandbox sees).
/// Paths with per-user variables are left to the agent.
pub fn program_installed(profile: &Profile, config: &Config) -> Result<(), DaemonError> {
    program_problem(profile, config)
        .map_or(Ok(()), |detail| Err(DaemonError::LaunchFailed { profile: profile.name.clone(), detail }))
}

fn program_problem(profile: &Profile, config: &Config) -> Option<String> {
    if profile.path.contains("${") && !profile.path.starts_with("${PATH}/") {
        return None;
    }
    let path = match program_path(profile, config, &ExpandContext::default(), &|p: &Path| p.exists()) {
        Ok(p) => p,
        Err(ProgramError::NotInPath { name, .. }) => {
            return Some(format!(
                "program {} is not installed ({name} is in no directory of the sandbox PATH)",
                profile.path
            ));
        }
        Err(e) => return Some(e.to_string()),
    };
    match std::fs::metadata(&path) {
        Err(e) => Some(format!("program {} is not installed: {}", path.display(), io_text(&e))),
        Ok(m) if !m.is_file() => Some(format!("program {} is not a regular file", path.display())),
        Ok(m) if m.permissions().mode() & 0o111 == 0 => Some(format!("program {} is not executable", path.display())),
        Ok(_) => None,
    }
}

/// An io error's text without the "(os error N)" suffix.
fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => nix::errno::Errno::from_raw(n).desc().to_string(),
        None => e.to_string(),
    }
}

/// How long a launch into an existing sandbox that failed otherwise watches it for its end.
const ENDING_GRACE: Duration = Duration::from_millis(500);

/// Whether a launch into existing sandbox `agent` failed because the sandbox is ending: the
/// agent said so (its init is gone), the agent is gone, or its channel ends just after (the
/// request met a closing channel).
pub async fn met_ending(e: &DaemonError, agent: &AgentAddr) -> bool {
    if is_ending(e) {
        return true;
    }
    let mut ended = agent.ended.clone();
    let gone = tokio::time::timeout(ENDING_GRACE, ended.wait_for(|gone| *gone)).await.is_ok();
    gone
}

/// The error of a launch into an existing sandbox that was ending (its init or agent gone).
fn is_ending(e: &DaemonError) -> bool {
    match e {
        DaemonError::Agent { error: AgentError::NotRunning, .. } => true,
        DaemonError::Agent { id, .. } => *e == agent_gone(*id),
        _ => false,
    }
}

/// Take sandbox `id` out of reuse and wait, bounded, until it is gone.
pub async fn wait_ended(shared: &Shared, id: u64, agent: &AgentAddr) {
    shared.registry.do_send(SetState { id, state: SandboxState::ShuttingDown });
    let mut ended = agent.ended.clone();
    let _ = tokio::time::timeout(ENDING_WAIT, ended.wait_for(|gone| *gone)).await;
}

/// Copies of a launch's stdio fds for one attempt that may fail.
pub fn dup_fds(fds: &[OwnedFd]) -> Result<Vec<OwnedFd>, DaemonError> {
    fds.iter()
        .map(|f| f.try_clone())
        .collect::<Result<_, _>>()
        .map_err(|e| super::internal(format!("dup stdio: {}", io_text(&e))))
}

/// Wait up to `check_ms` for the program's exit. An unsuccessful exit in that time is the
/// launch's error, with the last lines the sandbox's agent sent; a success or a program still running is
/// None.
pub async fn exited_at_once(
    shared: &Shared,
    id: u64,
    profile: &str,
    exit: oneshot::Receiver<ExitStatus>,
    check_ms: u32,
) -> Option<DaemonError> {
    if check_ms == 0 {
        return None;
    }
    let status = match tokio::time::timeout(Duration::from_millis(check_ms.into()), exit).await {
        Err(_) | Ok(Err(_)) => return None,
        Ok(Ok(ExitStatus::Code(0))) => return None,
        Ok(Ok(status)) => status,
    };
    // The program's last output travels as log records beside its exit: let them land.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Some(DaemonError::ProgramFailed { id, profile: profile.to_string(), status, output: shared.hub.tails.get(id) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(path: &str) -> Profile {
        let json = format!(r#"{{"name": "p", "path": "{path}"}}"#);
        oz_profiles::load::parse_profile(json.as_bytes(), Path::new("p.json")).unwrap().value
    }

    #[test]
    fn missing_and_non_executable_programs_are_named() {
        let c = Config::default();
        assert_eq!(program_problem(&profile("/bin/sh"), &c), None);
        assert_eq!(program_problem(&profile("${PATH}/sh"), &c), None);
        let e = program_problem(&profile("/usr/bin/oz-no-such-program"), &c).unwrap();
        assert_eq!(e, "program /usr/bin/oz-no-such-program is not installed: No such file or directory");
        let e = program_problem(&profile("${PATH}/oz-no-such-program"), &c).unwrap();
        assert!(e.contains("${PATH}/oz-no-such-program is not installed"), "{e}");
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        let e = program_problem(&profile(plain.to_str().unwrap()), &c).unwrap();
        assert!(e.ends_with("plain is not executable"), "{e}");
        assert!(program_problem(&profile("/usr/bin"), &c).unwrap().contains("not a regular file"));
        assert_eq!(program_problem(&profile("${HOME}/bin/x"), &c), None);
    }

    #[test]
    fn ending_errors() {
        assert!(is_ending(&DaemonError::Agent { id: 3, error: AgentError::NotRunning }));
        assert!(is_ending(&agent_gone(3)));
        assert!(!is_ending(&DaemonError::NoSuchSandbox { id: 3 }));
        assert!(!is_ending(&DaemonError::Agent { id: 3, error: AgentError::Other { detail: "x".into() } }));
    }
}
