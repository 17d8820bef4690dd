//! The seam to the seccomp compiler of `oz_sandbox::seccomp`: the profile's policy becomes a
//! [`SeccompFilter`] the program's child loads last, right before execve.

use crate::agent::sandbox::SandboxError;
use oz_sandbox::exec::SeccompFilter;
use oz_sandbox::seccomp::{compile_profile, hardening_only, CompiledFilter};
use oz_wire::LaunchSpec;
use std::rc::Rc;

/// The filter for `spec`. With `mode: disabled` the hardening filter alone still applies
/// (foreign architectures and x32 killed, TIOCSTI/TIOCLINUX denied), whatever the mode.
pub fn compile(spec: &LaunchSpec) -> Result<Option<Rc<dyn SeccompFilter>>, SandboxError> {
    Ok(Some(Rc::new(compile_filter(spec)?)))
}

fn compile_filter(spec: &LaunchSpec) -> Result<CompiledFilter, SandboxError> {
    let filter = compile_profile(&spec.profile.seccomp, &spec.config.etc_prefix)
        .map_err(|e| SandboxError::Seccomp(format!("profile {}: {e}", spec.profile.name)))?
        .unwrap_or_else(hardening_only);
    Ok(filter)
}

/// As [`compile`], as bytes for [`oz_sandbox::seccomp::from_bytes`] in another process (the
/// agent compiles after the clone, while the init builds the root filesystem).
pub fn compile_bytes(spec: &LaunchSpec) -> Result<Vec<u8>, SandboxError> {
    compile_filter(spec).map(|f| f.to_bytes())
}
