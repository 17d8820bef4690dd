//! The seam to the seccomp compiler of `oz_profiles::seccomp`: the profile's policy becomes a
//! [`SeccompFilter`] the program's child loads last, right before execve.

use crate::exec::SeccompFilter;
use crate::sandbox::SandboxError;
use oz_wire::LaunchSpec;
use std::rc::Rc;

/// The filter for `spec` (None: seccomp disabled).
pub fn compile(spec: &LaunchSpec) -> Result<Option<Rc<dyn SeccompFilter>>, SandboxError> {
    // TODO(integration): oz_profiles::seccomp has no compiler yet; until it lands, no filter is
    // loaded (no_new_privs is still set by the credential drop).
    let _ = spec;
    Ok(None)
}
