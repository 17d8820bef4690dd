//! A seccomp policy (the IR of `oz_profiles::seccomp`) compiled to BPF with libseccomp before
//! fork, and installed after fork without allocating.
//!
//! - [`compile()`]: IR to BPF programs; [`CompiledFilter::install`] loads them.
//! - [`compile_profile`]: the filter a profile's `seccomp` section asks for.
//! - [`hardening`]: the filter every sandbox gets (foreign architectures, x32, TIOCSTI).

pub mod compile;
pub mod eval;
pub mod from_profile;
pub mod hardening;
pub mod syscalls;

pub use compile::{compile, compile_reporting, hardening_only, CompileError, CompiledFilter, Reporting, HINTED};
pub use from_profile::{
    compile_profile, compile_profile_notify, precompile_default, profile_policy, ProfileFilter, ProfileSeccompError,
};

use crate::exec::SeccompFilter;
use nix::errno::Errno;
use std::os::fd::RawFd;
use std::rc::Rc;

impl SeccompFilter for CompiledFilter {
    fn install(&self) -> Result<Option<RawFd>, Errno> {
        CompiledFilter::install_with_listener(self)
    }

    fn has_listener(&self) -> bool {
        CompiledFilter::has_listener(self)
    }

    fn allows(&self, nr: i64, args: &[u64; 6]) -> bool {
        CompiledFilter::allows(self, nr, args)
    }
}

/// The filter [`CompiledFilter::to_bytes`] serialized in another process.
pub fn from_bytes(bytes: &[u8]) -> Result<Rc<dyn SeccompFilter>, String> {
    CompiledFilter::from_bytes(bytes).map(|f| Rc::new(f) as Rc<dyn SeccompFilter>).map_err(|e| e.to_string())
}
