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
    Ok(Some(Rc::new(compile_filter(spec)?)))
}

fn compile_filter(spec: &LaunchSpec) -> Result<CompiledFilter, SandboxError> {
    let filter = compile_profile(&spec.profile.seccomp, &spec.config.etc_prefix)
        .map_err(|e| SandboxError::Seccomp(format!("profile {}: {e}", spec.profile.name)))?
        .unwrap_or_else(hardening_only);
    Ok(filter)
}

/// As [`compile`], as bytes for [`from_bytes`] in another process (the agent compiles after the
/// clone, while the init builds the root filesystem).
pub fn compile_bytes(spec: &LaunchSpec) -> Result<Vec<u8>, SandboxError> {
    compile_filter(spec).map(|f| f.to_bytes())
}

/// The filter [`compile_bytes`] made.
pub fn from_bytes(bytes: &[u8]) -> Result<Rc<dyn SeccompFilter>, String> {
    CompiledFilter::from_bytes(bytes).map(|f| Rc::new(f) as Rc<dyn SeccompFilter>).map_err(|e| e.to_string())
}
