//! The program's seccomp filter and what it reports.
//!
//! - [`compile_bytes`]: the profile's policy compiled by `oz_sandbox::seccomp` for the init
//!   (the program's child loads it last, right before execve), reporting through user
//!   notification, with the [`Monitor`] that answers the notifications.
//! - [`book`]: what the monitor records (denials with the rule that decided, counts, training).
//! - [`monitor`]: the thread that receives notifications and answers every one of them.
//! - [`trainfile`]: the training whitelist merged into `train_output` as the user.

pub mod book;
pub mod monitor;
pub mod trainfile;

pub use monitor::Monitor;

use crate::agent::sandbox::SandboxError;
use oz_sandbox::seccomp::{compile_profile_notify, hardening_only};
use oz_wire::LaunchSpec;

/// The program's filter as bytes for [`oz_sandbox::seccomp::from_bytes`] in another process
/// (the agent compiles after the clone, while the init builds the root filesystem), and the
/// monitor that answers its notifications (None when seccomp is disabled).
pub fn compile_bytes(spec: &LaunchSpec) -> Result<(Vec<u8>, Option<Monitor>), SandboxError> {
    let err = |e: String| SandboxError::Seccomp(format!("profile {}: {e}", spec.profile.name));
    let Some(pf) =
        compile_profile_notify(&spec.profile.seccomp, &spec.config.etc_prefix).map_err(|e| err(e.to_string()))?
    else {
        return Ok((hardening_only().to_bytes(), None));
    };
    let bytes = pf.filter.to_bytes();
    let mut book = book::Book::with_hints(pf.policy, pf.mode, pf.enforce, pf.hints);
    for derived in &pf.compat {
        book.note(format!("seccomp: {}: {derived}", derived.rule.file(book.policy()).display()));
    }
    let monitor = Monitor::start(book).map_err(|e| err(format!("seccomp monitor: {e}")))?;
    Ok((bytes, Some(monitor)))
}
