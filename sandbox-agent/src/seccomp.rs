//! The seam to the seccomp compiler of `oz_profiles::seccomp`: the profile's policy becomes a
//! [`SeccompFilter`] the program's child loads last, right before execve.

use crate::exec::SeccompFilter;
use crate::sandbox::SandboxError;
use nix::errno::Errno;
use oz_profiles::seccomp::{compile_profile, hardening_only, CompiledFilter};
use oz_wire::LaunchSpec;
use std::rc::Rc;

impl SeccompFilter for CompiledFilter {
    fn install(&self) -> Result<(), Errno> {
        CompiledFilter::install(self)
    }
}

/// The filter for `spec`. With `mode: disabled` the hardening filter alone still applies
/// (foreign architectures and x32 killed, TIOCSTI/TIOCLINUX denied): the issue asks for it in
/// every mode.
pub fn compile(spec: &LaunchSpec) -> Result<Option<Rc<dyn SeccompFilter>>, SandboxError> {
    let filter = compile_profile(&spec.profile.seccomp, &spec.config.etc_prefix)
        .map_err(|e| SandboxError::Seccomp(format!("profile {}: {e}", spec.profile.name)))?
        .unwrap_or_else(hardening_only);
    Ok(Some(Rc::new(filter)))
}
